"""The README's code blocks, run as written (issue 27, item 8).

Every fenced ``python``, ``bash`` and ``cron`` block of README.md is either run here
or marked just above its fence with why it is not run here and which test runs it
(``<!-- readme-test: skip (REASON naming tests/....py) -->``, or ``skip-lines 'TEXT'``
to leave out the commands containing TEXT); a new block with neither fails
:func:`test_every_block_is_run_or_names_its_test`.

Python blocks run in "stories": the blocks of the sections a story lists, in README
order, in one namespace, after the story's world is prepared (generated data from
``element_pose.sample`` and the names the README assumes: ``key``, ``session_key``,
``recording_key``, ``estimation_key``, ``pose_key``, ``query`` and the pipeline's
modules; see ``tests/support/readme_harness.py``).  Blocks of sections no story lists
run in the ``lab`` story.  Shell blocks run ``element-pose`` in ``bash -e``.

Both run in separate processes with their own schema prefix, roots and settings
file, on the session's database: the README's fixed names (``m1``, ``openfield``,
video set 1) never meet other tests' rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.readme_harness import (
    Block,
    MarkerError,
    OfflineTraining,
    offline_training,
    parse_marker,
    parse_readme,
    run_python,
    run_shell,
    shell_script,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HARNESS = REPO / "tests" / "support" / "readme_harness.py"
RUN_LANGS = {"python", "bash", "sh", "shell", "console", "cron", "py"}
SHELL_LANGS = {"bash", "sh", "shell"}
# section heading -> story; Python blocks of other sections run in "lab"
STORIES = {
    "Training and inference": "training",
    "Comparing models": "training",  # ranks the models the training story trained
    "A real DeepLabCut project, start to finish": "training",
    "Failed jobs, killed workers and deletes": "delete",  # deletes m1: after "lab"
}
SLOW_STORIES = {"training"}  # trains DeepLabCut
STORY_ORDER = ["lab", "delete", "training"]
TIMEOUT = {"training": 900}

BLOCKS = parse_readme(README.read_text())


def _story(block: Block) -> str:
    return STORIES.get(block.section, "lab")


def _runnable(lang_set: set[str]) -> list[Block]:
    return [b for b in BLOCKS if b.lang in lang_set and not b.skipped and not b.marker_error]


def _story_blocks() -> dict[str, list[Block]]:
    stories: dict[str, list[Block]] = {}
    for block in _runnable({"python", "py"}):
        stories.setdefault(_story(block), []).append(block)
    return stories


# ------------------------------------------------------------------ coverage
def test_every_block_is_run_or_names_its_test():
    problems = []
    for b in BLOCKS:
        if b.lang not in RUN_LANGS:
            continue
        where = f"README.md:{b.line} ({b.lang}, {b.section!r})"
        if b.marker_error:
            problems.append(f"{where}: {b.marker_error}")
        elif b.marker is None:
            if b.lang == "cron" or b.lang == "console":
                problems.append(f"{where}: not runnable here; mark it "
                                "<!-- readme-test: skip (REASON naming tests/....py) -->")
        elif not b.marker.tests:
            problems.append(f"{where}: the reason {b.marker.reason!r} names no tests/....py")
        else:
            missing = [t for t in b.marker.tests if not (REPO / t).is_file()]
            if missing:
                problems.append(f"{where}: the reason names missing tests {missing}")
        if b.marker and b.marker.kind == "skip-lines" and b.marker.pattern not in b.source:
            problems.append(f"{where}: skip-lines {b.marker.pattern!r} matches no line")
    assert not problems, "README blocks neither run nor marked:\n" + "\n".join(problems)
    assert set(_story_blocks()) <= set(STORY_ORDER)


def test_markers_and_shell_commands_parse():
    marker = parse_marker("skip-lines 'dandi-sync' (a real archive; tests/test_publish.py)")
    assert (marker.kind, marker.pattern, marker.tests) == (
        "skip-lines", "dandi-sync", ["tests/test_publish.py"])
    assert parse_marker("skip (make; tests/test_cli.py runs the demo)").kind == "skip"
    with pytest.raises(MarkerError):
        parse_marker("skip")  # no reason
    with pytest.raises(MarkerError):
        parse_marker("skip-lines (no pattern; tests/test_cli.py)")
    text = ("intro\n\n<!-- readme-test: skip-lines 'submit' (slurm; tests/test_slurm.py) -->\n"
            "  ```bash\n  element-pose status\n  element-pose submit --table a \\\n"
            "      --once\n  element-pose jobs\n  ```\n## Next\n```python\nx = 1\n```\n")
    first, second = parse_readme(text)
    assert (first.lang, first.line, first.marker.kind) == ("bash", 5, "skip-lines")
    assert shell_script(first) == "element-pose status\nelement-pose jobs\n"
    assert (second.section, second.marker, second.source) == ("Next", None, "x = 1\n")


def test_python_blocks_run_at_readme_lines_with_hooks_and_offline_training():
    text = ("# T\n```python\nparams = train.TrainingParamSet.insert_new_params(\n"
            "    'x', {'epochs': 200, 'save_epochs': 50})\nvalue = ready + 1\n1 / 0\n```\n")
    (block,) = parse_readme(text)
    train = type("train", (), {"TrainingParamSet": type("P", (), {
        "insert_new_params": staticmethod(lambda name, params: params)})})
    namespace = {"train": train, "_offline_training": offline_training}
    hooks = {"ready + 1": lambda ns: ns.update(ready=41)}
    with pytest.raises(ZeroDivisionError) as error:
        run_python([block], namespace, "README.md", hooks, transform=OfflineTraining())
    assert error.traceback[-1].lineno + 1 == 6  # README line of `1 / 0`
    assert namespace["value"] == 42
    assert namespace["params"] == {"epochs": 2, "save_epochs": 1, "weight_init": "random",
                                   "device": "cpu"}
    # few epochs stay as written: a snapshot the README uses must be one it saves
    assert "save_epochs" not in offline_training({"epochs": 3, "eval_interval": 10})
    with pytest.raises(LookupError, match="gone"):
        run_python(parse_readme("```python\nx = 1\n```\n"), {}, "README.md",
                   {"gone": lambda ns: None})


# ------------------------------------------------------------------ the world
@pytest.fixture(scope="module")
def readme_env(pipeline, tmp_path_factory) -> dict[str, str]:
    """Environment of the README's processes: own prefix, roots, settings, a mylab module."""
    home = tmp_path_factory.mktemp("readme")
    for folder in ("raw", "processed", "work", "mods/mylab", "bin"):
        (home / folder).mkdir(parents=True)
    # `element-pose` of the code under test (an installed script may predate it)
    command = home / "bin" / "element-pose"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m element_pose.cli "$@"\n')
    command.chmod(0o755)
    # "mylab.pipeline", the README's example of a lab's own pipeline module
    (home / "mods/mylab/__init__.py").write_text("")
    (home / "mods/mylab/pipeline.py").write_text("from workflow.pipeline import *  # noqa\n")
    env = dict(os.environ)
    env.update({
        "ELEMENT_POSE_SCHEMA_PREFIX": f"{os.environ['ELEMENT_POSE_SCHEMA_PREFIX']}rd_",
        "ELEMENT_POSE_ROOT_DIRS": str(home / "raw"),
        "ELEMENT_POSE_PROCESSED_DIR": str(home / "processed"),
        "ELEMENT_POSE_CONFIG": str(home / "config.json"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(home / "mods"),
                                       env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PATH": os.pathsep.join([str(home / "bin"), env.get("PATH", "")]),
        "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1",
    })
    env.pop("ELEMENT_POSE_PIPELINE", None)
    env["_README_WORK"] = str(home / "work")
    yield env
    _harness(env, "-c", "from workflow import pipeline\n"
             "for s in pipeline.schemas_in_drop_order(): s.drop(prompt=False)", check=False)


def _harness(env: dict, *args: str, timeout: float = 300, check: bool = True):
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, str(HARNESS),
                                                               *args]
    done = subprocess.run(command, env=env, cwd=env["_README_WORK"], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n" \
                                     f"{done.stderr[-6000:]}"
    return done


# ------------------------------------------------------------------ shell
@pytest.fixture(scope="module")
def lab_world(readme_env) -> dict[str, str]:
    """The lab story's world with m1's estimation populated (before the delete story)."""
    _harness(readme_env, "prepare", "lab", "--populate")
    return readme_env


@pytest.mark.parametrize("block", _runnable(SHELL_LANGS), ids=lambda b: b.name)
def test_shell_block(lab_world, block):
    """The block's commands run through the CLI (on m1's estimation, a temp settings file)."""
    done = run_shell(block, lab_world, Path(lab_world["_README_WORK"]))
    print(done.stdout[-3000:])  # what the commands said (shown with -rP)
    assert done.returncode == 0, (f"README.md:{block.line} failed:\n{shell_script(block)}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}")


# ------------------------------------------------------------------ stories
def _story_params():
    stories = _story_blocks()
    return [pytest.param(name, [b.line for b in stories[name]], id=name,
                         marks=[pytest.mark.slow] if name in SLOW_STORIES else [])
            for name in STORY_ORDER if name in stories]


@pytest.mark.parametrize(("story", "lines"), _story_params())
def test_python_story(readme_env, story, lines):
    """The story's README blocks run, in order, in one namespace (after the shell blocks,
    which use m1: the delete story deletes it)."""
    done = _harness(readme_env, "story", story, str(README), *map(str, lines),
                    timeout=TIMEOUT.get(story, 300))
    print(done.stdout[-2000:])  # what ran (shown with -rP)


