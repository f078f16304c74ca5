"""Binary ``COPY`` into PostgreSQL: chosen only where every type maps exactly, values unchanged.

``PostgresBackend.copy_arrow`` sends binary ``COPY`` data when
:func:`~ematix_engine.backends.pg_binary.binary_plan` accepts the batches' types for the target
columns, and CSV otherwise. Both must store the same values; the server's checks (a
``varchar(n)`` bound) still apply on the binary path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pyarrow as pa
import pytest

from ematix_engine.backends.pg_binary import binary_plan
from ematix_engine.backends.postgres import PostgresBackend
from ematix_engine.connections import PostgresConnection
from tests.fixtures.postgres import PgSchema

_TYPES = psycopg.postgres.types
BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8 = (
    _TYPES[n].oid
    for n in ("bool", "bytea", "int8", "int2", "int4", "text", "json", "float4", "float8")
)
VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ, JSONB, NUMERIC = (
    _TYPES[n].oid for n in ("varchar", "date", "timestamp", "timestamptz", "jsonb", "numeric")
)


@pytest.mark.parametrize(
    ("arrow", "oid", "binary"),
    [
        (pa.int64(), INT8, True),
        (pa.int32(), INT8, True),  # widened
        (pa.uint16(), INT4, True),  # fits the wider signed type
        (pa.int64(), INT4, False),  # narrowing: the CSV path and the server decide
        (pa.uint64(), INT8, False),
        (pa.float64(), FLOAT8, True),
        (pa.float32(), FLOAT8, False),  # widening a float32 changes its decimal value
        (pa.string(), VARCHAR, True),
        (pa.large_string(), TEXT, True),
        (pa.dictionary(pa.int32(), pa.string()), TEXT, True),
        (pa.string(), JSONB, True),
        (pa.string(), INT8, False),  # text into a number: parsed by the server
        (pa.binary(), BYTEA, True),
        (pa.date32(), DATE, True),
        (pa.timestamp("ms", tz="Europe/Berlin"), TIMESTAMPTZ, True),
        (pa.timestamp("us"), TIMESTAMP, True),
        (pa.timestamp("us", tz="UTC"), TIMESTAMP, False),  # zoned into zone-less
        (pa.timestamp("us"), TIMESTAMPTZ, False),
        (pa.timestamp("ns", tz="UTC"), TIMESTAMPTZ, False),  # would lose nanoseconds
        (pa.null(), TIMESTAMPTZ, True),
        (pa.decimal128(10, 2), NUMERIC, False),
    ],
)
def test_binary_only_where_the_type_maps_exactly(
    arrow: pa.DataType, oid: int, binary: bool
) -> None:
    plan = binary_plan(pa.schema([pa.field("v", arrow)]), [oid])
    assert (plan is not None) is binary


def _backend(pg_schema: PgSchema) -> PostgresBackend:
    return PostgresBackend.open(PostgresConnection(name="pg", url=pg_schema.dsn))


def _copy(pg_schema: PgSchema, ddl: str, table: pa.Table) -> list[tuple]:
    backend = _backend(pg_schema)
    target = f'"{pg_schema.name}"."t"'
    try:
        backend.execute(f"CREATE TABLE {target} ({ddl})")
        backend.begin()
        copied = backend.copy_arrow(target, table.to_reader(max_chunksize=3))
        backend.commit()
        assert copied == table.num_rows
        return backend.query(f"SELECT * FROM {target} ORDER BY 1")
    finally:
        backend.close()


def test_every_binary_type_round_trips(pg_schema: PgSchema) -> None:
    """Each type the binary path takes, with NULLs, edge values and several batches."""
    instant = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)
    table = pa.table(
        {
            "i8": pa.array([1, -(2**63), 2**63 - 1, None, 5], pa.int64()),
            "i4": pa.array([1, -(2**31), 2**31 - 1, None, 5], pa.int32()),
            "i2": pa.array([1, -(2**15), 2**15 - 1, None, 5], pa.int16()),
            "f8": pa.array([0.3, float("inf"), -0.0, None, 1e-300], pa.float64()),
            "f4": pa.array([0.5, float("-inf"), 1.25, None, 3.0], pa.float32()),
            "b": pa.array([True, False, None, True, False]),
            "s": pa.array(["", "héllo ✓", None, 'a,b\n"c"', "x" * 1000]),
            "v": pa.array(["abc", "", None, "d", "e"]).dictionary_encode(),
            "j": pa.array(['{"a": 1}', "[]", None, '"x"', "null"]),
            "jb": pa.array(['{"b": [1, 2]}', "{}", None, "1", '{"a": 1}']),
            "by": pa.array([b"\x00\xff", b"", None, b"abc", b"\\x"], pa.binary()),
            "d": pa.array([date(2026, 1, 1), date(1, 1, 1), None, date(9999, 12, 31), None]),
            "ts": pa.array([datetime(2026, 1, 1), None, datetime(1970, 1, 1), None, None]),
            "tz": pa.array([instant, None, datetime(2000, 1, 1, tzinfo=UTC), None, None]),
            "n": pa.nulls(5),
            "w": pa.array([1, -128, 127, None, 5], pa.int8()),  # widened into bigint
        }
    )
    ddl = (
        "i8 bigint, i4 integer, i2 smallint, f8 double precision, f4 real, b boolean, s text, "
        "v varchar(5), j json, jb jsonb, by bytea, d date, ts timestamp, tz timestamptz, "
        "n timestamptz, w bigint"
    )
    oids = [INT8, INT4, INT2, FLOAT8, FLOAT4, BOOL, TEXT, VARCHAR, JSON, JSONB, BYTEA, DATE]
    assert binary_plan(table.schema, [*oids, TIMESTAMP, TIMESTAMPTZ, TIMESTAMPTZ, INT8]) is not None

    rows = _copy(pg_schema, ddl, table)

    by_first = {r[0]: r for r in rows if r[0] is not None}
    assert len(rows) == 5
    one = by_first[1]
    assert one[1:5] == (1, 1, 0.3, 0.5)
    assert one[5:8] == (True, "", "abc")
    assert one[8] == {"a": 1} and one[9] == {"b": [1, 2]}
    assert one[10] == b"\x00\xff" and one[11] == date(2026, 1, 1)
    assert one[12] == datetime(2026, 1, 1) and one[13] == instant and one[14] is None
    extreme = by_first[-(2**63)]
    assert extreme[1:4] == (-(2**31), -(2**15), float("inf"))
    assert extreme[6] == "héllo ✓" and extreme[11] == date(1, 1, 1)
    top = by_first[2**63 - 1]
    assert top[1:3] == (2**31 - 1, 2**15 - 1) and str(top[3]) == "-0.0"
    assert top[12] == datetime(1970, 1, 1)
    assert top[13] == datetime(2000, 1, 1, tzinfo=UTC)
    five = by_first[5]
    assert five[3] == 1e-300 and five[6] == "x" * 1000 and five[11] is None
    null_row = next(r for r in rows if r[0] is None)
    assert null_row[1:3] == (None, None) and null_row[6] == 'a,b\n"c"'
    assert null_row[8] == "x" and null_row[10] == b"abc" and null_row[11] == date(9999, 12, 31)
    assert top[6] is None and top[8] is None and top[9] is None and top[10] is None
    assert sorted(r[15] for r in rows if r[15] is not None) == [-128, 1, 5, 127]


def test_zoned_instants_stay_the_same_instant(pg_schema: PgSchema) -> None:
    """A zone other than UTC labels the same instant: the stored value is that instant."""
    instant = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    table = pa.table(
        {
            "id": pa.array([1], pa.int64()),
            "at": pa.array([instant], pa.timestamp("us", tz="UTC")).cast(
                pa.timestamp("us", tz="America/New_York")
            ),
        }
    )
    assert _copy(pg_schema, "id bigint, at timestamptz", table) == [(1, instant)]


def test_the_server_still_checks_varchar_lengths(pg_schema: PgSchema) -> None:
    table = pa.table({"id": pa.array([1, 2], pa.int64()), "code": ["short", "much too long"]})
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        _copy(pg_schema, "id bigint, code varchar(8)", table)


def test_types_binary_cannot_carry_go_as_csv(pg_schema: PgSchema) -> None:
    """Narrowing and parsed types take the CSV path and load the same values."""
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "small": pa.array([7, None], pa.int64()),  # into integer: narrowing
            "amount": pa.array(["1.50", "2"], pa.string()),  # into numeric: parsed
        }
    )
    oids = [INT8, INT4, NUMERIC]
    assert binary_plan(table.schema, oids) is None
    rows = _copy(pg_schema, "id bigint, small integer, amount numeric(6,2)", table)
    assert [(r[0], r[1], str(r[2])) for r in rows] == [(1, 7, "1.50"), (2, None, "2.00")]


def test_the_server_still_refuses_nul_in_text(pg_schema: PgSchema) -> None:
    table = pa.table({"id": pa.array([1], pa.int64()), "note": ["a\x00b"]})
    assert binary_plan(table.schema, [INT8, TEXT]) is not None
    with pytest.raises(psycopg.Error, match="0x00"):
        _copy(pg_schema, "id bigint, note text", table)
