"""Data-check declarations: frozen records, validated at construction, orchestrator-neutral.

A pipeline lists its checks (``@ematix.pipeline(checks=[not_null("email"), ...])``); the
Dagster layer turns each into an ``AssetCheckSpec`` and :func:`~ematix_engine.checks.evaluate_check`
runs it as one set-based query against the target. Besides the user's checks every target gets
built-in invariants (:func:`builtin_checks`): SCD2 targets "one current row per key" and "no
overlapping or gapped validity intervals", other keyed targets "keys unique".

On SCD2 targets the user's checks (all but :func:`sql_check`) look at the current versions
only, since that is what the table means now; the built-in invariants check the whole history.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ematix_engine.errors import ConfigError, closest_match
from ematix_engine.modes import mode_of
from ematix_engine.specs import LoadMode, PipelineSpec, TargetSpec

__all__ = [
    "SEVERITIES",
    "AcceptedValues",
    "Check",
    "KeysUnique",
    "NotNull",
    "RowCountBetween",
    "Scd2NoOverlapOrGap",
    "Scd2OneCurrentPerKey",
    "SqlCheck",
    "Unique",
    "accepted_values",
    "builtin_checks",
    "checks_for_target",
    "keys_unique",
    "not_null",
    "row_count_between",
    "scd2_no_overlap_or_gap",
    "scd2_one_current_per_key",
    "sql_check",
    "unique",
]

SEVERITIES = ("error", "warn")
"""Allowed ``severity`` values: ``error`` fails the check, ``warn`` only warns."""

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _slug(text: str) -> str:
    """A check-name-safe version of ``text`` (letters, digits and ``_`` only)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "check"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """Base of every check declaration.

    Attributes:
        name: Unique name among a target's checks (letters, digits and ``_``).
        severity: ``"error"`` (default) or ``"warn"``.
        blocking: Whether a failure should stop downstream work (Dagster: a blocking check).
        description: Free text shown next to the check.
        target: ``schema.table`` of the one target of a fan-out pipeline the check applies
            to; every target when ``None``.
    """

    kind: ClassVar[str] = ""
    builtin: ClassVar[bool] = False

    name: str
    severity: str = "error"
    blocking: bool = False
    description: str = ""
    target: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"{self.kind} check: name {self.name!r} must use only letters, digits and '_'"
            )
        if self.severity not in SEVERITIES:
            hint = closest_match(str(self.severity), SEVERITIES)
            raise ConfigError(
                f"check {self.name!r}: severity must be 'error' or 'warn', got {self.severity!r}"
                + (f"; did you mean {hint!r}?" if hint else "")
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the check reads (validated against the target's table)."""
        return ()

    def summary(self) -> str:
        """One line saying what the check asserts."""
        return self.description or self.kind.replace("_", " ")

    def validate(self, pipeline: str, target: TargetSpec) -> None:
        """Check that every column the check reads exists in ``target``.

        Args:
            pipeline: Pipeline name, for the message.
            target: The target the check applies to.

        Raises:
            ConfigError: Naming the pipeline, check and column, with the closest column.
        """
        known = _known_columns(target)
        for column in self.columns:
            if column not in known:
                hint = closest_match(column, known)
                raise ConfigError(
                    f"pipeline {pipeline!r}, check {self.name!r}: target {target.label} has no "
                    f"column {column!r}"
                    + (f"; did you mean {hint!r}?" if hint else f"; columns: {', '.join(known)}")
                )


def _known_columns(target: TargetSpec) -> tuple[str, ...]:
    return (
        *target.table.column_names,
        *(c.name for c in mode_of(target).managed_columns_of(target)),
    )


def _columns(value: Sequence[str] | str, what: str) -> tuple[str, ...]:
    columns = (value,) if isinstance(value, str) else tuple(value)
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ConfigError(f"{what} needs at least one column name")
    return columns


@dataclass(frozen=True, slots=True, kw_only=True)
class NotNull(Check):
    """No row has NULL in ``column``."""

    kind: ClassVar[str] = "not_null"
    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        """The checked column."""
        return (self.column,)

    def summary(self) -> str:
        """One line saying what the check asserts."""
        return self.description or f"{self.column} is never NULL"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unique(Check):
    """No two rows share the same values in ``columns``."""

    kind: ClassVar[str] = "unique"
    unique_columns: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns that must be unique together."""
        return self.unique_columns

    def summary(self) -> str:
        """One line saying what the check asserts."""
        return self.description or f"({', '.join(self.unique_columns)}) is unique"


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedValues(Check):
    """Every non-NULL value of ``column`` is one of ``values``."""

    kind: ClassVar[str] = "accepted_values"
    column: str
    values: tuple[str | int | float | bool, ...]

    def __post_init__(self) -> None:
        Check.__post_init__(self)
        if not self.values:
            raise ConfigError(f"check {self.name!r}: accepted_values needs at least one value")

    @property
    def columns(self) -> tuple[str, ...]:
        """The checked column."""
        return (self.column,)

    def summary(self) -> str:
        """One line saying what the check asserts."""
        shown = ", ".join(repr(v) for v in self.values[:8])
        more = ", …" if len(self.values) > 8 else ""
        return self.description or f"{self.column} is one of {shown}{more}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RowCountBetween(Check):
    """The table holds between ``min`` and ``max`` rows (either bound may be open)."""

    kind: ClassVar[str] = "row_count_between"
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        Check.__post_init__(self)
        if self.min is None and self.max is None:
            raise ConfigError(f"check {self.name!r}: row_count_between needs min=, max= or both")
        for bound in (self.min, self.max):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise ConfigError(f"check {self.name!r}: row count bounds must be ints")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(
                f"check {self.name!r}: row_count_between min={self.min} is above max={self.max}"
            )

    def summary(self) -> str:
        """One line saying what the check asserts."""
        if self.description:
            return self.description
        if self.max is None:
            return f"at least {self.min} rows"
        if self.min is None:
            return f"at most {self.max} rows"
        return f"between {self.min} and {self.max} rows"


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlCheck(Check):
    """Custom SQL: it returns the failing rows (``returns="rows"``) or their count.

    ``{table}`` in the SQL becomes the target's quoted, qualified name.
    """

    kind: ClassVar[str] = "sql"
    sql: str
    returns: str = "rows"

    def __post_init__(self) -> None:
        Check.__post_init__(self)
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise ConfigError(f"check {self.name!r}: sql_check needs a SQL string")
        if self.returns not in ("rows", "count"):
            raise ConfigError(
                f"check {self.name!r}: returns must be 'rows' or 'count', got {self.returns!r}"
            )

    def summary(self) -> str:
        """One line saying what the check asserts."""
        return self.description or f"custom SQL {self.name} finds no failing rows"


@dataclass(frozen=True, slots=True, kw_only=True)
class _KeyedBuiltin(Check):
    """A built-in invariant over the target's business keys."""

    builtin: ClassVar[bool] = True
    headline: ClassVar[str] = ""
    keys: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The key columns."""
        return self.keys

    def summary(self) -> str:
        """One line saying what the check asserts."""
        return self.description or self.headline.format(keys=", ".join(self.keys))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeysUnique(_KeyedBuiltin):
    """Built-in: the target's business keys are unique (merge and other keyed targets)."""

    kind: ClassVar[str] = "keys_unique"
    headline: ClassVar[str] = "keys ({keys}) are unique"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scd2OneCurrentPerKey(_KeyedBuiltin):
    """Built-in: at most one current version (``is_current``) per business key."""

    kind: ClassVar[str] = "scd2_one_current_per_key"
    headline: ClassVar[str] = "one current row per key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scd2NoOverlapOrGap(_KeyedBuiltin):
    """Built-in: each key's versions tile time: every ``valid_to`` is the next ``valid_from``.

    Also: ``valid_to`` is never before ``valid_from``; exactly the versions without
    ``valid_to`` are current.
    """

    kind: ClassVar[str] = "scd2_no_overlap_or_gap"
    headline: ClassVar[str] = "no overlapping or gapped validity intervals"


def _common(
    name: str | None, default: str, severity: str, blocking: bool, description: str, target
) -> dict:
    return {
        "name": name or _slug(default),
        "severity": severity,
        "blocking": blocking,
        "description": description,
        "target": target,
    }


def not_null(
    column: str,
    *,
    name: str | None = None,
    severity: str = "error",
    blocking: bool = False,
    description: str = "",
    target: str | None = None,
) -> NotNull:
    """Declare that ``column`` is never NULL.

    Args:
        column: The column.
        name: Check name; default ``not_null_<column>``.
        severity: ``"error"`` or ``"warn"``.
        blocking: Stop downstream work when the check fails.
        description: Shown next to the check.
        target: ``schema.table`` of one target of a fan-out pipeline.

    Returns:
        The declaration.

    Example:
        >>> not_null("email").name
        'not_null_email'
    """
    _columns(column, "not_null")
    return NotNull(
        column=column,
        **_common(name, f"not_null_{column}", severity, blocking, description, target),
    )


def unique(
    *columns: str,
    name: str | None = None,
    severity: str = "error",
    blocking: bool = False,
    description: str = "",
    target: str | None = None,
) -> Unique:
    """Declare that ``columns`` are unique together.

    Args:
        *columns: One or more columns.
        name: Check name; default ``unique_<columns>``.
        severity: ``"error"`` or ``"warn"``.
        blocking: Stop downstream work when the check fails.
        description: Shown next to the check.
        target: ``schema.table`` of one target of a fan-out pipeline.

    Returns:
        The declaration.

    Example:
        >>> unique("order_id", "line").name
        'unique_order_id_line'
    """
    cols = _columns(columns, "unique")
    return Unique(
        unique_columns=cols,
        **_common(name, "unique_" + "_".join(cols), severity, blocking, description, target),
    )


def accepted_values(
    column: str,
    values: Sequence[str | int | float | bool],
    *,
    name: str | None = None,
    severity: str = "error",
    blocking: bool = False,
    description: str = "",
    target: str | None = None,
) -> AcceptedValues:
    """Declare that every non-NULL value of ``column`` is one of ``values``.

    Args:
        column: The column.
        values: The accepted values (sent as query parameters, never pasted into SQL).
        name: Check name; default ``accepted_values_<column>``.
        severity: ``"error"`` or ``"warn"``.
        blocking: Stop downstream work when the check fails.
        description: Shown next to the check.
        target: ``schema.table`` of one target of a fan-out pipeline.

    Returns:
        The declaration.

    Example:
        >>> accepted_values("tier", ["gold", "silver"]).values
        ('gold', 'silver')
    """
    _columns(column, "accepted_values")
    if isinstance(values, str):
        raise ConfigError(f"accepted_values({column!r}): values must be a list, not a string")
    return AcceptedValues(
        column=column,
        values=tuple(values),
        **_common(name, f"accepted_values_{column}", severity, blocking, description, target),
    )


def row_count_between(
    min: int | None = None,
    max: int | None = None,
    *,
    name: str | None = None,
    severity: str = "error",
    blocking: bool = False,
    description: str = "",
    target: str | None = None,
) -> RowCountBetween:
    """Declare bounds on the number of rows (current versions on SCD2 targets).

    Args:
        min: Lowest accepted count (inclusive), or ``None``.
        max: Highest accepted count (inclusive), or ``None``.
        name: Check name; default ``row_count_between``.
        severity: ``"error"`` or ``"warn"``.
        blocking: Stop downstream work when the check fails.
        description: Shown next to the check.
        target: ``schema.table`` of one target of a fan-out pipeline.

    Returns:
        The declaration.

    Example:
        >>> row_count_between(min=1).summary()
        'at least 1 rows'
    """
    return RowCountBetween(
        min=min,
        max=max,
        **_common(name, "row_count_between", severity, blocking, description, target),
    )


def sql_check(
    name: str,
    sql: str,
    *,
    returns: str = "rows",
    severity: str = "error",
    blocking: bool = False,
    description: str = "",
    target: str | None = None,
) -> SqlCheck:
    """Declare a custom SQL check.

    Args:
        name: Check name (letters, digits and ``_``).
        sql: A query in the target's dialect; ``{table}`` becomes the target's quoted name.
        returns: ``"rows"``: the query returns the failing rows (it passes when there are
            none); ``"count"``: it returns one number, the failing count.
        severity: ``"error"`` or ``"warn"``.
        blocking: Stop downstream work when the check fails.
        description: Shown next to the check.
        target: ``schema.table`` of one target of a fan-out pipeline.

    Returns:
        The declaration.

    Example:
        >>> sql_check("no_negative", "SELECT * FROM {table} WHERE amount < 0").returns
        'rows'
    """
    return SqlCheck(
        sql=sql,
        returns=returns,
        **_common(name, name, severity, blocking, description, target),
    )


def keys_unique(keys: Sequence[str]) -> KeysUnique:
    """The built-in uniqueness check of a keyed (non-SCD2) target; blocking."""
    return KeysUnique(name="keys_unique", keys=_columns(keys, "keys_unique"), blocking=True)


def scd2_one_current_per_key(keys: Sequence[str]) -> Scd2OneCurrentPerKey:
    """The built-in "one current row per key" invariant of an SCD2 target; blocking."""
    return Scd2OneCurrentPerKey(
        name="scd2_one_current_per_key", keys=_columns(keys, "scd2 check"), blocking=True
    )


def scd2_no_overlap_or_gap(keys: Sequence[str]) -> Scd2NoOverlapOrGap:
    """The built-in "no overlapping or gapped validity intervals" invariant; blocking."""
    return Scd2NoOverlapOrGap(
        name="scd2_no_overlap_or_gap", keys=_columns(keys, "scd2 check"), blocking=True
    )


def builtin_checks(target: TargetSpec) -> tuple[Check, ...]:
    """The invariants every target gets from its load mode.

    Args:
        target: The target.

    Returns:
        SCD2: one current row per key, no overlap or gap; other modes with keys: keys unique;
        otherwise nothing.
    """
    if target.mode is LoadMode.SCD2:
        return (scd2_one_current_per_key(target.keys), scd2_no_overlap_or_gap(target.keys))
    if target.keys:
        return (keys_unique(target.keys),)
    return ()


def checks_for_target(spec: PipelineSpec, target: TargetSpec) -> tuple[Check, ...]:
    """Built-in invariants plus the pipeline's checks that apply to ``target``, validated.

    Args:
        spec: The pipeline.
        target: One of its targets.

    Returns:
        The checks, built-ins first.

    Raises:
        ConfigError: A check is not a declaration, reads an unknown column, names an unknown
            target, or two checks share a name.
    """
    labels = [t.label for t in spec.targets]
    chosen: list[Check] = list(builtin_checks(target))
    for check in spec.checks:
        if not isinstance(check, Check):
            raise ConfigError(
                f"pipeline {spec.name!r}: checks=[...] takes declarations from "
                f"ematix_engine.checks (not_null, unique, …), got {type(check).__name__}"
            )
        if check.target is not None and check.target not in labels:
            hint = closest_match(check.target, labels)
            raise ConfigError(
                f"pipeline {spec.name!r}, check {check.name!r}: target {check.target!r} is not "
                f"one of the pipeline's targets"
                + (f"; did you mean {hint!r}?" if hint else f" ({', '.join(labels)})")
            )
        if check.target in (None, target.label):
            check.validate(spec.name, target)
            chosen.append(check)
    names = [c.name for c in chosen]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                f"pipeline {spec.name!r}: two checks on {target.label} are named {name!r}; "
                f"pass name=... to one of them"
            )
    return tuple(chosen)
