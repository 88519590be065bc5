"""Run the README's code blocks: parse the fenced blocks, their markers, and run them.

A README block is either run by ``tests/test_readme.py`` or marked, on the line
just above its fence, with why it is not run here and which test runs it::

    <!-- readme-test: skip (needs a Slurm cluster; tests/test_slurm.py runs it) -->
    <!-- readme-test: skip-lines 'dandi-sync' (a real archive; tests/test_publish.py) -->

``skip`` leaves the whole block out; ``skip-lines 'TEXT'`` runs the block without
the commands that contain ``TEXT`` (a shell command continued with ``\\`` is left
out whole).  A reason must name a test file (``tests/....py``).

Python blocks run statement by statement, compiled under the README's own line
numbers (a traceback points into README.md), in a namespace shared by the blocks
of one story; a hook may run before the first statement that contains a given
text (what the README assumes happened outside Python, e.g. outputs that a lab
already has).  Shell blocks run in ``bash -e`` in a subprocess.
"""

from __future__ import annotations

import ast
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

__all__ = [
    "Block",
    "Marker",
    "MarkerError",
    "OfflineTraining",
    "offline_training",
    "parse_marker",
    "parse_readme",
    "run_python",
    "run_shell",
    "shell_script",
]

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
MARKER_BODY = re.compile(
    r"^(?P<kind>skip|skip-lines)\s*(?:'(?P<pattern>[^']+)'|\"(?P<dq>[^\"]+)\")?"
    r"\s*\((?P<reason>.+)\)$")
TEST_FILE = re.compile(r"tests/[\w/]+\.py")


class MarkerError(ValueError):
    """A ``readme-test`` marker that does not follow the grammar."""


@dataclass(frozen=True)
class Marker:
    """A ``<!-- readme-test: ... -->`` marker above a block."""

    kind: str  # "skip" or "skip-lines"
    reason: str
    pattern: str = ""

    @property
    def tests(self) -> list[str]:
        """The test files that the reason names."""
        return TEST_FILE.findall(self.reason)


@dataclass
class Block:
    """One fenced code block of the README."""

    lang: str
    source: str
    line: int  # README line of the block's first code line (1-based)
    section: str  # the nearest heading above the block
    marker: Marker | None = None
    marker_error: str = ""
    sections: list[str] = field(default_factory=list)  # every heading level above it

    @property
    def name(self) -> str:
        """A short id: ``<lang>@L<line>``."""
        return f"{self.lang}@L{self.line}"

    @property
    def skipped(self) -> bool:
        """Whether the whole block is marked as not run here."""
        return self.marker is not None and self.marker.kind == "skip"


def parse_marker(body: str) -> Marker:
    """Parse the text of a marker (what follows ``readme-test:``).

    Raises:
        MarkerError: not ``skip (REASON)`` or ``skip-lines 'TEXT' (REASON)``.
    """
    m = MARKER_BODY.match(body.strip())
    if not m:
        raise MarkerError(f"readme-test marker {body!r}: expected \"skip (REASON)\" or "
                          "\"skip-lines 'TEXT' (REASON)\"")
    pattern = m["pattern"] or m["dq"] or ""
    if (m["kind"] == "skip-lines") != bool(pattern):
        raise MarkerError(f"readme-test marker {body!r}: skip-lines takes a 'TEXT', skip none")
    return Marker(m["kind"], m["reason"].strip(), pattern)


def _marker_above(lines: list[str], fence_index: int) -> tuple[Marker | None, str]:
    i = fence_index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i < 0:
        return None, ""
    m = MARKER.match(lines[i])
    if not m:
        return None, ""
    try:
        return parse_marker(m["body"]), ""
    except MarkerError as exc:
        return None, str(exc)


def _heading(line: str, headings: list[tuple[int, str]]) -> None:
    m = HEADING.match(line)
    if m:
        level = len(m.group(1))
        headings[:] = [h for h in headings if h[0] < level] + [(level, m["title"])]


