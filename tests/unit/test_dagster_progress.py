"""ProgressLog: one line per phase, streamed rows at most every ``every_s`` seconds."""

from __future__ import annotations

from ematix_dagster.progress import ProgressLog
from ematix_engine.write.progress import LoadProgress


class Lines:
    """Collects what would go to ``context.log``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_phases_and_throttled_rows() -> None:
    now = [0.0]
    log = Lines()
    progress = ProgressLog(log, every_s=10, clock=lambda: now[0])

    def at(seconds: float, phase: str, rows: int) -> None:
        now[0] = seconds
        progress(LoadProgress("p", "s.t", phase, rows))

    at(0, "reading source", 0)
    at(1, "reading source", 100_000)  # too soon
    at(11, "reading source", 1_200_000)
    at(12, "preparing", 1_250_000)
    at(13, "writing", 1_250_000)
    at(14, "committed", 1_250_000)  # the resource logs the counts

    assert log.lines == [
        "ematix: s.t: reading source",
        "ematix: s.t: reading source, 1,200,000 rows so far",
        "ematix: s.t: preparing",
        "ematix: s.t: writing",
    ]
