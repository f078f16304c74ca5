"""``validity_columns=`` and ``current_valid_to=``: read and checked at declaration time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated

import pytest

from ematix_engine import ValidityColumns
from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import ConfigError
from ematix_engine.modes import mode_of
from ematix_engine.types import BigInt, Text, TimestampTZ


@ematix.table(schema="an")
class Dim:
    id: Annotated[BigInt, pk()]
    name: Text | None
    start_at: TimestampTZ | None


def declare(target=Dim, **options):
    return ematix.pipeline(target=target, name="dim", **options)(lambda conn: "SELECT 1")


def test_defaults_are_the_usual_names_and_null() -> None:
    target = declare(mode="scd2").spec.targets[0]
    assert target.validity_columns == ValidityColumns()
    assert target.current_valid_to is None
    assert mode_of(target).primary_key(target) == ("id", "valid_from")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (("from_ts", "to_ts"), ValidityColumns(valid_from="from_ts", valid_to="to_ts")),
        (
            ["f", "t", "cur", "del"],
            ValidityColumns(valid_from="f", valid_to="t", is_current="cur", is_deleted="del"),
        ),
        ({"is_current": "active"}, ValidityColumns(is_current="active")),
        (ValidityColumns(valid_to="until"), ValidityColumns(valid_to="until")),
    ],
    ids=["pair", "four", "mapping", "spec"],
)
def test_validity_columns_forms(given, expected) -> None:
    target = declare(mode="scd2", validity_columns=given).spec.targets[0]
    assert target.validity_columns == expected
    names = [c.name for c in mode_of(target).managed_columns_of(target)]
    assert names == [
        "row_hash",
        expected.valid_from,
        expected.valid_to,
        expected.is_current,
        expected.is_deleted,
        "_loaded_at",
        "_batch_id",
    ]
    assert mode_of(target).primary_key(target) == ("id", expected.valid_from)


def test_a_renamed_column_frees_its_default_name_for_data() -> None:
    @ematix.table(schema="an")
    class WithValidFrom:
        id: Annotated[BigInt, pk()]
        valid_from: Text | None

    target = declare(
        WithValidFrom, mode="scd2", validity_columns={"valid_from": "start"}
    ).spec.targets[0]
    assert target.column_name("valid_from") == "start"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"validity_columns": ("start_at", "end_at")}, r"\['start_at'\] are managed by scd2"),
        (
            {"validity_columns": {"valid_too": "x"}},
            "unknown column 'valid_too'; did you mean 'valid_to'",
        ),
        ({"validity_columns": ("a", "a")}, "names 'a' twice"),
        ({"validity_columns": ("a", "row_hash")}, "'row_hash' is the name of another column"),
        ({"validity_columns": ("a", "")}, "non-blank"),
        ({"validity_columns": "start"}, "must be \\(valid_from, valid_to\\)"),
        ({"validity_columns": ("a",)}, "must be \\(valid_from, valid_to\\)"),
        ({"current_valid_to": "someday"}, "ISO date or timestamp"),
        ({"current_valid_to": 99991231}, "got int"),
    ],
)
def test_bad_options_are_config_errors_naming_the_pipeline(options: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as raised:
        declare(mode="scd2", **options)
    assert "pipeline 'dim', target an.dim" in str(raised.value)


@pytest.mark.parametrize("option", ["validity_columns", "current_valid_to"])
def test_only_scd2_takes_them(option: str) -> None:
    value = ("f", "t") if option == "validity_columns" else "9999-12-31"
    with pytest.raises(ConfigError, match=f"{option} only applies to mode='scd2'"):
        declare(mode="merge", **{option: value})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("9999-12-31", datetime(9999, 12, 31, tzinfo=UTC)),
        ("9999-12-31T23:59:59", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2100-01-01T01:00:00+01:00", datetime(2100, 1, 1, tzinfo=UTC)),
        (date(9999, 12, 31), datetime(9999, 12, 31, tzinfo=UTC)),
        (
            datetime(2100, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
            datetime(2100, 1, 1, tzinfo=UTC),
        ),
    ],
)
def test_current_valid_to_is_a_utc_instant(given, expected) -> None:
    target = declare(mode="scd2", current_valid_to=given).spec.targets[0]
    assert target.current_valid_to == expected


def test_per_target_options_override_the_pipelines() -> None:
    @ematix.table(schema="an")
    class Other:
        id: Annotated[BigInt, pk()]
        name: Text | None

    built = ematix.pipeline(
        targets=[ematix.target(Dim), ematix.target(Other, validity_columns=("f", "t"))],
        name="two",
        mode="scd2",
        current_valid_to="9999-12-31",
    )(lambda conn: "SELECT 1")
    first, second = built.spec.targets
    assert first.validity_columns == ValidityColumns()
    assert second.column_name("valid_to") == "t"
    assert first.current_valid_to == second.current_valid_to == datetime(9999, 12, 31, tzinfo=UTC)
