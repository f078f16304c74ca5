"""What every stream source offers the runner, and what one poll returns.

A source hands the runner Arrow rows plus, for each row, its *position*: a partition key (a
Kafka ``topic:partition``, a file name, ``"0"`` for a memory source) and an offset in it. After
every target has written the rows, the runner commits the source's ``next`` positions (the
offset to read next per partition key); on a restart the source resumes there. Exactly-once
pipelines also keep these positions in each target and ask the source to seek to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

__all__ = ["EVENT_TS", "BadMessage", "Polled", "Positions", "SeekProvider", "StreamSource"]

EVENT_TS = "_event_ts"
"""The event-time column every batch carries (timestamp, microseconds, UTC)."""

#: Next offset to read, by partition key.
Positions = dict[str, int]
#: Given the partition keys a source is about to read, the positions to start them at (those
#: it knows; the others start where the source would anyway).
SeekProvider = Callable[[list[str]], Positions]


@dataclass(slots=True, kw_only=True)
class BadMessage:
    """A message that could not be turned into a row (goes to the DLQ, never dropped).

    Attributes:
        source: the source's label.
        error: why, for the DLQ headers and the error message.
        value: the original payload bytes.
        key: the original key bytes.
        topic: its topic (Kafka), or None.
        partition: its partition, or None.
        offset: its offset, or None.
        headers: the original headers.
    """

    source: str
    error: str
    value: bytes | None = None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Polled:
    """What one poll of one source returned.

    Attributes:
        table: the decoded rows (None or empty when nothing came).
        keys: per row, its partition key (aligned with ``table``).
        offsets: per row, its offset within the partition.
        next: the positions to commit once this poll's rows (and bad messages) are durable.
        bad: messages that could not be decoded, in arrival order.
        messages: messages received (good and bad).
        drained: the source has nothing more right now (every partition at its end).
        raw: the source's original messages (to dead-letter a whole batch), if it keeps them.
    """

    table: pa.Table | None = None
    keys: pa.Array | None = None
    offsets: pa.Array | None = None
    next: Positions = field(default_factory=dict)
    bad: list[BadMessage] = field(default_factory=list)
    messages: int = 0
    drained: bool = False
    raw: Any = None

    @property
    def rows(self) -> int:
        """Rows decoded."""
        return 0 if self.table is None else self.table.num_rows


class StreamSource(Protocol):
    """A source the runner polls."""

    #: Names the source in messages, metrics and checkpoints (``connection/query``).
    label: str

    def open(self, seek: SeekProvider | None) -> None:
        """Connect; with ``seek``, start every partition where it says (exactly-once)."""

    def poll(self, max_rows: int, max_ms: int) -> Polled:
        """Up to ``max_rows`` rows, waiting at most ``max_ms`` for them."""

    def commit(self, positions: Mapping[str, int]) -> None:
        """Make ``positions`` durable (the rows before them are written)."""

    def lag(self) -> Mapping[str, int]:
        """Messages not yet read, by partition key (where the source can tell)."""

    def close(self) -> None:
        """Release connections."""
