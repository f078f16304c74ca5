"""Streaming benchmark: Kafka (Tansu) → PostgreSQL, ematix next to a hand-written loop.

Workload: N JSON messages of about 80 bytes (``id``, ``user``, ``amount``, ``kind``) in one
partition, drained into an empty PostgreSQL table. Three runs, each with its own consumer group
and table, in one process against one broker:

* ``hand-written``: ``consume`` + ``json.loads`` per message + ``COPY`` of a text buffer per
  batch + ``commit`` — the usual loop (and the field notes' peer baseline);
* ``ematix at_least_once`` and ``ematix exactly_once``: ``run_streaming_pipeline`` with
  ``exit_when_idle=True`` (bulk Arrow JSON decode, the write core, offsets committed after the
  write or stored inside it).

Each figure includes the consumer-group join. Run: ``python -m benchmarks.streaming_kafka_pg
[--messages 200000] [--batch-size 20000] [--dsn postgres://…]``; prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ematix_engine import KafkaConnection, PostgresConnection, run_streaming_pipeline
from tests.fixtures.kafka import TANSU_CONSUMER_SETTINGS, TansuBroker, find_tansu_binary


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(count):
        value = json.dumps({"id": i, "user": f"u{i % 1000}", "amount": i * 0.5, "kind": "click"})
        while True:
            try:
                producer.produce(topic, value.encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()


def _hand_written(bootstrap: str, topic: str, dsn: str, table: str, total: int, batch: int) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"hand-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **TANSU_CONSUMER_SETTINGS,
        }
    )
    consumer.subscribe([topic])
    done = 0
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE TABLE {table} (id bigint, "user" text, amount float8, kind text)')
        while done < total:
            messages = consumer.consume(batch, timeout=1.0)
            rows = io.StringIO()
            for message in messages:
                if message.error() is not None:
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(message.error())
                r = json.loads(message.value())
                rows.write(f"{r['id']}\t{r['user']}\t{r['amount']}\t{r['kind']}\n")
                done += 1
            with con.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                copy.write(rows.getvalue())
            if messages:
                consumer.commit(asynchronous=False)
    consumer.close()
    return done


def main(argv: list[str] | None = None) -> int:
    """Run the three variants and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--dsn", default="postgres://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    broker = TansuBroker(find_tansu_binary(), log_path=Path(tempfile.mkdtemp()) / "tansu.log")
    bootstrap = broker.start()
    schema = f"bench_stream_{uuid.uuid4().hex[:8]}"
    figures: dict[str, float] = {}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("bench", num_partitions=1)])["bench"].result()
        _produce(bootstrap, "bench", args.messages)
        with psycopg.connect(args.dsn, autocommit=True) as con:
            con.execute(f'CREATE SCHEMA "{schema}"')
        started = time.perf_counter()
        _hand_written(
            bootstrap, "bench", args.dsn, f'"{schema}".hand', args.messages, args.batch_size
        )
        figures["hand-written"] = time.perf_counter() - started
        for delivery in ("at_least_once", "exactly_once"):
            started = time.perf_counter()
            result = run_streaming_pipeline(
                name=f"bench-{delivery}-{uuid.uuid4().hex[:6]}",
                source=KafkaConnection(
                    name="k",
                    bootstrap_servers=bootstrap,
                    group_id=f"bench-{uuid.uuid4().hex}",
                    extra=TANSU_CONSUMER_SETTINGS,
                ),
                source_query="bench",
                target=PostgresConnection(name="pg", url=args.dsn),
                target_table=(schema, delivery),
                batch_size=args.batch_size,
                delivery=delivery,
                exit_when_idle=True,
            )
            assert result.rows_out == args.messages, result
            figures[f"ematix {delivery}"] = time.perf_counter() - started
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        broker.stop()
    print(f"{'variant':<24} {'seconds':>8} {'rows/s':>10}")
    for name, seconds in figures.items():
        print(f"{name:<24} {seconds:>8.2f} {args.messages / seconds:>10,.0f}")
    print(json.dumps({"messages": args.messages, "seconds": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
