"""SQLite sources read through ADBC: what the driver's own connection lacks falls back to
sqlite3, and a bad value in the first batch still names its column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ematix_engine.backends.sqlite import SQLiteBackend


@pytest.fixture
def db(tmp_path: Path) -> SQLiteBackend:
    path = str(tmp_path / "s.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE t (id INTEGER, n TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y")])
    con.close()
    return SQLiteBackend(path)


def test_functions_registered_on_the_backend_work_in_source_sql(db: SQLiteBackend) -> None:
    """regexp_replace (and ematix_*) exist only on the backend's sqlite3 connection."""
    sql = "SELECT id, n FROM t WHERE regexp_replace(n, 'x', 'z') = 'z'"
    assert db.read_arrow(sql).read_all().to_pylist() == [{"id": 1, "n": "x"}]


def test_a_type_mismatch_in_the_first_batch_names_the_column(db: SQLiteBackend) -> None:
    """A value that does not fit its column's affinity names the column."""
    db.execute("INSERT INTO t VALUES ('abc', 'z')")
    with pytest.raises(ValueError, match="column 'id'"):
        db.read_arrow("SELECT id, n FROM t").read_all()
