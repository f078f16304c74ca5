"""The three surfaces (keywords, decorator + ``ematix consume --module``, TOML + ``ematix
consume FILE``), metrics, SIGTERM drain and the restart supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from ematix_engine import MemorySource, run_pipeline
from ematix_engine.streaming.supervisor import RestartPolicy, run_supervised
from ematix_engine.streaming.toml import spec_from_mapping
from tests.fixtures.kafka import TANSU_CONSUMER_SETTINGS
from tests.fixtures.services import free_port
from tests.integration.streaming.kafka_helpers import produce

WORKTREE = Path(__file__).resolve().parents[3]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(WORKTREE)}


def _toml(bootstrap: str, topic: str, group: str, pg_url: str, schema: str) -> str:
    settings = "\n".join(f'"{k}" = {v}' for k, v in TANSU_CONSUMER_SETTINGS.items())
    return (
        textwrap.dedent(
            f"""
        pipeline_name = "{group}"
        source_query = "{topic}"
        idle_pause_ms = 20
        max_batch_ms = 200
        batch_size = 100

        [source]
        kind = "kafka"
        bootstrap_servers = "{bootstrap}"
        group_id = "{group}"

        [source.extra]
        """
        )
        + settings
        + textwrap.dedent(
            f"""

        [target]
        kind = "postgres"
        url = "{pg_url}"

        [target.table]
        schema = "{schema}"
        name = "events"
        """
        )
    )


def _count(pg_url: str, schema: str) -> int:
    with psycopg.connect(pg_url) as con:
        try:
            return con.execute(f'SELECT count(*) FROM "{schema}"."events"').fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def test_toml_cli_runs_until_sigterm_then_drains_and_commits(
    kafka_bootstrap: str, kafka_topic: str, pg_schema, tmp_path: Path, pipeline_name: str
) -> None:
    produce(kafka_bootstrap, kafka_topic, ({"id": i} for i in range(1000)))
    config = tmp_path / "pipeline.toml"
    config.write_text(
        _toml(kafka_bootstrap, kafka_topic, pipeline_name, pg_schema.dsn, pg_schema.name)
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ematix_engine.cli", "consume", str(config),
         "--metrics-port", str(port)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _count(pg_schema.dsn, pg_schema.name) < 1000 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
        # A batch is counted once its write is confirmed and its offsets committed, which
        # follows the rows' arrival in the table by up to one poll (writes are pipelined).
        counted = f'ematix_streaming_rows_consumed_total{{pipeline="{pipeline_name}"}} 1000.0'
        while True:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            if counted in metrics or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counted in metrics
        assert "ematix_streaming_consumer_lag" in metrics
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    assert "1000 rows in" in out.decode()
    assert _count(pg_schema.dsn, pg_schema.name) == 1000
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": pipeline_name, **TANSU_CONSUMER_SETTINGS}
    )
    try:
        (committed,) = consumer.committed([TopicPartition(kafka_topic, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed.offset == 1000


def test_module_cli_consume_and_consume_list(
    kafka_bootstrap: str, kafka_topic: str, tmp_path: Path, pipeline_name: str
) -> None:
    produce(kafka_bootstrap, kafka_topic, ({"id": i} for i in range(20)))
    (tmp_path / "my_pipelines.py").write_text(
        textwrap.dedent(
            f"""
            from ematix_engine import ematix

            @ematix.connection
            class kafka_prod:
                kind = "kafka"
                bootstrap_servers = "{kafka_bootstrap}"
                group_id = "{pipeline_name}"
                extra = {TANSU_CONSUMER_SETTINGS!r}

            @ematix.connection
            class warehouse:
                kind = "duckdb"
                path = "wh.duckdb"

            @ematix.streaming_pipeline(
                name="events_to_duck",
                source=kafka_prod,
                source_query="{kafka_topic}",
                target=warehouse,
                target_table=("main", "events"),
                max_batch_ms=200,
            )
            def events_to_duck():
                pass
            """
        )
    )
    listed = subprocess.run(
        [sys.executable, "-m", "ematix_engine.cli", "consume-list", "--module", "my_pipelines"],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("events_to_duck\tkafka_prod/")
    ran = subprocess.run(
        [sys.executable, "-m", "ematix_engine.cli", "consume", "--module", "my_pipelines",
         "events_to_duck", "--exit-when-idle"],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "20 rows in, 20 written" in ran.stdout
    import duckdb

    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        assert con.sql("SELECT count(*) FROM main.events").fetchall() == [(20,)]


def test_run_pipeline_from_a_mapping(pg_schema, pipeline_name: str) -> None:
    data = {
        "pipeline_name": pipeline_name,
        "source": {"connection": "mem"},
        "target": {"kind": "postgres", "url": pg_schema.dsn, "table": {"schema": pg_schema.name,
                   "name": "events"}},
    }  # fmt: skip
    spec = spec_from_mapping(data)
    # A memory source is given in Python; TOML names it like a registered connection.
    memory = MemorySource("mem", [{"id": 1}, {"id": 2}])
    from dataclasses import replace

    from ematix_engine import Source

    spec = replace(spec, sources=(Source(connection=memory),))
    result = run_pipeline(spec, exit_when_idle=True)
    assert result.rows_out == 2


class _Proxy:
    """A TCP forwarder to PostgreSQL that can be switched off and on (a target going down)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.up = threading.Event()
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self.start()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        self.up.set()
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        self.up.clear()
        if self._server is not None:
            self._server.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._connections.clear()

    def _accept(self, server: socket.socket) -> None:
        while self.up.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


