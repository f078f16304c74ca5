"""Run check declarations against a target: one set-based query each, on the target's backend.

Every check renders to a *failing rows* query (or, for counts, one scalar query) with
identifiers quoted by the backend and values bound as parameters, never pasted into the SQL.
The outcome carries the failing count, a one-line detail and a few sample rows. Delta targets
are checked through the DuckDB session in which every Delta table is ``schema.table``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ematix_engine.backends import open_backend
from ematix_engine.checks.declarations import (
    AcceptedValues,
    Check,
    KeysUnique,
    NotNull,
    RowCountBetween,
    Scd2NoOverlapOrGap,
    Scd2OneCurrentPerKey,
    SqlCheck,
    Unique,
)
from ematix_engine.errors import EmatixError
from ematix_engine.specs import LoadMode, TargetSpec

__all__ = ["CheckOutcome", "check_session", "evaluate_check", "evaluate_checks"]

DEFAULT_CONNECTION = "default"
_FAILING = "_ematix_failing"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """What one check found.

    Attributes:
        check: The check's name.
        passed: Whether the target satisfies the check.
        failing_count: Failing rows (or duplicated keys, bad versions, …; see ``detail``).
        detail: One line for humans, e.g. ``"2 rows with NULL email"``.
        sample: Up to a few failing rows as JSON-ready dicts.
        severity: The check's severity (``error`` or ``warn``).
        sql: The query that decided the outcome.
    """

    check: str
    passed: bool
    failing_count: int
    detail: str
    sample: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    severity: str = "error"
    sql: str = ""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A rendered check: a failing-rows query or a scalar one, plus how to word the result."""

    sql: str
    params: tuple[Any, ...] | None = None
    scalar: bool = False
    sample_sql: str | None = None
    sample_columns: tuple[str, ...] = ()
    describe: Callable[[int], str] = str


