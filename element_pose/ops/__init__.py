"""Operations: running the pipeline (workers, job queues, Slurm, the object store, syncs).

* :mod:`element_pose.ops.pipeline`: which pipeline module to activate;
* :mod:`element_pose.ops.jobs`: tables to populate and the state of their job queues;
* :mod:`element_pose.ops.worker` (+ :mod:`~element_pose.ops.signals`): populate workers;
* :mod:`element_pose.ops.slurm`: Slurm job arrays of workers;
* :mod:`element_pose.ops.store`: store garbage collection and deletes;
* :mod:`element_pose.ops.dandi_sync`: the incremental DANDI publication;
* :mod:`element_pose.ops.demo`, :mod:`~element_pose.ops.jupyter`,
  :mod:`~element_pose.ops.diagram`: the README's demo, JupyterLab, the pipeline picture.

Above the schemas, below the command line.
"""

__all__: list[str] = []
