"""Parameter sets declared as pydantic models, hashed by content, documented from their schema.

A parameter set is identified by the md5 of its canonical JSON (:func:`params_hash`),
so the same parameters cannot hide under two ids, whatever their key order.

Each kind of parameter set is a :class:`ParamSet` (a pydantic model: unknown keys,
wrong types and out-of-range values are refused) declared by the layer that owns those
parameters (DeepLabCut training parameters by the DeepLabCut engine, filter steps by
the filters, calibration and triangulation by the 3D code) and registered by name
with :func:`register_params`.  :meth:`ParamSet.for_storage` validates once and returns
what a ``*ParamSet`` table stores; a refusal is a :class:`ParamsError` (or the model's
own subclass of ``ValueError``) naming the table, the key and the allowed values.

The README's parameter tables are generated from the models' JSON schemas
(:func:`params_markdown`, :func:`update_markdown`; ``element-pose params``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

__all__ = [
    "MARKDOWN_BEGIN",
    "MARKDOWN_END",
    "DuplicateParamsError",
    "Int",
    "ParamSet",
    "ParamsError",
    "integral",
    "param_sets",
    "params_hash",
    "params_markdown",
    "register_params",
    "schema_rows",
    "update_markdown",
]

MARKDOWN_BEGIN = "<!-- BEGIN element-pose params -->"
MARKDOWN_END = "<!-- END element-pose params -->"


class DuplicateParamsError(ValueError):
    """The same parameters are already stored under another id."""


class ParamsError(ValueError):
    """Parameters do not fit their model (unknown key, wrong type, out of range)."""


def params_hash(params: Any) -> str:
    """md5 hex of the canonical JSON of parameters (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(canonical.encode()).hexdigest()


# ------------------------------------------------------------------ types
def integral(value: Any) -> Any:
    """An integral float (``3.0``, as JSON may give it) as an int; anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


#: An integer; integral floats (``3.0``) are accepted, bools and ``2.5`` are not.
Int = Annotated[int, BeforeValidator(integral)]


# ------------------------------------------------------------------ base
class ParamSet(BaseModel):
    """Base of every parameter set: no unknown key, no type coercion, finite numbers.

    Class attributes set by :func:`register_params`: ``name`` (``element-pose params
    NAME``) and ``table`` (the table storing them, e.g. ``train.TrainingParamSet``).
    Subclasses may set ``error`` (the exception raised), ``where`` (the start of
    messages; default ``"<table> params"``) and ``normalise`` (store the normalised
    dump rather than the parameters as given).
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: ClassVar[str] = ""
    table: ClassVar[str] = ""
    where: ClassVar[str] = ""
    error: ClassVar[type[ValueError]] = ParamsError
    normalise: ClassVar[bool] = False

    @classmethod
    def check(cls, values: Any) -> ParamSet:
        """Validate ``values`` (a mapping; ``None``: empty) and return the model.

        Raises:
            ParamsError: (or ``cls.error``) naming the table, the key, the allowed
                values and the value given.
        """
        where = cls.where or f"{cls.table or cls.__name__} params"
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise cls.error(f"{where} must be a mapping of keys to values, got {values!r}")
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise cls.error(explain(cls, exc, where)) from None

    def dump(self) -> dict[str, Any]:
        """The normalised parameters (every key, defaults filled in), JSON-able."""
        return self.model_dump(mode="json")

    @classmethod
    def for_storage(cls, values: Any) -> dict[str, Any]:
        """Validate once; return what the table stores (and hashes).

        The normalised dump when ``normalise`` is set, else the parameters as given.
        """
        model = cls.check(values)
        return model.dump() if cls.normalise else dict(values or {})


P = TypeVar("P", bound=type[ParamSet])
_REGISTRY: dict[str, type[ParamSet]] = {}


def register_params(name: str, table: str) -> Callable[[P], P]:
    """Class decorator: register a parameter set under ``name``, stored in ``table``."""
    def register(cls: P) -> P:
        cls.name, cls.table = name, table
        _REGISTRY[name] = cls
        return cls
    return register


def param_sets() -> dict[str, type[ParamSet]]:
    """The registered parameter sets by name (those whose modules are imported)."""
    return dict(_REGISTRY)


# ---------------------------------------------------------- JSON schema
def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    if "$ref" in schema:
        return defs[schema["$ref"].rsplit("/", 1)[-1]]
    if len(schema.get("allOf", ())) == 1:
        return _resolve(schema["allOf"][0], defs)
    return schema


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range(s: Mapping[str, Any]) -> str:
    # constrained annotated types (Int) spell their bounds ge/le/gt
    exclusive = "exclusiveMinimum" in s or "gt" in s
    low = next((s[k] for k in ("exclusiveMinimum", "gt", "minimum", "ge") if k in s), None)
    high = s.get("maximum", s.get("le"))
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if exclusive else '>='} {_number(low)}"
    opening = "(" if exclusive else "["
    return f" in {opening}{'-inf' if low is None else _number(low)}, {_number(high)}]"


