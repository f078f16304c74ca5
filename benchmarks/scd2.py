"""SCD2 benchmark: ematix vs dlt (DuckDB and PostgreSQL) and vs a PostgreSQL floor, in one run.

Workload (issue 3, "Benchmark"): N rows ``(id BIGINT, name TEXT, category TEXT, value DOUBLE)``
loaded as SCD2 history, then a full reload of the snapshot in which 10% of the rows changed
(``id % 10 = 1``: new name and value) and 1% disappeared (``id % 100 = 2``), with
``deletes="close"``. After load 2 every system must hold ``N + N/10`` versions, ``N - N/100``
current and ``N/10 + N/100`` closed.

Phases (each load of each system runs in its own subprocess, so peak RSS is attributable):

* ``ematix duckdb (same file)``: source tables in the target DuckDB file (``INSERT … SELECT`` plan).
* ``ematix duckdb ← duckdb`` / ``← sqlite``: source in another file (Arrow batches staged).
* ``dlt scd2 arrow``: dlt 1.31 ``write_disposition={"disposition": "merge", "strategy":
  "scd2"}`` into DuckDB, fed a ``pyarrow.Table`` read from Parquet before the clock starts. Arrow
  input needs a row-version column; dlt's documented helper is ``add_row_hash_to_table`` (pandas).
  A second dlt variant hashes with DuckDB instead (faster).
* ``dlt scd2 -> postgres``: the same Arrow input (DuckDB row hash) into PostgreSQL with each of
  dlt's loaders: ``insert_values`` (default), ``csv`` (COPY) and ``parquet`` (ADBC).
* ``floor -> postgres``: what any SCD2 load must at least write. Load 1: COPY of the final
  table's rows with their managed columns into an empty table, plus its primary-key build.
  Load 2: COPY of the keys to close, the closing ``UPDATE`` by that key list and COPY of the new
  versions. The text buffers are built before the clock starts.
* ``COPY text buffer``: the bare rows, for reference.
* ``ematix postgres ← sqlite`` / ``← duckdb``: cross-database SCD2 into PostgreSQL.
* ``ematix sqlite ← duckdb`` / ``ematix delta ← duckdb``: reported, no target.

Targets (issue 12): DuckDB >= 2.5x dlt's documented Arrow path and >= 1.5x dlt's fastest variant
on both loads; PostgreSQL <= 1.25x the floor and >= 2x dlt's fastest PostgreSQL loader on both
loads; identical counts everywhere.

Every system gets one warm-up load of 100 rows in the same process before the timed load, so the
figures are steady-state load times, not import times. Inside ematix runs the backend calls are
timed (``benchmarks/_profile.py``) to show where the time goes.

Run: ``.venv/bin/python -m benchmarks.scd2 [--rows 1000000] [--repeat 3]
[--only duckdb|postgres|other] [--out results.json] [--py-spy DIR]``.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_TAG = "@@RESULT "
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
WARMUP_ROWS = 100

# name, kind, target, source
PHASES: list[dict[str, str]] = [
    {
        "name": "dlt scd2 arrow (pandas row hash)",
        "kind": "dlt",
        "hash": "pandas",
        "group": "duckdb",
    },
    {
        "name": "dlt scd2 arrow (duckdb row hash)",
        "kind": "dlt",
        "hash": "duckdb",
        "group": "duckdb",
    },
    {
        "name": "ematix duckdb (same file)",
        "kind": "ematix",
        "target": "duckdb",
        "source": "same",
        "group": "duckdb",
    },
    {
        "name": "ematix duckdb <- duckdb file",
        "kind": "ematix",
        "target": "duckdb",
        "source": "duckdb",
        "group": "duckdb",
    },
    {
        "name": "ematix duckdb <- sqlite file",
        "kind": "ematix",
        "target": "duckdb",
        "source": "sqlite",
        "group": "duckdb",
    },
    {"name": "floor -> postgres", "kind": "floor", "group": "postgres"},
    {"name": "COPY text buffer -> postgres", "kind": "copy", "group": "postgres"},
    {
        "name": "dlt scd2 -> postgres (insert_values)",
        "kind": "dlt",
        "hash": "duckdb",
        "destination": "postgres",
        "format": "insert_values",
        "group": "postgres",
    },
    {
        "name": "dlt scd2 -> postgres (csv)",
        "kind": "dlt",
        "hash": "duckdb",
        "destination": "postgres",
        "format": "csv",
        "group": "postgres",
    },
    {
        "name": "dlt scd2 -> postgres (parquet, adbc)",
        "kind": "dlt",
        "hash": "duckdb",
        "destination": "postgres",
        "format": "parquet",
        "group": "postgres",
    },
    {
        "name": "ematix postgres <- sqlite",
        "kind": "ematix",
        "target": "postgres",
        "source": "sqlite",
        "group": "postgres",
    },
    {
        "name": "ematix postgres <- duckdb",
        "kind": "ematix",
        "target": "postgres",
        "source": "duckdb",
        "group": "postgres",
    },
    {
        "name": "ematix sqlite <- duckdb file",
        "kind": "ematix",
        "target": "sqlite",
        "source": "duckdb",
        "group": "other",
    },
    {
        "name": "ematix delta <- duckdb file",
        "kind": "ematix",
        "target": "delta",
        "source": "duckdb",
        "group": "other",
    },
]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


# ------------------------------------------------------------------------------- sources
def prepare_sources(workdir: Path, rows: int) -> dict[str, int]:
    """Write both snapshots to Parquet, a DuckDB source, a SQLite source and the same-file DB."""
    import sqlite3

    import duckdb

    src = workdir / "source.duckdb"
    con = duckdb.connect(str(src))
    con.execute(
        "CREATE TABLE items_1 AS SELECT i::BIGINT AS id, 'name_' || i AS name, "
        "'category_' || (i % 50) AS category, round((i * 37 % 100000) / 100.0, 2)::DOUBLE AS value "
        f"FROM range(1, {rows} + 1) AS t(i) ORDER BY i"
    )
    con.execute(
        "CREATE TABLE items_2 AS SELECT id, "
        "CASE WHEN id % 10 = 1 THEN name || '_v2' ELSE name END AS name, category, "
        "CASE WHEN id % 10 = 1 THEN value + 1 ELSE value END AS value "
        "FROM items_1 WHERE id % 100 <> 2 ORDER BY id"
    )
    for n in (1, 2):
        con.execute(f"COPY items_{n} TO '{workdir / f'items_{n}.parquet'}' (FORMAT parquet)")
    changed = con.execute("SELECT count(*) FROM items_1 WHERE id % 10 = 1").fetchone()[0]
    deleted = con.execute("SELECT count(*) FROM items_1 WHERE id % 100 = 2").fetchone()[0]
    con.close()

    same = duckdb.connect(str(workdir / "same.duckdb"))
    same.execute("CREATE SCHEMA src")
    for n in (1, 2):
        same.execute(
            f"CREATE TABLE src.items_{n} AS SELECT * FROM read_parquet('{workdir / f'items_{n}.parquet'}')"
        )
    same.close()

    lite = sqlite3.connect(str(workdir / "source.sqlite"))
    reader = duckdb.connect(str(src), read_only=True)
    for n in (1, 2):
        lite.execute(
            f"CREATE TABLE items_{n} (id INTEGER PRIMARY KEY, name TEXT, category TEXT, value REAL)"
        )
        cursor = reader.execute(f"SELECT * FROM items_{n} ORDER BY id")
        while chunk := cursor.fetchmany(100_000):
            lite.executemany(f"INSERT INTO items_{n} VALUES (?, ?, ?, ?)", chunk)
        lite.commit()
    reader.close()
    lite.close()
    return {
        "rows_load_1": rows,
        "rows_load_2": rows - deleted,
        "changed": changed,
        "deleted": deleted,
        "total_versions": rows + changed,
        "current": rows - deleted,
        "closed": changed + deleted,
    }


# ------------------------------------------------------------------------------- children
def child_ematix(cfg: dict[str, Any]) -> dict[str, Any]:
    """One timed ematix SCD2 load (after a warm-up load of WARMUP_ROWS into a scratch table)."""
    from typing import Annotated

    from benchmarks._profile import StatementProfiler
    from ematix_engine import (
        DuckDBConnection,
        PostgresConnection,
        SQLiteConnection,
        ematix,
        pk,
        register_connection,
    )
    from ematix_engine.types import BigInt, Double, Text

    workdir = Path(cfg["workdir"])
    load = cfg["load"]
    profiler = StatementProfiler()
    profiler.install()

    slug = f"{cfg['source']}"
    rep = cfg["rep"]
    if cfg["target"] == "duckdb":
        same = cfg["source"] == "same"
        target_path = workdir / ("same.duckdb" if same else f"target_{slug}_r{rep}.duckdb")
        register_connection(DuckDBConnection(name="target", path=str(target_path)))
        schema = f"bench_r{rep}"
    elif cfg["target"] == "sqlite":
        target_path = workdir / f"target_{slug}_r{rep}.sqlite"
        register_connection(SQLiteConnection(name="target", path=str(target_path)))
        schema = "main"
    elif cfg["target"] == "delta":
        from ematix_engine import DeltaLocalConnection

        target_path = workdir / f"delta_r{rep}"
        register_connection(DeltaLocalConnection(name="target", path=str(target_path)))
        schema = "bench"
    else:
        register_connection(PostgresConnection(name="target", url=cfg["dsn"]))
        schema = cfg["pg_schema"]
    if cfg["source"] == "same":
        source_conn, prefix = None, "src."
    elif cfg["source"] == "duckdb":
        register_connection(DuckDBConnection(name="source", path=str(workdir / "source.duckdb")))
        source_conn, prefix = "source", ""
    else:
        register_connection(SQLiteConnection(name="source", path=str(workdir / "source.sqlite")))
        source_conn, prefix = "source", ""

    state = {"sql": ""}

    def declare(table: str):
        @ematix.table(schema=schema, name=table, connection="target")
        class Items:
            id: Annotated[BigInt, pk()]
            name: Text | None
            category: Text | None
            value: Double | None

        @ematix.pipeline(
            target=Items, mode="scd2", deletes="close", source_connection=source_conn, name=table
        )
        def items(conn):
            return state["sql"]

        return items

    table = f"items_{cfg['target']}_from_{slug}_r{rep}"
    warm = declare(f"warm_{table}")
    timed = declare(table)

    state["sql"] = f"SELECT id, name, category, value FROM {prefix}items_{load} LIMIT {WARMUP_ROWS}"
    warm.run()
    profiler.reset()
    rss_before = _rss_mib()

    state["sql"] = f"SELECT id, name, category, value FROM {prefix}items_{load}"
    started = time.perf_counter()
    result = timed.run()
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "seconds": seconds,
        "rss_before_mib": rss_before,
        "rss_peak_mib": _rss_mib(),
        "result": {
            "inserted": result.rows_inserted,
            "updated": result.rows_updated,
            "unchanged": result.rows_unchanged,
            "closed": result.rows_closed,
            "deleted": result.rows_deleted,
        },
        "profile": {k: round(v, 4) for k, v in profiler.breakdown(seconds).items()},
        "statements": profiler.statements(),
    }
    if cfg["target"] in ("duckdb", "sqlite", "delta"):
        import duckdb

        con = duckdb.connect()
        if cfg["target"] == "duckdb":
            con.execute(f"ATTACH '{target_path}' AS t (READ_ONLY)")
            q = f"FROM t.{schema}.{table}"
        elif cfg["target"] == "sqlite":
            import sqlite3

            con.close()
            con = sqlite3.connect(str(target_path))  # SQLite has count(*) FILTER too
            q = f'FROM "{table}"'
        else:
            from deltalake import DeltaTable

            arrow = DeltaTable(str(target_path / schema / table)).to_pyarrow_table(
                columns=["is_current"]
            )
            con.register("v", arrow)
            q = "FROM v"
        out["counts"] = _counts(con, q, "NOT is_current", "is_current")
        con.close()
    else:
        import psycopg

        with psycopg.connect(cfg["dsn"]) as con:
            q = f'FROM "{schema}"."{table}"'
            out["counts"] = _counts(con, q, "NOT is_current", "is_current")
    return out


def _counts(con: Any, from_sql: str, closed: str, current: str) -> dict[str, int]:
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {current}), count(*) FILTER (WHERE {closed}) "
        f"{from_sql}"
    ).fetchone()
    return {"total_versions": int(row[0]), "current": int(row[1]), "closed": int(row[2])}


def child_dlt(cfg: dict[str, Any]) -> dict[str, Any]:
    """One timed dlt SCD2 load of an in-memory Arrow table (after a warm-up load)."""
    import dlt
    import duckdb
    import pyarrow.parquet as pq

    workdir = Path(cfg["workdir"])
    load = cfg["load"]
    variant = cfg["hash"]
    table = pq.read_table(workdir / f"items_{load}.parquet")

    if variant == "pandas":
        from dlt.sources.helpers.transform import add_row_hash_to_table

        row_hash = add_row_hash_to_table("row_hash")
    else:

        def row_hash(tbl):
            # What a user without pandas would write: one vectorised hash over the row.
            return duckdb.sql(
                "SELECT *, (hash(id, name, category, value) >> 1)::BIGINT AS row_hash FROM tbl"
            ).to_arrow_table()

    @dlt.resource(
        name="items",
        write_disposition={
            "disposition": "merge",
            "strategy": "scd2",
            "row_version_column_name": "row_hash",
        },
    )
    def items(data):
        yield data

    on_postgres = cfg.get("destination") == "postgres"
    fmt = cfg.get("format")
    tag = f"{variant}_{fmt}" if on_postgres else variant

    def pipeline(name: str):
        if on_postgres:
            destination = dlt.destinations.postgres(_dlt_credentials(cfg["dsn"]))
            dataset = f"{cfg['pg_schema']}_{name}"
        else:
            destination = dlt.destinations.duckdb(str(workdir / f"{name}.duckdb"))
            dataset = "bench"
        return dlt.pipeline(
            pipeline_name=name,
            destination=destination,
            dataset_name=dataset,
            pipelines_dir=str(workdir / "dlt_pipelines"),
        )

    options = {"loader_file_format": fmt} if on_postgres else {}
    warm = pipeline(f"warm_dlt_{tag}_r{cfg['rep']}")
    warm.run(items(table.slice(0, WARMUP_ROWS)).add_map(row_hash), **options)
    rss_before = _rss_mib()
    name = f"dlt_{tag}_r{cfg['rep']}"
    timed = pipeline(name)
    started = time.perf_counter()
    info = timed.run(items(table).add_map(row_hash), **options)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "seconds": seconds,
        "rss_before_mib": rss_before,
        "rss_peak_mib": _rss_mib(),
    }
    if on_postgres:
        import psycopg

        formats = {
            job.job_file_info.file_format
            for package in info.load_packages
            for job in package.jobs["completed_jobs"]
        }
        out["file_formats"] = sorted(formats)  # proves which loader ran
        with psycopg.connect(cfg["dsn"]) as con:
            out["counts"] = _counts(
                con,
                f'FROM "{cfg["pg_schema"]}_{name}".items',
                "_dlt_valid_to IS NOT NULL",
                "_dlt_valid_to IS NULL",
            )
        return out
    con = duckdb.connect(str(workdir / f"{name}.duckdb"), read_only=True)
    out["counts"] = _counts(
        con, "FROM bench.items", "_dlt_valid_to IS NOT NULL", "_dlt_valid_to IS NULL"
    )
    con.close()
    return out


def _dlt_credentials(dsn: str) -> str:
    """dlt insists on a password; a trust-auth server ignores the one added here."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{parts.username or 'postgres'}:unused@{host}{port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def child_copy(cfg: dict[str, Any]) -> dict[str, Any]:
    """COPY the load's snapshot from a pre-built text buffer into an empty table."""
    import psycopg
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    workdir = Path(cfg["workdir"])
    load = cfg["load"]
    schema = cfg["pg_schema"]
    table = pq.read_table(workdir / f"items_{load}.parquet")
    import io

    # COPY text format: tab-separated, no quoting (the data holds no tabs, backslashes or NULLs).
    buffer = io.BytesIO()
    pa_csv.write_csv(
        table,
        buffer,
        pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
    )
    data = buffer.getvalue()
    del buffer, table
    name = f'"{schema}"."copy_load_{load}_r{cfg["rep"]}"'
    with psycopg.connect(cfg["dsn"]) as con:
        con.execute(
            f"CREATE TABLE {name} (id BIGINT, name TEXT, category TEXT, value DOUBLE PRECISION)"
        )
        con.commit()
        # warm-up: the same path with the first rows, rolled back
        cut = 0
        for _ in range(WARMUP_ROWS):
            cut = data.index(b"\n", cut) + 1
        with con.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN") as copy:
            copy.write(data[:cut])
        con.rollback()
        rss_before = _rss_mib()
        view = memoryview(data)
        step = 1 << 20
        started = time.perf_counter()
        with con.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN") as copy:
            for offset in range(0, len(view), step):
                copy.write(view[offset : offset + step])
        con.commit()
        seconds = time.perf_counter() - started
        rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    return {
        "seconds": seconds,
        "rss_before_mib": rss_before,
        "rss_peak_mib": _rss_mib(),
        "rows": int(rows),
        "buffer_mib": round(len(data) / 2**20, 1),
    }


