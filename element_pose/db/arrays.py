"""Compressed pose arrays in the object store: one file per estimation, range reads.

The DataJoint codec ``<poseblock@store>`` stores numpy arrays losslessly, so
float32 values (NaN included) come back bit for bit.  A one-dimensional array of
4- or 8-byte numbers (every pose array, timestamps) becomes the zigzag-coded first
or second differences of its bit patterns when that compresses better, then is split
into byte planes: each plane is stored as zstd (``numcodecs``) or, where its bytes are
noise (the low bytes of sub-pixel coordinates), as it is.  Other arrays are Blosc
frames (bit-shuffle + zstd).

Many arrays of a table insert share one store file: :func:`pack_rows` compresses
every array of a batch of part rows, writes them as one object, and puts in each
row the array's ``{path, offset, nbytes, ...}``; the codec passes these through.
Reading one array is a range read of its bytes; `load_into` reads the
arrays of many rows with one memory map (local store) or one range read (remote
store) per file and decompresses them in threads (zstd and Blosc release the GIL).
Arrays inserted one at a time (not packed) get a file each, so the codec works for
any table.

Column JSON: ``{"path", "store", "offset", "nbytes", "dtype", "shape", "filter"}``
and, for byte planes, ``"planes"``: the stored size of each plane, lowest byte
first, ``0`` for a plane stored as it is (a Blosc frame when absent).  ``filter`` is
``""``, ``"zdelta"`` / ``"zdelta2"`` (zigzag-decode, then one or two cumulative sums
of the int32/int64 bit patterns) or, in older rows, ``"delta"`` (one cumulative sum,
no zigzag).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.db.config import import_datajoint

dj = import_datajoint()
from datajoint.builtin_codecs.schema import SchemaCodec  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["PackedArray", "PoseBlockCodec", "decode_array", "encode_array",
           "load_into", "pack_rows"]

CODEC_NAME = "poseblock"
EXT = ".pblk"
CLEVEL = 6  # Blosc frames (arrays that are not byte planes)
ZSTD_LEVEL = 1  # byte planes: larger levels gain < 0.1 % on pose arrays at 2-3x the CPU
SAMPLE = 4096  # values compressed with each filter to choose one
#: bit-pattern filters tried per array: none, zigzag first and second differences (the
#: index is the number of cumulative sums that decoding takes)
FILTERS = ("", "zdelta", "zdelta2")
#: each cumulative sum (~3 ns a value, holding the GIL) must save this fraction of the size
SUM_COST = 0.03
#: a plane is stored as it is unless zstd makes it smaller than this fraction
RAW_ABOVE = 0.98
_INT_VIEW = {4: np.int32, 8: np.int64}


def _compress(data: np.ndarray) -> bytes:
    from numcodecs import blosc

    return blosc.compress(np.ascontiguousarray(data), b"zstd", CLEVEL, blosc.BITSHUFFLE)


def _zstd():
    from numcodecs.zstd import Zstd

    return Zstd(level=ZSTD_LEVEL)


def encode_array(array: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """Compress one array losslessly.

    One-dimensional arrays of 4- or 8-byte numbers are tried, on a sample from their
    middle, as they are and as the first and second differences of their bit patterns
    (zigzag-coded, so that small negative steps have small codes); the smallest (a
    difference must save :data:`SUM_COST` of the size per cumulative sum it costs the
    reader) is split into byte planes, each stored as zstd or as it is when zstd does
    not help.

    Returns:
        The compressed bytes and ``{"dtype", "shape", "filter"[, "planes"]}``.
    """
    array = np.ascontiguousarray(array)
    if array.dtype == object:
        raise TypeError(f"<{CODEC_NAME}> cannot store object arrays")
    int_type = _INT_VIEW.get(array.dtype.itemsize)
    if int_type is None or array.ndim != 1 or array.size < 3 or array.dtype.kind not in "fiu":
        return _compress(array), _meta(array, "")
    start = max(0, (array.size - SAMPLE) // 2)
    sample = array[start:start + SAMPLE]
    zstd = _zstd()
    best = min(FILTERS, key=lambda f: (
        sum(map(len, _encode_planes(_forward(sample, f, int_type), zstd)[0]))
        * (1 + SUM_COST * FILTERS.index(f))))
    stored, lengths = _encode_planes(_forward(array, best, int_type), zstd)
    return b"".join(stored), {**_meta(array, best), "planes": lengths}


def _encode_planes(values: np.ndarray, zstd) -> tuple[list[Any], list[int]]:
    """Each byte plane of ``values`` (lowest byte first) as zstd, or as it is where zstd
    does not get it under :data:`RAW_ABOVE` (noise: read without decompressing).

    Returns:
        The stored planes and their ``planes`` entries (zstd size, ``0`` for raw).
    """
    grid = np.ascontiguousarray(values).view(np.uint8).reshape(-1, values.dtype.itemsize)
    stored, lengths = [], []
    for i in range(grid.shape[1]):
        plane = np.ascontiguousarray(grid[:, i])
        packed = zstd.encode(plane)
        raw = len(packed) >= RAW_ABOVE * plane.size
        stored.append(plane if raw else packed)
        lengths.append(0 if raw else len(packed))
    return stored, lengths


def _meta(array: np.ndarray, filt: str) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape), "filter": filt}


def _diff(bits: np.ndarray) -> np.ndarray:
    """Differences (wrapping; :func:`np.cumsum` inverts them exactly), first value kept."""
    delta = np.empty_like(bits)
    delta[0] = bits[0]
    np.subtract(bits[1:], bits[:-1], out=delta[1:])
    return delta


def _forward(array: np.ndarray, filt: str, int_type: type) -> np.ndarray:
    if not filt:
        return array
    bits = array.view(int_type)
    if filt == "delta":  # rows written before the zigzag filters; still decoded
        return _diff(bits)
    delta = _diff(bits)
    if filt == "zdelta2":
        delta = _diff(delta)
    shift = 8 * bits.dtype.itemsize - 1
    return (delta << 1) ^ (delta >> shift)  # zigzag: 0, -1, 1, -2 -> 0, 1, 2, 3


def _inverse(out: np.ndarray, filt: str) -> None:
    """Undo :func:`_forward` in place on the decompressed ``out``."""
    if not filt:
        return
    int_type = _INT_VIEW[out.dtype.itemsize]
    bits = out.view(int_type)
    if filt != "delta":  # zigzag: code >> 1 (logical), xor -(code & 1)
        sign = np.bitwise_and(bits, 1)
        np.negative(sign, out=sign)
        unsigned = bits.view(np.dtype(int_type).str.replace("i", "u"))
        np.right_shift(unsigned, 1, out=unsigned)
        np.bitwise_xor(bits, sign, out=bits)
        if filt == "zdelta2":
            np.cumsum(bits, dtype=int_type, out=bits)
    np.cumsum(bits, dtype=int_type, out=bits)


def decode_array(buffer: bytes | memoryview, meta: dict[str, Any],
                 out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`encode_array`.

    Args:
        buffer: The compressed bytes.
        meta: Their ``dtype``, ``shape``, ``filter`` and (byte planes) ``planes``.
        out: A C-contiguous array of that dtype and shape to decode into.

    Raises:
        ValueError: the bytes do not decode to the recorded dtype and shape, or the
            filter is unknown.
    """
    from numcodecs import blosc

    dtype = np.dtype(meta["dtype"])
    shape = tuple(meta["shape"])
    filt = meta.get("filter") or ""
    if filt not in ("", "delta", *FILTERS):
        raise ValueError(f"pose array {meta.get('path', '')}: unknown filter {filt!r}")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if out is None or out.dtype != dtype or out.shape != shape or not out.flags.c_contiguous:
        out = np.empty(shape, dtype=dtype)
    if "planes" in meta:
        _decode_planes(buffer, meta, out)
        _inverse(out, filt)
        return out
    header = bytes(buffer[:16])
    nbytes = int.from_bytes(header[4:8], "little") if len(header) == 16 else -1
    cbytes = int.from_bytes(header[12:16], "little") if len(header) == 16 else -1
    if nbytes != expected or cbytes != len(buffer):
        raise ValueError(
            f"pose array {meta.get('path', '')}: stored block holds {nbytes} bytes in "
            f"{cbytes} of {len(buffer)}; {expected} expected for {dtype} {shape}"
        )
    if expected:
        blosc.decompress(buffer, out)
        _inverse(out, filt)
    return out


