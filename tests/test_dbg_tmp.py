import signal, time, pytest
from test_worker import *  # noqa
from test_worker import batch  # noqa

def test_dbg(pipeline, batch, postgres):
    model = pipeline.model
    b = batch(2)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    worker.prepare_job_queues([POSE], r)
    with locked(model.PoseEstimation.BodyPartPosition) as lock:
        proc = start_worker("worker", "--table", POSE, "--restrict", b["restrict"], "--poll-interval", "1")
        lock.wait_for(1, [proc])
        import glob
        for f in glob.glob(f"/proc/{proc.pid}/task/*/status"):
            lines = [l for l in open(f) if l.startswith(("Name", "SigBlk", "SigCgt"))]
            print(f, lines)
    proc.kill(); print(proc.communicate()[1][-2000:])
