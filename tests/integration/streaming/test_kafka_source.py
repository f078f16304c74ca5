"""Kafka (the Tansu broker) into the table stores: decode, metadata, DLQ, groups, exactly-once."""

from __future__ import annotations

import threading
import uuid
from typing import Annotated, Any

import duckdb
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ematix_engine import DuckDBConnection, EmatixError, SourceError, ematix, pk
from ematix_engine.streaming import Source, StreamingPipelineSpec, Target, run_stream
from ematix_engine.streaming.runner import StreamRunner
from ematix_engine.types import BigInt, Text
from tests.integration.streaming.conftest import Store
from tests.integration.streaming.kafka_helpers import kafka, produce, read_topic


def _spec(name: str, connection, topic: str, *targets: Target, **options) -> StreamingPipelineSpec:
    metadata = options.pop("metadata_columns", ())
    return StreamingPipelineSpec(
        name=name,
        sources=(Source(connection=connection, query=topic, metadata_columns=metadata),),
        targets=targets,
        max_batch_ms=300,
        idle_pause_ms=10,
        **options,
    )


def _new_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"ematix-test-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(timeout=15)
    return name


def test_kafka_into_every_store(
    kafka_bootstrap: str, kafka_topic: str, store: Store, pipeline_name: str
) -> None:
    produce(kafka_bootstrap, kafka_topic, ({"id": i, "name": f"n{i}"} for i in range(500)))
    target = Target(connection=store.connection, table=store.table("events"))
    source = kafka(kafka_bootstrap, pipeline_name)
    spec = _spec(
        pipeline_name,
        source,
        kafka_topic,
        target,
        metadata_columns=("_topic", "_partition", "_offset", "_key"),
    )
    result = run_stream(spec, exit_when_idle=True)

    assert result.rows_in == 500
    assert result.offsets == {f"src/{kafka_topic}": {f"{kafka_topic}:0": 500}}
    table = store.read("events")
    assert sorted(table.column("id").to_pylist()) == list(range(500))
    assert sorted(table.column("_offset").to_pylist()) == list(range(500))
    assert set(table.column("_topic").to_pylist()) == {kafka_topic}
    assert {"_event_ts", "_partition", "_key"} <= set(table.column_names)
    # The group's offsets were committed: a second run reads nothing.
    again = run_stream(spec, exit_when_idle=True)
    assert again.rows_in == 0


def test_one_source_reads_two_topics_and_commits_each_partition(
    kafka_bootstrap: str, tmp_path, pipeline_name: str
) -> None:
    first, second = _new_topic(kafka_bootstrap, partitions=2), _new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, first, ({"id": i} for i in range(300)))
    produce(kafka_bootstrap, second, ({"id": 1000 + i} for i in range(200)))
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    target = Target(connection=duck, table=("main", "events"))
    source = kafka(kafka_bootstrap, pipeline_name)
    spec = _spec(
        pipeline_name, source, f"{first},{second}", target, metadata_columns=("_topic", "_offset")
    )
    result = run_stream(spec, exit_when_idle=True)

    offsets = result.offsets[f"src/{first},{second}"]
    assert offsets[f"{second}:0"] == 200
    assert offsets[f"{first}:0"] + offsets[f"{first}:1"] == 300
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as con:
        counts = dict(con.execute("SELECT _topic, count(*) FROM events GROUP BY 1").fetchall())
        last = con.execute("SELECT max(_offset) FROM events WHERE _topic = ?", [second]).fetchone()
    assert counts == {first: 300, second: 200}
    assert last == (199,)
    # Every partition of both topics was committed: a second run reads nothing.
    assert run_stream(spec, exit_when_idle=True).rows_in == 0


def test_poison_messages_go_to_the_dlq_one_by_one(
    kafka_bootstrap: str, kafka_topic: str, tmp_path, pipeline_name: str
) -> None:
    dlq = _new_topic(kafka_bootstrap)
    values = [{"id": i, "name": f"n{i}"} for i in range(100)]
    values[10] = b"not json {"
    values[20] = {"id": "twenty", "name": "bad type"}  # id must be a BIGINT
    values[30] = {"name": "no id"}  # the key is required
    values[40] = b""
    produce(kafka_bootstrap, kafka_topic, values[:5])  # first batch: fixes the table's types
    produce(kafka_bootstrap, kafka_topic, values[5:])

    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    target = Target(connection=duck, table=TypedEvents)
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), kafka_topic, target,
        dead_letter_topic=dlq, batch_size=50,
    )  # fmt: skip
    result = run_stream(spec, exit_when_idle=True)

    assert result.dlq_rows == 4
    import duckdb

    with duckdb.connect(str(tmp_path / "d.duckdb")) as con:
        ids = sorted(r[0] for r in con.sql("SELECT id FROM public.typed_events").fetchall())
    assert ids == [i for i in range(100) if i not in (10, 20, 30, 40)]
    letters = read_topic(kafka_bootstrap, dlq, 4)
    by_offset = {int(dict(m.headers())["ematix.offset"]): m for m in letters}
    assert sorted(by_offset) == [10, 20, 30, 40]
    assert by_offset[10].value() == b"not json {"
    headers = dict(by_offset[30].headers())
    assert b"missing required field 'id'" in headers["ematix.error"]
    assert headers["ematix.topic"] == kafka_topic.encode()
    assert headers["ematix.partition"] == b"0"
    assert b"id" in dict(by_offset[20].headers())["ematix.error"]


