"""Data checks: declarations a pipeline lists, built-in invariants, and their evaluation.

Example:
    >>> from ematix_engine.checks import accepted_values, not_null, row_count_between
    >>> checks = [not_null("email"), accepted_values("tier", ["bronze", "silver", "gold"]),
    ...           row_count_between(min=1)]
    >>> [c.name for c in checks]
    ['not_null_email', 'accepted_values_tier', 'row_count_between']

Pass them as ``@ematix.pipeline(..., checks=checks)``; :func:`evaluate_check` runs one against
a target, and the Dagster layer maps each to an asset check.
"""

from ematix_engine.checks.declarations import (
    SEVERITIES,
    AcceptedValues,
    Check,
    KeysUnique,
    NotNull,
    RowCountBetween,
    Scd2NoOverlapOrGap,
    Scd2OneCurrentPerKey,
    SqlCheck,
    Unique,
    accepted_values,
    builtin_checks,
    checks_for_target,
    keys_unique,
    not_null,
    row_count_between,
    scd2_no_overlap_or_gap,
    scd2_one_current_per_key,
    sql_check,
    unique,
)
from ematix_engine.checks.evaluate import (
    CheckOutcome,
    check_session,
    evaluate_check,
    evaluate_checks,
)

__all__ = [
    "SEVERITIES",
    "AcceptedValues",
    "Check",
    "CheckOutcome",
    "KeysUnique",
    "NotNull",
    "RowCountBetween",
    "Scd2NoOverlapOrGap",
    "Scd2OneCurrentPerKey",
    "SqlCheck",
    "Unique",
    "accepted_values",
    "builtin_checks",
    "check_session",
    "checks_for_target",
    "evaluate_check",
    "evaluate_checks",
    "keys_unique",
    "not_null",
    "row_count_between",
    "scd2_no_overlap_or_gap",
    "scd2_one_current_per_key",
    "sql_check",
    "unique",
]
