"""The run loop end to end from a MemorySource into every table store."""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
import pytest

from ematix_engine import ConfigError, ematix, pk
from ematix_engine.streaming import (
    MemorySource,
    Source,
    StreamingPipelineSpec,
    Target,
    run_stream,
)
from ematix_engine.types import BigInt, Text
from tests.integration.streaming.conftest import Store


def _spec(name: str, source: MemorySource, *targets: Target, **options) -> StreamingPipelineSpec:
    return StreamingPipelineSpec(
        name=name, sources=(Source(connection=source),), targets=targets, **options
    )


def _rows(start: int, stop: int) -> list[dict]:
    return [{"id": i, "name": f"n{i}", "amount": i * 1.5} for i in range(start, stop)]


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_memory_into_every_store(store: Store, pipeline_name: str, delivery: str) -> None:
    source = MemorySource("orders", _rows(0, 25), batch_size=10)
    target = Target(connection=store.connection, table=store.table("orders"))
    result = run_stream(
        _spec(pipeline_name, source, target, delivery=delivery), exit_when_idle=True
    )

    assert (result.rows_in, result.rows_out, result.batches) == (25, 25, 3)
    assert result.offsets == {"orders": {"0": 25}}
    assert result.stopped == "idle"
    assert store.ids("orders") == list(range(25))
    assert "_event_ts" in store.read("orders").column_names


def test_merge_absorbs_redelivery(store: Store, pipeline_name: str) -> None:
    target = Target(
        connection=store.connection, table=store.table("orders"), mode="merge", primary_key="id"
    )
    run_stream(_spec(pipeline_name, MemorySource("a", _rows(0, 20)), target), exit_when_idle=True)
    # The same rows again (a redelivery after a crash), plus new ones and one changed row.
    again = [*_rows(10, 30), {"id": 3, "name": "changed", "amount": 0.0}]
    run_stream(_spec(pipeline_name, MemorySource("a", again), target), exit_when_idle=True)

    table = store.read("orders")
    assert sorted(table.column("id").to_pylist()) == list(range(30))
    names = dict(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))
    assert names[3] == "changed"


def test_exactly_once_append_skips_rows_a_target_already_holds(
    store: Store, pipeline_name: str, tmp_path
) -> None:
    """A crash between two targets' commits: the ahead target is not written twice."""
    from ematix_engine import DuckDBConnection

    ahead = Target(connection=store.connection, table=store.table("ahead"))
    behind = Target(
        connection=DuckDBConnection(name="other", path=str(tmp_path / "o.duckdb")),
        table=("main", "behind"),
    )
    rows = _rows(0, 30)
    # Only "ahead" saw the first 20 rows (the pipeline died before writing "behind").
    first = _spec(pipeline_name, MemorySource("src", rows[:20]), ahead, delivery="exactly_once")
    run_stream(first, exit_when_idle=True)
    # The restarted pipeline re-reads from the source's committed position (here: the start).
    both = _spec(
        pipeline_name, MemorySource("src", rows, batch_size=7), ahead, behind,
        delivery="exactly_once",
    )  # fmt: skip
    run_stream(both, exit_when_idle=True)

    assert store.ids("ahead") == list(range(30))
    import duckdb

    with duckdb.connect(str(tmp_path / "o.duckdb")) as con:
        got = sorted(r[0] for r in con.sql("SELECT id FROM main.behind").fetchall())
    assert got == list(range(30))


def test_exactly_once_seeks_to_the_stored_offsets(store: Store, pipeline_name: str) -> None:
    target = Target(connection=store.connection, table=store.table("orders"))
    rows = _rows(0, 40)
    run_stream(
        _spec(pipeline_name, MemorySource("src", rows[:25]), target, delivery="exactly_once"),
        exit_when_idle=True,
    )
    # A new source object knows nothing: the target's checkpoint says where to start.
    result = run_stream(
        _spec(pipeline_name, MemorySource("src", rows), target, delivery="exactly_once"),
        exit_when_idle=True,
    )
    assert result.rows_in == 15
    assert store.ids("orders") == list(range(40))


@ematix.table(schema="main", name="typed_orders")
class TypedOrders:
    id: Annotated[BigInt, pk()]
    name: Text | None


def test_declared_table_fixes_types_key_and_mode(tmp_path, pipeline_name: str) -> None:
    from ematix_engine import DuckDBConnection

    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    target = Target(connection=duck, table=TypedOrders)
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    run_stream(_spec(pipeline_name, MemorySource("s", rows), target), exit_when_idle=True)
    run_stream(_spec(pipeline_name, MemorySource("s", rows), target), exit_when_idle=True)
    import duckdb

    with duckdb.connect(str(tmp_path / "d.duckdb")) as con:
        assert con.sql("SELECT count(*) FROM main.typed_orders").fetchall() == [(2,)]