def test_a_created_tables_types_catch_bad_values_of_the_next_batch(
    kafka_bootstrap: str, kafka_topic: str, store: Store, pipeline_name: str
) -> None:
    """The second batch is decoded into the types the first one fixed, while it is written."""
    dlq = _new_topic(kafka_bootstrap)
    values: list[Any] = [{"id": i, "name": f"n{i}"} for i in range(60)]
    values[7] = {"id": "seven", "name": "bad type"}  # the created table's id is a BIGINT
    values[33] = {"id": 33.5, "name": "not an integer"}
    produce(kafka_bootstrap, kafka_topic, values)
    target = Target(connection=store.connection, table=store.table("created"))
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), kafka_topic, target,
        dead_letter_topic=dlq, batch_size=5,
    )  # fmt: skip
    result = run_stream(spec, exit_when_idle=True)

    assert result.dlq_rows == 2
    assert store.ids("created") == [i for i in range(60) if i not in (7, 33)]
    letters = read_topic(kafka_bootstrap, dlq, 2)
    assert sorted(int(dict(m.headers())["ematix.offset"]) for m in letters) == [7, 33]


@ematix.table(schema="public", name="typed_events")
class TypedEvents:
    id: Annotated[BigInt, pk()]
    name: Text | None


def test_without_a_dlq_a_bad_message_fails_the_batch_and_no_offset_moves(
    kafka_bootstrap: str, kafka_topic: str, tmp_path, pipeline_name: str
) -> None:
    produce(kafka_bootstrap, kafka_topic, [{"id": 1}, b"garbage", {"id": 3}])
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    target = Target(connection=duck, table=("main", "t"))
    spec = _spec(pipeline_name, kafka(kafka_bootstrap, pipeline_name), kafka_topic, target)
    with pytest.raises(SourceError, match=r"partition 0 offset 1"):
        run_stream(spec, exit_when_idle=True)
    # Nothing was committed: the next run sees the same three messages again.
    with pytest.raises(SourceError, match="offset 1"):
        run_stream(spec, exit_when_idle=True)


def test_a_failed_first_write_is_reported_not_the_next_batchs_bad_messages(
    kafka_bootstrap: str, kafka_topic: str, tmp_path, pipeline_name: str
) -> None:
    """The second batch is decoded while the first is written: its errors come second."""
    produce(kafka_bootstrap, kafka_topic, [*({"id": i} for i in range(5)), {"id": "x"}])
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the database's folder should be")
    duck = DuckDBConnection(name="d", path=str(blocker / "d.duckdb"))
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), kafka_topic,
        Target(connection=duck, table=("main", "t")), batch_size=5,
    )  # fmt: skip
    with pytest.raises(EmatixError) as caught:
        run_stream(spec, exit_when_idle=True)
    assert not isinstance(caught.value, SourceError), caught.value
    assert "not_a_folder" in str(caught.value)


def test_two_consumers_in_one_group_split_the_partitions(
    kafka_bootstrap: str, store: Store, pipeline_name: str
) -> None:
    topic = _new_topic(kafka_bootstrap, partitions=4)
    produce(kafka_bootstrap, topic, ({"id": i} for i in range(2000)))
    target = Target(
        connection=store.connection, table=store.table("split"), mode="merge", primary_key="id"
    )
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), topic, target, batch_size=200,
        delivery="exactly_once",
    )  # fmt: skip
    results = []
    errors = []

    def consume() -> None:
        try:
            results.append(run_stream(spec, exit_when_idle=True))
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sum(r.rows_in for r in results) >= 2000
    assert store.ids("split") == list(range(2000))


def test_exactly_once_append_survives_lost_kafka_commits(
    kafka_bootstrap: str, kafka_topic: str, store: Store, pipeline_name: str
) -> None:
    """Offsets live in the target: a new group (no committed offsets) resumes from them."""
    produce(kafka_bootstrap, kafka_topic, ({"id": i} for i in range(300)))
    target = Target(connection=store.connection, table=store.table("eo"))
    first = _spec(
        pipeline_name, kafka(kafka_bootstrap, "group-a"), kafka_topic, target,
        delivery="exactly_once",
    )  # fmt: skip
    run_stream(first, exit_when_idle=True)
    produce(kafka_bootstrap, kafka_topic, ({"id": i} for i in range(300, 400)))
    second = _spec(
        pipeline_name, kafka(kafka_bootstrap, f"group-b-{uuid.uuid4().hex}"), kafka_topic, target,
        delivery="exactly_once",
    )  # fmt: skip
    result = run_stream(second, exit_when_idle=True)
    assert result.rows_in == 100
    assert store.ids("eo") == list(range(400))


