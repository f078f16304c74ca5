"""Binary ``COPY`` (ematix_engine.backends.pg_binary) stores exactly what the CSV path stores.

Random rows of every type the binary path takes are COPYed once each way; the stored bytes
(floats by their ``send`` form, which tells -0.0 from 0.0) must be the same.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import pyarrow as pa
import pytest

from ematix_engine.backends import postgres
from ematix_engine.backends.pg_binary import binary_plan
from ematix_engine.backends.postgres import PostgresBackend
from tests.fixtures.postgres import PgSchema

pytestmark = pytest.mark.integration

#: column name → PostgreSQL type; every one has a binary form.
COLUMNS = {
    "i8": "bigint",
    "i4": "integer",
    "i2": "smallint",
    "f8": "double precision",
    "f4": "real",
    "b": "boolean",
    "t": "text",
    "v": "varchar(40)",
    "by": "bytea",
    "d": "date",
    "ts": "timestamp",
    "tz": "timestamptz",
}
TEXTS = ["", " ", "a", "ümlaut", "日本語", "emoji 😀", 'quote " and , comma', "line\nbreak", "\\N"]
FLOATS = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e-310, 0.1 + 0.2, -1.5, 1.7976931348623157e308]


def _rows(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)

    def maybe(value):
        return None if rng.random() < 0.15 else value

    base = dt.datetime(1999, 12, 31, 23, 59, 59, 999_999)
    return pa.table(
        {
            "i8": pa.array(
                [
                    maybe(rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-9, 9)]))
                    for _ in range(n)
                ],
                pa.int64(),
            ),
            "i4": pa.array([maybe(rng.randint(-(2**31), 2**31 - 1)) for _ in range(n)], pa.int32()),
            "i2": pa.array([maybe(rng.randint(-(2**15), 2**15 - 1)) for _ in range(n)], pa.int16()),
            "f8": pa.array(
                [maybe(rng.choice([*FLOATS, rng.uniform(-1e6, 1e6)])) for _ in range(n)],
                pa.float64(),
            ),
            "f4": pa.array(
                [maybe(rng.choice([0.5, -0.0, 3.25, math.nan])) for _ in range(n)], pa.float32()
            ),
            "b": pa.array([maybe(rng.random() < 0.5) for _ in range(n)], pa.bool_()),
            "t": pa.array([maybe(rng.choice(TEXTS)) for _ in range(n)], pa.string()),
            "v": pa.array([maybe(rng.choice(TEXTS)) for _ in range(n)], pa.large_string()),
            "by": pa.array(
                [maybe(rng.randbytes(rng.randint(0, 5))) for _ in range(n)], pa.binary()
            ),
            "d": pa.array(
                [
                    maybe(
                        dt.date(rng.randint(1, 9999), 1, 1) + dt.timedelta(days=rng.randint(0, 364))
                    )
                    for _ in range(n)
                ],
                pa.date32(),
            ),
            "ts": pa.array(
                [
                    maybe(base + dt.timedelta(microseconds=rng.randint(-(10**15), 10**15)))
                    for _ in range(n)
                ],
                pa.timestamp("us"),
            ),
            "tz": pa.array(
                [
                    maybe(base + dt.timedelta(seconds=rng.randint(-(10**9), 10**9)))
                    for _ in range(n)
                ],
                pa.timestamp("ms", tz="Europe/Berlin"),
            ),
        }
    )


def _copy(backend: PostgresBackend, table: str, data: pa.Table) -> None:
    backend.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in COLUMNS.items())})")
    assert backend.copy_arrow(table, data.to_reader(max_chunksize=97)) == data.num_rows


def test_binary_copy_stores_what_csv_stores(
    pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _rows(1_000, seed=12)
    assert binary_plan(data.schema, [20, 23, 21, 701, 700, 16, 25, 1043, 17, 1082, 1114, 1184])
    backend = PostgresBackend(pg_schema.dsn)
    try:
        backend.prepare_load_session()
        s = pg_schema.name
        _copy(backend, f"{s}.via_binary", data)
        monkeypatch.setattr(postgres, "binary_plan", lambda schema, oids: None)
        _copy(backend, f"{s}.via_csv", data)
        # Compare the stored bytes: float8send tells -0.0 from 0.0 (which = does not).
        exact = ", ".join(
            f"encode({t}send({c}), 'hex')" if t in ("float8", "float4") else c
            for c, t in (
                ("i8", ""),
                ("i4", ""),
                ("i2", ""),
                ("f8", "float8"),
                ("f4", "float4"),
                ("b", ""),
                ("t", ""),
                ("v", ""),
                ("by", ""),
                ("d", ""),
                ("ts", ""),
                ("tz", ""),
            )
        )
        for a, b in (("via_csv", "via_binary"), ("via_binary", "via_csv")):
            differ = backend.query(
                f"SELECT COUNT(*) FROM (SELECT {exact} FROM {s}.{a} EXCEPT ALL SELECT {exact} FROM {s}.{b}) AS d"
            )[0][0]
            assert differ == 0, f"{a} holds {differ} rows {b} lacks"
        nulls = backend.query(f"SELECT COUNT(*) FROM {s}.via_binary WHERE t IS NULL")[0][0]
        assert nulls == data.column("t").null_count
    finally:
        backend.close()
