"""Check evaluation on every backend: clean tables pass, deliberately corrupted ones fail."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from psycopg.conninfo import conninfo_to_dict

from ematix_engine import ematix, pk
from ematix_engine.backends import open_backend
from ematix_engine.checks import (
    accepted_values,
    checks_for_target,
    evaluate_check,
    evaluate_checks,
    not_null,
    row_count_between,
    sql_check,
    unique,
)
from ematix_engine.connections import (
    DeltaLocalConnection,
    DuckDBConnection,
    PostgresConnection,
    SQLiteConnection,
)
from ematix_engine.types import BigInt, Text

BACKENDS = ("duckdb", "sqlite", "postgres", "delta")


def _pg_url(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    auth = params.get("user", "postgres") + (
        f":{params['password']}" if params.get("password") else ""
    )
    return (
        f"postgresql://{auth}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/"
        f"{params.get('dbname', 'postgres')}"
    )


def _target_connection(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[Any, str]:
    if kind == "duckdb":
        return DuckDBConnection(name="chk_duck", path=str(tmp_path / "t.duckdb")), "chk"
    if kind == "sqlite":
        return SQLiteConnection(name="chk_sqlite", path=str(tmp_path / "t.sqlite")), "chk"
    if kind == "delta":
        return DeltaLocalConnection(name="chk_lake", path=str(tmp_path / "lake")), "chk"
    schema = request.getfixturevalue("pg_schema")
    return PostgresConnection(name="chk_pg", url=_pg_url(schema.dsn)), schema.name


def _write_source(path: Path, rows: list[tuple[int, str | None, str]]) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS customers")
        db.execute("CREATE TABLE customers (customer_id INTEGER, email TEXT, tier TEXT)")
        db.executemany("INSERT INTO customers VALUES (?, ?, ?)", rows)


@pytest.fixture(params=BACKENDS)
def loaded(request: pytest.FixtureRequest, tmp_path: Path):
    """An SCD2 and a merge target on one backend, each loaded twice (one tier changed)."""
    kind = request.param
    target_conn, schema = _target_connection(kind, tmp_path, request)
    source = SQLiteConnection(name="chk_src", path=str(tmp_path / "src.sqlite"))
    suffix = uuid.uuid4().hex[:8]

    @ematix.table(schema=schema, name=f"dim_{suffix}", connection=target_conn)
    class Dim:
        customer_id: Annotated[BigInt, pk()]
        email: Text | None
        tier: Text

    @ematix.table(schema=schema, name=f"fact_{suffix}", connection=target_conn)
    class Fact:
        customer_id: Annotated[BigInt, pk()]
        email: Text | None
        tier: Text

    checks = [
        not_null("email"),
        accepted_values("tier", ["bronze", "silver", "gold"]),
        row_count_between(min=1, max=10),
        unique("email", severity="warn"),
        sql_check("no_gold", "SELECT * FROM {table} WHERE tier = 'gold'", severity="warn"),
        sql_check(
            "gold_count", "SELECT COUNT(*) FROM {table} WHERE tier = 'gold'", returns="count"
        ),
    ]

    @ematix.pipeline(
        target=Dim, mode="scd2", source_connection=source, name=f"dim_{suffix}", checks=checks
    )
    def dim(conn):
        return "SELECT customer_id, email, tier FROM customers"

    @ematix.pipeline(
        target=Fact, mode="merge", source_connection=source, name=f"fact_{suffix}", checks=checks
    )
    def fact(conn):
        return "SELECT customer_id, email, tier FROM customers"

    rows = [(1, "a@x", "bronze"), (2, "b@x", "silver"), (3, "c@x", "silver")]
    _write_source(tmp_path / "src.sqlite", rows)
    dim.run()
    fact.run()
    rows[0] = (1, "a@x", "silver")
    _write_source(tmp_path / "src.sqlite", rows)
    dim.run()
    fact.run()
    return kind, dim, fact


def _by_name(outcomes) -> dict[str, Any]:
    return {o.check: o for o in outcomes}


def _corrupt_sql(target_spec, statements: list[Callable[[Any, str], str]]) -> None:
    backend = open_backend(target_spec.connection)
    try:
        table = backend.table_sql(target_spec.table.schema, target_spec.table.name)
        for make in statements:
            backend.execute(make(backend, table))
    finally:
        backend.close()


def _delta_path(target_spec) -> str:
    root = target_spec.connection.resolved().path
    return str(Path(root) / target_spec.table.schema / target_spec.table.name)


def _delta_append(target_spec, transform: Callable[[pa.Table], pa.Table]) -> None:
    path = _delta_path(target_spec)
    table = DeltaTable(path).to_pyarrow_table()
    write_deltalake(path, transform(table), mode="append")


def _set(table: pa.Table, column: str, value: Any) -> pa.Table:
    index = table.schema.get_field_index(column)
    array = pa.array([value] * table.num_rows, type=table.schema.field(column).type)
    return table.set_column(index, table.schema.field(column), array)


def test_clean_tables_pass_every_check(loaded) -> None:
    kind, dim, fact = loaded
    for pipeline in (dim, fact):
        target = pipeline.spec.targets[0]
        outcomes = _by_name(evaluate_checks(target, checks_for_target(pipeline.spec, target)))
        failed = {
            name: o.detail for name, o in outcomes.items() if not o.passed and name != "no_gold"
        }
        assert failed == {}, (kind, failed)
        assert outcomes["gold_count"].failing_count == 0
    names = [c.name for c in checks_for_target(dim.spec, dim.spec.targets[0])]
    assert names[:2] == ["scd2_one_current_per_key", "scd2_no_overlap_or_gap"]
    assert next(c.name for c in checks_for_target(fact.spec, fact.spec.targets[0])) == "keys_unique"


def test_corrupted_scd2_table_fails_invariants_and_user_checks(loaded) -> None:
    kind, dim, _ = loaded
    target = dim.spec.targets[0]
    if kind == "delta":

        def corrupt(table: pa.Table) -> pa.Table:
            closed = table.filter(pc.invert(table["is_current"]))
            closed = _set(closed, "is_current", True)  # a closed version comes back as current
            bad = table.filter(pc.equal(table["customer_id"], 3))
            bad = _set(_set(bad, "tier", "platinum"), "email", None)
            bad = _set(bad, "valid_from", table["valid_from"][0].as_py().replace(year=2999))
            return pa.concat_tables([closed, bad])

        _delta_append(target, corrupt)
    else:
        _corrupt_sql(
            target,
            [
                lambda b, t: (
                    f"UPDATE {t} SET {b.quote('is_current')} = TRUE "
                    f"WHERE NOT {b.quote('is_current')}"
                ),
                lambda b, t: (
                    f"UPDATE {t} SET {b.quote('tier')} = 'platinum', "
                    f"{b.quote('email')} = NULL WHERE {b.quote('customer_id')} = 3"
                ),
            ],
        )
    outcomes = _by_name(evaluate_checks(target, checks_for_target(dim.spec, target)))
    assert not outcomes["scd2_one_current_per_key"].passed
    assert outcomes["scd2_one_current_per_key"].failing_count >= 1
    assert outcomes["scd2_one_current_per_key"].sample[0]["customer_id"] in (1, 3)
    assert not outcomes["scd2_no_overlap_or_gap"].passed
    assert not outcomes["not_null_email"].passed
    assert outcomes["not_null_email"].detail.endswith("with NULL email")
    assert not outcomes["accepted_values_tier"].passed
    assert outcomes["accepted_values_tier"].sample[0]["value"] == "platinum"
    assert outcomes["row_count_between"].passed


def test_corrupted_merge_table_fails_key_and_user_checks(loaded) -> None:
    kind, _, fact = loaded
    target = fact.spec.targets[0]
    if kind == "delta":
        _delta_append(target, lambda t: t.filter(pc.equal(t["customer_id"], 1)))
    elif kind == "sqlite":
        # SQLite keeps the PRIMARY KEY ematix created, so keys cannot repeat there; corrupt
        # a non-key column instead.
        _corrupt_sql(target, [lambda b, t: f"UPDATE {t} SET {b.quote('email')} = 'b@x'"])
    else:
        statements = [
            lambda b, t: f"INSERT INTO {t} SELECT * FROM {t} WHERE {b.quote('customer_id')} = 1"
        ]
        if kind == "postgres":
            name = target.table.name
            statements.insert(
                0,
                lambda b, t: f"ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {b.quote(name + '_pkey')}",
            )
        _corrupt_sql(target, statements)
    outcomes = _by_name(evaluate_checks(target, checks_for_target(fact.spec, target)))
    if kind == "sqlite":
        assert outcomes["keys_unique"].passed
    else:
        assert not outcomes["keys_unique"].passed
        assert outcomes["keys_unique"].failing_count == 1
        assert outcomes["keys_unique"].sample == ({"customer_id": 1, "n_rows": 2},)
    assert not outcomes["unique_email"].passed
    assert outcomes["unique_email"].severity == "warn"


def test_row_count_and_custom_sql(loaded) -> None:
    _kind, _, fact = loaded
    target = fact.spec.targets[0]
    assert not evaluate_check(target, row_count_between(max=2)).passed
    outcome = evaluate_check(target, row_count_between(min=3, max=3))
    assert outcome.passed and outcome.detail.startswith("3 row(s)")
    silver = evaluate_check(
        target, sql_check("silver", "SELECT customer_id FROM {table} WHERE tier = 'silver'")
    )
    assert not silver.passed and silver.failing_count == 3
    assert sorted(r["customer_id"] for r in silver.sample) == [1, 2, 3]


def test_missing_table_fails_with_a_clear_detail(tmp_path: Path) -> None:
    conn = DuckDBConnection(name="chk_missing", path=str(tmp_path / "m.duckdb"))

    @ematix.table(schema="chk", connection=conn)
    class Never:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=Never, mode="merge")
    def never(conn):
        return "SELECT 1 AS id"

    outcome = evaluate_check(never.spec.targets[0], not_null("id"))
    assert not outcome.passed
    assert "does not exist" in outcome.detail
