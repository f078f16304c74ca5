"""Normalizers: per-column clean-up declared on a table, applied set-based in SQL.

A normalizer turns a column expression into a new expression (a sqlglot tree), so it runs inside
the target database over the whole batch — never row by row in Python. Declare them in the
column's ``Annotated`` metadata; they apply left to right::

    email: Annotated[String[256] | None, lower(), trim(), empty_to_null()]

Literal arguments (patterns, defaults) are rendered as escaped SQL literals by sqlglot. The
constructors do not check their arguments, because they do not know the column yet:
``@ematix.table`` asks each normalizer for its :meth:`Normalizer.problem` and raises a
:class:`~ematix_engine.errors.ConfigError` naming the table and the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

__all__ = [
    "Normalizer",
    "default",
    "empty_to_null",
    "lower",
    "parse_int",
    "parse_timestamp",
    "regex_replace",
    "trim",
]


@dataclass(frozen=True, slots=True)
class Normalizer:
    """One clean-up step for a column.

    Attributes:
        kind: the operation (lower, trim, empty_to_null, parse_timestamp, parse_int, default,
            regex_replace).
        args: literal arguments of the operation.
    """

    kind: str
    args: tuple[Any, ...] = ()

    def apply(self, value: exp.Expression, target_type: exp.DataType) -> exp.Expression:
        """Return the expression that normalizes ``value`` (dialect-neutral sqlglot tree).

        Args:
            value: the column expression to clean up.
            target_type: the declared SQL type of the column (used by the parse steps).
        """
        if self.kind == "lower":
            return exp.Lower(this=value)
        if self.kind == "trim":
            return exp.Trim(this=value)
        if self.kind == "empty_to_null":
            return exp.Nullif(this=value, expression=exp.Literal.string(""))
        if self.kind == "parse_int":
            text = exp.Nullif(
                this=exp.Trim(this=exp.cast(value, "TEXT")), expression=exp.Literal.string("")
            )
            return exp.cast(text, "BIGINT")
        if self.kind == "parse_timestamp":
            (fmt,) = self.args
            if fmt is None:
                return exp.cast(value, target_type.copy())
            parsed = exp.StrToTime(this=value, format=exp.Literal.string(fmt))
            return exp.cast(parsed, target_type.copy())
        if self.kind == "default":
            (fallback,) = self.args
            return exp.Coalesce(this=value, expressions=[_literal(fallback)])
        if self.kind == "regex_replace":
            pattern, replacement = self.args
            return exp.RegexpReplace(
                this=value,
                expression=exp.Literal.string(pattern),
                replacement=exp.Literal.string(replacement),
                modifiers=exp.Literal.string("g"),
            )
        raise ValueError(f"unknown normalizer {self.kind!r}")  # pragma: no cover

    def problem(self) -> str | None:
        """Return why this step cannot work (bad arguments), or ``None`` when it can.

        Example:
            >>> print(regex_replace("[0-9]+", None).problem())
            regex_replace('[0-9]+', None): pattern and replacement must be strings
        """
        shown = f"{self.kind}({', '.join(map(repr, self.args))})"
        if len(self.args) != _ARGUMENTS.get(self.kind, -1):
            return f"{shown}: unknown normalizer; use one from ematix_engine.normalize"
        if self.kind == "parse_timestamp" and not isinstance(self.args[0], str | None):
            return (
                f"{shown}: fmt must be a strftime-style string such as '%Y-%m-%d %H:%M', or "
                f"None for ISO-8601"
            )
        if self.kind == "regex_replace" and not all(isinstance(a, str) for a in self.args):
            return f"{shown}: pattern and replacement must be strings"
        if self.kind == "default" and isinstance(self.args[0], list | tuple | dict | set):
            return f"{shown}: the default must be one value (text, number, boolean or None)"
        return None


_ARGUMENTS = {
    "lower": 0,
    "trim": 0,
    "empty_to_null": 0,
    "parse_int": 0,
    "parse_timestamp": 1,
    "default": 1,
    "regex_replace": 2,
}


def _literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def lower() -> Normalizer:
    """Lower-case the value."""
    return Normalizer("lower")


def trim() -> Normalizer:
    """Strip leading and trailing white space."""
    return Normalizer("trim")


def empty_to_null() -> Normalizer:
    """Turn an empty string into NULL."""
    return Normalizer("empty_to_null")


def parse_int() -> Normalizer:
    """Parse text into an integer (blank text becomes NULL; garbage fails the load)."""
    return Normalizer("parse_int")


def parse_timestamp(fmt: str | None = None) -> Normalizer:
    """Parse text into the column's timestamp type.

    Args:
        fmt: a ``strftime``-style format such as ``"%Y-%m-%d %H:%M"``; ``None`` accepts ISO-8601.
    """
    return Normalizer("parse_timestamp", (fmt,))


def default(value: Any) -> Normalizer:
    """Replace NULL with ``value``."""
    return Normalizer("default", (value,))


def regex_replace(pattern: str, replacement: str) -> Normalizer:
    """Replace every match of the regular expression ``pattern`` with ``replacement``."""
    return Normalizer("regex_replace", (pattern, replacement))
