"""``validity_columns=`` and ``current_valid_to=``: how an SCD2 target spells its validity.

Both are checked here, when the pipeline is declared: the names must be distinct, must not
repeat a declared column or another managed column, and the sentinel must be a point in time.

Example:
    >>> validity_columns_from("pipeline 'p'", ("start_at", "end_at")).valid_to
    'end_at'
    >>> current_valid_to_from("pipeline 'p'", "9999-12-31").isoformat()
    '9999-12-31T00:00:00+00:00'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ematix_engine.errors import ConfigError, closest_match
from ematix_engine.modes import all_managed_names
from ematix_engine.specs import TableSpec, ValidityColumns

__all__ = ["current_valid_to_from", "refuse_clashes", "validity_columns_from"]

_LOGICAL = ValidityColumns.LOGICAL


def validity_columns_from(where: str, value: Any) -> ValidityColumns:
    """Read ``validity_columns=`` into a :class:`ValidityColumns`.

    It is ``(valid_from, valid_to[, is_current[, is_deleted]])``, a mapping from those
    default names to new ones, or a :class:`ValidityColumns`.

    Raises:
        ConfigError: an unknown name in the mapping, a blank or repeated name (``where``
            says which pipeline and target).
    """
    if value is None:
        return ValidityColumns()
    if isinstance(value, ValidityColumns):
        columns = value
    elif isinstance(value, Mapping):
        for key in value:
            if key not in _LOGICAL:
                hint = closest_match(str(key), _LOGICAL)
                raise ConfigError(
                    f"{where}: validity_columns: unknown column {key!r}"
                    + (f"; did you mean {hint!r}?" if hint else f"; use {', '.join(_LOGICAL)}")
                )
        columns = ValidityColumns(**{k: _name(where, v) for k, v in value.items()})
    elif isinstance(value, Sequence) and not isinstance(value, str) and 2 <= len(value) <= 4:
        names = [_name(where, v) for v in value]
        columns = ValidityColumns(**dict(zip(_LOGICAL, names, strict=False)))
    else:
        raise ConfigError(
            f"{where}: validity_columns must be (valid_from, valid_to) names, up to four "
            f"(… is_current, is_deleted), or a mapping such as "
            f"{{'valid_from': 'start_at'}}; got {value!r}"
        )
    names = [columns.physical(n) for n in _LOGICAL]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{where}: validity_columns names {repeated[0]!r} twice")
    taken = sorted(set(names) & (all_managed_names() - set(_LOGICAL)))
    if taken:
        raise ConfigError(
            f"{where}: validity_columns: {taken[0]!r} is the name of another column ematix "
            f"manages; pick another"
        )
    return columns


def refuse_clashes(where: str, table: TableSpec, managed: Sequence[str], mode: str) -> None:
    """Refuse a declared column that has the name of a column ``mode`` manages.

    Raises:
        ConfigError: naming the columns, and ``validity_columns`` as the way out.
    """
    clash = sorted(set(managed) & set(table.column_names))
    if clash:
        raise ConfigError(
            f"{where}: columns {clash} are managed by {mode}; rename them in the table"
            + (
                " or give the validity columns other names (validity_columns=)"
                if mode == "scd2"
                else ""
            )
        )


def current_valid_to_from(where: str, value: Any) -> datetime | None:
    """Read ``current_valid_to=``: an ISO date or timestamp, a ``date`` or a ``datetime``.

    A date means its midnight, a time without an offset means UTC.

    Raises:
        ConfigError: the value is no point in time.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{where}: current_valid_to must be an ISO date or timestamp such as "
                f"'9999-12-31', got {value!r}"
            ) from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ConfigError(
            f"{where}: current_valid_to must be a date, a datetime or an ISO string, got "
            f"{type(value).__name__}"
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}: validity_columns: a column name must be non-blank text, got {value!r}"
        )
    return value
