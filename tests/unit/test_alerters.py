"""Alert events, the stdout alerter, fault isolation, URL parsing and Slack over real HTTP."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import ematix_engine.ops as ops_pkg
from ematix_engine.errors import ConfigError, ConnectionFailedError
from ematix_engine.ops import (
    Alerter,
    AlerterGroup,
    AlertEvent,
    AlertKind,
    SlackAlerter,
    StdoutAlerter,
    events_for_run,
    open_alerter,
    open_alerters,
)
from ematix_engine.ops.slack import redact_webhook_url, slack_webhook_from_url
from ematix_engine.runlog import AttemptState, RunRecord, RunStatus

AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "xoxb-SECRETsecretSECRET"


class SlackStub:
    """A real HTTP server on 127.0.0.1 that records POSTs like Slack's webhook endpoint."""

    def __init__(self, status: int = 200, reply: bytes = b"ok") -> None:
        self.requests: list[dict] = []
        self.status = status
        self.reply = reply
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                stub.requests.append(
                    {
                        "path": self.path,
                        "content_type": self.headers["Content-Type"],
                        "body": self.rfile.read(length),
                    }
                )
                self.send_response(stub.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(stub.reply)))
                self.end_headers()
                self.wfile.write(stub.reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = f"/services/T000/B000/{SECRET}") -> str:
        return f"slack+http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack():
    stub = SlackStub()
    yield stub
    stub.close()


def _event(kind="failed", **changes):
    fields = {
        "kind": kind,
        "pipeline": "orders",
        "attempt": 2,
        "error": 'relation "raw.orders" does not exist',
        "run_id": "run-123",
        "at": AT,
    }
    return AlertEvent(**(fields | changes))


def test_public_surface_imports_and_is_documented():
    for name in ops_pkg.__all__:
        value = getattr(ops_pkg, name)
        if callable(value) or isinstance(value, type):
            assert value.__doc__, name


def test_slack_alerter_posts_pipeline_attempt_and_error(slack):
    alerter = open_alerter(slack.url())
    assert isinstance(alerter, SlackAlerter)
    assert isinstance(alerter, Alerter)
    alerter.send(_event())
    [request] = slack.requests
    assert request["path"] == f"/services/T000/B000/{SECRET}"
    assert request["content_type"].startswith("application/json")
    payload = json.loads(request["body"])
    assert payload["text"] == (
        ":warning: *orders* failed on attempt 2\n"
        '```relation "raw.orders" does not exist```\n'
        "at 2030-01-02 03:04:05 UTC · run `run-123`"
    )


def test_slack_messages_for_gave_up_and_recovered(slack):
    alerter = open_alerter(slack.url())
    alerter.send(_event("gave_up", attempt=5, error="boom <html> & co"))
    alerter.send(_event("recovered", attempt=3, error=None, failed_attempts=2))
    gave_up, recovered = (json.loads(r["body"])["text"] for r in slack.requests)
    assert gave_up.startswith(":rotating_light: *orders* gave up after attempt 5\n")
    assert "```boom &lt;html&gt; &amp; co```" in gave_up
    assert recovered.startswith(
        ":white_check_mark: *orders* recovered: attempt 3 succeeded after 2 failed attempts\n"
    )
    assert "```" not in recovered


def test_slack_truncates_huge_errors(slack):
    open_alerter(slack.url()).send(_event(error="x" * 10_000))
    text = json.loads(slack.requests[0]["body"])["text"]
    assert len(text) < 3000 and "(truncated)" in text


def test_slack_http_error_is_redacted(caplog):
    stub = SlackStub(status=404, reply=b"no_service")
    try:
        alerter = open_alerter(stub.url())
        with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionFailedError) as info:
            alerter.send(_event())
        assert "HTTP 404: no_service" in str(info.value)
        assert SECRET not in str(info.value)
        # slack-sdk logs the webhook URL at DEBUG; our filter scrubs it.
        assert "Sending a request" in caplog.text
        assert SECRET not in caplog.text
        assert "/services/***" in caplog.text
    finally:
        stub.close()


def test_slack_unreachable_is_a_redacted_connection_error(caplog):
    stub = SlackStub()
    url = stub.url()
    stub.close()  # nothing listens on the port any more
    alerter = SlackAlerter(slack_webhook_from_url(url), timeout=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionFailedError) as info:
        alerter.send(_event())
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


def test_group_isolates_a_raising_alerter(slack, caplog):
    class Broken:
        def __repr__(self) -> str:
            return "Broken()"

        def send(self, event: AlertEvent) -> None:
            raise RuntimeError("alerter bug")

    out = io.StringIO()
    group = AlerterGroup([Broken(), open_alerter(slack.url()), StdoutAlerter(out)])
    with caplog.at_level(logging.ERROR, logger="ematix.ops.alerters"):
        group.send(_event())
        group.send_all([_event("recovered", error=None, failed_attempts=1)])
    assert len(slack.requests) == 2
    assert out.getvalue().count("\n") == 2
    assert caplog.text.count("alerter Broken() failed to deliver") == 2
    assert "alerter bug" in caplog.text  # traceback is logged