def test_stop_finishes_the_batch_and_commits(
    kafka_bootstrap: str, kafka_topic: str, tmp_path, pipeline_name: str
) -> None:
    produce(kafka_bootstrap, kafka_topic, ({"id": i} for i in range(50)))
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), kafka_topic,
        Target(connection=duck, table=("main", "t")),
    )  # fmt: skip
    runner = StreamRunner(spec, on_progress=lambda p: runner.stop("signal"))
    result = runner.run()
    assert result.stopped == "signal"
    assert result.offsets[f"src/{kafka_topic}"][f"{kafka_topic}:0"] == result.rows_in
    assert not runner._sources[0].bounded  # a run without an end keeps the broker's fetch wait
    bounded = StreamRunner(spec)
    assert bounded.run(exit_when_idle=True).rows_in == 50 - result.rows_in
    assert bounded._sources[0].bounded


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_rebalance_mid_stream_loses_nothing(
    kafka_bootstrap: str, pg_schema, pipeline_name: str, delivery: str
) -> None:
    """A second consumer joins while the first is busy: partitions move, no row is lost."""
    import time

    import psycopg

    from ematix_engine import PostgresConnection

    topic = _new_topic(kafka_bootstrap, partitions=4)
    produce(kafka_bootstrap, topic, ({"id": i} for i in range(3000)))
    pg = PostgresConnection(name="pg", url=pg_schema.dsn)
    targets = (
        Target(connection=pg, table=(pg_schema.name, "appended")),
        Target(connection=pg, table=(pg_schema.name, "merged"), mode="merge", primary_key="id"),
    )
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), topic, *targets, batch_size=300,
        delivery=delivery,
    )  # fmt: skip

    def ids(table: str) -> list[int]:
        with psycopg.connect(pg_schema.dsn) as con:
            try:
                return [r[0] for r in con.execute(f'SELECT id FROM "{pg_schema.name}".{table}')]
            except psycopg.errors.UndefinedTable:
                return []

    runners = [StreamRunner(spec), StreamRunner(spec)]
    errors: list[BaseException] = []

    def run(runner: StreamRunner) -> None:
        try:
            runner.run()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    threads[0].start()
    deadline = time.monotonic() + 60
    while len(ids("merged")) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    threads[1].start()  # joins the group: the partitions are split mid-stream
    produce(kafka_bootstrap, topic, ({"id": i} for i in range(3000, 4500)))

    def owns_partitions(runner: StreamRunner) -> bool:
        return bool(runner._sources and runner._sources[0]._assigned)

    while not owns_partitions(runners[1]) and time.monotonic() < deadline + 60 and not errors:
        time.sleep(0.05)
    produce(kafka_bootstrap, topic, ({"id": i} for i in range(4500, 6000)))  # for both
    while len(ids("merged")) < 6000 and time.monotonic() < deadline + 60 and not errors:
        time.sleep(0.1)
    for runner in runners:
        runner.stop()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(ids("merged")) == list(range(6000))
    appended = sorted(ids("appended"))
    assert sorted(set(appended)) == list(range(6000))
    if delivery == "exactly_once":
        assert appended == list(range(6000))
    assert sum(r.result.rows_in for r in runners) >= 6000
    assert all(r.result.rows_in > 0 for r in runners)


def test_after_a_restart_the_existing_table_types_catch_bad_values(
    kafka_bootstrap: str, kafka_topic: str, store: Store, pipeline_name: str
) -> None:
    """A new process knows the table's column types before its first batch."""
    dlq = _new_topic(kafka_bootstrap)
    target = Target(connection=store.connection, table=store.table("typed"))
    produce(kafka_bootstrap, kafka_topic, [{"id": 1, "amount": 2.5}])
    spec = _spec(
        pipeline_name, kafka(kafka_bootstrap, pipeline_name), kafka_topic, target,
        dead_letter_topic=dlq,
    )  # fmt: skip
    run_stream(spec, exit_when_idle=True)  # creates the table: id BIGINT, amount DOUBLE
    produce(kafka_bootstrap, kafka_topic, [{"id": "two", "amount": 1.0}, {"id": 3, "amount": 4.0}])
    result = run_stream(spec, exit_when_idle=True)  # a new run: no batch seen yet
    assert (result.rows_out, result.dlq_rows) == (1, 1)
    assert store.ids("typed") == [1, 3]
    (letter,) = read_topic(kafka_bootstrap, dlq, 1)
    assert letter.value() == b'{"id": "two", "amount": 1.0}'