def test_target_down_mid_stream_moves_no_offset_and_resumes(pg_schema, pipeline_name) -> None:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(pg_schema.dsn)
    proxy = _Proxy(int(info.get("port", 5432)))
    url = f"postgres://{info.get('user', 'postgres')}@127.0.0.1:{proxy.port}/{info['dbname']}"
    source = MemorySource("orders", [{"id": i} for i in range(60)], batch_size=20)
    committed_when_down: list[int] = []

    def on_progress(progress) -> None:
        if progress.totals.batches == 1 and proxy.up.is_set() and not committed_when_down:
            proxy.stop()
            committed_when_down.append(source.committed)
            threading.Timer(1.5, proxy.start).start()

    spec = spec_from_mapping(
        {
            "pipeline_name": pipeline_name,
            "source": {"connection": "orders"},
            "target": {"kind": "postgres", "url": url,
                       "table": {"schema": pg_schema.name, "name": "events"}},
            "idle_pause_ms": 10,
        }
    )  # fmt: skip
    from dataclasses import replace

    from ematix_engine import Source

    spec = replace(spec, sources=(Source(connection=source),))
    result = run_supervised(
        spec,
        restart=RestartPolicy(min_backoff_ms=100, max_backoff_ms=400, max_restarts=20),
        exit_when_idle=True,
        on_progress=on_progress,
        handle_signals=False,
    )
    proxy.stop()
    assert committed_when_down == [20]
    assert source.committed == 60
    assert result.rows_out == 60
    with psycopg.connect(pg_schema.dsn) as con:
        ids = [r[0] for r in con.execute(f'SELECT id FROM "{pg_schema.name}".events ORDER BY id')]
    assert ids == list(range(60))


def test_supervisor_gives_up_after_max_restarts(tmp_path: Path, pipeline_name: str) -> None:
    spec = spec_from_mapping(
        {
            "pipeline_name": pipeline_name,
            "source": {"connection": "m"},
            "target": {"kind": "postgres", "url": "postgres://127.0.0.1:1/none",
                       "table": {"name": "t"}},
        }
    )  # fmt: skip
    from dataclasses import replace

    from ematix_engine import EmatixError, Source

    spec = replace(spec, sources=(Source(connection=MemorySource("m", [{"id": 1}])),))
    with pytest.raises(EmatixError):
        run_supervised(
            spec,
            restart=RestartPolicy(min_backoff_ms=1, max_backoff_ms=5, max_restarts=2),
            exit_when_idle=True,
            handle_signals=False,
        )
