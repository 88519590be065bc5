"""``element-pose db migrate``: bring tables declared by an earlier release to the current shapes.

Every row is kept.  Each migration step is detected from the columns a table has
now, so a run does only what is left to do (a second run does nothing and says so),
and a run stopped half-way is taken up where it stopped.  A table in any other state
is refused, naming its columns; nothing is changed then.

Steps (the release that made tables name their engine):

* ``model.Model``: the engine-specific columns (``task``, ``project_date``,
  ``iteration``, ``shuffle``, ``trainingsetindex``, ``train_fraction``, ``snapshot``,
  ``net_type``) become keys of the JSON column ``engine_options``; ``engine`` loses
  its default.
* ``train.ModelTraining``: ``engine`` (from the parameter set's ``engine``, else the
  default engine) and ``engine_details`` (``shuffle`` and ``trainingsetindex``, and
  the ``model_options`` that register the trained model again) are added;
  ``pytorch_config`` becomes ``training_config``.

Each step adds the new columns (declared exactly as the current table definition
declares them, through DataJoint's own attribute compiler), fills them from the old
ones in one transaction, then drops the old columns in one ``ALTER TABLE``: plain SQL
that both PostgreSQL and MySQL/MariaDB take.  ``Table.alter()`` is not used: it
would drop the old columns in the same statement that adds the new ones.

This module imports DataJoint only inside its functions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["MigrationError", "MigrationReport", "migrate"]

log = logging.getLogger(__name__)

#: Model columns of the earlier release that now live in ``engine_options``.
MODEL_OLD = ("task", "project_date", "iteration", "shuffle", "trainingsetindex",
             "train_fraction", "snapshot", "net_type")
MODEL_NEW = ("engine_options",)
#: ModelTraining columns of the earlier release.
TRAINING_OLD = ("shuffle", "trainingsetindex", "pytorch_config")
TRAINING_NEW = ("training_config", "engine", "engine_details")


class MigrationError(RuntimeError):
    """The database is in a state this migration does not know; nothing was changed."""


@dataclasses.dataclass
class MigrationReport:
    """What one :func:`migrate` run did.

    Attributes:
        actions: One line per change made, in order.
        current: Tables found already at the current shape.
        missing: Tables not in the database (their schema was never activated).
    """

    actions: list[str] = dataclasses.field(default_factory=list)
    current: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was changed."""
        return bool(self.actions)

    def lines(self) -> list[str]:
        """A human-readable summary (what the command line prints)."""
        lines = list(self.actions)
        lines += [f"{t}: not in the database, skipped" for t in self.missing]
        if not self.changed:
            lines.append("nothing to migrate: " + (", ".join(self.current) or "no table")
                         + " already at the current shape")
        return lines


@dataclasses.dataclass
class _Table:
    """One table of the database: its name, quoted full name and current columns."""

    label: str
    schema: str
    name: str
    full_name: str
    columns: dict[str, Any]  # column name -> default (None: none)


# ===================================================================== entry
def migrate(prefix: str | None = None, *, model_schema: str | None = None,
            train_schema: str | None = None) -> MigrationReport:
    """Migrate the ``model`` and ``train`` schemas of a database to the current shapes.

    Args:
        prefix: Schema-name prefix (default ``ELEMENT_POSE_SCHEMA_PREFIX``, as the
            workflow pipeline names its schemas).
        model_schema: The ``model`` schema's name (default ``<prefix>model``).
        train_schema: The ``train`` schema's name (default ``<prefix>train``).

    Returns:
        What was done.

    Raises:
        MigrationError: a table at a state this migration does not know (its columns
            are named), or no ``model`` schema under that name.
    """
    from element_pose.db.config import connect, schema_prefix

    prefix = schema_prefix() if prefix is None else prefix
    conn = connect()
    db = _Database(conn)
    report = MigrationReport()
    model = db.table("model.Model", model_schema or f"{prefix}model", "model")
    if model is None:
        raise MigrationError(f"no table model in schema {model_schema or prefix + 'model'}: "
                             "is the schema prefix (ELEMENT_POSE_SCHEMA_PREFIX) right?")
    training = db.table("train.ModelTraining", train_schema or f"{prefix}train",
                        "__model_training")
    params = db.table("train.TrainingParamSet", train_schema or f"{prefix}train",
                      "#training_param_set")
    # every state is checked before anything changes
    model_todo = _plan(model, MODEL_OLD, MODEL_NEW)
    training_todo = _plan(training, TRAINING_OLD, TRAINING_NEW) if training else None
    _migrate_model(db, model, model_todo, report)
    if training is None:
        report.missing.append("train.ModelTraining")
    else:
        _migrate_training(db, training, params, training_todo, report)
    log.info("migration done: %s", "; ".join(report.lines()))
    return report