def test_new_field_becomes_a_column(store: Store, pipeline_name: str) -> None:
    target = Target(connection=store.connection, table=store.table("drift"))
    run_stream(_spec(pipeline_name, MemorySource("s", [{"id": 1}]), target), exit_when_idle=True)
    run_stream(
        _spec(pipeline_name, MemorySource("s", [{"id": 2, "colour": "red"}]), target),
        exit_when_idle=True,
    )
    table = store.read("drift").sort_by("id")
    assert table.column("colour").to_pylist() == [None, "red"]


def test_type_clash_fails_naming_the_field_and_commits_nothing(tmp_path, pipeline_name) -> None:
    from ematix_engine import DuckDBConnection, EmatixError

    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    target = Target(connection=duck, table=("main", "clash"))
    run_stream(
        _spec(pipeline_name, MemorySource("s", [{"id": 1, "amount": 5}]), target),
        exit_when_idle=True,
    )
    source = MemorySource("s", pa.table({"id": [2], "amount": [b"\x00binary"]}))
    with pytest.raises(EmatixError, match="amount"):
        run_stream(_spec(pipeline_name, source, target), exit_when_idle=True)
    assert source.committed == 0


def test_fan_in_unions_sources_and_commits_each(tmp_path, pipeline_name: str) -> None:
    from ematix_engine import DuckDBConnection

    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    orders = MemorySource("orders", [{"id": 1, "kind": "order"}])
    payments = MemorySource("payments", [{"id": 2, "kind": "payment", "paid": True}])
    spec = StreamingPipelineSpec(
        name=pipeline_name,
        sources=(Source(connection=orders), Source(connection=payments)),
        targets=(Target(connection=duck, table=("main", "events")),),
    )
    result = run_stream(spec, exit_when_idle=True)
    assert result.offsets == {"orders": {"0": 1}, "payments": {"0": 1}}
    assert (orders.committed, payments.committed) == (1, 1)
    import duckdb

    with duckdb.connect(str(tmp_path / "d.duckdb")) as con:
        assert con.sql("SELECT id, paid FROM main.events ORDER BY id").fetchall() == [
            (1, None),
            (2, True),
        ]


def test_a_failing_target_moves_no_offset(tmp_path, pipeline_name: str) -> None:
    from ematix_engine import DuckDBConnection, PostgresConnection

    good = Target(
        connection=DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb")),
        table=("main", "t"),
    )
    down = Target(
        connection=PostgresConnection(name="down", url="postgres://127.0.0.1:1/nothing"),
        table=("public", "t"),
    )
    source = MemorySource("s", _rows(0, 5))
    with pytest.raises(Exception):  # noqa: B017 - any connection error
        run_stream(_spec(pipeline_name, source, good, down), exit_when_idle=True)
    assert source.committed == 0


def test_config_errors_name_the_key() -> None:
    from ematix_engine import DuckDBConnection, ObjectStoreLocalConnection

    csv = ObjectStoreLocalConnection(name="lake", path="/tmp/lake", format="csv")
    with pytest.raises(ConfigError, match="parquet_compression"):
        Target(connection=csv, prefix="x", parquet_compression="zstd")
    with pytest.raises(ConfigError, match="csv_delimiter"):
        Target(connection=csv, prefix="x", csv_delimiter=";;")
    duck = DuckDBConnection(name="d", path=":memory:")
    with pytest.raises(ConfigError, match="mode 'upsert'"):
        Target(connection=duck, table=("a", "b"), mode="upsert")
    with pytest.raises(ConfigError, match="table"):
        Target(connection=duck)
    with pytest.raises(ConfigError, match=r"delivery 'exactly-once'.*exactly_once"):
        StreamingPipelineSpec(
            name="p",
            sources=(Source(connection=MemorySource("s", [{"a": 1}])),),
            targets=(Target(connection=duck, table=("a", "b")),),
            delivery="exactly-once",
        )
    with pytest.raises(ConfigError, match="batch_size"):
        StreamingPipelineSpec(
            name="p",
            sources=(Source(connection=MemorySource("s", [{"a": 1}])),),
            targets=(Target(connection=duck, table=("a", "b")),),
            batch_size=0,
        )


def test_merge_needs_a_key(tmp_path, pipeline_name: str) -> None:
    from ematix_engine import DuckDBConnection

    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    spec = _spec(
        pipeline_name, MemorySource("s", [{"a": 1}]), Target(connection=duck, table=("m", "t"),
        mode="merge"),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="primary_key"):
        run_stream(spec, exit_when_idle=True)


def test_target_errors_never_show_the_password(pipeline_name: str, caplog) -> None:
    from ematix_engine import EmatixError, PostgresConnection

    down = PostgresConnection(name="down", url="postgres://etl:s3cr3t-pw@127.0.0.1:1/db")
    spec = _spec(pipeline_name, MemorySource("s", [{"id": 1}]), Target(connection=down,
                 table=("public", "t")))  # fmt: skip
    with pytest.raises(EmatixError) as raised:
        run_stream(spec, exit_when_idle=True)
    assert "s3cr3t-pw" not in str(raised.value)
    assert "s3cr3t-pw" not in caplog.text
