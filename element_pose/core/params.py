"""Hash-keyed parameter sets, shared by every ``*ParamSet`` table, and their schemas.

A parameter set is identified by the md5 of its canonical JSON, so the same
parameters cannot hide under two ids, whatever their key order.

Every parameter set is validated at insert against one declarative schema
(:class:`ParamSchema`, a tuple of :class:`Param`): known keys, types, ranges and
allowed values, with the allowed values in the message.  The schemas are data:
``element-pose params [NAME]`` prints them and the README's configuration section
is generated from them (:func:`params_markdown`).  Checks that relate several
keys (a ChArUco marker smaller than its square, an odd filter window) stay in the
modules that own those parameters and run too.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "PARAMSET_DEFINITION",
    "DuplicateParamsError",
    "Param",
    "ParamSchema",
    "ParamsError",
    "insert_params",
    "params_hash",
    "params_markdown",
    "register_cli",
    "update_markdown",
]

PARAMSET_DEFINITION = """
    paramset_desc: varchar(1000)
    param_set_hash: char(32)   # md5 of the canonical JSON of params
    params: json
    unique index (param_set_hash)
"""
DESCRIPTION_MAX_LENGTH = 1000


class DuplicateParamsError(ValueError):
    """The same parameters are already stored under another id."""


class ParamsError(ValueError):
    """Parameters do not fit their schema (unknown key, wrong type, out of range)."""


# ------------------------------------------------------------------- schemas
_KINDS = {"int": "integer", "number": "number", "bool": "true/false", "text": "text",
          "list": "list", "mapping": "mapping"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One key of a parameter set.

    Attributes:
        name: The key.
        kind: ``int``, ``number``, ``bool``, ``text``, ``list`` or ``mapping``, or a
            tuple of them when several forms are accepted.
        doc: What it means (one line).
        default: The value used when the key is absent (``None``: the engine's).
        required: The key must be present.
        nullable: ``null`` is accepted (default: when ``default`` is ``None`` and
            the key is not required).
        minimum: Smallest number (for a list: of each item).
        maximum: Largest number (for a list: of each item).
        exclusive_minimum: ``minimum`` itself is refused.
        choices: Allowed text/bool/int values (numbers still honour the range).
        pattern: Text values matching this regular expression are accepted too.
        items: Kind of the items of a list.
        length: Exact length of a list.
        schema: Keys of a mapping value.
        variants: For a list of mappings: schema by the value of ``variant_key``.
        variant_key: The key that picks a variant.
    """

    name: str
    kind: str | tuple[str, ...]
    doc: str = ""
    default: Any = None
    required: bool = False
    nullable: bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple = ()
    pattern: str | None = None
    items: str | None = None
    length: int | None = None
    schema: ParamSchema | None = None
    variants: Mapping[str, ParamSchema] | None = None
    variant_key: str = "step"

    @property
    def kinds(self) -> tuple[str, ...]:
        """Accepted kinds as a tuple."""
        return (self.kind,) if isinstance(self.kind, str) else tuple(self.kind)

    @property
    def accepts_null(self) -> bool:
        """Whether ``null`` is a legal value."""
        if self.nullable is not None:
            return self.nullable
        return self.default is None and not self.required

    def allowed(self) -> str:
        """The allowed values in words (used in messages and docs)."""
        parts = []
        for kind in self.kinds:
            if kind in ("text", "bool") and self.choices:
                values = [c for c in self.choices if isinstance(c, str if kind == "text"
                                                               else bool)]
                text = ", ".join(json.dumps(c) for c in values)
                if len(values) > 1:
                    text = "one of " + text
                if kind == "text" and self.pattern:
                    text += f"{' or ' if text else ''}text matching {self.pattern}"
                parts.append(text or _KINDS[kind])
            elif kind in ("int", "number"):
                parts.append(_KINDS[kind] + self._range())
            elif kind == "list":
                words = "list"
                if self.length or self.items:
                    words += " of"
                if self.length:
                    words += f" {self.length}"
                if self.items:
                    words += f" {_KINDS[self.items]}s{self._range()}"
                parts.append(words)
            else:
                parts.append(_KINDS[kind])
        if self.accepts_null:
            parts.append("null")
        return " or ".join(p for p in parts if p)

    def _range(self) -> str:
        numeric = [c for c in self.choices if not isinstance(c, bool | str)]
        if numeric:
            return " in {" + ", ".join(str(c) for c in numeric) + "}"
        if self.minimum is None and self.maximum is None:
            return ""
        if self.maximum is None:
            return f" {'>' if self.exclusive_minimum else '>='} {_number(self.minimum)}"
        low = "(" if self.exclusive_minimum else "["
        low += "-inf" if self.minimum is None else _number(self.minimum)
        return f" in {low}, {_number(self.maximum)}]"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclasses.dataclass(frozen=True)