def _plan(table: _Table, old: Sequence[str], new: Sequence[str]) -> str:
    """``"migrate"`` (old columns all there), ``"default"`` (only the engine default
    left to drop) or ``"current"``.

    Raises:
        MigrationError: some but not all old columns, or neither old nor new ones.
    """
    has_old = [c for c in old if c in table.columns]
    has_new = [c for c in new if c in table.columns]
    if len(has_old) == len(old):
        return "migrate"
    if not has_old and len(has_new) == len(new):
        return "default" if table.columns.get("engine") is not None else "current"
    raise MigrationError(
        f"{table.label} ({table.schema}.{table.name}) is at a state this migration does not "
        f"know: columns {sorted(table.columns)}; expected all of {list(old)} (an earlier "
        f"release) or all of {list(new)} and none of the former (the current one). "
        "Nothing was changed.")


# ===================================================================== steps
def _migrate_model(db: _Database, table: _Table, todo: str, report: MigrationReport) -> None:
    """Model: the engine-specific columns into ``engine_options``."""
    if todo == "migrate":
        db.add_columns(table, MODEL_NEW, report)
        rows = db.rows(f"SELECT {db.names(['model_name', *MODEL_OLD])} FROM {table.full_name}")
        updates = [({"engine_options": _dump({c: row[c] for c in MODEL_OLD})},
                    {"model_name": row["model_name"]}) for row in rows]
        db.update(table, updates)
        report.actions.append(f"{table.label}: {len(updates)} row(s): {', '.join(MODEL_OLD)} "
                              "moved into engine_options")
        db.drop_columns(table, MODEL_OLD, report)
    if todo in ("migrate", "default"):
        db.redeclare(table, "engine", report)
    else:
        report.current.append(table.label)


def _migrate_training(db: _Database, table: _Table, params: _Table | None, todo: str,
                      report: MigrationReport) -> None:
    """ModelTraining: ``engine``, ``engine_details``, ``training_config`` from the old columns."""
    if todo == "migrate":
        from element_pose.engines import DEFAULT_ENGINE

        db.add_columns(table, TRAINING_NEW, report, defaults={"engine": DEFAULT_ENGINE})
        keys = ["video_set_id", "paramset_idx", "training_id"]
        rows = db.rows(f"SELECT {db.names([*keys, *TRAINING_OLD])} FROM {table.full_name}")
        sets = _param_sets(db, params)
        updates = [(_training_values(row, sets.get(row["paramset_idx"], {})),
                    {k: row[k] for k in keys}) for row in rows]
        db.update(table, updates)
        report.actions.append(f"{table.label}: {len(updates)} row(s): engine from the "
                              "parameters, shuffle and trainingsetindex into engine_details, "
                              "pytorch_config into training_config")
        db.drop_columns(table, TRAINING_OLD, report)
    if todo in ("migrate", "default"):
        db.redeclare(table, "engine", report)
    else:
        report.current.append(table.label)


def _param_sets(db: _Database, params: _Table | None) -> dict[int, dict]:
    """``{paramset_idx: params}`` of the training parameter sets."""
    if params is None:
        return {}
    rows = db.rows(f"SELECT {db.names(['paramset_idx', 'params'])} FROM {params.full_name}")
    return {row["paramset_idx"]: _json(row["params"]) or {} for row in rows}


def _training_values(row: dict, params: dict) -> dict[str, Any]:
    """The new ModelTraining values of one old row (JSON values serialised)."""
    from element_pose.engines import DEFAULT_ENGINE, get_engine

    name = str(params.get("engine") or DEFAULT_ENGINE)
    try:
        name = get_engine(name).name  # an alias ("dlc") as the registry names it
    except ValueError:
        log.warning("training %s names engine %r, which is not registered; kept as named",
                    row, name)
    locators = {"shuffle": row["shuffle"], "trainingsetindex": row["trainingsetindex"]}
    model_options = {**locators, **({"net_type": params["net_type"]}
                                    if params.get("net_type") else {})}
    return {"engine": name,
            "engine_details": _dump({**locators, "model_options": model_options}),
            "training_config": _dump(_json(row["pytorch_config"]))}


def _json(value: Any) -> Any:
    """A JSON column's value (MySQL drivers give text, PostgreSQL's give objects)."""
    if isinstance(value, bytes | bytearray):
        value = value.decode()
    return json.loads(value) if isinstance(value, str) else value


