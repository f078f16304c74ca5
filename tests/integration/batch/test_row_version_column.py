"""row_version_column (dlt's row_version_column_name): only a new version value is a change."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import ConfigError
from ematix_engine.types import BigInt, Text
from tests.integration.batch.harness import Harness

COLUMNS = {"id": "bigint", "name": "text", "version": "bigint"}


def _declare(h: Harness, sql: str, **options):
    @ematix.table(schema=h.schema, name="versioned")
    class Versioned:
        id: Annotated[BigInt, pk()]
        name: Text | None
        version: BigInt

    @ematix.pipeline(
        target=Versioned,
        name="versioned",
        row_version_column="version",
        **h.pipeline_options,
        **options,
    )
    def versioned(conn):
        return sql

    return versioned


@pytest.mark.parametrize("mode", ["merge", "scd2"])
def test_only_a_new_row_version_is_a_change(h: Harness, mode: str) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", 1), (2, "b", 1)])
    load = _declare(h, f"SELECT id, name, version FROM {src}", mode=mode)
    load.run()
    # key 1: name changed but the version did not (not a change); key 2: a new version
    h.set_rows("src", [(1, "a-typo-fix", 1), (2, "B", 2)])
    result = load.run()
    changed = result.rows_updated if mode == "merge" else result.rows_closed
    assert changed == 1 and result.rows_unchanged == 1


def test_row_version_column_excludes_compare_columns(h: Harness) -> None:
    with pytest.raises(ConfigError, match="row_version_column"):
        _declare(h, "SELECT 1", mode="scd2", compare_columns=["name"])
