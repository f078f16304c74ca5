"""Crash test: a pipeline process SIGKILLed at random points, then restarted, loses nothing.

Exactly-once (offsets stored in each target's own transaction): ``KILLS`` kills over
``MESSAGES`` messages (20 over 100,000 in the soak benchmark), and every id is in each target exactly once — append mode included. Each restart
joins with a fresh consumer group, so nothing but the targets' stored offsets says where to
resume. At-least-once: kills over a smaller topic; every id arrives at least once and the merge
target holds each exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.fixtures.kafka import TANSU_CONSUMER_SETTINGS
from tests.integration.streaming.kafka_helpers import produce

WORKTREE = Path(__file__).resolve().parents[3]
#: ``make test`` runs 8 kills over 40,000 messages (about 40 s here);
#: ``python -m benchmarks.streaming_crash_soak`` runs the full 20 kills over 100,000.
KILLS = int(os.environ.get("EMATIX_CRASH_KILLS", "8"))
MESSAGES = int(os.environ.get("EMATIX_CRASH_MESSAGES", "40000"))

SCRIPT = """
import sys
from ematix_engine import KafkaConnection, PostgresConnection, SQLiteConnection, Target
from ematix_engine import run_streaming_pipeline

bootstrap, topic, group, url, schema, sqlite, delivery = sys.argv[1:8]
run_streaming_pipeline(
    name="crash",
    source=KafkaConnection(name="k", bootstrap_servers=bootstrap, group_id=group,
                           extra={extra!r}),
    source_query=topic,
    targets=[
        Target(connection=PostgresConnection(name="pg", url=url), table=(schema, "appended")),
        Target(connection=PostgresConnection(name="pg", url=url), table=(schema, "merged"),
               mode="merge", primary_key=["id"]),
        Target(connection=SQLiteConnection(name="lite", path=sqlite), table=("main", "appended")),
    ],
    batch_size=500,
    max_batch_ms=200,
    idle_pause_ms=20,
    delivery=delivery,
    exit_when_idle=True,
)
"""


def _topic(bootstrap: str, partitions: int) -> str:
    name = f"ematix-crash-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(timeout=15)
    return name


def _count(url: str, schema: str) -> int:
    with psycopg.connect(url) as con:
        try:
            return con.execute(f'SELECT count(*) FROM "{schema}".appended').fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def _run_with_kills(
    tmp_path: Path, args: list[str], kills: int, fresh_group: bool, url: str, schema: str
) -> int:
    """Start the pipeline; SIGKILL it at a random moment after it wrote something; repeat."""
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(SCRIPT.format(extra=dict(TANSU_CONSUMER_SETTINGS))))
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    rng = random.Random(20261130)
    killed = 0
    attempt = 0
    while True:
        group = f"{args[2]}-{attempt}" if fresh_group else args[2]
        run = [sys.executable, str(script), args[0], args[1], group, *args[3:]]
        log = tmp_path / f"run-{attempt}.log"
        with open(log, "wb") as stderr:
            process = subprocess.Popen(run, env=env, stderr=stderr)
        attempt += 1
        if killed >= kills:
            process.wait(120)
            assert process.returncode == 0, log.read_text()[-3000:]
            return killed
        before = _count(url, schema)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if _count(url, schema) > before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(30)
        if process.returncode == 0:  # it drained the topic before the kill landed
            return killed
        if process.returncode != -signal.SIGKILL:
            pytest.fail(log.read_text()[-3000:])


def _ids(url: str, schema: str, table: str) -> list[int]:
    with psycopg.connect(url) as con:
        return sorted(r[0] for r in con.execute(f'SELECT id FROM "{schema}"."{table}"'))


def _sqlite_ids(path: Path) -> list[int]:
    import sqlite3

    with sqlite3.connect(path) as con:
        return sorted(r[0] for r in con.execute('SELECT id FROM "appended"'))


def test_sigkill_exactly_once(kafka_bootstrap: str, pg_schema, tmp_path: Path) -> None:
    total = MESSAGES
    topic = _topic(kafka_bootstrap, partitions=3)
    produce(kafka_bootstrap, topic, ({"id": i, "v": "x" * 20} for i in range(total)), keys=False)
    sqlite = tmp_path / "t.sqlite"
    args = [kafka_bootstrap, topic, "crash-eo", pg_schema.dsn, pg_schema.name, str(sqlite),
            "exactly_once"]  # fmt: skip
    killed = _run_with_kills(tmp_path, args, KILLS, True, pg_schema.dsn, pg_schema.name)

    assert killed == KILLS
    expected = list(range(total))
    assert _ids(pg_schema.dsn, pg_schema.name, "appended") == expected
    assert _ids(pg_schema.dsn, pg_schema.name, "merged") == expected
    assert _sqlite_ids(sqlite) == expected


def test_sigkill_at_least_once(kafka_bootstrap: str, pg_schema, tmp_path: Path) -> None:
    total = 10_000
    topic = _topic(kafka_bootstrap, partitions=2)
    produce(kafka_bootstrap, topic, ({"id": i} for i in range(total)), keys=False)
    sqlite = tmp_path / "t.sqlite"
    group = f"crash-alo-{uuid.uuid4().hex[:8]}"
    args = [kafka_bootstrap, topic, group, pg_schema.dsn, pg_schema.name, str(sqlite),
            "at_least_once"]  # fmt: skip
    _run_with_kills(tmp_path, args, 3, False, pg_schema.dsn, pg_schema.name)

    appended = _ids(pg_schema.dsn, pg_schema.name, "appended")
    assert sorted(set(appended)) == list(range(total))  # every id at least once
    assert _ids(pg_schema.dsn, pg_schema.name, "merged") == list(range(total))  # exactly once
