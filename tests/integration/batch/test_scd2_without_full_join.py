"""Snapshot SCD2 deletes on a SQLite older than 3.39 (no FULL JOIN): the LEFT JOIN + anti-join plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from ematix_engine.backends.sqlite import SQLiteBackend
from tests.integration.batch import test_scd2_snapshot as snapshot
from tests.integration.batch.harness import make_harness


@pytest.mark.parametrize(
    "scenario",
    [
        "test_deletes_close_closes_absent_keys",
        "test_deletes_new_record_writes_a_tombstone_and_reopens",
        "test_change_closes_old_version_and_opens_a_new_one",
    ],
)
def test_snapshot_deletes_without_full_join(
    scenario: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteBackend, "SUPPORTS_FULL_JOIN", False)
    getattr(snapshot, scenario)(make_harness("sqlite", request, tmp_path))
