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
NOTEBOOKS: dict[str, list[Cell]] = {
    "01_quick_start.ipynb": QUICK_START,
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
