"""The schemas reach engines only through ``get_engine``: no schema imports an engine
package or a tool-specific reader, so adding an engine needs no schema edit."""

import ast
from pathlib import Path

import pytest

import element_pose

PACKAGE = Path(element_pose.__file__).resolve().parent
#: Modules only an engine (or the io registry behind it) may import.
ENGINE_ONLY = ("element_pose.engines.deeplabcut", "element_pose.engines.deeplabcut.engine",
               "element_pose.engines.sleap", "element_pose.engines.sleap.engine",
               "element_pose.engines.lightning_pose", "sleap_nn",
               "element_pose.io.dlc", "element_pose.io.sleap",
               "element_pose.io.lightning_pose", "deeplabcut", "sleap_io")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("schema", ["model.py"])
def test_schema_imports_no_engine(schema):
    found = sorted(n for n in _imports(PACKAGE / "schemas" / schema)
                   if any(n == m or n.startswith(m + ".") for m in ENGINE_ONLY))
    assert found == [], f"{schema} imports {found}; call get_engine(row['engine']) instead"


def test_training_schema_imports_no_engine():
    # train.py may use the DeepLabCut *file* helpers (config.yaml of the training copy)
    allowed = {"element_pose.io.dlc"}
    found = sorted(n for n in _imports(PACKAGE / "schemas" / "train.py")
                   if any(n == m or n.startswith(m + ".") for m in ENGINE_ONLY)
                   and n not in allowed)
    assert found == [], f"train.py imports {found}; call get_engine(...) instead"
