"""Per-batch cost of the SQL transform stage next to raw DataFusion and a pyarrow baseline.

Workloads (10,000-row batches of ``user_id, event_type, amount, ts``, all built before the
clock starts; every phase runs the same batches in the same process):

- **filter+project**: the guide's ``WHERE event_type IN (…) AND amount > 0`` with three columns
  out. Baseline: the same filter as a ``pyarrow.compute`` mask + ``Table.filter`` + select.
- **lookup join**: the same plus ``LEFT JOIN users`` (a 1,000-row lookup held in memory).

Phases per workload:

- ``pyarrow filter`` (filter+project only): the floor any engine pays to filter the batch.
- ``datafusion, default session``: ``register_record_batches`` + ``ctx.sql(sql).to_arrow_table()``
  per batch on a ``SessionContext()`` with default settings (re-plans every batch).
- ``datafusion, tuned session``: the same on the stage's session settings (one partition, no
  repartitioning).
- ``TransformStage.run``: ours (the plan is built once per input schema and rebound per batch).
- ``decode 10k JSON rows``: ``pyarrow.json.read_json`` of the same rows as newline-delimited
  JSON, the cheapest decode a Kafka batch pays; the stage's cost is shown as a share of it,
  because "≤ 10% slower end to end" is judged against the whole batch path.

Each phase runs ``--batches`` batches after 20 warm-up batches and reports the median and the
10th percentile per batch (µs) over ``--repeat`` rounds (best median kept). Run with
``python -m benchmarks.transform``; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

ROWS = 10_000
FILTER_SQL = (
    "SELECT user_id, event_type, amount FROM source "
    "WHERE event_type IN ('click', 'view', 'purchase') AND amount > 0"
)
JOIN_SQL = (
    "SELECT s.user_id, s.event_type, s.amount, u.country FROM source s "
    "LEFT JOIN users u ON s.user_id = u.id "
    "WHERE s.event_type IN ('click', 'view', 'purchase') AND s.amount > 0"
)
KEEP = pa.array(["click", "view", "purchase"])


def make_batches(count: int, seed: int = 0) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        out.append(
            pa.record_batch(
                {
                    "user_id": pa.array(rng.integers(0, 1_000, ROWS)),
                    "event_type": pa.array(
                        rng.choice(["click", "view", "purchase", "other"], ROWS)
                    ),
                    "amount": pa.array(rng.random(ROWS) - 0.1),
                    "ts": pa.array((np.arange(ROWS) + i * ROWS) * 1_000, pa.timestamp("us", "UTC")),
                }
            )
        )
    return out


def users() -> pa.Table:
    ids = np.arange(1_000)
    return pa.table({"id": ids, "country": pa.array([f"c{i % 50}" for i in ids])})


def pyarrow_filter(batch: pa.RecordBatch) -> pa.RecordBatch:
    mask = pc.and_(pc.is_in(batch["event_type"], KEEP), pc.greater(batch["amount"], 0))
    return batch.filter(mask).select(["user_id", "event_type", "amount"])


def raw_datafusion(sql: str, tuned: bool, lookup: pa.Table | None) -> Callable:
    from datafusion import SessionContext

    from ematix_engine.transform.stage import _session

    ctx = _session() if tuned else SessionContext()
    if lookup is not None:
        ctx.register_record_batches("users", [lookup.to_batches()])

    def run(batch: pa.RecordBatch) -> pa.Table:
        if ctx.table_exist("source"):
            ctx.deregister_table("source")
        ctx.register_record_batches("source", [[batch]])
        return ctx.sql(sql).to_arrow_table()

    return run


def stage_run(sql: str, lookup: pa.Table | None) -> tuple[Callable, Callable]:
    from ematix_engine.transform import TransformStage

    stage = TransformStage(sql, pipeline="bench")
    if lookup is not None:
        stage._install_lookup("users", lookup)  # an in-memory lookup, no database in the way
    return stage.run, stage.close


def json_decoder(batches: list[pa.RecordBatch]) -> tuple[Callable, list[bytes]]:
    payloads = []
    for batch in batches[:8]:
        rows = batch.drop_columns(["ts"]).to_pylist()
        payloads.append("\n".join(json.dumps(r) for r in rows).encode())
    return (lambda payload: pajson.read_json(io.BytesIO(payload))), payloads


def measure(fn: Callable, inputs: list, count: int) -> list[float]:
    for i in range(20):
        fn(inputs[i % len(inputs)])
    times = []
    for i in range(count):
        item = inputs[i % len(inputs)]
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return times


def summarise(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 1),
        "p10_us": round(ordered[len(ordered) // 10] * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import datafusion

    batches = make_batches(32)
    lookup = users()
    results: dict[str, dict[str, float]] = {}

    def record(name: str, fn: Callable, inputs: list) -> None:
        best = None
        for _ in range(args.repeat):
            figures = summarise(measure(fn, inputs, args.batches))
            if best is None or figures["median_us"] < best["median_us"]:
                best = figures
        results[name] = best
        print(
            f"  {name:<48} median {best['median_us']:>8.1f} µs   p10 {best['p10_us']:>8.1f} µs",
            file=sys.stderr,
        )

    print(
        f"datafusion {datafusion.__version__}, pyarrow {pa.__version__}, {ROWS:,} rows per batch",
        file=sys.stderr,
    )
    decode, payloads = json_decoder(batches)
    record("decode 10k JSON rows (pyarrow.json)", decode, payloads)
    for label, sql, table in (
        ("filter+project", FILTER_SQL, None),
        ("lookup join", JOIN_SQL, lookup),
    ):
        if table is None:
            record(f"{label}: pyarrow filter", pyarrow_filter, batches)
        record(f"{label}: datafusion, default session", raw_datafusion(sql, False, table), batches)
        record(f"{label}: datafusion, tuned session", raw_datafusion(sql, True, table), batches)
        run, close = stage_run(sql, table)
        record(f"{label}: TransformStage.run", run, batches)
        close()

    decode_us = results["decode 10k JSON rows (pyarrow.json)"]["median_us"]
    stage_us = results["filter+project: TransformStage.run"]["median_us"]
    floor_us = results["filter+project: pyarrow filter"]["median_us"]
    summary = {
        "stage_over_pyarrow_us": round(stage_us - floor_us, 1),
        "stage_vs_default_datafusion": round(
            stage_us / results["filter+project: datafusion, default session"]["median_us"], 3
        ),
        "stage_share_of_json_decode": round(stage_us / decode_us, 3),
    }
    print(
        f"\nTransformStage, filter+project: {stage_us:.0f} µs per 10k-row batch "
        f"({stage_us - floor_us:+.0f} µs over the pyarrow filter); that is "
        f"{summary['stage_share_of_json_decode']:.0%} of decoding the same batch from JSON.",
        file=sys.stderr,
    )
    print(json.dumps({"rows_per_batch": ROWS, "phases": results, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
