"""Alerts never stall a run (issue 12, item 4): a Slack webhook that trickles its answer.

A real local HTTP server (stdlib ``http.server`` on a thread) answers POSTs with a 200 and a
body it sends one byte at a time, so no socket read ever times out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated

import duckdb
import pytest

from ematix_engine import ematix, pk, register_connection
from ematix_engine.batch.orchestrate import FiringStatus, run_due
from ematix_engine.connections import DuckDBConnection
from ematix_engine.errors import ConnectionFailedError
from ematix_engine.ops.alerters import AlerterGroup
from ematix_engine.ops.events import AlertEvent
from ematix_engine.ops.slack import SlackAlerter
from ematix_engine.runlog import open_run_log
from ematix_engine.types import BigInt


@dataclass
class Trickler:
    url: str
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def trickling_webhook() -> Iterator[Trickler]:
    state: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state["trickler"].requests.append(self.rfile.read(length).decode())
            body = b"ok" + b" " * 600
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:  # one byte every 50 ms until the test releases the server
                if state["trickler"].release.is_set():
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    trickler = Trickler(url=f"http://127.0.0.1:{server.server_address[1]}/services/T/B/secret")
    state["trickler"] = trickler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield trickler
    finally:
        trickler.release.set()
        server.shutdown()
        server.server_close()


def _event(pipeline: str = "orders") -> AlertEvent:
    return AlertEvent(
        kind="failed", pipeline=pipeline, attempt=1, error="boom", at=datetime.now(UTC)
    )


def test_a_trickling_webhook_is_cut_off_at_the_deadline(trickling_webhook: Trickler) -> None:
    alerter = SlackAlerter(trickling_webhook.url, timeout=5, deadline=1)
    with pytest.raises(ConnectionFailedError, match="no complete answer within 1 s") as caught:
        alerter.send(_event())
    assert "secret" not in str(caught.value)
    assert trickling_webhook.requests, "the webhook was never called"


class Collecting:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def send(self, event: AlertEvent) -> None:
        self.events.append(event)


def test_a_slow_webhook_does_not_stall_later_pipelines(
    trickling_webhook: Trickler, tmp_duckdb_path: Path, tmp_path: Path
) -> None:
    register_connection(DuckDBConnection(name="default", path=str(tmp_duckdb_path)))
    duckdb.connect(str(tmp_duckdb_path)).close()

    @ematix.table(schema="an")
    class One:
        id: Annotated[BigInt, pk()]

    @ematix.table(schema="an")
    class Two:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=One, mode="merge", schedule="0 0 1 1 *")
    def first(conn):
        return "SELECT id FROM raw.missing_one"

    @ematix.pipeline(target=Two, mode="merge", schedule="0 0 1 1 *")
    def second(conn):
        return "SELECT id FROM raw.missing_two"

    collected = Collecting()
    slack = SlackAlerter(trickling_webhook.url, timeout=5, deadline=60)
    group = AlerterGroup([slack, collected], background=True)
    firings = run_due(
        [first, second],
        run_log=open_run_log(f"sqlite://{tmp_path / 'runs.db'}"),
        alerters=group,
        force=["first", "second"],
        alert_flush_seconds=0.2,
    )
    assert [f.status for f in firings] == [FiringStatus.GAVE_UP, FiringStatus.GAVE_UP]
    # Both pipelines ran and the other alerter delivered both alerts while Slack was still
    # trickling its first answer: the tick did not wait for it.
    assert [e.pipeline for e in collected.events] == ["first", "second"]
    assert group.flush(0) is False
    trickling_webhook.release.set()
    assert group.flush(60) is True
    assert len(trickling_webhook.requests) == 2