def _decode_planes(buffer: bytes | memoryview, meta: dict[str, Any], out: np.ndarray) -> None:
    """Fill ``out`` (contiguous, one-dimensional) from its stored byte planes."""
    lengths = [int(n) for n in meta["planes"]]
    n = out.size
    stored = [length or n for length in lengths]
    if len(lengths) != out.dtype.itemsize or sum(stored) != len(buffer):
        raise ValueError(
            f"pose array {meta.get('path', '')}: {len(buffer)} stored bytes; "
            f"{sum(stored)} expected for {len(lengths)} byte planes {lengths} of {n} "
            f"{out.dtype} values")
    grid = out.view(np.uint8).reshape(n, out.dtype.itemsize)
    view = memoryview(buffer)
    zstd = _zstd()
    start = 0
    for i, (length, size) in enumerate(zip(lengths, stored, strict=True)):
        chunk = view[start:start + size]
        start += size
        if length:
            try:
                chunk = zstd.decode(chunk)
            except RuntimeError as err:
                raise ValueError(
                    f"pose array {meta.get('path', '')}: byte plane {i} does not decode "
                    f"({err})") from err
            if len(chunk) != n:
                raise ValueError(
                    f"pose array {meta.get('path', '')}: byte plane {i} holds {len(chunk)} "
                    f"bytes; {n} expected")
        grid[:, i] = np.frombuffer(chunk, np.uint8)


