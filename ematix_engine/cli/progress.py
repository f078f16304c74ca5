"""The ``ematix run`` progress display: one bar per target, with its phase and rows read."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ematix_engine.write.progress import COMMITTED, LoadProgress

__all__ = ["LoadDisplay"]


class LoadDisplay:
    """Shows every target's load on a terminal; prints nothing elsewhere.

    Use it as a context manager and pass :meth:`update` as ``on_progress``. While a source
    streams from another database the bar pulses and counts rows; a committed target fills
    its bar.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self) -> LoadDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, event: LoadProgress) -> None:
        """Show ``event`` on its target's bar (adding the bar on the first event)."""
        key = (event.pipeline, event.target)
        description = f"{event.pipeline} → {event.target}: {event.phase}"
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(description, total=None)
        task = self._tasks[key]
        done = event.phase == COMMITTED
        self._progress.update(
            task,
            description=description,
            completed=event.rows_read,
            total=max(event.rows_read, 1) if done else None,
        )
