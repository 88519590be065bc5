"""Compressed pose arrays: lossless, one store file per estimation, range reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import test_model

from element_pose import sample
from element_pose.db import arrays

_load_task = test_model._load_task
project = test_model.project  # fixtures shared with test_model
recording = test_model.recording


def _awkward_float32(n: int = 5000, seed: int = 0) -> np.ndarray:
    """A smooth float32 trajectory with NaN payloads, infinities, -0.0 and subnormals."""
    rng = np.random.default_rng(seed)
    a = (100 + np.cumsum(rng.normal(0, 1, n))).astype(np.float32)
    specials = np.array([0x7FC00000, 0x7FC12345, 0xFFC00001, 0x7F800000, 0xFF800000,
                         0x80000000, 0x00000001, 0x007FFFFF], dtype=np.uint32).view(np.float32)
    a[7:7 + len(specials)] = specials
    a[100:200] = np.nan
    return a


@pytest.mark.parametrize("array", [
    _awkward_float32(),
    np.random.default_rng(1).uniform(0, 1, 4000).astype(np.float32),
    np.full(10, np.nan, dtype=np.float32),
    np.zeros(0, dtype=np.float32),
    np.arange(-50, 50, dtype=np.int16),
    np.random.default_rng(2).normal(size=(3, 70)),
])
def test_codec_is_bit_exact(array):
    payload, meta = arrays.encode_array(array)
    out = arrays.decode_array(payload, meta)
    assert out.dtype == array.dtype and out.shape == array.shape
    assert out.tobytes() == array.tobytes()  # bit for bit, NaN payloads included
    assert out.flags.writeable


def test_codec_compresses_trajectories_below_float32():
    truth = sample.ground_truth(n_frames=20000, bodyparts=["a", "b"])
    x = np.ascontiguousarray(truth.position[:, 0, 0, 0])
    payload, _ = arrays.encode_array(x)
    assert len(payload) < x.nbytes * 0.8


@pytest.mark.parametrize("filt", ["", "delta", *arrays.FILTERS])
def test_every_filter_is_bit_exact_on_int32_and_int64_patterns(filt):
    """Each filter round trips (wrapping differences), including rows of older versions."""
    from numcodecs import blosc

    for array in (_awkward_float32(), np.random.default_rng(3).normal(size=900)):
        coded = arrays._forward(array, filt, arrays._INT_VIEW[array.dtype.itemsize])
        payload = blosc.compress(np.ascontiguousarray(coded), b"zstd", 1, blosc.BITSHUFFLE)
        meta = {"dtype": array.dtype.str, "shape": list(array.shape), "filter": filt}
        assert arrays.decode_array(payload, meta).tobytes() == array.tobytes()


def test_trajectories_get_a_zigzag_difference_filter_that_pays():
    """Full-precision noisy x/y: the zigzag differences beat plain and one's-sign deltas."""
    from numcodecs import blosc

    x = _noisy_x()
    payload, meta = arrays.encode_array(x)
    assert meta["filter"] in ("zdelta", "zdelta2")
    old = blosc.compress(arrays._forward(x, "delta", np.int32), b"zstd", arrays.CLEVEL,
                         blosc.BITSHUFFLE)
    assert len(payload) < len(old)
    with pytest.raises(ValueError, match="unknown filter"):
        arrays.decode_array(payload, {**meta, "filter": "lz"})


def _noisy_x(n: int = 30000) -> np.ndarray:
    truth = sample.ground_truth(n_frames=n, bodyparts=["a"])
    noise = np.random.default_rng(4).normal(0, 0.05, n)
    return np.ascontiguousarray((truth.position[:, 0, 0, 0] + noise).astype(np.float32))


def test_noise_bytes_are_stored_as_they_are_and_the_rest_as_zstd():
    """Sub-pixel noise fills the low bytes: those planes are stored raw (read without
    decompressing), the high ones compressed; smaller than bit-shuffled Blosc."""
    from numcodecs import blosc

    x = _noisy_x()
    payload, meta = arrays.encode_array(x)
    planes = meta["planes"]
    assert len(planes) == 4 and planes[0] == 0 and 0 < planes[3] < x.size // 10, planes
    assert len(payload) == sum(p or x.size for p in planes)
    shuffled = blosc.compress(arrays._forward(x, meta["filter"], np.int32), b"zstd",
                              arrays.CLEVEL, blosc.BITSHUFFLE)
    assert len(payload) < len(shuffled)
    assert arrays.decode_array(payload, meta).tobytes() == x.tobytes()


@pytest.mark.parametrize("array", [
    np.cumsum(np.random.default_rng(5).uniform(0.03, 0.04, 7000)),  # float64 timestamps
    np.random.default_rng(6).integers(-2**62, 2**62, 3000),  # int64 noise: all raw
    np.arange(10**6, dtype=np.int64) * 3,
    np.array([1.5, -2.5, np.inf], dtype=np.float32),  # shorter than a sample
])
def test_byte_planes_round_trip_8_byte_and_short_arrays(array):
    payload, meta = arrays.encode_array(array)
    assert len(meta["planes"]) == array.dtype.itemsize
    assert arrays.decode_array(payload, meta).tobytes() == array.tobytes()


