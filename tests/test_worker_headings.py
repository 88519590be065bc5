"""A worker whose table headings were cached before the lineage rows existed recovers.

Found by docker/podman-check.sh: a worker started on an empty database while another
process (the demo) declared the tables cached headings without lineage, and every pass
failed with DataJoint's "lineage missing on one side" until it was restarted.
"""

from __future__ import annotations

import pytest
from test_worker import make_batch

from element_pose.ops import worker


def _forget_lineage(table_class) -> None:
    """Leave the class's cached heading as one read before the ~lineage rows were written."""
    heading = table_class().heading
    heading._attributes = {name: a._replace(lineage=None)
                           for name, a in heading.attributes.items()}


@pytest.mark.parametrize("once", [True, False])
def test_worker_reloads_headings_cached_before_lineage(pipeline, raw_root, processed_root,
                                                       unique, once):
    batch = make_batch(pipeline, raw_root, processed_root, f"{unique}h", 1)
    for cls in (pipeline.model.VideoRecording, pipeline.model.RecordingInfo):
        _forget_lineage(cls)
    kwargs = {"once": True} if once else {"max_jobs": 1}
    report = worker.run_worker(["model.RecordingInfo"], restriction=batch["restriction"],
                               poll_interval=0, **kwargs)
    assert report.completed == {"model.RecordingInfo": 1}
    assert len(pipeline.model.RecordingInfo & batch["restriction"]) == 1
    assert pipeline.model.RecordingInfo().heading["recording_id"].lineage is not None