_FLOOR_COLUMNS = (
    "id BIGINT NOT NULL, name TEXT, category TEXT, value DOUBLE PRECISION, "
    "valid_from TIMESTAMPTZ NOT NULL, valid_to TIMESTAMPTZ, is_current BOOLEAN NOT NULL, "
    "row_hash VARCHAR(64) NOT NULL, is_deleted BOOLEAN NOT NULL, "
    "_loaded_at TIMESTAMPTZ NOT NULL, _batch_id TEXT NOT NULL"
)


def _floor_buffer(workdir: Path, select: str) -> bytes:
    """COPY text of ``select`` (rows with every managed column, as an SCD2 table holds them)."""
    import duckdb

    out = workdir / f"floor_{os.getpid()}.tsv"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for n in (1, 2):
        con.execute(
            f"CREATE VIEW items_{n} AS SELECT * FROM read_parquet('{workdir / f'items_{n}.parquet'}')"
        )
    con.execute(
        f"COPY ({select}) TO '{out}' (FORMAT csv, DELIMITER '\t', HEADER false, NULLSTR '\\N')"
    )
    con.close()
    data = out.read_bytes()
    out.unlink()
    return data


def _versions_sql(source: str, at: str, batch: str) -> str:
    """Versions of ``source`` rows opened at ``at`` (a 64-hex row_hash, like ematix's)."""
    return (
        f"SELECT id, name, category, value, TIMESTAMPTZ '{at}' AS valid_from, "
        "NULL::TIMESTAMPTZ AS valid_to, TRUE AS is_current, "
        "sha256(concat(id, name, category, value)) AS row_hash, FALSE AS is_deleted, "
        f"TIMESTAMPTZ '{at}' AS _loaded_at, '{batch}' AS _batch_id FROM {source} ORDER BY id"
    )