def test_a_damaged_byte_plane_names_the_file():
    x = _noisy_x(5000)
    payload, meta = arrays.encode_array(x)
    planes = meta["planes"]
    i = next(k for k, p in enumerate(planes) if p)
    start = sum(p or x.size for p in planes[:i])
    damaged = bytearray(payload)
    damaged[start:start + planes[i]] = bytes(planes[i])
    with pytest.raises(ValueError, match=rf"pose/x\.pblk: byte plane {i}"):
        arrays.decode_array(bytes(damaged), {**meta, "path": "pose/x.pblk"})
    with pytest.raises(ValueError, match="expected for 4 byte planes"):
        arrays.decode_array(payload[:-1], {**meta, "path": "pose/x.pblk"})


def test_corrupt_bytes_name_the_file():
    payload, meta = arrays.encode_array(np.arange(100, dtype=np.float32))
    with pytest.raises(ValueError, match=r"pose/x\.pblk"):
        arrays.decode_array(b"garbage" * 10, {**meta, "path": "pose/x.pblk"})
    with pytest.raises(ValueError, match="expected"):
        arrays.decode_array(payload, {**meta, "shape": [99]})


def _store_files(model, task) -> list[Path]:
    rows = (model.PoseEstimation.BodyPartPosition & task).to_dicts()
    return sorted({Path(r[f].path) for r in rows for f in ("x", "y", "likelihood")})


def test_estimation_is_one_store_file_and_round_trips_exactly(pipeline, recording):
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    files = _store_files(model, task)
    assert len(files) == 1  # was 3 per body part (12 here) with <npy@pose>
    pose = model.PoseEstimation.fetch_pose(task)
    from element_pose.io import dlc
    raw = [dlc.read_dlc_h5(p) for p in sorted(Path(recording["outputs"]).glob("*.h5"))]
    expected = np.concatenate([r.position for r in raw])
    assert pose.position.dtype == np.float32
    assert pose.position.tobytes() == expected.tobytes()
    assert pose.confidence.tobytes() == np.concatenate([r.confidence for r in raw]).tobytes()


def test_one_body_part_reads_only_its_bytes(pipeline, recording):
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    rows = (model.PoseEstimation.BodyPartPosition & task).to_dicts(order_by="body_part")
    ref = rows[1]["x"]
    assert isinstance(ref, arrays.PackedArray) and ref.shape == (70,)
    whole = sum(r[f].meta["nbytes"] for r in rows for f in ("x", "y", "likelihood"))
    assert ref.meta["nbytes"] < whole / 6
    assert np.asarray(ref).tobytes() == np.asarray(rows[1]["x"].load()).tobytes()
    # fetching one body part gives the same values as fetching all of them
    one = model.PoseEstimation.fetch_pose(task, body_parts=[rows[1]["body_part"]])
    full = model.PoseEstimation.fetch_pose(task)
    k = full.keypoints.index(rows[1]["body_part"])
    assert one.position[:, :, 0].tobytes() == full.position[:, :, k].tobytes()


def test_truncated_or_corrupt_store_file_names_it_and_maps_are_closed(pipeline, recording):
    """A fetch reads the store file through a memory map: a file shorter than its rows
    say, or with damaged bytes, fails naming it; a good fetch leaves no map open."""
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    ref = (model.PoseEstimation.BodyPartPosition & task).to_dicts(limit=1)[0]["x"]
    full = Path(ref._backend._full_path(ref.path))
    data = full.read_bytes()

    def maps_of_file() -> int:
        return Path("/proc/self/maps").read_text().count(str(full))

    pose = model.PoseEstimation.fetch_pose(task)
    assert np.isfinite(pose.position).any()
    assert maps_of_file() == 0
    try:
        full.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match=Path(ref.path).name):
            model.PoseEstimation.fetch_pose(task)
        full.write_bytes(bytes(len(data)))  # every array's bytes zeroed
        with pytest.raises(ValueError, match=Path(ref.path).name):
            model.PoseEstimation.fetch_pose(task)
    finally:
        full.write_bytes(data)
    assert maps_of_file() == 0


def test_plain_array_insert_gets_its_own_file(pipeline, recording):
    """Rows inserted without pack_rows (any user code) still store and load exactly."""
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    part = model.PoseEstimation.BodyPartPosition
    row = (part & task).to_dicts(limit=1)[0]
    values = _awkward_float32(70)
    (part & {k: row[k] for k in part.primary_key}).delete_quick()
    part.insert1({**{k: row[k] for k in part.primary_key}, "x": values, "y": values,
                  "likelihood": values})
    back = (part & {k: row[k] for k in part.primary_key}).fetch1()
    assert np.asarray(back["x"]).tobytes() == values.tobytes()
    assert back["x"].path != back["y"].path