class _Renderer:
    """Builds each check's SQL for one session and one target."""

    def __init__(self, session: Any, target: TargetSpec) -> None:
        self.session = session
        self.target = target
        self.q = session.quote
        self.table = session.table_sql(target.table.schema, target.table.name)

    def cols(self, names: Sequence[str]) -> str:
        return ", ".join(self.q(n) for n in names)

    def managed(self, name: str) -> str:
        """Quoted name in the target of managed column ``name`` (``validity_columns=``)."""
        return self.q(self.target.column_name(name))

    def relation(self, check: Check) -> str:
        """The table, or its current versions for a user check on an SCD2 target."""
        if self.target.mode is LoadMode.SCD2 and not check.builtin:
            return (
                f"(SELECT * FROM {self.table} WHERE {self.managed('is_current')}) "
                f"AS {self.q('_ematix_current')}"
            )
        return self.table

    def duplicates(self, check: Check, columns: Sequence[str], relation: str) -> _Plan:
        cols = self.cols(columns)
        return _Plan(
            sql=(
                f"SELECT {cols}, COUNT(*) AS {self.q('n_rows')} FROM {relation} "
                f"GROUP BY {cols} HAVING COUNT(*) > 1"
            ),
            describe=lambda n: f"{n} duplicated value(s) of ({', '.join(columns)})",
        )

    def plan(self, check: Check) -> _Plan:
        rel = self.relation(check)
        q = self.q
        if isinstance(check, NotNull):
            return _Plan(
                sql=f"SELECT * FROM {rel} WHERE {q(check.column)} IS NULL",
                describe=lambda n: f"{n} row(s) with NULL {check.column}",
            )
        if isinstance(check, Unique | KeysUnique):
            return self.duplicates(check, check.columns, rel)
        if isinstance(check, AcceptedValues):
            col = q(check.column)
            marks = ", ".join(
                self.session.param_placeholder(i) for i in range(1, len(check.values) + 1)
            )
            where = f"{col} IS NOT NULL AND {col} NOT IN ({marks})"
            return _Plan(
                sql=f"SELECT COUNT(*) FROM {rel} WHERE {where}",
                params=check.values,
                scalar=True,
                sample_sql=(
                    f"SELECT {col} AS {q('value')}, COUNT(*) AS {q('n_rows')} FROM {rel} "
                    f"WHERE {where} GROUP BY {col}"
                ),
                sample_columns=("value", "n_rows"),
                describe=lambda n: f"{n} row(s) with {check.column} outside the accepted values",
            )
        if isinstance(check, RowCountBetween):
            return _Plan(sql=f"SELECT COUNT(*) FROM {rel}", scalar=True)
        if isinstance(check, SqlCheck):
            sql = check.sql.replace("{table}", self.table).strip().rstrip(";")
            if check.returns == "count":
                return _Plan(sql=sql, scalar=True, describe=lambda n: f"custom SQL counted {n}")
            return _Plan(sql=sql, describe=lambda n: f"custom SQL returned {n} failing row(s)")
        if isinstance(check, Scd2OneCurrentPerKey):
            keys = self.cols(check.keys)
            return _Plan(
                sql=(
                    f"SELECT {keys}, COUNT(*) AS {q('current_versions')} FROM {self.table} "
                    f"WHERE {self.managed('is_current')} GROUP BY {keys} HAVING COUNT(*) > 1"
                ),
                describe=lambda n: f"{n} key(s) with more than one current version",
            )
        if isinstance(check, Scd2NoOverlapOrGap):
            return self.intervals(check)
        raise EmatixError(f"check {check.name!r}: unknown check type {type(check).__name__}")

    def intervals(self, check: Scd2NoOverlapOrGap) -> _Plan:
        """Versions that overlap, leave a gap, end before they start or are wrongly current.

        A current version ends at NULL, or at the target's ``current_valid_to`` sentinel
        (bound as a parameter), which then reads back as NULL here; with a sentinel, a stored
        NULL is wrong too.
        """
        q = self.q
        keys = self.cols(check.keys)
        names = [self.target.column_name(n) for n in ("valid_from", "valid_to", "is_current")]
        vf, vt, cur = (q(n) for n in names)
        nxt, stored = q("next_valid_from"), q("_ematix_stored_valid_to")
        end, params, no_end = vt, None, ""
        if self.target.current_valid_to is not None:
            end = f"NULLIF({vt}, {self.session.param_placeholder(0)})"
            params = (self.session.timestamp_param(self.target.current_valid_to),)
            no_end = f" OR {stored} IS NULL"
        versions = (
            f"SELECT {keys}, {vf}, {end} AS {vt}, {vt} AS {stored}, {cur}, "
            f"LEAD({vf}) OVER (PARTITION BY {keys} ORDER BY {vf}) AS {nxt} FROM {self.table}"
        )
        shown = (*check.keys, *names, "next_valid_from")
        sql = (
            f"SELECT {keys}, {vf}, {stored} AS {vt}, {cur}, {nxt} FROM ({versions}) AS {q('_ematix_versions')} WHERE "
            f"({nxt} IS NOT NULL AND ({vt} IS NULL OR {vt} <> {nxt} OR {nxt} = {vf})) "
            f"OR ({vt} IS NOT NULL AND {vt} < {vf}) "
            f"OR ({cur} AND {vt} IS NOT NULL) "
            f"OR (NOT {cur} AND {vt} IS NULL){no_end}"
        )
        return _Plan(
            sql=sql,
            params=params,
            sample_sql=sql,
            sample_columns=shown,
            describe=lambda n: f"{n} version(s) overlapping, leaving a gap or wrongly current",
        )


@contextlib.contextmanager
def check_session(target: TargetSpec) -> Iterator[Any]:
    """Open a SQL session in which ``target`` can be queried (DuckDB for Delta targets).

    Args:
        target: The target.

    Yields:
        A SQL backend session; closed on exit.
    """
    backend = open_backend(target.connection or DEFAULT_CONNECTION, read_only=True)
    try:
        with backend.query_session() as session:
            yield session
    finally:
        backend.close()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _sample(session: Any, plan: _Plan, size: int) -> tuple[dict[str, Any], ...]:
    if size <= 0:
        return ()
    if plan.sample_sql is not None:
        rows = session.query(f"{plan.sample_sql} LIMIT {int(size)}", plan.params)
        return tuple(
            {k: _jsonable(v) for k, v in zip(plan.sample_columns, row, strict=False)}
            for row in rows
        )
    if plan.scalar:
        return ()
    sql = f"SELECT * FROM ({plan.sql}) AS {session.quote(_FAILING)} LIMIT {int(size)}"
    table = session.read_arrow(sql).read_all()
    return tuple({k: _jsonable(v) for k, v in row.items()} for row in table.to_pylist())