class ParamSchema:
    """The keys of one parameter set (or of a nested mapping).

    Attributes:
        name: Short name (``element-pose params NAME``).
        title: Where it is used, e.g. ``train.TrainingParamSet``.
        params: The keys.
        doc: One paragraph for the docs.
    """

    name: str
    title: str
    params: tuple[Param, ...]
    doc: str = ""

    @property
    def keys(self) -> list[str]:
        """Known keys, in schema order."""
        return [p.name for p in self.params]

    def validate(self, values: Any, *, error: type[ValueError] = ParamsError,
                 where: str | None = None) -> Any:
        """Check ``values`` against the schema; return them unchanged.

        Raises:
            ParamsError: (or ``error``) naming the parameter set, the key, the
                allowed values and the value given.
        """
        where = where or f"{self.title} params"
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise error(f"{where} must be a mapping of keys to values, got {values!r}")
        unknown = sorted(set(values) - set(self.keys), key=str)
        if unknown:
            raise error(f"{where}: unknown key(s) {unknown}; known keys: {self.keys}")
        for param in self.params:
            if param.name not in values:
                if param.required:
                    raise error(f"{where}: missing key {param.name!r} ({param.allowed()})")
                continue
            _check_value(param, values[param.name], f"{where}: {param.name!r}", error)
        return values

    def rows(self, prefix: str = "") -> list[dict[str, str]]:
        """One row per key (nested keys as ``a.b``, variants as ``steps[step=x].y``)."""
        out = []
        for p in self.params:
            key = prefix + p.name
            out.append({"key": key, "allowed": p.allowed(),
                        "default": "required" if p.required else json.dumps(p.default),
                        "doc": p.doc})
            if p.schema is not None:
                out.extend(p.schema.rows(prefix=key + "."))
            for variant, sub in (p.variants or {}).items():
                out.extend(sub.rows(prefix=f"{key}[{p.variant_key}={variant}]."))
        return out


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind_of(value: Any, kinds: Sequence[str]) -> str | None:
    tests = {"int": _is_int, "number": _is_number,
             "bool": lambda v: isinstance(v, bool), "text": lambda v: isinstance(v, str),
             "list": lambda v: isinstance(v, list | tuple),
             "mapping": lambda v: isinstance(v, Mapping)}
    return next((kind for kind in kinds if tests[kind](value)), None)


def _in_range(param: Param, value: float) -> bool:
    if param.minimum is not None and (value < param.minimum or (
            param.exclusive_minimum and value == param.minimum)):
        return False
    return param.maximum is None or value <= param.maximum


def _check_value(param: Param, value: Any, where: str, error: type[ValueError]) -> None:
    bad = f"{where} must be {param.allowed()}, got {value!r}"
    if value is None:
        if not param.accepts_null:
            raise error(bad)
        return
    kind = _kind_of(value, param.kinds)
    if kind is None:
        raise error(bad)
    if kind in ("int", "number"):
        numeric = [c for c in param.choices if not isinstance(c, bool | str)]
        if (numeric and value not in numeric) or not _in_range(param, value):
            raise error(bad)
    elif kind in ("text", "bool") and param.choices:
        matches = param.pattern and kind == "text" and re.fullmatch(param.pattern, value)
        if value not in param.choices and not matches:
            raise error(bad)
    elif kind == "list":
        if param.length is not None and len(value) != param.length:
            raise error(bad)
        for i, item in enumerate(value):
            if param.items is not None:
                item_param = dataclasses.replace(param, kind=param.items, choices=(),
                                                 nullable=False, items=None, length=None)
                _check_value(item_param, item, f"{where} item {i}", error)
            if param.variants is not None:
                name = item.get(param.variant_key) if isinstance(item, Mapping) else None
                if name not in param.variants:
                    raise error(f"{where} item {i}: {param.variant_key!r} must be one of "
                                f"{list(param.variants)}, got {name!r}")
                sub = param.variants[name]
                sub.validate({k: v for k, v in item.items() if k != param.variant_key},
                             error=error, where=f"{where} item {i} ({name})")
    elif kind == "mapping" and param.schema is not None:
        param.schema.validate(value, error=error, where=where)


