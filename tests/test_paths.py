"""Root directories and relative paths."""

import subprocess
import sys

import pytest

from element_pose.core.paths import PathError, Roots


def test_relative_and_find(tmp_path):
    raw, processed = tmp_path / "raw", tmp_path / "processed"
    (raw / "a").mkdir(parents=True)
    (raw / "a" / "v.mp4").write_bytes(b"x")
    roots = Roots(lambda: [raw], lambda: processed)
    assert roots.relative(raw / "a" / "v.mp4") == "a/v.mp4"
    assert roots.find("a/v.mp4") == raw / "a" / "v.mp4"
    assert roots.relative_to_processed(processed / "o" / "x.h5") == "o/x.h5"
    with pytest.raises(PathError, match="outside the configured root"):
        roots.relative(tmp_path / "elsewhere.mp4")
    with pytest.raises(PathError, match="escapes the root"):
        roots.find("../elsewhere.mp4")
    with pytest.raises(PathError, match="not found under any root"):
        roots.find("a/missing.mp4")
    with pytest.raises(PathError, match="escapes the processed root"):
        roots.processed("../x")


def test_no_roots_configured():
    with pytest.raises(PathError, match="no root data directory configured"):
        Roots(lambda: [], lambda: None).root_dirs()


def test_default_roots_come_from_the_settings(tmp_path, monkeypatch):
    """The settings file gives the roots when the environment does not; the environment wins."""
    from element_pose import settings
    from element_pose.core.paths import default_processed_dir, default_root_dirs

    monkeypatch.setenv(settings.CONFIG_ENV, str(tmp_path / "c.json"))
    monkeypatch.delenv("ELEMENT_POSE_ROOT_DIRS")
    monkeypatch.delenv("ELEMENT_POSE_PROCESSED_DIR")
    assert default_root_dirs() == [] and default_processed_dir() is None
    settings.save({"root_dirs": [str(tmp_path / "a"), str(tmp_path / "b")]})
    assert default_root_dirs() == [tmp_path / "a", tmp_path / "b"]
    assert default_processed_dir() == tmp_path / "a"  # the first raw root
    monkeypatch.setenv("ELEMENT_POSE_PROCESSED_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("ELEMENT_POSE_ROOT_DIRS", str(tmp_path / "env"))
    assert default_root_dirs() == [tmp_path / "env"]
    assert default_processed_dir() == tmp_path / "out"


def test_paths_never_import_datajoint():
    """The core is below the database layer: its roots come from the settings alone."""
    code = ("import sys; from element_pose.core import paths; paths.default_root_dirs(); "
            "paths.default_processed_dir(); print('datajoint' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[-1] == "False"
