"""File source: new data files under a watched prefix, read once each.

``source_query`` names a folder under the ``ObjectStoreLocalConnection``'s path. Every poll
lists it (recursively, in name order; names starting with ``.`` or ``_`` are skipped, so
``.part.tmp`` files and the state folder are invisible) and reads the next ready files, up to
``batch_size`` rows. A file is *ready* once it has not been modified for ``settle_ms``
(default 1 s) — or at once with ``settle_ms=0`` when producers rename finished files in. Its
format comes from its name (:func:`~ematix_engine.connections.format_from_path`, compressed
names too), falling back to the connection's format.

Positions: the partition key of a row is its file's path under the prefix and the offset its
row number. After the targets are written, the runner commits them: the finished files are
recorded in ``<path>/_ematix_state/<pipeline>.json`` (written atomically), so a restart
neither skips nor repeats a file. Exactly-once pipelines keep the same positions in the
targets instead (a file whose stored position is at its end is done).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from ematix_engine.backends.files import read_file
from ematix_engine.connections import format_from_path
from ematix_engine.errors import SourceError
from ematix_engine.streaming.sources.base import EVENT_TS, Polled, SeekProvider
from ematix_engine.streaming.sources.memory import _with_event_ts

__all__ = ["FileSource"]

_STATE = "_ematix_state"


class FileSource:
    """Files under a watched folder, each read once (see the module docstring)."""

    def __init__(self, source: Any, connection: Any, spec: Any) -> None:
        resolved = connection.resolved()
        self.root = Path(resolved.path)
        self.folder = self.root / source.query.strip("/")
        self.format = resolved.format
        self.label = source.label
        self.pipeline = spec.name
        self.settle_s = source.settle_ms / 1000
        self.event_time_column = source.event_time_column
        given = dict(source.read_options or {})
        self.read_options = {
            "csv_read_options": given if self.format == "csv" else None,
            "json_read_options": given if self.format == "json_lines" else None,
        }
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{spec.name}__{source.query}")
        self.state_path = self.root / _STATE / f"{safe}.json"
        self.done: dict[str, int] = {}
        self._started: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def open(self, seek: SeekProvider | None) -> None:
        """Load the finished files (or, exactly-once, the positions the targets hold)."""
        if self.state_path.exists():
            self.done = {k: int(v) for k, v in json.loads(self.state_path.read_text()).items()}
        if seek is not None:
            self._started = seek(self._candidates())

    def _candidates(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        found = []
        for directory, folders, files in os.walk(self.folder):
            folders[:] = sorted(f for f in folders if not f.startswith((".", "_")))
            for name in files:
                if not name.startswith((".", "_")):
                    found.append(os.path.relpath(os.path.join(directory, name), self.folder))
        return sorted(found)

    def _ready(self, relative: str) -> bool:
        stat = (self.folder / relative).stat()
        self._sizes[relative] = stat.st_size
        return time.time() - stat.st_mtime >= self.settle_s

    def poll(self, max_rows: int, max_ms: int) -> Polled:
        """Read ready files not finished yet, up to ``max_rows`` rows (whole files)."""
        tables, keys, offsets, positions = [], [], [], {}
        pending = [f for f in self._candidates() if f not in self.done]
        waiting = False
        rows = 0
        for relative in pending:
            if rows >= max_rows:
                waiting = True
                break
            if not self._ready(relative):
                waiting = True
                continue
            table = self._read(relative)
            start = self._started.get(relative, 0)
            if start:
                table = table.slice(start)
            positions[relative] = start + table.num_rows
            if table.num_rows:
                tables.append(table)
                keys.append(pa.repeat(pa.scalar(relative), table.num_rows))
                offsets.append(pa.array(range(start, start + table.num_rows), pa.int64()))
                rows += table.num_rows
        if not positions:
            return Polled(drained=not waiting)
        table = pa.concat_tables(tables, promote_options="permissive") if tables else None
        return Polled(
            table=table,
            keys=pa.concat_arrays(keys) if keys else None,
            offsets=pa.concat_arrays(offsets) if offsets else None,
            next=positions,
            messages=rows,
            drained=False,
        )

    def _read(self, relative: str) -> pa.Table:
        path = self.folder / relative
        file_format = format_from_path(relative) or self.format
        try:
            table = read_file(path, file_format, **self.read_options)
        except Exception as error:
            raise SourceError(
                self.pipeline, f"file {relative!r} under {self.label} could not be read: {error}"
            ) from error
        if self.event_time_column is None and EVENT_TS in table.column_names:
            return table
        return _with_event_ts(table, self.event_time_column)

    def commit(self, positions: Mapping[str, int]) -> None:
        """Record the files read to their end, durably (write a temp file, fsync, rename)."""
        for relative, offset in positions.items():
            self.done[relative] = offset
            self._started.pop(relative, None)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(self.done, file, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.state_path)

    def lag(self) -> Mapping[str, int]:
        """Files not read yet (under one key)."""
        return {"files": len([f for f in self._candidates() if f not in self.done])}

    def close(self) -> None:
        """Nothing held open."""
