"""DDL: tables are created, new source columns are added, incompatible types are refused."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import SchemaDriftError
from ematix_engine.types import BigInt, String, Text
from tests.integration.batch.harness import Harness


def declare(h: Harness, sql: str, mode: str = "merge"):
    @ematix.table(schema=h.schema, name="tgt")
    class Tgt:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Tgt, mode=mode, name="ddl_load", **h.pipeline_options)
    def load(conn):
        return sql

    return load


@pytest.mark.parametrize("mode", ["merge", "scd2", "append"])
def test_new_source_column_is_added(h: Harness, mode: str) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a")])
    declare(h, f"SELECT id, name FROM {src}", mode).run()
    assert "extra" not in (h.columns("tgt") or {})
    h.create_source(
        "src", {"id": "bigint", "name": "text", "extra": "bigint"}, [(1, "a", 7), (2, "b", 8)]
    )

    declare(h, f"SELECT id, name, extra FROM {src}", mode).run()

    assert "extra" in (h.columns("tgt") or {})
    rows = h.rows("tgt", ["id", "name", "extra"], order_by=["id", "_loaded_at"])
    expected = {
        "append": [(1, "a", None), (1, "a", 7), (2, "b", 8)],
        "merge": [(1, "a", 7), (2, "b", 8)],  # extra is compared too: row 1 changed
        # An undeclared column is carried but not compared: no new version for key 1.
        "scd2": [(1, "a", None), (2, "b", 8)],
    }
    assert rows == expected[mode]
    assert "int" in (h.columns("tgt") or {})["extra"]  # the source type, not text


def test_missing_nullable_column_loads_null_and_new_table_has_declared_types(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint"}, [(1,)])
    declare(h, f"SELECT id FROM {src}").run()
    assert h.rows("tgt", ["id", "name"]) == [(1, None)]
    columns = h.columns("tgt") or {}
    assert "int" in columns["id"] and ("text" in columns["name"] or "char" in columns["name"])


@pytest.mark.parametrize(
    ("column", "existing", "declared"),
    [("name", "bigint", "text"), ("id", "text", "bigint"), ("id", "interval", "bigint")],
    ids=["text-over-bigint", "bigint-over-text", "bigint-over-interval"],
)
def test_incompatible_existing_type_is_schema_drift(
    h: Harness, column: str, existing: str, declared: str
) -> None:
    types = {"id": "bigint", "name": "text"}
    types[column] = existing
    h.create_target("tgt", types)
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a")])

    with pytest.raises(SchemaDriftError) as caught:
        declare(h, f"SELECT id, name FROM {src}").run()

    assert caught.value.column == column
    assert repr(column) in str(caught.value) or f".{column}" in str(caught.value)
    assert h.count("tgt") == 0
    assert "_loaded_at" not in (h.columns("tgt") or {})  # nothing was added either


def test_adding_an_all_null_column_does_not_reversion_scd2(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a"), (2, "b")])
    declare(h, f"SELECT id, name FROM {src}", "scd2").run()
    h.create_source(
        "src", {"id": "bigint", "name": "text", "extra": "bigint"}, [(1, "a", None), (2, "b", None)]
    )

    result = declare(h, f"SELECT id, name, extra FROM {src}", "scd2").run()

    assert (result.rows_inserted, result.rows_closed, result.rows_unchanged) == (0, 0, 2)


@pytest.mark.parametrize(
    ("existing", "declared", "source_type", "value", "drifts_on"),
    [
        ("integer", BigInt, "bigint", 2**40, {"postgres", "duckdb", "delta"}),
        ("varchar(8)", String[16], "text", "sixteen chars!!!", {"postgres"}),
    ],
    ids=["integer-under-bigint", "varchar8-under-string16"],
)
def test_narrower_existing_column_is_schema_drift(
    h: Harness,
    existing: str,
    declared: type,
    source_type: str,
    value: object,
    drifts_on: set[str],
) -> None:
    """A column that cannot hold every declared value is drift; SQLite enforces neither."""
    h.create_target("wide", {"id": "bigint", "v": existing})
    src = h.create_source("src", {"id": "bigint", "v": source_type}, [(1, value)])

    # Built with type(): the declared type is a parameter, which string annotations can't see.
    columns = {"id": Annotated[BigInt, pk()], "v": declared | None}
    Wide = ematix.table(schema=h.schema, name="wide")(
        type("Wide", (), {"__annotations__": columns})
    )

    @ematix.pipeline(target=Wide, mode="merge", name="widen", **h.pipeline_options)
    def widen(conn):
        return f"SELECT id, v FROM {src}"

    if h.target_kind in drifts_on:
        with pytest.raises(SchemaDriftError) as caught:
            widen.run()
        assert caught.value.column == "v"
    else:
        assert widen.run().rows_inserted == 1