def parse_readme(text: str) -> list[Block]:
    """Every fenced code block of a Markdown text, in order, with its marker and section."""
    lines = text.splitlines()
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            _heading(lines[i], headings)
            i += 1
            continue
        indent = fence["indent"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[i + 1:end]]
        marker, error = _marker_above(lines, i)
        blocks.append(Block(
            lang=fence["lang"] or "text", source=textwrap.dedent("\n".join(body)) + "\n",
            line=i + 2, section=headings[-1][1] if headings else "",
            marker=marker, marker_error=error, sections=[h[1] for h in headings]))
        i = end + 1
    return blocks


# ------------------------------------------------------------------ python
Hook = Callable[[dict], None]


def _statements(block: Block, filename: str,
                transform: ast.NodeTransformer | None = None) -> Iterable[tuple[str, object]]:
    """Each top-level statement's source and code object, at README line numbers."""
    tree = ast.parse(block.source, filename=filename)
    ast.increment_lineno(tree, block.line - 1)
    if transform is not None:
        tree = ast.fix_missing_locations(transform.visit(tree))
    source_lines = block.source.splitlines()
    for node in tree.body:
        first, last = node.lineno - block.line, node.end_lineno - block.line
        text = "\n".join(source_lines[first:last + 1])
        module = ast.Module(body=[node], type_ignores=[])
        yield text, compile(module, filename, "exec")


def run_python(blocks: Iterable[Block], namespace: dict, filename: str = "README.md",
               hooks: dict[str, Hook] | None = None,
               transform: ast.NodeTransformer | None = None) -> list[str]:
    """Run Python blocks in order in one namespace; return the hooks that ran.

    Args:
        blocks: The story's blocks.
        namespace: Globals shared by the blocks (prepared names already in it).
        filename: Name in tracebacks.
        hooks: ``{text: hook}``: ``hook(namespace)`` runs once, just before the first
            statement whose source contains ``text``.
        transform: An AST transformer applied to each block before it runs.
    """
    pending = dict(hooks or {})
    ran = []
    for block in blocks:
        for text, code in _statements(block, filename, transform):
            for trigger in [t for t in pending if t in text]:
                pending.pop(trigger)(namespace)
                ran.append(trigger)
            exec(code, namespace)  # the README's own code, on test data
    if pending:
        raise LookupError(f"no README statement contains {sorted(pending)}: the hooks that "
                          "prepare it did not run (update the story's hooks)")
    return ran


# ------------------------------------------------------------------ shell
def _commands(source: str) -> list[list[str]]:
    """Shell lines grouped into commands (a line ending in ``\\`` continues)."""
    commands: list[list[str]] = []
    current: list[str] = []
    for line in source.splitlines():
        current.append(line)
        if not line.rstrip().endswith("\\"):
            commands.append(current)
            current = []
    if current:
        commands.append(current)
    return commands


def shell_script(block: Block) -> str:
    """The block's shell text, without the commands that a skip-lines marker names."""
    pattern = block.marker.pattern if block.marker and block.marker.kind == "skip-lines" else ""
    kept = [cmd for cmd in _commands(block.source)
            if not (pattern and any(pattern in line for line in cmd))]
    return "\n".join(line for cmd in kept for line in cmd) + "\n"