class PackedArray:
    """Lazy reference to one stored array: shape and dtype without I/O.

    ``load()`` (or ``np.asarray(ref)``) reads only this array's bytes.
    """

    __slots__ = ("_backend", "_cached", "_meta")

    def __init__(self, meta: dict[str, Any], backend: Any):
        self._meta = meta
        self._backend = backend
        self._cached: np.ndarray | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The stored JSON (path, offset, nbytes, dtype, shape, filter)."""
        return self._meta

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape (no I/O)."""
        return tuple(self._meta["shape"])

    @property
    def dtype(self) -> np.dtype:
        """Array dtype (no I/O)."""
        return np.dtype(self._meta["dtype"])

    @property
    def path(self) -> str:
        """Path of the store file holding the array."""
        return self._meta["path"]

    def _read_range(self) -> bytes:
        start = int(self._meta["offset"])
        return _read_bytes(self._backend, self.path, start, start + int(self._meta["nbytes"]))

    def load(self) -> np.ndarray:
        """Read and decompress the array (cached)."""
        if self._cached is None:
            self._cached = decode_array(self._read_range(), self._meta)
        return self._cached

    def __array__(self, dtype=None, copy=None):
        array = self.load()
        return array.astype(dtype) if dtype is not None else array

    def __getitem__(self, item):
        return self.load()[item]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"PackedArray(shape={self.shape}, dtype={self.dtype})"


def _read_bytes(backend: Any, path: str, start: int | None = None,
                end: int | None = None) -> bytes:
    full = backend._full_path(path)
    if backend.protocol == "file":
        with open(full, "rb") as f:
            if start:
                f.seek(start)
            return f.read() if end is None else f.read(end - (start or 0))
    return backend.fs.cat_file(full, start=start, end=end)


#: one backend per store and config object; the entry keeps its config alive, so the
#: id in the key cannot be reused by another config
_BACKENDS: dict[tuple[str | None, int], tuple[Any, Any]] = {}


