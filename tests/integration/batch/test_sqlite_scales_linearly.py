"""SQLite snapshot SCD2 with deletes does work linear in the rows (it was quadratic).

Work is counted in SQLite virtual-machine instructions (a progress handler), not in seconds:
four times the rows must cost about four times the instructions, not sixteen.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import pytest

from ematix_engine import SQLiteConnection, ematix, pk
from ematix_engine.backends.sqlite import SQLiteBackend
from ematix_engine.types import BigInt, Text

pytestmark = pytest.mark.integration


def _reload_steps(tmp_path: Path, rows: int, monkeypatch: pytest.MonkeyPatch) -> int:
    path = str(tmp_path / f"scale_{rows}.sqlite")
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE src (id INTEGER PRIMARY KEY, name TEXT)")
        con.executemany("INSERT INTO src VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])

    @ematix.table(schema="main", name="dim", connection=SQLiteConnection(name="s", path=path))
    class Dim:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Dim, mode="scd2", deletes="close", name=f"scale_{rows}")
    def scale(conn):
        return "SELECT id, name FROM src"

    scale.run()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE src SET name = 'changed' WHERE id = 5")
        con.execute("DELETE FROM src WHERE id = 7")
    steps = [0]
    opened = SQLiteBackend.__init__

    def counting(self: SQLiteBackend, *args: object, **kwargs: object) -> None:
        opened(self, *args, **kwargs)

        def tick() -> int:
            steps[0] += 1
            return 0

        self.con.set_progress_handler(tick, 1000)

    monkeypatch.setattr(SQLiteBackend, "__init__", counting)
    result = scale.run()
    monkeypatch.setattr(SQLiteBackend, "__init__", opened)
    assert (result.rows_closed, result.rows_inserted, result.rows_deleted) == (2, 1, 1)
    return steps[0]


def test_a_reload_with_deletes_costs_work_linear_in_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _reload_steps(tmp_path, 2_000, monkeypatch)
    large = _reload_steps(tmp_path, 8_000, monkeypatch)
    assert large < 6 * small, (small, large)