# ================================================================== database
class _Database:
    """The few statements the steps need, for PostgreSQL and MySQL/MariaDB alike."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.adapter = conn.adapter
        self.quote = self.adapter.quote_identifier

    def names(self, columns: Sequence[str]) -> str:
        """Quoted, comma-separated column names."""
        return ", ".join(self.quote(c) for c in columns)

    def rows(self, sql: str, args: tuple = ()) -> list[dict]:
        """The rows of a query, as dicts."""
        return list(self.conn.query(sql, args, as_dict=True).fetchall())

    def table(self, label: str, schema: str, name: str) -> _Table | None:
        """A table and its columns (with their defaults), ``None`` when absent."""
        found = self.rows(
            "SELECT column_name AS name, column_default AS dflt FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s", (schema, name))
        if not found:
            return None
        columns = {r["name"]: _default(r["dflt"]) for r in found}
        return _Table(label, schema, name, f"{self.quote(schema)}.{self.quote(name)}", columns)

    def add_columns(self, table: _Table, names: Sequence[str], report: MigrationReport,
                    defaults: dict[str, str] | None = None) -> None:
        """Add the columns not yet there, declared as the current definition declares them.

        ``defaults`` fills a new NOT NULL column of existing rows (dropped afterwards).
        """
        from datajoint.declare import compile_attribute

        for name in (n for n in names if n not in table.columns):
            line = _definition_line(table.label, name)
            if defaults and name in defaults:
                head, _, rest = line.partition(":")
                line = f"{head.split('=')[0].strip()} = '{defaults[name]}': {rest.strip()}"
            _, sql, _, comment = compile_attribute(line, False, [], {}, self.adapter)
            self._ddl(f"ALTER TABLE {table.full_name} ADD {sql}")
            if comment:
                ddl = self.adapter.column_comment_ddl(table.full_name, name, comment)
                if ddl:
                    self._ddl(ddl)
            table.columns[name] = defaults.get(name) if defaults else None
            report.actions.append(f"{table.label}: added column {name}")

    def update(self, table: _Table, updates: Sequence[tuple[dict, dict]]) -> None:
        """Set ``(values, key)`` pairs (values as SQL takes them), all in one transaction."""
        with self.conn.transaction:
            for values, key in updates:
                assignments = ", ".join(f"{self.quote(c)} = %s" for c in values)
                where = " AND ".join(f"{self.quote(c)} = %s" for c in key)
                self.conn.query(f"UPDATE {table.full_name} SET {assignments} WHERE {where}",
                                (*values.values(), *key.values()))

    def drop_columns(self, table: _Table, names: Sequence[str], report: MigrationReport) -> None:
        """Drop the columns in one statement."""
        drops = ", ".join(f"DROP COLUMN {self.quote(n)}" for n in names)
        self._ddl(f"ALTER TABLE {table.full_name} {drops}")
        for name in names:
            table.columns.pop(name, None)
        report.actions.append(f"{table.label}: dropped columns {', '.join(names)}")

    def redeclare(self, table: _Table, name: str, report: MigrationReport) -> None:
        """Declare a column of unchanged type as the current definition does (its default
        and comment): ``MODIFY`` on MySQL, ``DROP DEFAULT`` and ``COMMENT ON`` elsewhere."""
        from datajoint.declare import compile_attribute

        line = _definition_line(table.label, name)
        _, sql, _, comment = compile_attribute(line, False, [], {}, self.adapter)
        if self.adapter.backend == "mysql":
            self._ddl(f"ALTER TABLE {table.full_name} MODIFY {sql}")
        else:
            self._ddl(f"ALTER TABLE {table.full_name} ALTER COLUMN {self.quote(name)} "
                      "DROP DEFAULT")
            ddl = comment and self.adapter.column_comment_ddl(table.full_name, name, comment)
            if ddl:
                self._ddl(ddl)
        table.columns[name] = None
        report.actions.append(f"{table.label}: column {name} declared as now ({line})")

    def _ddl(self, sql: str) -> None:
        log.info("%s", sql)
        self.conn.query(sql)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _default(value: Any) -> Any:
    """A column default from information_schema (MariaDB says ``'NULL'`` for none)."""
    return None if value is None or str(value).upper() == "NULL" else value


def _definition_line(label: str, name: str) -> str:
    """The line declaring ``name`` in the current definition of a table."""
    from element_pose.schemas import model, train

    table = {"model.Model": model.Model, "train.ModelTraining": train.ModelTraining}[label]
    for line in table.definition.splitlines():
        if line.strip().split("=")[0].split(":")[0].strip() == name:
            return line.strip()
    raise MigrationError(f"{label} declares no column {name}")  # a bug of this module