def run_shell(block: Block, env: dict[str, str], cwd: Path,
              timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a shell block with ``bash -e -o pipefail`` (output captured, not checked)."""
    script = "set -e -o pipefail\n" + shell_script(block)
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


# ------------------------------------------------------------------ the README's world
# What the README assumes exists, made from element_pose.sample in a separate process
# (own schema prefix and roots, see tests/test_readme.py), and the names it uses.
SESSION_KEY = {"subject": "m1", "session_id": 1}
RECORDING_KEY = {**SESSION_KEY, "recording_id": 0}
LOAD_MODEL = "readme_dlc"
LAB_FRAMES = 300  # the README shows frames up to 250
TRAINING_SESSION = {"subject": "of1", "session_id": 1}
DEMO_SESSION = {"subject": "demo-mouse", "session_id": 1}  # the demo's subject


def _pipeline():
    from workflow import pipeline

    return pipeline


def _names(pipeline) -> dict:
    return {name: getattr(pipeline, name) for name in
            ("lab", "subject", "session", "model", "train", "analysis", "publish", "multicam")}


def _subject(pipeline, key: dict) -> None:
    import datetime

    pipeline.lab.Lab.insert1({"lab": "rlab", "lab_name": "README Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": key["subject"], "sex": "F", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 9, 1)}, skip_duplicates=True)
    pipeline.subject.Subject.Lab.insert1({"subject": key["subject"], "lab": "rlab"},
                                         skip_duplicates=True)
    pipeline.session.Session.insert1(
        {**key, "session_datetime": datetime.datetime(2026, 3, 1, 9, 30),
         "session_description": "open field"}, skip_duplicates=True)


def _recording(pipeline, session_key: dict, video: Path, seed: int, n_frames: int) -> dict:
    from element_pose import sample

    model = pipeline.model
    if not video.exists():
        sample.make_video(video, n_frames=n_frames, seed=seed)
    key = {**session_key, "recording_id": 0}
    if not model.VideoRecording & key:
        model.VideoRecording.insert_recording(session_key, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(key)
    return key


def _lab_estimation(pipeline, raw: Path, session_key: dict, seed: int) -> dict:
    """A session's camera recording, DeepLabCut outputs beside it, their load task."""
    from element_pose import sample

    model = pipeline.model
    _subject(pipeline, session_key)
    video = raw / "sessions" / session_key["subject"] / "cam0.mp4"
    fresh = not video.exists()
    recording = _recording(pipeline, session_key, video, seed=seed, n_frames=LAB_FRAMES)
    outputs = video.parent / "dlc"
    if fresh or not outputs.is_dir():
        sample.make_dlc_output(sample.ground_truth(n_frames=LAB_FRAMES, seed=seed), video,
                               outputs)
    estimation = {**recording, "model_name": LOAD_MODEL}
    if not model.PoseEstimationTask & estimation:
        model.PoseEstimationTask.insert_estimation_task(estimation, "load", output_dir=outputs)
    return (model.PoseEstimationTask & estimation).keys()[0]


def prepare_lab(populate: bool = False) -> dict:
    """Subjects m1 and the demo's, a session each with a camera recording and outputs.

    A DeepLabCut model (a generated project, no training) and one load-mode estimation
    task per session, inserted, not populated (the README's first block populates
    them) unless ``populate``.  Idempotent.
    """
    from element_pose import sample
    from element_pose.core.paths import default_root_dirs

    pipeline = _pipeline()
    model = pipeline.model
    raw = Path(default_root_dirs()[0])
    project = raw / "projects" / "readme"
    if not (project / "config.yaml").exists():
        sample.make_dlc_project(project, n_frames=20, n_labeled=4)
    model.Model.insert_new_model(LOAD_MODEL, project / "config.yaml", shuffle=1,
                                 skip_duplicates=True)
    estimation = _lab_estimation(pipeline, raw, SESSION_KEY, seed=3)
    _lab_estimation(pipeline, raw, DEMO_SESSION, seed=4)
    if populate:
        model.PoseEstimation.populate()
    return {**_names(pipeline), "session_key": SESSION_KEY, "recording_key": RECORDING_KEY,
            "key": estimation, "estimation_key": estimation, "pose_key": estimation,
            "query": model.PoseEstimation & SESSION_KEY}


def prepare_training() -> dict:
    """Two tiny DeepLabCut projects and a session recording for the training story.

    ``projects/openfield``: a generated project; ``openfield``: the same as the public
    examples ship it (placeholder ``video_sets``); a recording of session of1 at
    ``openfield_sessions/day1/cam0.mp4``.
    """
    from element_pose import sample
    from element_pose.core.paths import default_root_dirs
    from element_pose.io import dlc

    pipeline = _pipeline()
    raw = Path(default_root_dirs()[0])
    sample.make_dlc_project(raw / "projects" / "openfield", n_frames=60, n_labeled=24)
    config = sample.make_dlc_project(raw / "openfield", n_frames=60, n_labeled=24)
    cfg = dlc.read_config(config)
    cfg["video_sets"] = {"WILL BE AUTOMATICALLY UPDATED BY DEMO CODE":
                         {"crop": "0, 640, 0, 480"}}
    dlc.write_config(cfg, config)
    _subject(pipeline, TRAINING_SESSION)
    recording = _recording(pipeline, TRAINING_SESSION,
                           raw / "openfield_sessions" / "day1" / "cam0.mp4", seed=5,
                           n_frames=40)
    return {**_names(pipeline), "session_key": TRAINING_SESSION, "recording_key": recording}


def lab_outputs_beside_video(namespace: dict) -> None:
    """What a lab has before loading: DeepLabCut outputs of two snapshots beside the video.

    Made by real inference with the model the README registered as ``openfield``.
    """
    from element_pose.core.paths import default_root_dirs
    from element_pose.engines import deeplabcut as engine

    model = namespace["model"]
    video = Path(default_root_dirs()[0]) / "openfield_sessions" / "day1" / "cam0.mp4"
    key = {"model_name": "openfield"}
    config = model.Model.config_path(key)
    row = (model.Model & key).fetch1()
    # the snapshot the model names (a column once, engine_options now)
    snapshot = row.get("snapshot") or (row.get("engine_options") or {})["snapshot"]
    for which in (1, snapshot):
        engine.infer(config, [video], video.parent / "dlc", snapshot=which, device="cpu")


OFFLINE_TRAINING = {"weight_init": "random", "device": "cpu"}


def offline_training(params: dict) -> dict:
    """Training parameters as the README gives them, made to run offline in seconds.

    Random initial weights (no model hub here) on the CPU; more than 3 epochs become
    2, saving every epoch.  Fewer epochs and their ``save_epochs`` stay as written,
    so a snapshot the README uses must be one its parameters save.
    """
    params = {**params, **OFFLINE_TRAINING}
    if (params.get("epochs") or 0) > 3:
        params["epochs"] = 2
        if params.get("save_epochs"):
            params["save_epochs"] = 1
    return params


class OfflineTraining(ast.NodeTransformer):
    """Wrap the parameters of ``TrainingParamSet.insert_new_params(name, params)``

    in ``_offline_training(...)`` (:func:`offline_training`, put in the namespace).
    """

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "insert_new_params"
                and isinstance(func.value, ast.Attribute)
                and func.value.attr == "TrainingParamSet" and len(node.args) >= 2):
            node.args[1] = ast.copy_location(ast.Call(
                func=ast.Name("_offline_training", ast.Load()), args=[node.args[1]],
                keywords=[]), node.args[1])
        return node