_KINDS = {"integer": "integer", "number": "number", "boolean": "true/false",
          "string": "text", "object": "mapping", "array": "list", "null": "null"}


def _enum(values: Sequence[Any]) -> str:
    words = [json.dumps(v) for v in values if v is not None]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "integer in {" + ", ".join(words) + "}"
    text = ", ".join(words)
    return ("one of " + text if len(words) > 1 else text) + (
        " or null" if None in values else "")


def _list_words(s: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    words = "list"
    n_min, n_max = s.get("minItems"), s.get("maxItems")
    if n_min is not None and n_min == n_max:
        words += f" of {n_min}"
    items = _resolve(s.get("items", {}), defs)
    kind = items.get("type")
    if kind in ("integer", "number", "string"):
        words += f"{'' if n_min == n_max and n_min else ' of'} {_KINDS[kind]}s{_range(items)}"
    elif "discriminator" in items:
        words += " of steps"
    return words


def allowed(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """The values a JSON schema allows, in words (used in messages and the docs)."""
    s = _resolve(schema, defs)
    if "anyOf" in s or "oneOf" in s:
        parts = [allowed(x, defs) for x in s.get("anyOf", s.get("oneOf"))]
        parts = [p for p in parts if p != "null"] + (["null"] if "null" in parts else [])
        return " or ".join(dict.fromkeys(parts))
    if "const" in s:
        return json.dumps(s["const"])
    if "enum" in s:
        return _enum(s["enum"])
    kind = s.get("type", "object")
    if kind in ("integer", "number"):
        return _KINDS[kind] + _range(s)
    if kind == "string" and "pattern" in s:
        return f"text matching {s['pattern']}"
    if kind == "array":
        return _list_words(s, defs)
    return _KINDS.get(kind, str(kind))


def _doc(text: str | None) -> str:
    return inspect.cleandoc(text or "").split("\n\n")[0].replace("\n", " ")


def _sub_models(s: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    members = s.get("anyOf") or [s]
    out = [_resolve(m, defs) for m in members]
    return [m for m in out if "properties" in m]


def schema_rows(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None,
                prefix: str = "", skip: Iterable[str] = ()) -> list[dict[str, str]]:
    """One row per key of a model's JSON schema: key, allowed, default, meaning.

    Nested models give ``a.b`` keys; a discriminated list (filter steps) gives
    ``steps[step=x].y`` keys.
    """
    defs = schema.get("$defs", {}) if defs is None else defs
    required = set(schema.get("required", ()))
    rows = []
    for key, prop in schema.get("properties", {}).items():
        if key in skip:
            continue
        default = "required" if key in required else json.dumps(prop.get("default"))
        rows.append({"key": prefix + key, "allowed": allowed(prop, defs), "default": default,
                     "doc": _doc(prop.get("description"))})
        resolved = _resolve(prop, defs)
        for sub in _sub_models(resolved, defs):
            rows += schema_rows(sub, defs, prefix=f"{prefix}{key}.")
        items = _resolve(resolved.get("items", {}), defs)
        tag = items.get("discriminator", {}).get("propertyName")
        for member in items.get("oneOf", ()) if tag else ():  # in declaration order
            sub = _resolve(member, defs)
            name = sub["properties"][tag].get("const")
            rows += schema_rows(sub, defs, prefix=f"{prefix}{key}[{tag}={name}].", skip=(tag,))
    return rows


#: the order of the tables in the README (the pipeline's order); others follow by name
MARKDOWN_ORDER = ("training", "filter", "labeled_video", "calibration", "triangulation",
                  "outliers")


def _markdown_rank(name: str) -> tuple[int, str]:
    return (MARKDOWN_ORDER.index(name) if name in MARKDOWN_ORDER else len(MARKDOWN_ORDER), name)


def params_markdown(names: Sequence[str] | None = None) -> str:
    """Markdown tables of the registered parameter sets (all, or those named).

    The order is fixed (:data:`MARKDOWN_ORDER`), not the order in which the modules that
    declare them happened to be imported.
    """
    blocks = []
    for name, model in sorted(param_sets().items(), key=lambda item: _markdown_rank(item[0])):
        if names and name not in names:
            continue
        lines = [f"#### `{name}`: {model.table}", "", _doc(model.__doc__), "",
                 "| key | allowed | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{r['key']}` | {r['allowed']} | {r['default']} | {r['doc']} |"
                  for r in schema_rows(model.model_json_schema())]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def update_markdown(path: str | Path) -> None:
    """Rewrite the tables between the ``MARKDOWN_BEGIN``/``MARKDOWN_END`` markers of a file.

    Raises:
        ParamsError: the file lacks the markers.
    """
    text = Path(path).read_text()
    if MARKDOWN_BEGIN not in text or MARKDOWN_END not in text:
        raise ParamsError(f"{path} lacks the markers {MARKDOWN_BEGIN} ... {MARKDOWN_END}")
    head, rest = text.split(MARKDOWN_BEGIN, 1)
    tail = rest.split(MARKDOWN_END, 1)[1]
    Path(path).write_text(f"{head}{MARKDOWN_BEGIN}\n{params_markdown().strip()}\n"
                          f"{MARKDOWN_END}{tail}")


# -------------------------------------------------------------- messages
def _field_schema(schema: Mapping[str, Any], defs: Mapping[str, Any],
                  path: Sequence[str | int], tags: Sequence[str] = ()) -> Mapping[str, Any] | None:
    """The JSON schema of the key at ``path`` (through nested models, unions and lists).

    ``tags`` (union members named in the error location) pick the union member.
    """
    if not path:
        return schema
    s = _resolve(schema, defs)
    props = s.get("properties", {})
    if isinstance(path[0], int) and "items" in s:
        return _field_schema(s["items"], defs, path[1:], tags)
    if path[0] in props:
        return _field_schema(props[path[0]], defs, path[1:], tags)
    mapping = s.get("discriminator", {}).get("mapping", {})
    members = [*s.get("anyOf", ()), *s.get("oneOf", ())]
    tagged = [{"$ref": mapping[t]} for t in tags if t in mapping]
    tagged += [{"$ref": f"#/$defs/{t}"} for t in tags if t in defs]
    for sub in [*tagged, *members]:
        found = _field_schema(sub, defs, path, tags)
        if found is not None:
            return found
    return None


def _readable(loc: Sequence[Any], names: set[str]) -> list[str | int]:
    """The parts of an error location that are keys or list indices (not union tags)."""
    return [p for p in loc if isinstance(p, int) or p in names]


def _label(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return repr(text)


def _all_keys(schema: Mapping[str, Any]) -> set[str]:
    names = set(schema.get("properties", {}))
    for sub in schema.get("$defs", {}).values():
        names |= set(sub.get("properties", {}))
    return names


def _known_keys(schema: Mapping[str, Any], defs: Mapping[str, Any],
                path: Sequence[str | int], loc: Sequence[Any]) -> list[str]:
    """The keys of the (sub-)model in which an unknown key was found."""
    tags = [p for p in loc if isinstance(p, str)]
    field = _resolve(_field_schema(schema, defs, path, tags) or {}, defs)
    if "properties" in field:
        return list(field["properties"])
    if "items" in field:
        field = _resolve(field["items"], defs)
    mapping = field.get("discriminator", {}).get("mapping", {})
    for tag in tags:
        if tag in mapping:
            return list(_resolve({"$ref": mapping[tag]}, defs).get("properties", {}))
        if tag in defs:
            return list(defs[tag].get("properties", {}))
    subs = _sub_models(field, defs)
    return list(subs[0]["properties"]) if subs else []


#: Which error of a union explains best: a custom check, an unknown or missing key.
_RANK = {"value_error": 3, "assertion_error": 3, "extra_forbidden": 2, "missing": 1}


def _unknown_keys(schema: Mapping[str, Any], errors: list[dict], best: dict, names: set[str],
                  where: str) -> str:
    defs = schema.get("$defs", {})
    parent = _readable(best["loc"][:-1], names)
    unknown = sorted({str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"
                      and _readable(e["loc"][:-1], names) == parent})
    known = _known_keys(schema, defs, parent, best["loc"])
    head = f"{where}: {_label(parent)}:" if parent else f"{where}:"
    return f"{head} unknown key(s) {unknown}; known keys: {known}"


def _unknown_tag(best: dict, path: Sequence[str | int], where: str) -> str:
    ctx = best.get("ctx", {})
    name = str(ctx.get("discriminator", "")).strip("'")
    got = f"unknown {name} {ctx['tag']!r}" if "tag" in ctx else f"no {name!r} key"
    known = f"; known {name}s: {ctx['expected_tags']}" if "expected_tags" in ctx else ""
    return f"{where}: {_label(path)}: {got}{known}"


def explain(model: type[BaseModel], exc: ValidationError, where: str) -> str:
    """One message for a validation error: where, the key, the allowed values, the value."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    names = _all_keys(schema)
    errors = exc.errors()
    best = max(errors, key=lambda e: (_RANK.get(e["type"], 0), len(_readable(e["loc"], names))))
    path = _readable(best["loc"], names)
    if best["type"] == "extra_forbidden":
        return _unknown_keys(schema, errors, best, names, where)
    if best["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return _unknown_tag(best, path, where)
    if best["type"] in ("value_error", "assertion_error"):
        reason = str(best.get("ctx", {}).get("error", best["msg"]))
        named = not path or reason.startswith(_label(path))
        return f"{where}: {reason}" if named else f"{where}: {_label(path)}: {reason}"
    tags = [p for p in best["loc"] if isinstance(p, str)]
    words = allowed(_field_schema(schema, defs, path, tags) or {}, defs)
    if best["type"] == "missing":
        return f"{where}: missing key {_label(path)} ({words})"
    return f"{where}: {_label(path)} must be {words}, got {best['input']!r}"
