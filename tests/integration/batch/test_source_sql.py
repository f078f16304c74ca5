"""Source SQL is parsed, not pasted (issue 12, item 5), on every source/target backend pair.

``$watermark`` inside a string literal or a comment is text, not the watermark; SQL that ends
in a ``--`` comment still loads (the wrapper around it is a parsed subquery, not text after it).
"""

from __future__ import annotations

from typing import Annotated

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.batch.source import substitute_watermark, watermark_count
from ematix_engine.batch.validate import validate_pipeline
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}


def declare(h: Harness, sql: str, name: str, incremental_column: str | None = "id"):
    @ematix.table(schema=h.schema, name=name)
    class Out:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ

    options = {"incremental_column": incremental_column} if incremental_column else {}

    @ematix.pipeline(target=Out, mode="append", name=name, **options, **h.pipeline_options)
    def load(conn):
        return sql

    return load


def test_watermark_in_a_literal_or_a_comment_is_left_alone(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(2))])
    sql = (
        f"SELECT id, '$watermark' AS name, ts /* not $watermark */ FROM {src}\n"
        "WHERE id > $watermark -- $watermark in a trailing comment"
    )
    load = declare(h, sql, "lit")
    assert validate_pipeline(load)
    first = load.run()
    assert first.rows_inserted == 2
    assert h.rows("lit", ["id", "name"]) == [(1, "$watermark"), (2, "$watermark")]
    h.insert("src", [(3, "c", at(3))])
    assert load.run().rows_inserted == 1
    assert h.watermark("lit") == "3"


def test_sql_ending_in_a_line_comment_loads(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(2))])
    load = declare(h, f"SELECT id, name, ts FROM {src} -- the whole table", "trail")
    assert validate_pipeline(load)
    assert load.run().rows_inserted == 2
    h.insert("src", [(3, "c", at(3))])
    assert load.run().rows_inserted == 1  # the implicit filter still applies
    assert h.rows("trail", ["id"]) == [(1,), (2,), (3,)]


def test_substitute_watermark_keeps_literals_and_comments() -> None:
    sql = "SELECT '$watermark' AS a FROM t WHERE ts > $watermark -- $watermark"
    assert watermark_count(sql) == 1
    rendered = substitute_watermark(sql, "NULL")
    assert "ts > NULL" in rendered and "'$watermark'" in rendered
    assert watermark_count("SELECT 1 -- $watermark") == 0
