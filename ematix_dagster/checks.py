"""Asset checks: every ematix check declaration of a target becomes an ``AssetCheckSpec``.

SCD2 targets always carry two blocking checks, ``scd2_one_current_per_key`` and
``scd2_no_overlap_or_gap``; other keyed targets carry a blocking ``keys_unique``; the
pipeline's ``checks=[...]`` follow with their severity. The resource evaluates the selected
checks right after it loads the target and yields one ``AssetCheckResult`` each.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from ematix_dagster.constants import (
    META_KEY_CHECK_BUILTIN,
    META_KEY_CHECK_DETAIL,
    META_KEY_CHECK_FAILING_COUNT,
    META_KEY_CHECK_KIND,
    META_KEY_CHECK_SAMPLE,
    META_KEY_CHECK_SEVERITY,
    META_KEY_CHECK_SQL,
)
from ematix_dagster.refs import EmatixAssetRef
from ematix_engine.checks import Check, CheckOutcome

__all__ = ["asset_check_result", "build_check_specs", "severity_of"]


def severity_of(check: Check) -> dg.AssetCheckSeverity:
    """Dagster severity of an ematix check (``warn`` → WARN, else ERROR)."""
    return dg.AssetCheckSeverity.WARN if check.severity == "warn" else dg.AssetCheckSeverity.ERROR


def build_check_specs(refs: Iterable[EmatixAssetRef]) -> list[dg.AssetCheckSpec]:
    """One ``AssetCheckSpec`` per check of each referenced asset.

    Args:
        refs: The assets (with their checks).

    Returns:
        The specs; built-in invariants are blocking.
    """
    return [
        dg.AssetCheckSpec(
            name=check.name,
            asset=ref.key,
            description=check.summary(),
            blocking=check.blocking,
            metadata={
                META_KEY_CHECK_KIND: check.kind,
                META_KEY_CHECK_SEVERITY: check.severity,
                META_KEY_CHECK_BUILTIN: check.builtin,
            },
        )
        for ref in refs
        for check in ref.checks
    ]


def asset_check_result(
    key: dg.AssetKey, check: Check, outcome: CheckOutcome
) -> dg.AssetCheckResult:
    """The ``AssetCheckResult`` reporting ``outcome``.

    Args:
        key: The checked asset.
        check: The declaration.
        outcome: What evaluating it found.

    Returns:
        A result with the failing count, the detail, a sample of failing rows and the query.
    """
    metadata: dict[str, object] = {
        META_KEY_CHECK_FAILING_COUNT: outcome.failing_count,
        META_KEY_CHECK_DETAIL: outcome.detail,
    }
    if outcome.sample:
        metadata[META_KEY_CHECK_SAMPLE] = dg.MetadataValue.json(list(outcome.sample))
    if outcome.sql:
        metadata[META_KEY_CHECK_SQL] = dg.MetadataValue.md(f"```sql\n{outcome.sql}\n```")
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check.name,
        passed=outcome.passed,
        severity=severity_of(check),
        description=outcome.detail,
        metadata=metadata,
    )
