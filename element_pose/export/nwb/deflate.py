"""gzip for NWB datasets, fast: chunks shuffled and deflated in threads, written raw.

The files stay standard HDF5 (``shuffle`` + ``deflate`` filters, any reader opens
them); only where the compression runs changes:

1. :func:`wrap` (called while the ``NWBFile`` is built) hands each array to a shared
   thread pool, which byte-shuffles and deflates its chunks (zlib releases the GIL;
   zlib-ng writes the same zlib streams ~1.5x faster; the byte planes that are noise,
   such as the low bytes of sub-pixel coordinates, are deflated with zlib's run-length
   strategy instead of a match search: 2.5x less work on pose data, and no larger),
   and returns an *empty* ``H5DataIO`` with the same filters and chunk shape;
2. hdmf writes the file's structure (while the threads compress) and creates the
   empty datasets;
3. :func:`write` writes hdmf's file and then the compressed chunks into those
   datasets with h5py's direct chunk write (no second compression, no copies).

Chunks hold up to :data:`CHUNK_ROWS` rows and all columns (x and y together).
``"lzf"`` and ``None`` go through hdmf/h5py as usual.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from element_pose.export.nwb.metadata import COMPRESSION, COMPRESSION_LEVEL, NWBExportError

__all__ = ["CHUNK_ROWS", "wrap", "write"]

CHUNK_ROWS = 16384
NOISE_SAMPLE = 4096  # bytes of a plane deflated to tell noise
NOISE_SAVES = 0.10  # a plane whose sample deflates by less than this is noise
_ATTR = "_element_pose_chunks"  # the pending chunks, on the H5DataIO they belong to
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                       thread_name_prefix="element-pose-deflate")
        return _POOL


def _zlib():
    try:  # zlib-ng writes the same zlib streams ~1.5x faster
        from zlib_ng import zlib_ng as zlib
    except ImportError:  # pragma: no cover - the nwb extra installs it
        import zlib
    return zlib


def _byte_planes(block: np.ndarray) -> np.ndarray:
    """The shuffle filter's view of ``block``: one row per byte of its item size."""
    return np.frombuffer(block.tobytes(), np.uint8).reshape(-1, block.dtype.itemsize).T


def _noise_planes(grid: np.ndarray, zlib: Any) -> list[bool]:
    """Which byte planes (rows of ``grid``) are noise: a fast deflate of a sample of
    the plane saves under :data:`NOISE_SAVES` of it (the low bytes of sub-pixel
    coordinates and of likelihoods)."""
    sample = grid[:, :NOISE_SAMPLE]
    return [len(zlib.compress(row.tobytes(), 1)) > (1 - NOISE_SAVES) * row.size
            for row in sample]


def _chunk_stream(grid: np.ndarray, noise: list[bool], level: int, zlib: Any) -> bytes:
    """One standard zlib stream of the shuffled chunk (``grid``: its byte planes).

    Runs of noise planes are deflated with zlib's ``Z_RLE`` strategy (Huffman codes
    and runs of one byte, no match search: several times faster there, where matches
    are not found anyway, and the zero padding of an edge chunk still shrinks), the
    other runs at ``level``. Each run ends on a byte-aligned block boundary (sync
    flush) and the next starts a new raw deflate stream, so the blocks concatenate
    into one stream that any inflate reads: zlib header, blocks, Adler-32 of the
    whole chunk.
    """
    runs: list[tuple[bool, list[int]]] = []  # (noise?, consecutive plane indices)
    for i, flag in enumerate(noise):
        if runs and runs[-1][0] == flag:
            runs[-1][1].append(i)
        else:
            runs.append((flag, [i]))
    if len(runs) == 1 and not runs[0][0]:
        return zlib.compress(grid.tobytes(), level)
    out = [b"\x78\x01"]  # deflate, 32 KiB window (header check: 0x7801 % 31 == 0)
    checksum = 1  # Adler-32 of nothing
    for k, (flag, planes) in enumerate(runs):
        data = grid[planes[0]:planes[-1] + 1].tobytes()
        checksum = zlib.adler32(data, checksum)
        strategy = zlib.Z_RLE if flag else zlib.Z_DEFAULT_STRATEGY
        packer = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
        out.append(packer.compress(data))
        out.append(packer.flush(zlib.Z_FINISH if k == len(runs) - 1 else zlib.Z_SYNC_FLUSH))
    out.append(checksum.to_bytes(4, "big"))
    return b"".join(out)


def _deflate(array: np.ndarray, rows: int, level: int) -> list[tuple[int, bytes]]:
    """``(first row, shuffled + deflated chunk)`` for every chunk of ``array``.

    The byte planes that are noise are told once per array (on its middle chunk).
    """
    zlib = _zlib()
    noise: list[bool] | None = None
    chunks = []
    for start in range(0, len(array), rows):
        block = array[start:start + rows]
        if len(block) < rows:  # HDF5 stores edge chunks at full size
            block = np.concatenate([block, np.zeros((rows - len(block), *array.shape[1:]),
                                                    array.dtype)])
        if noise is None:
            middle = (len(array) // 2 // rows) * rows
            sample = array[middle:middle + min(rows, NOISE_SAMPLE)]
            noise = _noise_planes(_byte_planes(sample), zlib)
        chunks.append((start, _chunk_stream(_byte_planes(block), noise, level, zlib)))
    return chunks


def wrap(data: np.ndarray, compression: str | None = COMPRESSION):
    """Data for an NWB dataset with a filter: ``"gzip"`` (portable, default), ``"lzf"``
    (fast, h5py-only readers) or ``None`` (no filter, fastest).

    A gzip-wrapped numeric array becomes an empty ``H5DataIO`` whose chunks are
    being compressed in threads: the file must be written with :func:`write`.
    """
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    if compression is None:
        return data
    if compression not in ("gzip", "lzf"):
        raise NWBExportError(f"compression must be 'gzip', 'lzf' or None, not {compression!r}")
    if compression == "lzf":
        return H5DataIO(data=data, compression="lzf", shuffle=True)
    array = np.ascontiguousarray(data)
    if array.size == 0 or array.dtype.kind not in "fiu" or array.ndim not in (1, 2):
        return H5DataIO(data=data, compression="gzip", compression_opts=COMPRESSION_LEVEL,
                        shuffle=True)
    rows = min(len(array), CHUNK_ROWS)
    dataio = H5DataIO(shape=array.shape, dtype=array.dtype, chunks=(rows, *array.shape[1:]),
                      compression="gzip", compression_opts=COMPRESSION_LEVEL, shuffle=True)
    setattr(dataio, _ATTR, _pool().submit(_deflate, array, rows, COMPRESSION_LEVEL))
    return dataio


def write(io: Any, container: Any) -> int:
    """``io.write(container)``, then the chunks of every dataset :func:`wrap` deferred.

    Args:
        io: An open, writable ``NWBHDF5IO``.
        container: The ``NWBFile`` to write.

    Returns:
        The number of datasets filled.
    """
    io.write(container)
    filled = 0
    for obj in container.objects.values():
        for value in obj.fields.values():
            pending: Future | None = getattr(value, "__dict__", {}).get(_ATTR)
            if pending is None:
                continue
            dataset = value.dataset
            zeros = [0] * (len(dataset.shape) - 1)
            for start, payload in pending.result():
                dataset.id.write_direct_chunk((start, *zeros), payload)
            delattr(value, _ATTR)
            filled += 1
    return filled
