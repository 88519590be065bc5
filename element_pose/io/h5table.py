"""Fast read of a pandas ``format="table"`` HDF5 frame (DeepLabCut's ``.h5``) with h5py.

DeepLabCut writes its poses with ``DataFrame.to_hdf(..., format="table")``: a
group (key ``df_with_missing``) holding a compound dataset ``table`` with fields
``index`` and ``values_block_0`` (float64, one column per scorer/[individual/]
body part/coordinate), and the column labels as protocol-0 pickles in the group's
attributes.  :func:`read_frame_table` reads ``values_block_0`` straight into
float32 (HDF5 converts in its own small buffer: no float64 copy of the table),
with no PyTables or pandas import.  It returns ``None`` for any layout it does
not know, so the caller falls back to ``pandas.read_hdf``.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["FrameTable", "read_frame_table"]


class FrameTable:
    """The values and column labels of one frame table.

    Attributes:
        values: ``(n_rows, n_columns)`` float32 (C order).
        columns: One label tuple per column (all levels).
        names: The column level names (e.g. ``scorer, bodyparts, coords``).
    """

    __slots__ = ("columns", "names", "values")

    def __init__(self, values: np.ndarray, columns: list[tuple], names: list[str]):
        self.values = values
        self.columns = columns
        self.names = names

    def to_dataframe(self):
        """A pandas DataFrame over the same float32 values (no copy)."""
        import pandas as pd

        index = pd.MultiIndex.from_tuples(self.columns, names=self.names)
        return pd.DataFrame(self.values, columns=index, copy=False)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles lists, tuples, dicts, strings and numbers only (no classes)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not a plain value")


def _attr(attrs: Any, name: str) -> Any:
    raw = attrs.get(name)
    if raw is None:
        raise KeyError(name)
    data = bytes(raw) if not isinstance(raw, bytes) else raw
    return _PlainUnpickler(io.BytesIO(data)).load()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_frame_table(path: str | Path, key: str = "df_with_missing",
                     chunk_rows: int = 1 << 16) -> FrameTable | None:
    """Read a pandas frame table with h5py, or ``None`` when its layout is not the plain one.

    Args:
        path: The ``.h5`` file.
        key: The frame's group; when absent and the file holds exactly one group,
            that group is used (as ``pandas.read_hdf`` does without a key).
        chunk_rows: Rows converted per read (bounds the conversion buffer).

    Raises:
        OSError: the file is not HDF5 or is truncated.
    """
    import h5py

    with h5py.File(path, "r") as f:
        group = _frame_group(f, key)
        if group is None:
            return None
        labels = _frame_attrs(group, path)
        if labels is None:
            return None
        table = group["table"]
        n_cols = _value_columns(table)
        if n_cols is None:
            return None
        layout = _column_labels(*labels, n_cols)
        if layout is None:
            return None
        columns, names = layout
        n_rows = table.shape[0]
        out = np.empty(n_rows, dtype=[("values_block_0", "<f4", (n_cols,))])
        for start in range(0, n_rows, chunk_rows):
            stop = min(n_rows, start + chunk_rows)
            table.read_direct(out, np.s_[start:stop], np.s_[start:stop])
    values = out["values_block_0"]
    if not values.flags.c_contiguous:  # a one-field struct is its block: this never copies
        values = np.ascontiguousarray(values)
    return FrameTable(values.reshape(n_rows, n_cols), columns, [str(n) for n in names])


def _frame_group(f, key: str):
    """The group of the frame (the only group when ``key`` is absent), if it has a table."""
    import h5py

    if key not in f:
        groups = [k for k in f if isinstance(f[k], h5py.Group)]
        if len(groups) != 1:
            return None
        key = groups[0]
    group = f[key]
    if not isinstance(group, h5py.Group) or "table" not in group:
        return None
    return group


def _frame_attrs(group, path: str | Path) -> tuple[Any, Any] | None:
    """``(non_index_axes, info)`` of a plain frame table (one float block, no data
    columns), or ``None``."""
    attrs = group.attrs
    try:
        if (_text(attrs.get("pandas_type", b"")) != "frame_table"
                or _attr(attrs, "values_cols") != ["values_block_0"]
                or _attr(attrs, "data_columns") != []):
            return None
        return _attr(attrs, "non_index_axes"), _attr(attrs, "info")
    except (KeyError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        log.debug("%s: not a plain frame table (%s); pandas reads it", path, exc)
        return None


def _value_columns(table) -> int | None:
    """The number of float columns of the table's one value block, or ``None``."""
    import h5py

    if not isinstance(table, h5py.Dataset):
        return None
    dtype = table.dtype
    if dtype.names is None or "values_block_0" not in dtype.names or table.ndim != 1:
        return None
    block = dtype.fields["values_block_0"][0]
    if block.base.kind != "f" or len(block.shape) != 1:
        return None
    return block.shape[0]


def _column_labels(axes: Any, info: Any, n_cols: int) -> tuple[list[tuple], list] | None:
    """The column label tuples and level names of a MultiIndex over ``n_cols`` columns."""
    if len(axes) != 1 or axes[0][0] != 1:
        return None
    columns = [tuple(c) if isinstance(c, tuple) else (c,) for c in axes[0][1]]
    if len(columns) != n_cols:
        return None
    names = list((info.get(1) or {}).get("names") or [])
    if (info.get(1) or {}).get("type") != "MultiIndex" or len(names) != len(columns[0]):
        return None
    return columns, names
