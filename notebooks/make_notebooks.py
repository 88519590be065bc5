"""Generate the element-pose notebooks from the cell lists below (no outputs are committed).

    python notebooks/make_notebooks.py           # (re)write every notebook
    python notebooks/make_notebooks.py --check   # exit 1 if a notebook differs from its cells

To add a notebook: write a list of cells (``md(...)`` / ``code(...)``) and add it to
:data:`NOTEBOOKS` under its file name, then run this script.  ``tests/test_notebooks.py``
executes every ``notebooks/*.ipynb`` against the test database and checks that each
generated notebook matches its committed file.  Notebooks run against whatever
database element-pose is configured for (the embedded PostgreSQL by default), so
their inserts use ``skip_duplicates=True`` and re-running them is safe.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
Cell = tuple[str, str]  # ("markdown" | "code", source)


def md(text: str) -> Cell:
    """A markdown cell (the text is dedented)."""
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> Cell:
    """A code cell (the text is dedented)."""
    return ("code", textwrap.dedent(text).strip("\n"))


# ============================================================ 01 quick start
QUICK_START: list[Cell] = [
    md("""
        # element-pose quick start

        This notebook runs the pipeline on generated sample data, shows the pipeline's
        tables, adds a recording by hand, and plots a trajectory. It takes well under a
        minute and needs no GPU.

        It uses the database element-pose is configured for: the embedded PostgreSQL by
        default (started on first use), or a server given by `DJ_HOST` / `datajoint.json`.
        Data go to the first folder of `ELEMENT_POSE_ROOT_DIRS` (default:
        `<ELEMENT_POSE_HOME>/demo`). Re-running the notebook is safe.
    """),
    code("""
        %matplotlib inline
        import datetime
        import logging

        import matplotlib.pyplot as plt
        import numpy as np

        logging.basicConfig(level=logging.WARNING)
    """),
    md("""
        ## 1. Sample data through the whole pipeline

        `run_demo(mode="load")` generates a small DeepLabCut project, a session video and
        DeepLabCut-format pose outputs, fills lab/subject/session, registers the recording
        and a model, and ingests the outputs with `populate()` (load mode: what a lab with
        existing DeepLabCut results does). It returns a summary per body part.
    """),
    code("""
        from element_pose.demo import run_demo

        summary = run_demo(mode="load")
        summary
    """),
    md("""
        ## 2. The pipeline

        Importing `workflow.pipeline` connects to the database and activates the schemas.
        The diagram needs Graphviz's `dot`; without it, the tables are listed instead.
    """),
    code("""
        import shutil

        import datajoint as dj

        from workflow.pipeline import lab, model, session, subject, train

        modules = [lab, subject, session, model, train]
        diagram = dj.Diagram(modules[0].schema)
        for module in modules[1:]:
            diagram += dj.Diagram(module.schema)
        if shutil.which("dot"):
            display(diagram)
        else:
            print("(Graphviz `dot` not found: the tables of each schema, upstream first)")
            for module in modules:
                tables = [f"{name} ({obj.__bases__[0].__name__})"
                          for name, obj in vars(module).items()
                          if isinstance(obj, type) and issubclass(obj, dj.Table)
                          and obj.__module__ == module.__name__]
                print(f"{module.schema.database}: {', '.join(tables)}")
    """),
    md("""
        ## 3. A subject, session and recording by hand

        With your own data, the video files must lie under one of the root folders
        (`ELEMENT_POSE_ROOT_DIRS`); the database stores paths relative to them. Here a
        second short video and its DeepLabCut outputs are generated first.
    """),
    code("""
        from element_pose import sample

        roots = model.roots()  # ELEMENT_POSE_ROOT_DIRS and ELEMENT_POSE_PROCESSED_DIR
        video = roots.root_dirs()[0] / "sessions" / "nb-mouse" / "session1" / "camera0.mp4"
        outputs = roots.processed_dir() / "load_mode_outputs" / "nb-mouse_session1"
        if not video.is_file():
            sample.make_video(video, n_frames=150, fps=30.0, seed=11)
        if not any(outputs.glob("*.h5")):
            truth = sample.ground_truth(n_frames=150, fps=30.0, seed=11)
            sample.make_dlc_output(truth, video, outputs, seed=11)
        video
    """),
    code("""
        subject.Subject.insert1(
            {"subject": "nb-mouse", "sex": "M", "species": "Mus musculus",
             "subject_birth_date": datetime.date(2025, 6, 1)},
            skip_duplicates=True)
        session_key = {"subject": "nb-mouse", "session_id": 1}
        session.Session.insert1(
            {**session_key, "session_datetime": datetime.datetime(2026, 2, 1, 10, 0),
             "session_description": "open field, by hand"},
            skip_duplicates=True)
        recording = model.VideoRecording.insert_recording(
            session_key, 0, {"device": "camera0"}, [video], "added by hand",
            skip_duplicates=True)
        model.RecordingInfo.populate(recording)
        model.RecordingInfo & recording
    """),
    md("""
        A pose estimation task pairs a recording with a model. In `load` mode it reads
        existing DeepLabCut outputs from `output_dir`; in `trigger` mode `populate()` runs
        inference. Here the model `demo_load` registered by the demo is reused.
    """),
    code("""
        task = model.PoseEstimationTask.insert_estimation_task(
            {**recording, "model_name": "demo_load"}, "load", output_dir=outputs,
            skip_duplicates=True)
        model.PoseEstimation.populate(task, reserve_jobs=True)
        model.PoseEstimation & task
    """),
    md("""
        ## 4. Query and plot

        Each body part's x, y and likelihood are float32 arrays, one row per individual
        and body part. `get_trajectory` returns a DeepLabCut-style DataFrame;
        `fetch_pose` the in-memory pose model with its time base.
    """),
    code("""
        model.PoseEstimation.BodyPartPosition & task
    """),
    code("""
        trajectory = model.PoseEstimation.get_trajectory(task)
        trajectory.head()
    """),
    code("""
        pose = model.PoseEstimation.fetch_pose(task)
        seconds = pose.time()
        fig, (ax_xy, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
        for k, part in enumerate(pose.keypoints):
            ax_xy.plot(pose.position[:, 0, k, 0], pose.position[:, 0, k, 1], lw=1, label=part)
        ax_xy.set(xlabel="x (px)", ylabel="y (px)", title="trajectories")
        ax_xy.invert_yaxis()  # image coordinates: (0, 0) is the top-left pixel
        ax_xy.set_aspect("equal")
        ax_xy.legend(fontsize="small")
        nose = pose.keypoints.index("nose")
        ax_t.plot(seconds, pose.position[:, 0, nose, 0], label="x")
        ax_t.plot(seconds, pose.position[:, 0, nose, 1], label="y")
        ax_t.set(xlabel="time (s)", ylabel="px", title="nose")
        ax_t.legend()
        fig.tight_layout()
        plt.show()
        print(f"{pose.n_frames} frames, mean likelihood {np.nanmean(pose.confidence):.3f}")
    """),
    md("""
        ## Next

        * `element-pose status`: what is done, to do, reserved or in error, per table.
        * `element-pose worker`: run the computations from the job queues (any number of
          workers, on any number of machines, may share one database); see
          `docker/compose.yaml` for a deployment with GPU workers.
    """),
]

# ================================================================ registry
# ====================================================== 02 train and evaluate
TRAIN_AND_EVALUATE: list[Cell] = [
    md("""
        # Train and evaluate a DeepLabCut 3 model

        Labelled frames in, a trained and evaluated model out, all through `populate()`.
        The sample project has 24 labelled frames of coloured markers; a small network
        (`cspnext_s`, random initialisation, so no download) learns them on a CPU in a
        minute or two. With your own project, use `"weight_init": "pretrained"` (online)
        or `{"model": "<a registered model>"}` to fine-tune.
    """),
    code("""
        import logging

        from element_pose.demo import DEMO_TRAINING_PARAMS, make_sample_data, prepare_environment

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        root = prepare_environment()
        files = make_sample_data(root, root / "processed")
        from workflow.pipeline import model, train
    """),
    md("## 1. Labelled data and parameters"),
    code("""
        if not (train.VideoSet & {"video_set_id": 2}):
            train.VideoSet.insert_from_project(2, files["config"], "notebook 02 labelled frames")
        params = {**DEMO_TRAINING_PARAMS, "epochs": 10, "save_epochs": 5}
        paramset_idx = train.TrainingParamSet.insert_new_params("notebook: tiny CPU", params)
        task = {"video_set_id": 2, "paramset_idx": paramset_idx, "training_id": 0}
        train.TrainingTask.insert1({**task, "project_path": model.roots().relative(
            files["config"].parent)}, skip_duplicates=True)
        train.TrainingParamSet & {"paramset_idx": paramset_idx}
    """),
    md("""
        ## 2. Train

        Training runs outside any database transaction (DataJoint's tripartite make) on a
        copy of the project that the task owns; your `config.yaml` is never rewritten.
    """),
    code("""
        train.ModelTraining.populate(task, reserve_jobs=True)
        row = (train.ModelTraining & task).fetch1()
        print(f"trained on {row['device']} in {row['train_time']:.0f} s, "
              f"best snapshot {row['best_snapshot']}, versions {row['engine_versions']}")
        train.ModelTraining.Snapshot & task
    """),
    code("""
        import matplotlib.pyplot as plt

        stats = row["learning_stats"]
        loss = [v for k, v in stats.items() if "loss" in k]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(loss[0])
        ax.set(xlabel="epoch", ylabel="train loss", title="learning curve")
        plt.show()
    """),
    md("## 3. Register and evaluate"),
    code("""
        model_key = {"model_name": "notebook_model"}
        if not (model.Model & model_key):
            train.ModelTraining.register_model(task, "notebook_model")
        model.ModelEvaluation.populate(model_key)
        model.ModelEvaluation & model_key
    """),
    code("""
        model.ModelEvaluation.BodyPartError & model_key
    """),
]

# ================================================ 03 pose estimation and QC
POSE_AND_QC: list[Cell] = [
    md("""
        # Pose estimation, filtering and quality control

        Poses of a session (here ingested from DeepLabCut outputs; trigger mode runs
        inference instead), filtered beside the raw estimates, checked with QC figures,
        exported as a tidy table, and turned into speed and rest/movement states.
    """),
    code("""
        %matplotlib inline
        from IPython.display import Image, display

        from element_pose.demo import run_demo

        run_demo(mode="load")
        from workflow.pipeline import analysis, model

        key = (model.PoseEstimation & {"model_name": "demo_load"}).keys()[0]
        key
    """),
    md("## 1. Filter (raw poses stay untouched)"),
    code("""
        idx = analysis.FilterParamSet.insert_new_params("clean", {"steps": [
            {"step": "confidence_threshold", "threshold": 0.6},
            {"step": "median", "window": 5},
            {"step": "offset_threshold", "window": 7, "threshold": 10},
            {"step": "interpolate", "max_gap": 5},
        ]})
        filtered_key = {**key, "filter_paramset_idx": idx}
        analysis.FilteringTask.insert1(filtered_key, skip_duplicates=True)
        analysis.FilteredPose.populate(filtered_key)
        [step["step"] for step in (analysis.FilteredPose & filtered_key).fetch1("provenance")]
    """),
    md("## 2. QC figures (PNG files under the processed root, recorded in a table)"),
    code("""
        analysis.PoseQC.populate(key)
        analysis.FilteredPoseQC.populate(filtered_key)
        for name, path in analysis.FilteredPoseQC.figure_paths(filtered_key).items():
            print(name, path)
            display(Image(filename=str(path), width=480))
    """),
    md("## 3. Tidy table and kinematics"),
    code("""
        table = analysis.tidy_table(key, filter_paramset_idx=idx)
        table.head()
    """),
    code("""
        import matplotlib.pyplot as plt

        loco = analysis.locomotion(key, threshold=40.0, keypoints=["left_ear", "right_ear"],
                                   filter_paramset_idx=idx)
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(loco.time, loco.speed[:, 0], label="speed (px/s)")
        ax.fill_between(loco.time, 0, loco.speed.max(), where=loco.moving[:, 0], alpha=0.2,
                        label="moving")
        ax.set(xlabel="time (s)")
        ax.legend()
        plt.show()
        print(f"moving {100 * loco.fraction_moving()[0]:.0f}% of the time")
    """),
]

# ============================================== 04 export to NWB and DANDI
NWB_AND_DANDI: list[Cell] = [
    md("""
        # Export to NWB and publish on DANDI

        Query results become NWB files (ndx-pose): one per subject and session, with the
        camera, the skeleton, the source video and real time. They pass nwbinspector and
        `dandi validate`, and `dandi_sync` uploads only what is new.

        To upload, set `DANDI_INSTANCE` (`dandi-sandbox`, `dandi` or an API URL) and
        `DANDI_API_KEY` before starting Jupyter; without them the upload cell only says so.
    """),
    code("""
        import os
        import tempfile
        from pathlib import Path

        from element_pose.demo import run_demo

        run_demo(mode="load")
        from workflow.pipeline import publish

        query = {"subject": "demo-mouse", "model_name": "demo_load"}
        out = Path(tempfile.mkdtemp(prefix="element-pose-nwb-"))
        files = publish.export_nwb(query, out)
        files[0].relpath
    """),
    code("""
        from element_pose.export.nwb import check_nwb, read_pose_from_nwb

        check_nwb(files[0].path)  # raises on any critical nwbinspector message
        pose = read_pose_from_nwb(files[0].path)  # what movement reads by default
        print(pose.keypoints, pose.position.shape, f"{pose.time()[-1]:.2f} s")
    """),
    md("""
        ## Publish

        `dandi_sync` exports what is new into a local dandiset folder (DANDI layout,
        videos beside the files), validates it, uploads new or changed files and records
        each upload in `publish.DandiUpload`. The same runs from cron as
        `element-pose dandi-sync --dandiset 000123`.
    """),
    code("""
        instance = os.environ.get("DANDI_INSTANCE")
        if instance and os.environ.get("DANDI_API_KEY"):
            dandiset_id = os.environ.get("DANDISET_ID", "000123")
            report = publish.dandi_sync(dandiset_id, out / dandiset_id, instance=instance,
                                        query=query)
            print("uploaded:", report.uploaded)
            display(publish.DandiUpload & {"dandiset_id": dandiset_id})
        else:
            print("set DANDI_INSTANCE and DANDI_API_KEY to upload")
    """),
]

# ==================================================== 05 multi-camera 3D
MULTICAMERA_3D: list[Cell] = [
    md("""
        # Multi-camera 3D: calibration and triangulation

        A synthetic scene with three known cameras: ChArUco board videos calibrate the
        cameras (aniposelib), 2D estimations of each camera are triangulated into 3D,
        and a joint angle is computed. With your data, only the inputs change.
    """),
    code("""
        %matplotlib inline
        import datetime

        import numpy as np

        from element_pose import sample, sample3d
        from element_pose.demo import prepare_environment
        from element_pose.io import dlc
        from element_pose.io.video import write_video
        from workflow.pipeline import lab, model, multicam, session, subject

        root = prepare_environment()
        folder = root / "multicam"
        cameras = sample3d.make_cameras(distortion=False)
        lab.Device.insert(({"device": f"cam_{c.name}"} for c in cameras), skip_duplicates=True)
        subject.Subject.insert1({"subject": "mc-mouse", "sex": "F", "species": "Mus musculus",
                                 "subject_birth_date": datetime.date(2025, 1, 1)},
                                skip_duplicates=True)
        session_key = {"subject": "mc-mouse", "session_id": 1}
        session.Session.insert1({**session_key, "session_datetime": datetime.datetime(2026, 5, 1)},
                                skip_duplicates=True)
    """),
    md("## 1. Calibrate from board videos"),
    code("""
        videos = sample3d.render_board_videos(cameras, folder / "calibration")
        board = multicam.CalibrationParamSet.insert_new_params("6x5 charuco", sample3d.BOARD)
        calibration = {**session_key, "calibration_id": 1}
        if not (multicam.CalibrationTask & calibration):
            multicam.CalibrationTask.insert_calibration_task(session_key, 1, videos, board)
        multicam.Calibration.populate(calibration)
        multicam.Calibration.Camera & calibration
    """),
    md("## 2. 2D estimations of each camera, a camera group, triangulation"),
    code("""
        parts = ["nose", "left_ear", "right_ear", "tail_base"]
        truth = sample3d.make_trajectory(30, body=np.array(
            [[0, 0, 0], [30, 0, 0], [30, 0, 30], [80, 5, 10]], float))[:, None]
        poses = sample3d.project_scene(cameras, truth, individuals=["individual_0"],
                                       keypoints=parts)
        project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=2)
        model_key = model.Model.insert_new_model("mc_model", project, skip_duplicates=True)
        scorer = "DLC_Resnet50_demoJan1shuffle1_snapshot_best-10"
        members = {}
        for rid, (camera, pose) in enumerate(poses.items()):
            video = folder / f"{camera}.mp4"
            if not video.is_file():
                write_video(video, [np.zeros((48, 64, 3), np.uint8)] * 30, fps=30.0)
            outputs = model.roots().processed_dir() / "multicam" / camera
            dlc.write_dlc_h5(pose, outputs / f"{video.stem}{scorer}.h5", scorer=scorer)
            key = model.VideoRecording.insert_recording(
                session_key, rid, {"device": f"cam_{camera}"}, [video], skip_duplicates=True)
            model.RecordingInfo.populate(key)
            model.PoseEstimationTask.insert_estimation_task(
                {**key, **model_key}, "load", output_dir=outputs, skip_duplicates=True)
            members[camera] = rid
        model.PoseEstimation.populate(session_key)
        if not (multicam.CameraGroup & session_key):
            multicam.CameraGroup.insert_camera_group(session_key, 1, 1, members)
        params = multicam.TriangulationParamSet.insert_new_params("3d", {
            "score_threshold": 0.5, "angles": {"ear_angle": ["left_ear", "nose", "right_ear"]}})
        task = {**session_key, "camera_group_id": 1, **model_key,
                "triangulation_paramset_id": params}
        multicam.TriangulationTask.insert1(task, skip_duplicates=True)
        multicam.Triangulation.populate(task)
        multicam.Triangulation & task
    """),
    code("""
        import matplotlib.pyplot as plt

        pose3d = multicam.Triangulation.fetch_pose3d(task)
        angles = multicam.Triangulation.joint_angles(task)
        fig = plt.figure(figsize=(8, 3))
        ax = fig.add_subplot(1, 2, 1, projection="3d")
        for k, name in enumerate(pose3d.keypoints):
            ax.plot(*pose3d.position[:, 0, k].T, label=name)
        ax.legend(fontsize=6)
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(pose3d.time(), angles["ear_angle"][:, 0])
        ax2.set(xlabel="time (s)", ylabel="ear angle (deg)")
        plt.show()
        error = np.linalg.norm(pose3d.position - truth, axis=-1)
        print(f"median 3D error {np.nanmedian(error):.2f} mm (before aligning axes)")
    """),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01_quick_start.ipynb": QUICK_START,
    "02_train_and_evaluate.ipynb": TRAIN_AND_EVALUATE,
    "03_pose_estimation_and_qc.ipynb": POSE_AND_QC,
    "04_export_nwb_and_dandi.ipynb": NWB_AND_DANDI,
    "05_multicamera_3d.ipynb": MULTICAMERA_3D,
}


def build(cells: list[Cell], name: str) -> nbformat.NotebookNode:
    """A notebook (nbformat 4, no outputs, deterministic cell ids) from its cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    }
    stem = Path(name).stem.replace("_", "-")
    for i, (kind, source) in enumerate(cells):
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        cell.id = f"{stem}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    """The file text of notebook ``name``."""
    return nbformat.writes(build(NOTEBOOKS[name], name)) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the notebooks, or with ``--check`` report those that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a notebook differs from its cells")
    parser.add_argument("names", nargs="*", help="notebooks to write (default: all)")
    args = parser.parse_args(argv)
    stale = []
    for name in args.names or NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            sys.stdout.write(f"wrote {path}\n")
    if stale:
        sys.stdout.write(f"out of date: {', '.join(stale)} "
                         f"(run python notebooks/make_notebooks.py)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
