"""Root directories and relative paths."""

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