STORY_PREPARATIONS = {"lab": prepare_lab, "delete": partial(prepare_lab, populate=True),
                      "training": prepare_training}
STORY_HOOKS = {"training": {"openfield_sessions/day1/dlc": lab_outputs_beside_video}}


def run_story(story: str, readme: Path, lines: list[int]) -> None:
    """Prepare a story's world and run its README blocks (those starting at ``lines``)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    namespace = {"__name__": "__readme__", **STORY_PREPARATIONS[story]()}
    namespace["_offline_training"] = offline_training
    blocks = [b for b in parse_readme(readme.read_text()) if b.line in lines]
    if sorted(b.line for b in blocks) != sorted(lines):
        raise SystemExit(f"README blocks not found at lines {lines}")
    ran = run_python(blocks, namespace, str(readme), STORY_HOOKS.get(story),
                     transform=OfflineTraining())
    print(f"story {story}: {len(blocks)} blocks run; hooks {ran}")


def main(argv: list[str]) -> None:
    """``readme_harness.py prepare lab|training [--populate]`` or ``story NAME README LINE...``."""
    if argv[0] == "prepare":
        prepare = STORY_PREPARATIONS[argv[1]]
        prepare(populate=True) if "--populate" in argv else prepare()
    elif argv[0] == "story":
        run_story(argv[1], Path(argv[2]), [int(x) for x in argv[3:]])
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
