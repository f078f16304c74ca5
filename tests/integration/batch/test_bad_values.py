"""Values a load would change are refused, identically on every backend (issue 12, item 6).

Too long for ``String[n]``, fractional for an integer column, out of an ``Integer``'s range,
text that is no value of the column's type, NULL in a NOT NULL column: the load fails naming
the column and the row's key, and nothing is written.
"""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import BadValueError
from ematix_engine.types import BigInt, Date, Double, Integer, String, Text, Timestamp, TimestampTZ
from tests.integration.batch.harness import Harness


def _load(h: Harness, sql: str, table: type, mode: str = "merge"):
    @ematix.pipeline(target=table, mode=mode, name="values_load", **h.pipeline_options)
    def values_load(conn):
        return sql

    return values_load


def _refused(h: Harness, load, column: str, key: str, reason: str) -> None:
    with pytest.raises(BadValueError) as caught:
        load.run()
    error = caught.value
    assert (error.column, error.pipeline) == (column, "values_load")
    assert error.key == {"id": key}
    assert reason in str(error) and column in str(error) and f"id='{key}'" in str(error)
    assert not h.exists("vals") or h.count("vals") == 0


def test_text_longer_than_string_n_is_refused(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "code": "text"}, [(1, "short"), (2, "x" * 21)])

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        code: String[8] | None

    _refused(h, _load(h, f"SELECT id, code FROM {src}", Vals), "code", "2", "longer than the 8")


def test_a_fractional_number_for_an_integer_column_is_refused(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "n": "double"}, [(1, 2.0), (2, 2.5)])

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        n: BigInt | None

    _refused(h, _load(h, f"SELECT id, n FROM {src}", Vals), "n", "2", "fractional")


def test_an_integer_out_of_range_is_refused(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "n": "bigint"}, [(1, 7), (3, 2**40)])

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        n: Integer | None

    _refused(h, _load(h, f"SELECT id, n FROM {src}", Vals), "n", "3", "out of the range")


@pytest.mark.parametrize(
    ("declared", "bad"),
    [
        (BigInt, "abc"),
        (Double, "1.5x"),
        (Timestamp, "not a time"),
        (Timestamp, "2024-13-45"),
        (TimestampTZ, "2024-13-45 10:00:00+00"),
        (Date, "2024-02-30"),
    ],
    ids=["bigint", "double", "timestamp", "timestamp_month_13", "timestamptz", "date"],
)
def test_text_that_is_no_value_of_the_type_is_refused(h: Harness, declared: type, bad: str) -> None:
    """PostgreSQL's date and time casts fail without the key: a probe finds the row first."""
    good = {Date: "2024-02-29", Timestamp: "2024-02-29 10:00:00"}.get(declared)
    good = "2024-02-29 10:00:00+00" if declared is TimestampTZ else good
    src = h.create_source(
        "src", {"id": "bigint", "v": "text"}, [(1, None), (2, good), (4, bad), (5, good)]
    )

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        v: declared | None  # type: ignore[valid-type]

    _refused(h, _load(h, f"SELECT id, v FROM {src}", Vals), "v", "4", "not a valid")


@pytest.mark.parametrize("mode", ["merge", "scd2", "append"])
def test_good_time_text_loads_and_a_later_bad_one_is_refused(h: Harness, mode: str) -> None:
    """Time text that casts loads; the same pipeline then refuses a bad row into the table."""
    rows = [(1, "2024-01-31 23:59:59.5"), (2, None)]
    src = h.create_source("src", {"id": "bigint", "v": "text"}, rows)

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        v: Timestamp | None

    load = _load(h, f"SELECT id, v FROM {src}", Vals, mode=mode)
    assert load.run().rows_inserted == 2
    h.set_rows("src", [(1, "2024-01-31 23:59:59.5"), (3, "2024-13-45")])
    with pytest.raises(BadValueError) as caught:
        load.run()
    assert (caught.value.column, caught.value.key) == ("v", {"id": "3"})
    assert h.count("vals") == 2


def test_good_values_still_load(h: Harness) -> None:
    src = h.create_source(
        "src", {"id": "bigint", "code": "text", "n": "double"}, [(1, "12345678", 3.0)]
    )

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        code: String[8] | None
        n: BigInt | None

    result = _load(h, f"SELECT id, code, n FROM {src}", Vals).run()
    assert result.rows_inserted == 1
    assert h.rows("vals", ["id", "code", "n"]) == [(1, "12345678", 3)]


def test_text_column_is_never_checked(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "t": "text"}, [(1, "y" * 500)])

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        t: Text | None

    assert _load(h, f"SELECT id, t FROM {src}", Vals, mode="append").run().rows_inserted == 1


@pytest.mark.parametrize("mode", ["merge", "scd2", "append"])
def test_null_in_a_not_null_column_is_refused_naming_column_and_key(h: Harness, mode: str) -> None:
    """Each database refuses it in its own words, none naming the row: ematix does, alike."""
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a"), (6, None)])

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        name: Text

    load = _load(h, f"SELECT id, name FROM {src}", Vals, mode=mode)
    _refused(h, load, "name", "6", "NULL, but the column is declared NOT NULL")
    with pytest.raises(BadValueError) as caught:
        load.run()
    assert "declare the column nullable" in str(caught.value)


def test_a_null_in_a_row_that_de_duplication_drops_is_not_refused(h: Harness) -> None:
    """Merge with an event time keeps the newest row per key; the older one is not loaded."""
    src = h.create_source(
        "src",
        {"id": "bigint", "name": "text", "ts": "bigint"},
        [(1, None, 1), (1, "newest", 2), (2, "b", 1)],
    )

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        name: Text
        ts: BigInt

    @ematix.pipeline(
        target=Vals, mode="merge", event_timestamp_column="ts", name="values_load",
        **h.pipeline_options,
    )  # fmt: skip
    def values_load(conn):
        return f"SELECT id, name, ts FROM {src}"

    assert values_load.run().rows_inserted == 2
    assert h.rows("vals", ["id", "name"]) == [(1, "newest"), (2, "b")]


def test_a_null_key_in_an_append_is_refused_naming_the_column(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a"), (None, "b")])

    @ematix.table(schema=h.schema, name="vals")
    class Vals:
        id: Annotated[BigInt, pk()]
        name: Text | None

    with pytest.raises(BadValueError) as caught:
        _load(h, f"SELECT id, name FROM {src}", Vals, mode="append").run()
    assert (caught.value.column, caught.value.key) == ("id", {"id": None})
    assert not h.exists("vals") or h.count("vals") == 0
