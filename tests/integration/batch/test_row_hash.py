"""row_hash is byte-identical on every backend (Delta too) and matches python_row_hash."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.schema.hashing import NAN_BITS, float_canonical_text, python_row_hash
from ematix_engine.types import BigInt, Boolean, Date, Double, Numeric, Text, TimestampTZ
from tests.integration.batch.harness import BACKENDS, Harness, at, history, make_harness

COLUMNS = {
    "id": "bigint",
    "t": "text",
    "d": "double",
    "n": "numeric(12,2)",
    "ts": "timestamptz",
    "b": "boolean",
    "dt": "date",
    "i": "bigint",
}
TS1 = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
TS2 = datetime(1999, 12, 31, 0, 0, 0, tzinfo=UTC)
ROWS = [
    (1, "héllo ✓ 日本", 1.1, Decimal("10.50"), TS1, True, date(2024, 2, 29), -5),
    (2, "", 1e20, Decimal("-3.00"), TS2, False, date(1999, 12, 31), 0),
    (3, None, -0.5, None, None, None, None, None),
    (
        4,
        "tab\tnl\nquote\"'",
        100.0,
        Decimal("1234567890.01"),
        TS1,
        True,
        date(1, 1, 1),
        9223372036854775807,
    ),
    (5, "0.1+0.2", 0.1 + 0.2, Decimal("0.01"), TS2, False, date(2000, 1, 1), -9223372036854775807),
    # the doubles %.15g could not tell apart, and text that looks like an encoded part
    (6, "0.3", 0.3, None, None, None, None, None),
    (7, "1:a1:b", 5.2990648348713776e16, None, None, None, None, None),
    (8, "N", 5.2990648348713784e16, None, None, None, None, None),
    (9, "", 2.0**53 + 2, None, None, None, None, None),
    (10, None, 1e22, None, None, None, None, None),
    (11, "-0", -0.0, None, None, None, None, None),
    (12, "tiny", 5e-324, None, None, None, None, None),
]


def canonical(value: object) -> str | None:
    """Canonical text per ematix_engine.schema.hashing's table."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float_canonical_text(value)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return (
            value.strftime("%Y-%m-%d") if value.year >= 1000 else f"{value.year:04d}-{value:%m-%d}"
        )
    return str(value)


def load_hashes(h: Harness, rows) -> dict[int, str]:
    src = h.create_source("hsrc", COLUMNS, rows)

    @ematix.table(schema=h.schema, name="hashed")
    class Hashed:
        id: Annotated[BigInt, pk()]
        t: Text | None
        d: Double | None
        n: Numeric[12, 2] | None
        ts: TimestampTZ | None
        b: Boolean | None
        dt: Date | None
        i: BigInt | None

    @ematix.pipeline(
        target=Hashed,
        mode="scd2",
        target_connection=h.name,
        name=f"hash_{h.kind}",
        **h.pipeline_options,
    )
    def load(conn):
        return f"SELECT * FROM {src}"

    load.run()
    return dict(h.query(f"SELECT id, row_hash FROM {h.table('hashed')} ORDER BY id"))