class PoseBlockCodec(SchemaCodec):
    """``<poseblock@store>``: lossless compressed arrays, many per store file.

    Insert a numpy array (one file for it) or the metadata :func:`pack_rows` put
    in the row (passed through).  Fetch gives a lazy :class:`PackedArray`.
    """

    name = CODEC_NAME

    def validate(self, value: Any) -> None:
        """Accept numpy arrays and packed metadata."""
        if isinstance(value, dict) and {"path", "offset", "nbytes"} <= value.keys():
            return
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise dj.DataJointError(
                f"<{CODEC_NAME}> needs a numeric numpy array, got {type(value).__name__}")

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> dict:
        """Write one array to its own file (or pass packed metadata through)."""
        if isinstance(value, dict):
            return value
        schema, table, field, primary_key = self._extract_context(key, context)
        config = self._codec_config(key, context)
        path, _ = self._build_path(schema, table, field, primary_key, ext=EXT,
                                   store_name=store_name, config=config)
        payload, meta = encode_array(value)
        self._get_backend(store_name, config=config).put_buffer(payload, path)
        return {"path": path, "store": store_name, "offset": 0, "nbytes": len(payload), **meta}

    def decode(self, stored: dict, *, key: dict | None = None,
               context: dict | None = None) -> PackedArray:
        """A lazy reference to the stored array."""
        config = self._codec_config(key, context)
        cache_key = (stored.get("store"), id(config))
        entry = _BACKENDS.get(cache_key)
        if entry is None or entry[0] is not config:
            entry = _BACKENDS[cache_key] = (
                config, self._get_backend(stored.get("store"), config=config))
        return PackedArray(stored, entry[1])


def _codec() -> PoseBlockCodec:
    from datajoint.codecs import get_codec

    return get_codec(CODEC_NAME)


def pack_rows(table: Any, rows: Sequence[dict], fields: Sequence[str], key: dict,
              store: str = "pose", name: str = "arrays") -> list[dict]:
    """Compress the ``fields`` arrays of ``rows`` into ONE store file for ``table``.

    Args:
        table: The (part) table the rows go to; its schema and name address the file.
        rows: Rows holding numpy arrays under ``fields``.
        fields: Attributes of type ``<poseblock@store>``.
        key: The master key that names the file (``.../<key>/<name>_<token>.pblk``).
        store: The store of those attributes.
        name: File name stem.

    Returns:
        Copies of the rows with each array replaced by its stored metadata, ready
        to insert.  Nothing is written when ``rows`` is empty.
    """
    if not rows:
        return []
    values = [row[f] for row in rows for f in fields]
    codec = _codec()
    config = table.connection._config
    pk = {k: key[k] for k in table.primary_key if k in key}
    path, _ = codec._build_path(table.database, table.table_name, name, pk, ext=EXT,
                                store_name=store, config=config)
    backend = codec._get_backend(store, config=config)
    sizes, metas = _write_blocks(backend, path, values)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    out, n = [], 0
    for row in rows:
        new = dict(row)
        for f in fields:
            new[f] = {"path": path, "store": store, "offset": offsets[n], "nbytes": sizes[n],
                      **metas[n]}
            n += 1
        out.append(new)
    return out


def _write_blocks(backend: Any, path: str, values: Sequence[np.ndarray]
                  ) -> tuple[list[int], list[dict[str, Any]]]:
    """Encode arrays (two threads, a few in flight) and stream them into one store file.

    Memory stays at the arrays plus a few compressed blocks: a file store gets the
    blocks written in place (temporary name, then renamed), other stores get a
    local temporary file uploaded.
    """
    import os
    import tempfile
    if backend.protocol == "file":
        final = Path(backend._full_path(path))
        final.parent.mkdir(parents=True, exist_ok=True)
        target = final.with_name(final.name + ".saving")
    else:
        handle, name = tempfile.mkstemp(suffix=EXT)
        os.close(handle)
        final, target = None, Path(name)
    sizes: list[int] = []
    metas: list[dict[str, Any]] = []
    try:
        with open(target, "wb") as f, ThreadPoolExecutor(max_workers=2) as pool:
            pending = []
            for value in values:  # Blosc releases the GIL: two blocks compress at once
                pending.append(pool.submit(encode_array, value))
                if len(pending) >= 4:
                    payload, meta = pending.pop(0).result()
                    f.write(payload)
                    sizes.append(len(payload))
                    metas.append(meta)
            for future in pending:
                payload, meta = future.result()
                f.write(payload)
                sizes.append(len(payload))
                metas.append(meta)
        if final is not None:
            os.replace(target, final)
        else:
            backend.put_file(str(target), path)
    finally:
        if target.exists():
            target.unlink()
    return sizes, metas