def child_floor(cfg: dict[str, Any]) -> dict[str, Any]:
    """The least a PostgreSQL SCD2 load writes (see the module docstring), timed like ematix.

    Load 1: COPY the final table's rows, then ADD PRIMARY KEY (id, valid_from). Load 2 starts
    from load 1's table (built before the clock): COPY the keys to close into a temp table,
    UPDATE their current versions, COPY the new versions.
    """
    import psycopg

    workdir = Path(cfg["workdir"])
    load = cfg["load"]
    name = f'"{cfg["pg_schema"]}"."floor_load_{load}_r{cfg["rep"]}"'
    t1, t2 = "2024-01-01 00:00:00+00", "2024-01-02 00:00:00+00"
    first = _floor_buffer(workdir, _versions_sql("items_1", t1, "b" * 32))
    if load == 2:
        keys = _floor_buffer(
            workdir,
            "SELECT a.id FROM items_1 AS a LEFT JOIN items_2 AS b USING (id) "
            "WHERE b.id IS NULL OR a.name IS DISTINCT FROM b.name "
            "OR a.category IS DISTINCT FROM b.category OR a.value IS DISTINCT FROM b.value "
            "ORDER BY a.id",
        )
        changed = "(SELECT b.* FROM items_2 AS b JOIN items_1 AS a USING (id) WHERE a.name IS "
        changed += "DISTINCT FROM b.name OR a.value IS DISTINCT FROM b.value OR a.category IS "
        changed += "DISTINCT FROM b.category) AS c"
        versions = _floor_buffer(workdir, _versions_sql(changed, t2, "c" * 32))
    chunk = 1 << 20

    def copy(con: Any, table: str, data: bytes) -> None:
        view = memoryview(data)
        with con.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as out:
            for offset in range(0, len(view), chunk):
                out.write(view[offset : offset + chunk])

    with psycopg.connect(cfg["dsn"]) as con:
        # warm-up: the same statements on a scratch table, rolled back
        con.execute(f"CREATE TABLE {name} ({_FLOOR_COLUMNS}) WITH (fillfactor = 90)")
        copy(con, name, first[: first.index(b"\n", 0) + 1])
        con.rollback()
        con.execute(f"CREATE TABLE {name} ({_FLOOR_COLUMNS}) WITH (fillfactor = 90)")
        if load == 2:
            copy(con, name, first)
            con.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id, valid_from)")
        con.commit()
        rss_before = _rss_mib()
        steps: dict[str, float] = {}
        started = last = time.perf_counter()

        def step(label: str) -> None:
            nonlocal last
            now = time.perf_counter()
            steps[label] = round(now - last, 4)
            last = now

        if load == 1:
            copy(con, name, first)
            step("COPY the final rows (every column)")
            con.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id, valid_from)")
            step("build the primary key")
        else:
            con.execute("CREATE TEMP TABLE floor_keys (id BIGINT) ON COMMIT DROP")
            copy(con, "floor_keys", keys)
            con.execute("ANALYZE floor_keys")
            step("COPY the keys to close (temp table)")
            con.execute(
                f"UPDATE {name} AS t SET valid_to = '{t2}', is_current = FALSE "
                "FROM floor_keys AS k WHERE t.id = k.id AND t.is_current"
            )
            step("UPDATE: close their current versions")
            copy(con, name, versions)
            step("COPY the new versions")
        con.commit()
        step("commit")
        seconds = time.perf_counter() - started
        out = {
            "seconds": seconds,
            "rss_before_mib": rss_before,
            "rss_peak_mib": _rss_mib(),
            "profile": steps,
        }
        out["counts"] = _counts(con, f"FROM {name}", "NOT is_current", "is_current")
        out["buffer_mib"] = round(
            (len(first) if load == 1 else len(keys) + len(versions)) / 2**20, 1
        )
    return out


