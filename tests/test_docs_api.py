"""The API reference follows the house: every public module has a page, no page names a ghost.

``docs/api/*.md`` are mkdocstrings pages (``::: element_pose.xxx``). The strict site build
(tests/test_notebooks.py) fails on an identifier that does not resolve, but it runs only
after the tutorials; these checks are quick and need no build. A module is public when no
part of its dotted name starts with an underscore.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
API = REPO / "docs" / "api"
PACKAGE = REPO / "element_pose"
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def _public_modules() -> set[str]:
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            modules.add(".".join(parts))
    return modules


def _documented() -> dict[str, str]:
    """Identifier -> the page that names it."""
    return {name: page.name for page in sorted(API.glob("*.md"))
            for name in DIRECTIVE.findall(page.read_text())}


def _nav_pages(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, list):
        return set().union(*map(_nav_pages, node)) if node else set()
    if isinstance(node, dict):
        return set().union(*map(_nav_pages, node.values())) if node else set()
    return set()


def test_every_page_names_existing_modules():
    modules = _public_modules()
    ghosts = {name: page for name, page in _documented().items() if name not in modules}
    assert not ghosts, f"pages name modules that do not exist: {ghosts}"


def test_every_public_module_has_a_page():
    missing = sorted(_public_modules() - set(_documented()) - {"element_pose"})
    assert not missing, f"public modules on no docs/api page: {missing}"


def test_every_api_page_is_in_the_nav():
    nav = _nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
    pages = {f"api/{page.name}" for page in API.glob("*.md")}
    assert pages <= nav, f"API pages missing from mkdocs.yml's nav: {sorted(pages - nav)}"
