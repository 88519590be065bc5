"""Operations: running the pipeline (workers, job queues, Slurm, the object store, syncs).

* :mod:`element_pose.ops.pipeline`: which pipeline module to activate;
* :mod:`element_pose.ops.jobs`: tables to populate and the state of their job queues;
* :mod:`element_pose.ops.worker` (+ :mod:`~element_pose.ops.signals`,
  :mod:`~element_pose.ops.holders`, :mod:`~element_pose.ops.reconnect`): populate workers,
  who holds a job, reconnecting;
* :mod:`element_pose.ops.slurm`: Slurm job arrays of workers;
* :mod:`element_pose.ops.store` (+ :mod:`~element_pose.ops.s3`): store garbage collection,
  deletes, the S3 bucket;
* :mod:`element_pose.ops.migrate`: ``element-pose db migrate`` of older databases;
* :mod:`element_pose.ops.dandi_sync`: the incremental DANDI publication;
* :mod:`element_pose.ops.demo`, :mod:`~element_pose.ops.jupyter`,
  :mod:`~element_pose.ops.diagram`: the README's demo, JupyterLab, the pipeline picture.

Above the schemas, below the command line.
"""

__all__: list[str] = []