def load_into(targets: Sequence[tuple[Any, np.ndarray | None]]) -> list[np.ndarray]:
    """Load arrays into destinations: one read per store file, decompression in threads.

    Args:
        targets: ``(fetched value, destination or None)`` pairs; a destination must
            have the array's shape (float32 pose arrays decode straight into it).

    Returns:
        The loaded arrays (the destinations where given).
    """
    refs = [ref for ref, _ in targets]
    maps: list[mmap.mmap] = []
    views: list[memoryview] = []  # of the maps: released before the maps close
    buffers = _read_buffers(refs, _stored_by_file(refs), maps, views)

    def one(i: int) -> np.ndarray:
        return _load_one(*targets[i], buffers.get(i))

    try:
        if len(buffers) > 8:
            workers = max(2, min(8, os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(one, range(len(refs))))
        return [one(i) for i in range(len(refs))]
    finally:
        for view in [*buffers.values(), *views]:
            view.release()
        for mapped in maps:
            with contextlib.suppress(BufferError):  # a view still alive: GC closes it
                mapped.close()


def _stored_by_file(refs: Sequence[Any]) -> dict[tuple[str | None, str], list[int]]:
    """The indices of the not yet loaded packed arrays, by (store, file)."""
    by_file: dict[tuple[str | None, str], list[int]] = {}
    for i, ref in enumerate(refs):
        if isinstance(ref, PackedArray) and ref._cached is None:
            by_file.setdefault((ref.meta.get("store"), ref.path), []).append(i)
    return by_file


def _read_buffers(refs: Sequence[Any], by_file: dict[tuple[str | None, str], list[int]],
                  maps: list[mmap.mmap], views: list[memoryview]) -> dict[int, memoryview]:
    """One read (or map) per file spanning its arrays; each array's bytes as a view.

    The maps and their whole-span views are appended to ``maps`` and ``views`` (the
    caller releases them after the arrays are decoded).
    """
    buffers: dict[int, memoryview] = {}
    for (_, path), idx in by_file.items():
        backend = refs[idx[0]]._backend
        start = min(int(refs[i].meta["offset"]) for i in idx)
        end = max(int(refs[i].meta["offset"]) + int(refs[i].meta["nbytes"]) for i in idx)
        data, mapped = _map_or_read(backend, path, start, end)
        if mapped is not None:
            maps.append(mapped)
            views.append(data)
        for i in idx:
            o = int(refs[i].meta["offset"]) - start
            buffers[i] = data[o:o + int(refs[i].meta["nbytes"])]
    return buffers


def _load_one(ref: Any, dest: np.ndarray | None, buffer: memoryview | None) -> np.ndarray:
    """One array: decoded from its bytes (into ``dest`` when given), else loaded."""
    if buffer is not None:
        array = decode_array(buffer, ref.meta, out=dest)
    else:
        array = np.asarray(ref.load() if hasattr(ref, "load") else ref)
    if dest is not None and array is not dest:
        dest[...] = array
        return dest
    return array


def _map_or_read(backend: Any, path: str, start: int, end: int
                 ) -> tuple[memoryview, mmap.mmap | None]:
    """Bytes ``start:end`` of a store file: a memory map of a local file (pages are read
    by the decompressing threads, in parallel, without a copy), else one range read."""
    if backend.protocol == "file" and end > start:
        with open(backend._full_path(path), "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if len(mapped) >= end:
            return memoryview(mapped)[start:end], mapped
        mapped.close()  # shorter than its rows say: decode_array names the problem
    return memoryview(_read_bytes(backend, path, start, end)), None
