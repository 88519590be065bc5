"""The README's engine table (issue 28 item 7) says only what a test shows.

Every ``tests/<file>.py::<name>`` the table cites is a test function of that file; the
engines that train (DeepLabCut, SLEAP) cite a test in each of their capability cells;
the versions are the installed ones; no cell claims a GPU test (no GPU was lent to this
project's sessions: GPU cells say so).
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
COLUMNS = ["Engine", "Version", "Train", "Evaluate", "Infer", "Load",
           "Single / multi-animal", "CPU / GPU"]
GPU_UNTESTED = "GPU: CUDA when torch sees one; not tested here (no GPU lent)"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = re.search(r"\n#{2,3} ", text[start + len(heading) + 2:])
    return text[start:start + len(heading) + 2 + (end.start() if end else len(text))]


def _table() -> list[dict[str, str]]:
    section = _section((REPO / "README.md").read_text(), "## Engines")
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == COLUMNS, header
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def _tests_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


ROWS = _table()


def test_the_table_lists_the_engines():
    assert [r["Engine"] for r in ROWS] == ["DeepLabCut", "SLEAP", "Lightning Pose", "anipose"]


@pytest.mark.parametrize("citation", sorted({m.groups() for r in ROWS
                                             for m in CITED.finditer(" ".join(r.values()))}),
                         ids=lambda c: "::".join(c))
def test_every_cited_test_exists(citation):
    file, name = citation
    path = REPO / file
    assert path.is_file(), f"the README cites {file}, which does not exist"
    assert name in _tests_of(path), f"the README cites {file}::{name}, not a test there"


def test_the_training_engines_cite_a_test_in_every_cell():
    for row in ROWS[:2]:
        for column in COLUMNS[2:]:
            assert CITED.search(row[column]), (row["Engine"], column, row[column])
        single, _, multi = row["Single / multi-animal"].partition("multi:")
        assert CITED.search(single) and CITED.search(multi), row["Engine"]
        cpu, _, gpu = row["CPU / GPU"].partition("GPU:")
        assert CITED.search(cpu) and not CITED.search(gpu), row["Engine"]
        assert GPU_UNTESTED in row["CPU / GPU"], row["Engine"]
    for row in ROWS[2:]:
        assert CITED.search(row["Load"]), row["Engine"]


def test_the_versions_are_the_installed_ones():
    by_engine = {r["Engine"]: r["Version"] for r in ROWS}
    assert by_engine["DeepLabCut"] == version("deeplabcut")
    assert by_engine["SLEAP"] == f"sleap-nn {version('sleap-nn')} / sleap-io {version('sleap-io')}"
    assert f"aniposelib {version('aniposelib')}" in by_engine["anipose"]


def test_the_environment_note_names_the_pins_that_are_installed():
    note = _section((REPO / "README.md").read_text(), "### Environments")
    for pin in ("skia-python<=138", "av<16", "antlr4-python3-runtime", "hydra-core>=1.3",
                "opencv-python-headless"):
        assert pin in note, pin
    assert int(version("skia-python").split(".")[0]) <= 138
    assert int(version("av").split(".")[0]) < 16
    assert version("antlr4-python3-runtime").startswith("4.9.")
    assert tuple(int(p) for p in version("hydra-core").split(".")[:2]) >= (1, 3)
