"""Every tutorial runs top to bottom; the docs site builds strictly and shows their figures.

The tutorials are jupytext percent scripts (``notebooks/scripts/NN_name.py``) paired with
committed ``.ipynb`` files that carry no outputs. The kernel is this interpreter
(a kernelspec written for the test points at ``sys.executable``) and inherits the
environment tests/conftest.py set: the test's database, schema prefix and roots.

The executed notebooks then go into the documentation site (``docs/build.py``,
MkDocs in strict mode), whose tutorial pages are opened in headless Chromium to
check that their figures load. Chromium (Debian's ``chromium`` and
``chromium-driver``) is installed by ``.ci/run``; where it is missing the browser
test skips with the reason, except in CI, where it fails.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import sys
import threading
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))
import build as docs_build  # noqa: E402  (docs/build.py)

KERNEL = "element-pose-test"
SOURCES = docs_build.notebook_sources()
#: Executed notebooks of this test session, by stem (shared with the docs test).
EXECUTED: dict[str, nbformat.NotebookNode] = {}
#: Tutorials whose pages must show at least this many figures.
FIGURES = {"01_quick_start": 2, "03_pose_estimation_and_qc": 4, "06_refinement_loop": 1,
           "07_compare_engines": 1}


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory) -> str:
    """A kernelspec for this interpreter, found through ``JUPYTER_PATH``."""
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "element-pose (tests)",
        "language": "python",
    }))
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(data), previous]))
    yield KERNEL
    if previous is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = previous


def test_notebooks_are_paired_and_have_no_outputs():
    assert SOURCES, "no notebooks"
    assert not (REPO / "notebooks" / "make_notebooks.py").exists()
    for source in SOURCES:
        paired = REPO / "notebooks" / f"{source.stem}.ipynb"
        assert paired.is_file(), f"{source.name} has no paired notebook: run `jupytext --sync`"
        nb = nbformat.read(paired, as_version=4)
        nbformat.validate(nb)
        text = jupytext.read(source)
        assert [(c.cell_type, c.source) for c in nb.cells] == \
            [(c.cell_type, c.source) for c in text.cells], \
            f"{paired.name} and {source.name} differ: run `jupytext --sync notebooks/scripts/*.py`"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, paired.name


@contextlib.contextmanager
def _notebook_environment(stem: str):
    """Notebook 04 uploads to a local DANDI archive (real HTTP, real dandi client)."""
    if not stem.startswith("04_"):
        yield None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from support.dandi_server import LocalDandiArchive

    names = {"DANDISET_ID": "000123", "DANDI_API_KEY": "notebook-key-123456",
             "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore"}
    previous = {name: os.environ.get(name) for name in [*names, "DANDI_INSTANCE"]}
    with LocalDandiArchive(api_key="notebook-key-123456", dandisets=("000123",)) as archive:
        os.environ.update({**names, "DANDI_INSTANCE": archive.api_url})
        try:
            yield archive
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _execute(source: Path, kernel: str) -> nbformat.NotebookNode:
    """Execute a tutorial once per test session (the docs test reuses it)."""
    if source.stem not in EXECUTED:
        with _notebook_environment(source.stem) as archive:
            nb = docs_build.execute(source, kernel_name=kernel)
            if archive is not None:  # notebook 04 really uploaded
                assert any(a.endswith(".nwb") for a in archive.assets("000123"))
        EXECUTED[source.stem] = nb
    return EXECUTED[source.stem]


def _outputs(nb) -> list:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_runs(source: Path, pipeline, kernel_name):
    nb = _execute(source, kernel_name)  # raises CellExecutionError with the failing cell
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    if source.stem == "01_quick_start":
        assert any("nb-mouse" in json.dumps(o.get("data", {})) for o in outputs)
    for stem, n in FIGURES.items():
        if source.stem == stem:
            pngs = [o for o in outputs if "image/png" in o.get("data", {})]
            assert len(pngs) >= n, f"{stem}: {len(pngs)} figures, expected {n}"


def _chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing in CI: .ci/run must install them")
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def site(pipeline, kernel_name, tmp_path_factory) -> Path:
    """The documentation site, built strictly from the executed tutorials."""
    executed = {s.stem: _execute(s, kernel_name) for s in SOURCES}
    return docs_build.build_site(executed, tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def served(site) -> str:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


_IMAGES = """
return Array.from(document.images).map(i => ({src: i.src.slice(0, 60),
  ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}));
"""


@pytest.mark.timeout(1800)
def test_docs_site_shows_the_tutorials_figures(site, served, browser):
    assert (site / "index.html").is_file()
    assert (site / "api" / "pose" / "index.html").read_text().count("PoseData") > 3
    browser.get(f"{served}/")
    home = browser.execute_script(_IMAGES)
    assert any(i["ok"] and "pipeline.png" in i["src"] for i in home), home
    for source in SOURCES:
        browser.get(f"{served}/tutorials/{source.stem}/")
        assert "404" not in browser.title, source.stem
        images = browser.execute_script(_IMAGES)
        broken = [i for i in images if not i["ok"]]
        assert not broken, f"{source.stem}: images that do not load: {broken}"
        figures = [i for i in images if i["src"].startswith("data:image/png") and i["w"] > 100]
        assert len(figures) >= FIGURES.get(source.stem, 0), (source.stem, images)


def test_jupyterlab_lists_each_tutorial_once():
    """The notebook folder shows one file per tutorial; the paired scripts sit below it."""
    listed = sorted(p.name for p in (REPO / "notebooks").iterdir() if p.is_file())
    stems = [name.rsplit(".", 1)[0] for name in listed]
    assert len(stems) == len(set(stems)), listed
    assert all(name.endswith(".ipynb") for name in listed if name[:2].isdigit()), listed