def test_group_isolates_a_failing_slack_endpoint(caplog):
    stub = SlackStub(status=500, reply=b"boom")
    out = io.StringIO()
    try:
        group = open_alerters([stub.url()])
        group = AlerterGroup([*group, StdoutAlerter(out)])
        with caplog.at_level(logging.ERROR):
            group.send(_event())
    finally:
        stub.close()
    assert "FAILED" in out.getvalue()
    assert "SlackAlerter('http://127.0.0.1" in caplog.text
    assert SECRET not in caplog.text


def test_stdout_alerter_writes_to_stderr(capsys):
    open_alerter("stdout://").send(_event())
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "2030-01-02 03:04:05Z [ematix] FAILED    pipeline 'orders' failed on attempt 2: "
        'relation "raw.orders" does not exist (run run-123)\n'
    )


def test_stdout_alerter_recovered_line():
    out = io.StringIO()
    StdoutAlerter(out).send(
        _event("recovered", attempt=4, error=None, failed_attempts=3, run_id=None)
    )
    assert out.getvalue() == (
        "2030-01-02 03:04:05Z [ematix] RECOVERED pipeline 'orders' recovered: attempt 4 "
        "succeeded after 3 failed attempts\n"
    )


@pytest.mark.parametrize(
    ("url", "webhook"),
    [
        ("slack://hooks.slack.com/services/T/B/X", "https://hooks.slack.com/services/T/B/X"),
        ("slack+https://chat.example.com/hooks/abc", "https://chat.example.com/hooks/abc"),
        ("slack+http://127.0.0.1:8080/services/T/B/X", "http://127.0.0.1:8080/services/T/B/X"),
        ("slack+http://localhost:8080/x", "http://localhost:8080/x"),
        ("slack+http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_slack_url_forms(url, webhook):
    assert slack_webhook_from_url(url) == webhook


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("slack+http://hooks.example.com/services/T/B/SECRETPART", "plain http"),
        ("slack://hooks.slack.com", "needs a host and the webhook path"),
        ("slack:///services/T/B/SECRETPART", "needs a host"),
        ("slak://hooks.slack.com/services/T/B/SECRETPART", "did you mean 'slack'"),
        ("email://ops@example.com", "use one of: slack://"),
    ],
)
def test_bad_alerter_urls(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        open_alerter(url)
    assert "SECRETPART" not in str(info.value)


def test_webhook_redaction():
    assert redact_webhook_url("https://hooks.slack.com/services/T/B/X") == (
        "https://hooks.slack.com/services/***"
    )
    alerter = SlackAlerter("https://hooks.slack.com/services/T/B/" + SECRET)
    assert SECRET not in repr(alerter)
    assert SECRET not in repr(AlerterGroup([alerter]))
    with pytest.raises(ConfigError):
        SlackAlerter("hooks.slack.com/services/T/B/X")


def test_open_alerters_builds_a_group_and_validates_first():
    group = open_alerters(["stdout://", "slack://hooks.slack.com/services/T/B/X"])
    assert [type(a).__name__ for a in group] == ["StdoutAlerter", "SlackAlerter"]
    assert len(open_alerters([])) == 0
    with pytest.raises(ConfigError):
        open_alerters(["stdout://", "bogus://"])


def _record(status, attempt=1, error=None):
    return RunRecord(
        pipeline="orders",
        status=status,
        attempt=attempt,
        error=error,
        started_at=AT,
        finished_at=AT,
    )


FRESH = AttemptState(pipeline="orders")
AFTER_TWO = AttemptState(pipeline="orders", consecutive_failures=2, last_attempt=2)


@pytest.mark.parametrize(
    ("record", "previous", "max_attempts", "expected"),
    [
        (_record("success"), FRESH, 3, []),
        (_record("success", 3), AFTER_TWO, 3, [(AlertKind.RECOVERED, 3, 2)]),
        (_record("failed", 1, "e"), FRESH, 3, [(AlertKind.FAILED, 1, 0)]),
        (_record("failed", 3, "e"), AFTER_TWO, 3, [(AlertKind.GAVE_UP, 3, 0)]),
        (_record("failed", 9, "e"), AFTER_TWO, None, [(AlertKind.FAILED, 9, 0)]),
        (_record("gave_up", 2, "e"), FRESH, None, [(AlertKind.GAVE_UP, 2, 0)]),
        (_record("running"), AFTER_TWO, 3, []),
        (RunRecord(pipeline="orders", status="skipped", attempt=0), AFTER_TWO, 3, []),
    ],
    ids=[
        "first-success-is-quiet",
        "success-after-failures-recovers",
        "failure-with-retries-left",
        "last-attempt-gives-up",
        "no-limit-never-gives-up",
        "gave-up-status",
        "running",
        "skipped",
    ],
)
def test_events_for_run(record, previous, max_attempts, expected):
    events = events_for_run(record, previous, max_attempts=max_attempts)
    assert [(e.kind, e.attempt, e.failed_attempts) for e in events] == expected
    for event in events:
        assert (event.pipeline, event.run_id, event.at) == ("orders", record.run_id, AT)
        assert event.error == record.error


def test_alert_event_validation():
    with pytest.raises(ValueError):
        AlertEvent(kind="exploded", pipeline="p", attempt=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        AlertEvent(kind="failed", pipeline="p", attempt=1, at=datetime(2030, 1, 1))
    assert _event().kind is AlertKind.FAILED
    assert RunStatus.GAVE_UP.value == AlertKind.GAVE_UP.value