def test_row_hash_is_identical_everywhere(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    harnesses = [make_harness(kind, request, tmp_path, name=kind) for kind in BACKENDS]
    hashes = {h.kind: load_hashes(h, ROWS) for h in harnesses}
    expected = {row[0]: python_row_hash([canonical(v) for v in row[1:]]) for row in ROWS}

    for kind in BACKENDS:
        mismatched = {k: v for k, v in hashes[kind].items() if v != expected[k]}
        assert not mismatched, f"{kind}: rows {sorted(mismatched)} hash differently"


def _double_pipeline(h: Harness, src: str, table: str, name: str):
    """SCD2 of ``(id, d DOUBLE)`` rows of ``src`` into ``table``."""

    @ematix.table(schema=h.schema, name=table)
    class Doubles:
        id: Annotated[BigInt, pk()]
        d: Double | None

    @ematix.pipeline(target=Doubles, mode="scd2", name=name, **h.pipeline_options)
    def load(conn):
        return f"SELECT id, d FROM {src}"

    return load


def test_special_floats_hash_as_documented(h: Harness) -> None:
    """NaN and the infinities hash by their bits (SQLite keeps NaN as NULL)."""
    nan_text = None if h.target_kind == "sqlite" else NAN_BITS
    rows = [(1, float("nan")), (2, float("inf")), (3, float("-inf"))]
    src = h.create_source("fsrc", {"id": "bigint", "d": "double"}, rows)
    load = _double_pipeline(h, src, "floats", "special_floats")
    load.run()
    hashes = dict(h.query(f"SELECT id, row_hash FROM {h.table('floats')} ORDER BY id"))
    assert hashes == {
        1: python_row_hash([nan_text]),
        2: python_row_hash(["7ff0000000000000"]),
        3: python_row_hash(["fff0000000000000"]),
    }
    assert load.run().rows_unchanged == 3  # and a re-run sees nothing new


def test_null_and_empty_string_hash_differently() -> None:
    assert python_row_hash([None]) != python_row_hash([""])
    assert python_row_hash(["a", None]) != python_row_hash(["a", ""])
    assert python_row_hash(["ab", "c"]) != python_row_hash(["a", "bc"])
    assert python_row_hash(["a\0", "b"]) != python_row_hash(["a", "\0b"])


def _pair_pipeline(h: Harness, src: str, name: str, **options):
    @ematix.table(schema=h.schema, name="pairs")
    class Pairs:
        id: Annotated[BigInt, pk()]
        a: Text | None
        b: Text | None

    @ematix.pipeline(target=Pairs, mode="scd2", name=name, **options, **h.pipeline_options)
    def load(conn):
        return f"SELECT id, a, b FROM {src}"

    return load


def test_nul_is_no_column_boundary(h: Harness) -> None:
    """``('a\\0', 'b')`` and ``('a', '\\0b')`` hash differently; so do values that only
    shift text between columns. PostgreSQL text cannot hold NUL: there the shifted values
    alone are loaded."""
    rows = [(1, "ab", "c"), (2, "a", "bc"), (3, None, ""), (4, "", None), (5, "1:a", "1:b")]
    if h.target_kind != "postgres":
        rows += [(6, "a\0", "b"), (7, "a", "\0b")]
    src = h.create_source("pairs_src", {"id": "bigint", "a": "text", "b": "text"}, rows)
    load = _pair_pipeline(h, src, "nul_pairs")
    load.run()
    hashes = dict(h.query(f"SELECT id, row_hash FROM {h.table('pairs')} ORDER BY id"))
    assert hashes == {r[0]: python_row_hash(list(r[1:])) for r in rows}
    assert len(set(hashes.values())) == len(rows)
    assert h.rows("pairs", ["id", "a", "b"]) == rows


def test_doubles_that_15_digits_merge_are_new_versions(h: Harness) -> None:
    """0.1 + 0.2 then 0.3, and two adjacent integral doubles above 2**53: new versions, new hashes."""
    src = h.create_source("dsrc", {"id": "bigint", "d": "double"}, [(1, 0.1 + 0.2), (2, 2.0**60)])
    load = _double_pipeline(h, src, "dbl", "close_doubles")
    load.run()
    h.set_rows("dsrc", [(1, 0.3), (2, 2.0**60 + 256)])
    result = load.run()
    assert (result.rows_inserted, result.rows_unchanged) == (2, 0)
    versions = history(h, "dbl", ["id"], ["d"])
    for key, values in {(1,): [0.1 + 0.2, 0.3], (2,): [2.0**60, 2.0**60 + 256]}.items():
        assert [v["d"] for v in versions[key]] == values
        hashes = [v["row_hash"] for v in versions[key]]
        assert hashes == [python_row_hash([float_canonical_text(d)]) for d in values]
        assert hashes[0] != hashes[1]
    assert load.run().rows_unchanged == 2


def _legacy_row_hash(values: list[str | None]) -> str:
    """The format before length prefixes: texts joined by NUL, NULL as 0xFF, %.15g doubles."""
    import hashlib

    parts = [b"\xff" if v is None else v.encode() for v in values]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def _set_row_hash(h: Harness, table: str, hashes: dict[tuple[int, str], str]) -> None:
    """Overwrite ``row_hash`` per ``(id, valid_from text)`` as a table of an older ematix had it."""
    if h.target_kind == "delta":
        from deltalake import DeltaTable

        dt = DeltaTable(h.delta_path(table))
        for (key, _), value in hashes.items():
            dt.update(updates={"row_hash": f"'{value}'"}, predicate=f"id = {key}")
        return
    for (key, _), value in hashes.items():
        marker = h.marker
        h.execute_target(
            f"UPDATE {h.table(table)} SET row_hash = {marker} WHERE id = {marker}", (value, key)
        )


def _widen_row_hash(h: Harness, table: str) -> None:
    """Give ``row_hash`` the ``VARCHAR(64)`` that ematix declared for SHA-256 hex until 2026-12."""
    if h.target_kind in ("postgres", "duckdb"):  # SQLite and Delta keep no widths
        h.execute_target(f"ALTER TABLE {h.table(table)} ALTER COLUMN row_hash TYPE VARCHAR(64)")


@pytest.mark.parametrize("event_time", [False, True], ids=["snapshot", "event_time"])
def test_sha256_hashes_of_the_previous_format_create_no_versions(
    h: Harness, event_time: bool
) -> None:
    """A table written when row_hash was SHA-256 hex in a VARCHAR(64): it keeps loading."""
    import hashlib

    rows = [(1, "a", at(1)), (2, None, at(1))]
    src = h.create_source("ssrc", {"id": "bigint", "t": "text", "ts": "timestamptz"}, rows)

    @ematix.table(schema=h.schema, name="sha")
    class Sha:
        id: Annotated[BigInt, pk()]
        t: Text | None
        ts: TimestampTZ

    options = {"event_timestamp_column": "ts"} if event_time else {}

    @ematix.pipeline(target=Sha, mode="scd2", name="sha_hashes", **options, **h.pipeline_options)
    def load(conn):
        return f"SELECT id, t, ts FROM {src}"

    load.run()
    _widen_row_hash(h, "sha")
    sha = {(1, ""): hashlib.sha256(b"1:a").hexdigest(), (2, ""): hashlib.sha256(b"N").hexdigest()}
    _set_row_hash(h, "sha", sha)
    assert load.run().rows_unchanged == 2
    h.set_rows("ssrc", [(1, "b", at(2)), rows[1]])
    result = load.run()
    assert (result.rows_inserted, result.rows_unchanged) == (1, 1)
    versions = history(h, "sha", ["id"])
    compare = ["t"] if event_time else ["t", "ts"]
    new_values = {"t": "b", "ts": at(2)}
    assert versions[(1,)][1]["row_hash"] == python_row_hash(
        [canonical(new_values[c]) for c in compare]
    )
    assert len(versions[(1,)][1]["row_hash"]) == 32  # MD5 hex beside the old SHA-256 ones
    assert versions[(2,)][0]["row_hash"] == sha[(2, "")]


@pytest.mark.parametrize("event_time", [False, True], ids=["snapshot", "event_time"])
def test_old_format_hashes_create_no_versions(h: Harness, event_time: bool) -> None:
    """A table whose row_hash was written in the old format: unchanged rows stay one version."""
    rows = [(1, "a", 0.1 + 0.2, at(1)), (2, None, 1e22, at(1)), (3, "c\td", None, at(1))]
    cols = {"id": "bigint", "t": "text", "d": "double", "ts": "timestamptz"}
    src = h.create_source("osrc", cols, rows)

    @ematix.table(schema=h.schema, name="old")
    class Old:
        id: Annotated[BigInt, pk()]
        t: Text | None
        d: Double | None
        ts: TimestampTZ

    options = {"event_timestamp_column": "ts"} if event_time else {}

    @ematix.pipeline(target=Old, mode="scd2", name="old_hashes", **options, **h.pipeline_options)
    def load(conn):
        return f"SELECT id, t, d, ts FROM {src}"

    load.run()
    compare = ["t", "d"] if event_time else ["t", "d", "ts"]

    def legacy(row: tuple) -> str:
        texts = dict(zip(["t", "d", "ts"], row[1:], strict=True))
        return _legacy_row_hash(
            [
                None
                if texts[c] is None
                else f"{texts[c]:.15g}"  # the old format: C %.15g
                if c == "d"
                else canonical(texts[c])
                for c in compare
            ]
        )

    old = {(r[0], ""): legacy(r) for r in rows}
    _widen_row_hash(h, "old")
    _set_row_hash(h, "old", old)
    assert dict(h.query(f"SELECT id, row_hash FROM {h.table('old')}")) == {
        k: v for (k, _), v in old.items()
    }

    result = load.run()
    assert (result.rows_inserted, result.rows_updated, result.rows_closed) == (0, 0, 0)
    assert result.rows_unchanged == 3
    assert h.count("old") == 3

    changed = (1, "changed", 0.1 + 0.2, at(2))
    h.set_rows("osrc", [changed, *rows[1:]])
    result = load.run()
    assert (result.rows_inserted, result.rows_unchanged) == (1, 2)
    versions = history(h, "old", ["id"])
    assert len(versions[(1,)]) == 2 and len(versions[(2,)]) == 1 and len(versions[(3,)]) == 1
    new_values = {"t": "changed", "d": 0.1 + 0.2, "ts": at(2)}
    expected_new = python_row_hash([canonical(new_values[c]) for c in compare])
    assert versions[(1,)][1]["row_hash"] == expected_new
    assert versions[(2,)][0]["row_hash"] == old[(2, "")]  # untouched rows keep the old hash


def test_sqlite_non_canonical_timestamp_text_hashes_like_postgres(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    sqlite = make_harness("sqlite", request, tmp_path, name="sqlite")
    row = (1, "x", 1.0, Decimal("1.00"), TS2, True, date(2000, 1, 1), 1)
    expected = python_row_hash([canonical(v) for v in row[1:]])
    sqlite.create_source("hsrc", COLUMNS, [])
    sqlite.execute(
        f"INSERT INTO {sqlite.table('hsrc')} VALUES (1, 'x', 1.0, 1.00, "
        "'1999-12-31T00:00:00Z', 1, '2000-01-01', 1)"
    )

    @ematix.table(schema="an", name="hashed")
    class Hashed:
        id: Annotated[BigInt, pk()]
        t: Text | None
        d: Double | None
        n: Numeric[12, 2] | None
        ts: TimestampTZ | None
        b: Boolean | None
        dt: Date | None
        i: BigInt | None

    @ematix.pipeline(target=Hashed, mode="scd2", target_connection="sqlite")
    def load(conn):
        return f"SELECT * FROM {sqlite.table('hsrc')}"

    load.run()
    assert sqlite.scalar('SELECT row_hash FROM "hashed"') == expected