def run_child(cfg: dict[str, Any]) -> None:
    """Entry point of a phase subprocess: print one tagged JSON line."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    kind = cfg["kind"]
    handler = {
        "ematix": child_ematix,
        "dlt": child_dlt,
        "copy": child_copy,
        "floor": child_floor,
    }[kind]
    out = handler(cfg)
    print(RESULT_TAG + json.dumps(out), flush=True)


# ------------------------------------------------------------------------------- parent
def _spawn(cfg: dict[str, Any], py_spy: Path | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.scd2", "--child", json.dumps(cfg)]
    if py_spy is not None and cfg["kind"] == "ematix":
        binary = shutil.which("py-spy") or "py-spy"
        out = py_spy / f"{_slug(cfg['name'])}_load{cfg['load']}.txt"
        command = [
            binary,
            "record",
            "--idle",
            "-r",
            "250",
            "--format",
            "raw",
            "-o",
            str(out),
            "--",
            *command,
        ]
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false", PYTHONPATH=str(ROOT))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
    return {"error": f"exit {done.returncode}: " + "\n".join(tail)}


def _pg_available(dsn: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=5) as con:
            con.execute("SELECT 1")
        return None
    except Exception as error:  # report and skip the PostgreSQL phases
        return str(error).strip().splitlines()[0]


def _pg_schema(dsn: str, schema: str, *, create: bool) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        # dlt's datasets are schemas named after it
        others = con.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (schema + "_",)
        ).fetchall()
        for (other,) in others:
            con.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        if create:
            con.execute(f'CREATE SCHEMA "{schema}"')


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


DUCKDB_EMATIX = (
    "ematix duckdb (same file)",
    "ematix duckdb <- duckdb file",
    "ematix duckdb <- sqlite file",
)
POSTGRES_EMATIX = ("ematix postgres <- sqlite", "ematix postgres <- duckdb")
OTHER_EMATIX = ("ematix sqlite <- duckdb file", "ematix delta <- duckdb file")
#: (label, baseline, comparison, limit): ``ours / baseline`` must be <= limit ("le") or
#: ``baseline / ours`` >= limit ("ge").
DUCKDB_TARGETS = (
    ("dlt documented (pandas hash)", "dlt_documented", "ge", 2.5),
    ("dlt fastest variant", "dlt_fastest", "ge", 1.5),
)
POSTGRES_TARGETS = (
    ("floor (COPY + key / UPDATE)", "floor", "le", 1.25),
    ("dlt fastest postgres loader", "dlt_pg_fastest", "ge", 2.0),
)


def _check(ours: float | None, base: float | None, how: str, limit: float) -> dict[str, Any]:
    ratio = _ratio(ours, base) if how == "le" else _ratio(base, ours)
    met = None if ratio is None else (ratio <= limit if how == "le" else ratio >= limit)
    sign = "<=" if how == "le" else ">="
    kind = "ours / baseline" if how == "le" else "baseline / ours"
    return {
        "ours_s": ours,
        "baseline_s": base,
        "ratio": ratio,
        "ratio_is": kind,
        "target": f"{sign} {limit}x",
        "met": met,
    }


def summarize(results: dict[str, dict[int, dict[str, Any]]], expected: dict[str, int]) -> dict:
    """Ratios against every baseline, target checks and count agreement."""

    def secs(name: str, load: int) -> float | None:
        r = results.get(name, {}).get(load, {})
        return r.get("seconds")

    def fastest(names: list[str], load: int) -> tuple[str | None, float | None]:
        times = {n: secs(n, load) for n in names if secs(n, load)}
        if not times:
            return None, None
        name = min(times, key=times.__getitem__)
        return name, times[name]

    summary: dict[str, Any] = {"duckdb": {}, "postgres": {}, "other": {}, "baselines": {}}
    dlt_duck = [p["name"] for p in PHASES if p["kind"] == "dlt" and p["group"] == "duckdb"]
    dlt_pg = [p["name"] for p in PHASES if p["kind"] == "dlt" and p["group"] == "postgres"]
    for load in (1, 2):
        fast_duck, fast_duck_s = fastest(dlt_duck, load)
        fast_pg, fast_pg_s = fastest(dlt_pg, load)
        baselines = {
            "dlt_documented": secs(dlt_duck[0], load),
            "dlt_fastest": fast_duck_s,
            "dlt_pg_fastest": fast_pg_s,
            "floor": secs("floor -> postgres", load),
            "copy_bare": secs("COPY text buffer -> postgres", load),
        }
        summary["baselines"][f"load_{load}"] = {
            **baselines,
            "dlt_fastest_name": fast_duck,
            "dlt_pg_fastest_name": fast_pg,
        }
        for group, names, targets in (
            ("duckdb", DUCKDB_EMATIX, DUCKDB_TARGETS),
            ("postgres", POSTGRES_EMATIX, POSTGRES_TARGETS),
        ):
            for name in names:
                if name not in results:
                    continue
                checks = {
                    label: _check(secs(name, load), baselines[key], how, limit)
                    for label, key, how, limit in targets
                }
                summary[group].setdefault(name, {})[f"load_{load}"] = checks
        for name in OTHER_EMATIX:
            if name in results:
                summary["other"].setdefault(name, {})[f"load_{load}"] = {
                    "ours_s": secs(name, load),
                    "ratio_over_duckdb_same_file": _ratio(
                        secs(name, load), secs("ematix duckdb (same file)", load)
                    ),
                }
    for group in ("duckdb", "postgres"):
        for loads in summary[group].values():
            flags = [c["met"] for load in loads.values() for c in load.values()]
            loads["met"] = None if None in flags else all(flags)
    counts = {
        name: loads[2]["counts"]
        for name, loads in results.items()
        if 2 in loads and "counts" in loads[2]
    }
    want = {k: expected[k] for k in ("total_versions", "current", "closed")}
    ran = [p["name"] for p in PHASES if p["kind"] != "copy" and p["name"] in results]
    summary["counts"] = {
        "expected": want,
        "per_system": counts,
        "missing": [name for name in ran if name not in counts],
        "all_identical": bool(counts)
        and not any(
            "counts_disagree_between_repetitions" in loads.get(2, {}) for loads in results.values()
        )
        and all(name in counts for name in ran)
        and all(c == want for c in counts.values()),
    }
    return summary


def print_report(results, expected, summary, meta) -> None:
    """Human-readable tables."""
    print()
    print(
        f"SCD2 benchmark: {meta['rows']:,} rows; load 2 = {expected['changed']:,} changed, "
        f"{expected['deleted']:,} deleted (deletes='close'); {meta['cores']} cores"
    )
    header = f"{'system':36} {'load 1 s':>9} {'load 2 s':>9} {'RSS1 MiB':>9} {'RSS2 MiB':>9}  final counts (versions/current/closed)"
    print(header)
    print("-" * len(header))
    for phase in PHASES:
        loads = results.get(phase["name"])
        if not loads:
            continue
        cells = []
        for n in (1, 2):
            r = loads.get(n, {})
            cells.append(r)
        errors = [r["error"] for r in cells if "error" in r]
        c = cells[1].get("counts") or {}
        counts = f"{c['total_versions']:,}/{c['current']:,}/{c['closed']:,}" if c else ""
        print(
            f"{phase['name']:36} {_fmt(cells[0].get('seconds')):>9} {_fmt(cells[1].get('seconds')):>9} "
            f"{_fmt(cells[0].get('rss_peak_mib'), '.0f'):>9} {_fmt(cells[1].get('rss_peak_mib'), '.0f'):>9}  {counts}"
        )
        for error in errors:
            print("    ERROR:", error.replace("\n", "\n    "))
    if meta.get("repeat", 1) > 1:
        print(f"(best of {meta['repeat']} runs per load; every run, seconds:)")
        for phase in PHASES:
            loads = results.get(phase["name"])
            if loads:
                print(
                    f"  {phase['name']:38} load 1 {loads.get(1, {}).get('runs_s')}  "
                    f"load 2 {loads.get(2, {}).get('runs_s')}"
                )
    e = summary["counts"]["expected"]
    print(
        f"{'expected':36} {'':>9} {'':>9} {'':>9} {'':>9}  "
        f"{e['total_versions']:,}/{e['current']:,}/{e['closed']:,}  "
        f"identical: {summary['counts']['all_identical']}"
    )
    print()
    print("Targets (ours next to each baseline; best of the runs; PASS/FAIL per load):")
    for group in ("duckdb", "postgres"):
        for name, loads in summary[group].items():
            print(f"  {name}:")
            for n in (1, 2):
                for label, c in loads.get(f"load_{n}", {}).items():
                    verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c["met"]]
                    print(
                        f"    load {n}: {_fmt(c['ours_s'])} s vs {label} {_fmt(c['baseline_s'])} s"
                        f" -> {_fmt(c['ratio'], '.2f')}x ({c['ratio_is']}, target "
                        f"{c['target']}) {verdict}"
                    )
    for name, loads in summary["other"].items():
        cells = "; ".join(
            f"load {n}: {_fmt(loads[f'load_{n}']['ours_s'])} s "
            f"({_fmt(loads[f'load_{n}']['ratio_over_duckdb_same_file'], '.2f')}x DuckDB same file)"
            for n in (1, 2)
            if f"load_{n}" in loads
        )
        print(f"  {name} (reported, no target): {cells}")
    for n in (1, 2):
        b = summary["baselines"][f"load_{n}"]
        print(
            f"  baselines load {n}: fastest dlt duckdb = {b['dlt_fastest_name']}, "
            f"fastest dlt postgres = {b['dlt_pg_fastest_name']}, bare COPY "
            f"{_fmt(b['copy_bare'])} s"
        )
    print()
    print("Where ematix spends its time (seconds per plan step; backend calls timed in-process):")
    for phase in PHASES:
        if phase["kind"] not in ("ematix", "floor") or phase["name"] not in results:
            continue
        for n in (1, 2):
            r = results[phase["name"]].get(n, {})
            if "profile" not in r:
                continue
            steps = [(k, v) for k, v in r["profile"].items() if v >= 0.005]
            print(f"  {phase['name']} / load {n} ({r['seconds']:.3f} s):")
            for label, seconds in steps:
                share = seconds / r["seconds"] * 100 if r["seconds"] else 0
                print(f"      {seconds:8.3f} s {share:5.1f}%  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("duckdb", "postgres", "other"), default=None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every phase N times on fresh targets; report the fastest",
    )
    parser.add_argument(
        "--match",
        action="append",
        default=None,
        help="run only phases whose name contains this text (repeatable)",
    )
    parser.add_argument("--dsn", default=os.environ.get("EMATIX_TEST_PG_DSN", DEFAULT_DSN))
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        dest="py_spy",
        help="record each ematix load with py-spy (raw stacks) into this folder",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        run_child(json.loads(args.child))
        return 0
    if args.rows < 1000 or args.rows % 100:
        parser.error("--rows must be a multiple of 100, at least 1000")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ematix_scd2_bench_"))
    if workdir.exists() and any(workdir.iterdir()):
        parser.error(f"{workdir} is not empty")
    workdir.mkdir(parents=True, exist_ok=True)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    pg_schema = f"ematix_bench_{os.getpid()}"
    phases = [p for p in PHASES if args.only in (None, p["group"])]
    if args.match:
        phases = [p for p in phases if any(m in p["name"] for m in args.match)]
    pg_error = None
    if any(p["group"] == "postgres" for p in phases):
        pg_error = _pg_available(args.dsn)
        if pg_error:
            print(
                f"PostgreSQL unavailable ({pg_error}); skipping the PostgreSQL phases",
                file=sys.stderr,
            )
            phases = [p for p in phases if p["group"] != "postgres"]
        else:
            _pg_schema(args.dsn, pg_schema, create=True)

    t0 = time.perf_counter()
    print(f"preparing sources ({args.rows:,} rows) in {workdir} …", file=sys.stderr)
    expected = prepare_sources(workdir, args.rows)
    print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
    try:
        for rep in range(args.repeat):
            for phase in phases:
                for load in (1, 2):
                    cfg = {
                        **phase,
                        "load": load,
                        "rep": rep,
                        "workdir": str(workdir),
                        "dsn": args.dsn,
                        "pg_schema": pg_schema,
                    }
                    out = _spawn(cfg, args.py_spy)
                    out["loadavg_after"] = round(os.getloadavg()[0], 2)
                    runs.setdefault(phase["name"], {}).setdefault(load, []).append(out)
                    status = (
                        f"{out['seconds']:.3f} s"
                        if "seconds" in out
                        else "FAILED: " + out["error"].splitlines()[-1]
                    )
                    print(
                        f"  [{rep + 1}/{args.repeat}] {phase['name']} / load {load}: {status}",
                        file=sys.stderr,
                    )
    finally:
        if not pg_error and any(p["group"] == "postgres" for p in phases):
            _pg_schema(args.dsn, pg_schema, create=False)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    results = {
        name: {load: _best(outs) for load, outs in loads.items()} for name, loads in runs.items()
    }
    summary = summarize(results, expected)
    meta = {
        "rows": args.rows,
        "repeat": args.repeat,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "postgres_skipped": pg_error,
    }
    print_report(results, expected, summary, meta)
    figures = {
        "benchmark": "scd2",
        "meta": meta,
        "expected": expected,
        "summary": summary,
        "phases": {
            name: {f"load_{n}": r for n, r in loads.items()} for name, loads in results.items()
        },
        "runs": {
            name: {f"load_{n}": outs for n, outs in loads.items()} for name, loads in runs.items()
        },
    }
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    compact = {
        "benchmark": "scd2",
        "rows": args.rows,
        "seconds": {
            name: {f"load_{n}": round(r["seconds"], 4) for n, r in loads.items() if "seconds" in r}
            for name, loads in results.items()
        },
        "rss_peak_mib": {
            name: {
                f"load_{n}": round(r["rss_peak_mib"], 1)
                for n, r in loads.items()
                if "rss_peak_mib" in r
            }
            for name, loads in results.items()
        },
        "summary": summary,
    }
    print(json.dumps(_round(compact)))
    return 0


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _best(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest repetition, with every repetition's time and the highest RSS of all."""
    ok = [o for o in outs if "seconds" in o]
    if not ok:
        return outs[-1]
    best = dict(min(ok, key=lambda o: o["seconds"]))
    best["runs_s"] = [round(o["seconds"], 4) if "seconds" in o else None for o in outs]
    best["rss_peak_mib"] = max(o["rss_peak_mib"] for o in ok)
    best["loadavg_after"] = [o.get("loadavg_after") for o in outs]
    if any("counts" in o for o in ok):
        distinct = {json.dumps(o.get("counts"), sort_keys=True) for o in ok}
        if len(distinct) > 1:
            best["counts_disagree_between_repetitions"] = sorted(distinct)
    return best


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("ematix", "dlt", "duckdb", "pyarrow", "psycopg", "pandas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


if __name__ == "__main__":
    raise SystemExit(main())