# ------------------------------------------------------------------ insert
def params_hash(params: Any) -> str:
    """md5 hex of the canonical JSON of parameters (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(canonical.encode()).hexdigest()


def insert_params(table, id_attribute: str, description: str, params: dict[str, Any],
                  paramset_id: int | None = None) -> int:
    """Insert a parameter set into ``table`` and return its id.

    Inserting the same parameters again (under the same id or none) returns the
    existing id.

    Raises:
        DuplicateParamsError: the parameters exist under another id (named).
        ParamsError: the description is longer than its column.
    """
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_LENGTH:
        raise ParamsError(
            f"{table.__name__}.paramset_desc must be a text of at most "
            f"{DESCRIPTION_MAX_LENGTH} characters, got {str(description)[:60]!r}"
            f"{'...' if len(str(description)) > 60 else ''}")
    digest = params_hash(params)
    existing = (table & {"param_set_hash": digest}).to_dicts()
    if existing:
        found = existing[0][id_attribute]
        if paramset_id is None or paramset_id == found:
            return found
        raise DuplicateParamsError(
            f"these parameters already exist as {id_attribute}={found} "
            f"({existing[0]['paramset_desc']!r}) in {table.__name__}"
        )
    if paramset_id is None:
        ids = table.to_arrays(id_attribute)
        paramset_id = int(max(ids) + 1) if len(ids) else 0
    table.insert1({id_attribute: paramset_id, "paramset_desc": description,
                   "param_set_hash": digest, "params": params})
    return paramset_id


# -------------------------------------------------------------------- docs
def params_markdown(names: Sequence[str] | None = None) -> str:
    """Markdown tables of the schemas (all, or those named), as in the README."""
    from element_pose.core.param_schemas import SCHEMAS

    blocks = []
    for name, schema in SCHEMAS.items():
        if names and name not in names:
            continue
        lines = [f"#### `{name}`: {schema.title}", "", schema.doc, "",
                 "| key | allowed | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{r['key']}` | {r['allowed']} | {r['default']} | {r['doc']} |"
                  for r in schema.rows()]
        blocks.append("\n".join(line.replace("\n", " ") for line in lines))
    return "\n\n".join(blocks) + "\n"


MARKDOWN_BEGIN = "<!-- BEGIN element-pose params -->"
MARKDOWN_END = "<!-- END element-pose params -->"


def update_markdown(path: str) -> None:
    """Rewrite the tables between the ``MARKDOWN_BEGIN``/``MARKDOWN_END`` markers of a file.

    Raises:
        ParamsError: the file lacks the markers.
    """
    from pathlib import Path

    text = Path(path).read_text()
    if MARKDOWN_BEGIN not in text or MARKDOWN_END not in text:
        raise ParamsError(f"{path} lacks the markers {MARKDOWN_BEGIN} ... {MARKDOWN_END}")
    head, rest = text.split(MARKDOWN_BEGIN, 1)
    tail = rest.split(MARKDOWN_END, 1)[1]
    Path(path).write_text(f"{head}{MARKDOWN_BEGIN}\n{params_markdown().strip()}\n"
                          f"{MARKDOWN_END}{tail}")


def _cmd_params(args: argparse.Namespace) -> int:
    from element_pose.core.param_schemas import SCHEMAS

    if args.name and args.name not in SCHEMAS:
        sys.stderr.write(f"unknown parameter set {args.name!r}; known: {list(SCHEMAS)}\n")
        return 2
    if args.update:
        update_markdown(args.update)
        return 0
    sys.stdout.write(params_markdown([args.name] if args.name else None))
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``element-pose params [NAME]`` (print parameter-set schemas; no database)."""
    cmd = subparsers.add_parser(
        "params", help="print the schema of every parameter set (keys, types, ranges)")
    cmd.add_argument("name", nargs="?",
                     help="one parameter set: training, filter, labeled_video, calibration, "
                          "triangulation")
    cmd.add_argument("--update", metavar="FILE",
                     help="rewrite the generated tables in FILE (e.g. README.md)")
    cmd.set_defaults(func=_cmd_params)


def __getattr__(name: str) -> Any:  # SCHEMAS lives in param_schemas (data, imported lazily)
    if name == "SCHEMAS":
        from element_pose.core.param_schemas import SCHEMAS

        return SCHEMAS
    raise AttributeError(name)