def _run(session: Any, target: TargetSpec, check: Check, sample_size: int) -> CheckOutcome:
    renderer = _Renderer(session, target)
    plan = renderer.plan(check)
    if plan.scalar:
        counted_sql = plan.sql
        rows = session.query(plan.sql, plan.params)
    else:
        counted_sql = f"SELECT COUNT(*) FROM ({plan.sql}) AS {session.quote(_FAILING)}"
        rows = session.query(counted_sql, plan.params)
    value = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    common = {"check": check.name, "severity": check.severity, "sql": counted_sql}
    if isinstance(check, RowCountBetween):
        low_ok = check.min is None or value >= check.min
        high_ok = check.max is None or value <= check.max
        passed = low_ok and high_ok
        return CheckOutcome(
            passed=passed,
            failing_count=0 if passed else 1,
            detail=f"{value} row(s); expected {check.summary()}",
            **common,
        )
    passed = value == 0
    return CheckOutcome(
        passed=passed,
        failing_count=value,
        detail="no failing rows" if passed else plan.describe(value),
        sample=() if passed else _sample(session, plan, sample_size),
        **common,
    )


def evaluate_checks(
    target: TargetSpec,
    checks: Sequence[Check],
    *,
    sample_size: int = 5,
    session: Any = None,
) -> list[CheckOutcome]:
    """Evaluate several checks against ``target`` in one session.

    Args:
        target: The target table (its connection says where it lives).
        checks: The declarations.
        sample_size: Failing rows to keep per check.
        session: An open SQL session to reuse (default: one opened for the target).

    Returns:
        One outcome per check, in order. A target table that does not exist yet fails every
        check with a detail that says so.

    Raises:
        EmatixError: A check's SQL failed to run (names the check and the target).
    """
    if session is None:
        with check_session(target) as opened:
            return evaluate_checks(target, checks, sample_size=sample_size, session=opened)
    if session.table_columns(target.table.schema, target.table.name) is None:
        return [
            CheckOutcome(
                check=c.name,
                passed=False,
                failing_count=0,
                detail=f"table {target.label} does not exist; load the pipeline first",
                severity=c.severity,
            )
            for c in checks
        ]
    outcomes = []
    for check in checks:
        try:
            outcomes.append(_run(session, target, check, sample_size))
        except EmatixError:
            raise
        except Exception as error:
            with contextlib.suppress(Exception):
                session.rollback()
            raise EmatixError(
                f"check {check.name!r} on {target.label} could not run: "
                f"{str(error).strip() or type(error).__name__}"
            ) from error
    return outcomes


def evaluate_check(
    target: TargetSpec, check: Check, *, sample_size: int = 5, session: Any = None
) -> CheckOutcome:
    """Evaluate one check against ``target``.

    Args:
        target: The target table.
        check: The declaration.
        sample_size: Failing rows to keep.
        session: An open SQL session to reuse.

    Returns:
        The outcome.

    Raises:
        EmatixError: The check's SQL failed to run.

    Example:
        >>> import os, tempfile
        >>> from typing import Annotated
        >>> import duckdb
        >>> from ematix_engine import ematix, pk
        >>> from ematix_engine.checks import not_null
        >>> from ematix_engine.connections import DuckDBConnection
        >>> from ematix_engine.types import BigInt, Text
        >>> path = os.path.join(tempfile.mkdtemp(), "shop.duckdb")
        >>> with duckdb.connect(path) as con:
        ...     _ = con.execute("CREATE SCHEMA an; CREATE TABLE an.customers AS "
        ...                     "SELECT * FROM (VALUES (1, NULL), (2, NULL), (3, 'c@x.io')) v(id, email)")
        >>> @ematix.table(schema="an", connection=DuckDBConnection(name="shop", path=path))
        ... class Customers:
        ...     id: Annotated[BigInt, pk()]
        ...     email: Text | None
        >>> @ematix.pipeline(target=Customers, mode="merge")
        ... def customers(conn):
        ...     return "SELECT id, email FROM an.customers"
        >>> outcome = evaluate_check(customers.spec.targets[0], not_null("email"))
        >>> outcome.passed, outcome.detail
        (False, '2 row(s) with NULL email')
    """
    return evaluate_checks(target, [check], sample_size=sample_size, session=session)[0]
