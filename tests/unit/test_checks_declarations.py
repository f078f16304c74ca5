from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine import ematix, pk
from ematix_engine.checks import (
    accepted_values,
    builtin_checks,
    checks_for_target,
    not_null,
    row_count_between,
    sql_check,
    unique,
)
from ematix_engine.connections import DuckDBConnection
from ematix_engine.errors import ConfigError
from ematix_engine.types import BigInt, Text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: not_null("x", severity="fatal"), "severity must be 'error' or 'warn'"),
        (lambda: accepted_values("x", []), "at least one value"),
        (lambda: accepted_values("x", "abc"), "must be a list"),
        (lambda: row_count_between(), "needs min=, max= or both"),
        (lambda: row_count_between(min=5, max=1), "above max"),
        (lambda: sql_check("bad name", "SELECT 1"), "letters, digits and '_'"),
        (lambda: sql_check("x", "  "), "needs a SQL string"),
        (lambda: sql_check("x", "SELECT 1", returns="many"), "'rows' or 'count'"),
        (lambda: unique(), "at least one column"),
    ],
    ids=[
        "severity",
        "no-values",
        "string-values",
        "no-bounds",
        "min-above-max",
        "bad-name",
        "empty-sql",
        "returns",
        "no-columns",
    ],
)
def test_declarations_validate_at_construction(make, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_default_names_are_check_name_safe() -> None:
    assert not_null("e-mail address").name == "not_null_e_mail_address"
    assert unique("a", "b").name == "unique_a_b"
    assert accepted_values("tier", ["a"], name="tiers").name == "tiers"


def _pipeline(mode: str, checks, targets=None):
    conn = DuckDBConnection(name="decl", path=":memory:")

    @ematix.table(schema="s", connection=conn)
    class T:
        id: Annotated[BigInt, pk()]
        email: Text | None

    @ematix.table(schema="s", connection=conn)
    class U:
        id: BigInt
        email: Text | None

    kwargs = (
        {"targets": [ematix.target(T, mode=mode), ematix.target(U, mode="append")]}
        if targets
        else {"target": T, "mode": mode}
    )

    @ematix.pipeline(checks=checks, **kwargs)
    def p(conn):
        return "SELECT 1 AS id, 'a' AS email"

    return p


def test_builtin_checks_follow_the_mode() -> None:
    scd2 = _pipeline("scd2", []).spec.targets[0]
    assert [c.name for c in builtin_checks(scd2)] == [
        "scd2_one_current_per_key",
        "scd2_no_overlap_or_gap",
    ]
    assert all(c.blocking for c in builtin_checks(scd2))
    merge = _pipeline("merge", []).spec.targets[0]
    assert [c.name for c in builtin_checks(merge)] == ["keys_unique"]


def test_unknown_column_names_the_pipeline_and_suggests() -> None:
    p = _pipeline("merge", [not_null("emial")])
    with pytest.raises(
        ConfigError, match=r"pipeline 'p', check 'not_null_emial'.*did you mean 'email'"
    ):
        checks_for_target(p.spec, p.spec.targets[0])


def test_target_restricts_a_check_to_one_fan_out_target() -> None:
    p = _pipeline("merge", [not_null("email", target="s.u")], targets=True)
    t, u = p.spec.targets
    assert [c.name for c in checks_for_target(p.spec, t)] == ["keys_unique"]
    assert [c.name for c in checks_for_target(p.spec, u)] == ["not_null_email"]
    bad = _pipeline("merge", [not_null("email", target="s.v")], targets=True)
    with pytest.raises(ConfigError, match=r"did you mean 's\.u'"):
        checks_for_target(bad.spec, bad.spec.targets[0])


def test_duplicate_check_names_are_refused() -> None:
    p = _pipeline("merge", [not_null("email"), not_null("email")])
    with pytest.raises(ConfigError, match=r"two checks on s\.t are named 'not_null_email'"):
        checks_for_target(p.spec, p.spec.targets[0])
