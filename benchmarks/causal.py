"""Causal stream processing benchmark: ematix.causal vs PyRapide 0.3.0 vs a drain-only floor.

Workload (issue "Causal event processing", "Benchmark"): one generated stream on two sources.
Each reading (``Sensor.reading``, source "sensors") starts a causal chain on the other source
(``services``): ``Service.process`` caused by the reading, then ``Service.stored`` caused by the
process step — or, for 1% of the readings, ``Service.error`` instead. A producer task pushes the
stream in its generated order, 64 events at a time, while the processor runs (so both sources
are live and interleaved, as in production).

Rules, written the same way for both systems:

* watch ``("Sensor.reading", "Service.stored")`` — a reading that causally precedes a store;
* ``never("Service.error")``;
* ``must_match(trigger="Sensor.reading", response="Service.stored")``.

PyRapide spells them ``Pattern.match("Sensor.reading") >> Pattern.match("Service.stored")``,
``never(Pattern.match("Service.error"))`` and ``must_match(<the sequence pattern>)``.

Configurations: the watch alone (no constraints, no window); watch + constraints without a
window; and with windows of 500 and 5,000 events. One more row runs the processor with nothing
registered and a window of 5,000: its fixed per-event cost (ids, causes, window), for the floor
discussion. In the same run, a drain-only loop (every
source iterated with ``async for`` while the same producer pushes: no processing at all) gives
the floor.

PyRapide's streaming processor re-checks every constraint over the whole window per event and
rebuilds its computation on eviction, so it gets slower with the stream: it runs on a smaller
stream (shown in the table), each configuration in a subprocess with a time budget. A run that
does not finish within the budget is reported with the events it processed in that time (its
true throughput up to then; evictions, which it had not reached, are slower still). Smaller
streams favour PyRapide, so the ratios are conservative.

Correctness: every figure is checked against the counts the generator knows (pairs = stored
chains; ``never`` = error events; ``must_match`` = readings whose chain ended in an error).
ematix is run once more on exactly PyRapide's stream so the counts compare like for like.

Run: ``python -m benchmarks.causal [--events 300000] [--repeat 3] [--budget 60]``.
"""

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_TAG = "@@RESULT "
PROGRESS_TAG = "@@P "
CHUNK = 64
ERROR_EVERY = 100  # 1% of the readings end in an error

CONFIGS: list[dict[str, Any]] = [
    {"name": "no rules, window 5,000", "constraints": False, "window": 5000, "watch": False},
    {"name": "watch only, no window", "constraints": False, "window": None},
    {"name": "constraints, no window", "constraints": True, "window": None},
    {"name": "constraints, window 500", "constraints": True, "window": 500},
    {"name": "constraints, window 5,000", "constraints": True, "window": 5000},
]


def expected_counts(n_events: int, constraints: bool, watch: bool = True) -> dict[str, int]:
    readings = n_events // 3
    errors = sum(1 for i in range(readings) if i % ERROR_EVERY == 7)
    return {
        "matches": readings - errors if watch else 0,
        "never": errors if constraints else 0,
        "must_match": errors if constraints else 0,
    }


# --------------------------------------------------------------------------- ematix
def ematix_stream(n_events: int) -> list[tuple[int, Any]]:
    from ematix_engine.causal import Event

    order: list[tuple[int, Any]] = []
    for i in range(n_events // 3):
        reading = Event("Sensor.reading", {"reading_id": i, "temperature": 20 + i % 90})
        step = Event("Service.process", {"reading_id": i}, caused_by=(reading.id,))
        last = "Service.error" if i % ERROR_EVERY == 7 else "Service.stored"
        outcome = Event(last, {"reading_id": i}, caused_by=(step.id,))
        order += [(0, reading), (1, step), (1, outcome)]
    return order


async def _produce(order: list[tuple[int, Any]], sources: list[Any]) -> None:
    pushes = [s.push for s in sources]
    for start in range(0, len(order), CHUNK):
        for index, event in order[start : start + CHUNK]:
            pushes[index](event)
        await asyncio.sleep(0)
    for source in sources:
        source.close()


async def _ematix_once(order: list[tuple[int, Any]], config: dict[str, Any]) -> dict[str, Any]:
    from ematix_engine.causal import InMemoryEventSource, StreamProcessor, must_match, never

    processor = StreamProcessor()
    sources = [InMemoryEventSource("sensors"), InMemoryEventSource("services")]
    processor.add_source("sensors", sources[0])
    processor.add_source("services", sources[1])
    pairs = [0]

    def on_pair(cause: Any, effect: Any) -> None:
        pairs[0] += 1

    if config.get("watch", True):
        processor.watch(("Sensor.reading", "Service.stored"), on_pair)
    if config["constraints"]:
        processor.enforce(never("Service.error", name="no_errors"))
        processor.enforce(must_match("Sensor.reading", "Service.stored", name="stored"))
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(processor.run(window_size=config["window"]), _produce(order, sources))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    kinds: dict[str, int] = {}
    for v in processor.violations:
        kinds[v.constraint] = kinds.get(v.constraint, 0) + 1
    stats = processor.stats
    return {
        "seconds": seconds,
        "cpu": cpu,
        "events": stats["events"],
        "matches": pairs[0],
        "never": kinds.get("no_errors", 0),
        "must_match": kinds.get("stored", 0),
        "evictions": stats["evictions"],
        "max_window": stats["window_size"],
        "parked": stats["parked"],
        "late_causes": stats["late_causes"],
    }


async def _drain_once(order: list[tuple[int, Any]]) -> dict[str, Any]:
    from ematix_engine.causal import InMemoryEventSource

    sources = [InMemoryEventSource("sensors"), InMemoryEventSource("services")]
    count = [0]

    async def drain(source: Any) -> None:
        n = 0
        async for _ in source:
            n += 1
        count[0] += n

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(drain(sources[0]), drain(sources[1]), _produce(order, sources))
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu_started,
        "events": count[0],
    }


# --------------------------------------------------------------------------- PyRapide
def run_pyrapide_child(spec: dict[str, Any]) -> None:
    """In a subprocess: run PyRapide on one configuration, printing progress as it goes."""
    import pyrapide as pr

    n_events = spec["events"]
    order = []
    for i in range(n_events // 3):
        payload = {"reading_id": i}
        last = "Service.error" if i % ERROR_EVERY == 7 else "Service.stored"
        order += [
            (0, pr.Event(name="Sensor.reading", payload=payload, source="sensors")),
            (1, pr.Event(name="Service.process", payload=payload, source="services")),
            (1, pr.Event(name=last, payload=payload, source="services")),
        ]

    async def main() -> None:
        processor = pr.StreamProcessor()
        sources = [pr.InMemoryEventSource("sensors"), pr.InMemoryEventSource("services")]
        processor.add_source("sensors", sources[0])
        processor.add_source("services", sources[1])
        pairs = [0]
        kinds: dict[str, int] = {}
        processor.watch(
            pr.Pattern.match("Sensor.reading") >> pr.Pattern.match("Service.stored"),
            lambda match: pairs.__setitem__(0, pairs[0] + 1),
        )
        if spec["constraints"]:
            processor.enforce(pr.never(pr.Pattern.match("Service.error"), name="no_errors"))
            processor.enforce(
                pr.must_match(
                    pr.Pattern.match("Sensor.reading") >> pr.Pattern.match("Service.stored"),
                    name="stored",
                )
            )

        def on_violation(violation: Any) -> None:
            kinds[violation.constraint_name] = kinds.get(violation.constraint_name, 0) + 1

        processor.on_violation(on_violation)
        seen = [0]
        started, cpu_started = time.perf_counter(), time.process_time()

        def on_event(event: Any) -> None:
            seen[0] += 1
            if seen[0] % 10 == 0 or seen[0] == n_events:
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                print(f"{PROGRESS_TAG}{seen[0]} {wall:.6f} {cpu:.6f}", flush=True)

        processor.on_event(on_event)

        async def produce() -> None:
            for start in range(0, len(order), CHUNK):
                for index, event in order[start : start + CHUNK]:
                    await sources[index].put(event)
                await asyncio.sleep(0)
            for source in sources:
                await source.close()

        window = spec["window"] if spec["window"] is not None else n_events + 1
        await asyncio.gather(processor.run(window_size=window), produce())
        seconds = time.perf_counter() - started
        result = {
            "seconds": seconds,
            "cpu": time.process_time() - cpu_started,
            "events": processor.stats["event_count"],
            "matches": pairs[0],
            "never": kinds.get("no_errors", 0),
            "must_match": kinds.get("stored", 0),
            "complete": True,
        }
        print(RESULT_TAG + json.dumps(result), flush=True)

    asyncio.run(main())


def run_pyrapide(config: dict[str, Any], n_events: int, budget: float) -> dict[str, Any]:
    """Run one PyRapide configuration in a subprocess; stop it after ``budget`` seconds."""
    spec = {**config, "events": n_events}
    cmd = [sys.executable, "-m", "benchmarks.causal", "--pyrapide-child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    state: dict[str, Any] = {"last": (0, 0.0, 0.0), "result": None}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PROGRESS_TAG):
                count, elapsed, cpu = line[len(PROGRESS_TAG) :].split()
                state["last"] = (int(count), float(elapsed), float(cpu))
            elif line.startswith(RESULT_TAG):
                state["result"] = json.loads(line[len(RESULT_TAG) :])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        proc.kill()
    reader.join(timeout=5)
    last, result = state["last"], state["result"]
    proc.wait()
    if result is not None:
        result["planned"] = n_events
        return result
    return {
        "seconds": budget,
        "cpu": None,
        "events": last[0],
        "last_event_at": last[1],
        "planned": n_events,
        "complete": False,
    }


# --------------------------------------------------------------------------- driver
def _eps(result: dict[str, Any]) -> float:
    return result["events"] / result["seconds"] if result["seconds"] else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="ematix stream length")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for ematix and floor")
    parser.add_argument(
        "--pyrapide-events",
        default="0,30000,300,600,5100",
        help="PyRapide stream length per configuration, in table order (0 = skip)",
    )
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per PyRapide configuration"
    )
    parser.add_argument("--skip-pyrapide", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    parser.add_argument("--pyrapide-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pyrapide_child is not None:
        run_pyrapide_child(json.loads(args.pyrapide_child))
        return 0
    logging.disable(logging.WARNING)
    n_events = args.events - args.events % 3
    pr_events = [int(x) - int(x) % 3 for x in args.pyrapide_events.split(",")]

    print(f"generating {n_events:,} events …", file=sys.stderr)
    order = ematix_stream(n_events)
    gc.collect()
    best: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[dict[str, float]]] = {}
    shares: dict[str, list[float]] = {}
    for rep in range(args.repeat):
        phases: list[tuple[str, Any]] = [("drain-only floor", None)] + [
            (c["name"], c) for c in CONFIGS
        ]
        for name, config in phases:
            if config is None:
                out = asyncio.run(_drain_once(order))
            else:
                out = asyncio.run(_ematix_once(order, config))
            gc.collect()
            runs.setdefault(name, []).append(
                {"seconds": round(out["seconds"], 4), "cpu": round(out["cpu"], 4)}
            )
            if name not in best or out["cpu"] < best[name]["cpu"]:
                best[name] = out
            if config is not None:  # paired with this repetition's floor, on CPU time
                floor_cpu = runs["drain-only floor"][-1]["cpu"]
                shares.setdefault(name, []).append(floor_cpu / out["cpu"])
            print(
                f"  [{rep + 1}/{args.repeat}] {name}: {out['seconds']:.3f} s wall, "
                f"{out['cpu']:.3f} s CPU ({out['events'] / out['cpu']:,.0f} events/CPU-s)",
                file=sys.stderr,
            )

    pyrapide: dict[str, dict[str, Any]] = {}
    same_stream: dict[str, dict[str, Any]] = {}
    if not args.skip_pyrapide:
        for config, count in zip(CONFIGS, pr_events, strict=True):
            if count <= 0:
                continue
            print(f"  PyRapide {config['name']} on {count:,} events …", file=sys.stderr)
            pyrapide[config["name"]] = out = run_pyrapide(config, count, args.budget)
            state = "done" if out["complete"] else f"stopped at the {args.budget:.0f} s budget"
            print(
                f"    {out['events']:,} events in {out['seconds']:.2f} s ({state})",
                file=sys.stderr,
            )
            small = ematix_stream(count)
            same_stream[config["name"]] = asyncio.run(_ematix_once(small, config))

    floor = best["drain-only floor"]
    floor_eps = _eps(floor)
    floor_cpu_eps = floor["events"] / floor["cpu"]
    rows = []
    for config in CONFIGS:
        name = config["name"]
        ours = best[name]
        row: dict[str, Any] = {
            "config": name,
            "ematix_events": ours["events"],
            "ematix_eps": round(_eps(ours)),
            "ematix_cpu_eps": round(ours["events"] / ours["cpu"]),
            "ematix_cpu_us_per_event": round(ours["cpu"] / ours["events"] * 1e6, 3),
            "share_of_floor": round(statistics.median(shares[name]), 4),
            "share_of_floor_runs": [round(x, 4) for x in shares[name]],
            "share_of_floor_best_cpu": round(ours["events"] / ours["cpu"] / floor_cpu_eps, 4),
            "ematix_counts": {k: ours[k] for k in ("matches", "never", "must_match")},
            "expected_counts": expected_counts(
                n_events, config["constraints"], config.get("watch", True)
            ),
            "evictions": ours["evictions"],
            "late_causes": ours["late_causes"],
        }
        row["ematix_correct"] = row["ematix_counts"] == row["expected_counts"]
        if name in pyrapide:
            theirs = pyrapide[name]
            row["pyrapide_events"] = theirs["events"]
            row["pyrapide_planned"] = theirs["planned"]
            row["pyrapide_complete"] = theirs["complete"]
            row["pyrapide_eps"] = round(_eps(theirs), 2)
            row["ratio"] = round(_eps(ours) / _eps(theirs), 1) if _eps(theirs) else None
            if config["constraints"]:
                row["target_100x_met"] = row["ratio"] is not None and row["ratio"] >= 100
            if theirs["complete"]:
                expected = expected_counts(theirs["planned"], config["constraints"])
                same = same_stream[name]
                row["same_stream"] = {
                    "events": theirs["planned"],
                    "expected": expected,
                    "ematix": {k: same[k] for k in ("matches", "never", "must_match")},
                    "pyrapide": {k: theirs[k] for k in ("matches", "never", "must_match")},
                }
        rows.append(row)
    w5000 = next(r for r in rows if r["config"] == "constraints, window 5,000")
    floor_target_met = w5000["share_of_floor"] >= 0.25

    meta = {
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "pyrapide": _version("pyrapide"),
        "ematix": _version("ematix"),
        "loadavg": round(os.getloadavg()[0], 2),
    }
    print()
    print(
        f"Causal stream: {n_events:,} events on 2 sources; ematix best of {args.repeat} by CPU "
        f"time; floor = drain-only {floor_eps:,.0f} events/s wall, "
        f"{floor_cpu_eps:,.0f} events/CPU-s (load average {meta['loadavg']})"
    )
    print(
        f"{'configuration':26} {'ev/s wall':>10} {'ev/CPU-s':>10} {'CPU us/ev':>9} "
        f"{'% floor':>8} {'PyRapide ev/s':>14} {'(events)':>13} {'ratio':>9}  target"
    )
    for r in rows:
        theirs = ""
        events = ""
        ratio = ""
        if "pyrapide_eps" in r:
            theirs = f"{r['pyrapide_eps']:,.1f}"
            mark = "" if r["pyrapide_complete"] else "*"
            events = f"{r['pyrapide_events']:,}/{r['pyrapide_planned']:,}{mark}"
            ratio = f"{r['ratio']:,.0f}x" if r["ratio"] else "-"
        target = ""
        if "target_100x_met" in r:
            target = f">=100x: {'met' if r['target_100x_met'] else 'NOT met'}"
        print(
            f"{r['config']:26} {r['ematix_eps']:>10,} {r['ematix_cpu_eps']:>10,} "
            f"{r['ematix_cpu_us_per_event']:>9.2f} {r['share_of_floor'] * 100:>7.1f}% "
            f"{theirs:>14} {events:>13} {ratio:>9}  {target}"
        )
    print(
        f"(* = PyRapide stopped at the {args.budget:.0f} s budget: events processed in that time;"
        " ratio = ematix wall ev/s / PyRapide wall ev/s;"
        " % floor = median over repetitions of floor CPU time / ematix CPU time)"
    )
    print(
        f"window 5,000 with constraints: {w5000['share_of_floor'] * 100:.1f}% of the drain-only "
        f"floor (runs: {', '.join(f'{x * 100:.1f}%' for x in w5000['share_of_floor_runs'])}; "
        f"target >= 25%: {'met' if floor_target_met else 'NOT met'})"
    )
    print()
    print("Counts (matches / never / must_match violations):")
    for r in rows:
        e, o = r["expected_counts"], r["ematix_counts"]
        print(
            f"  {r['config']:28} expected {e['matches']}/{e['never']}/{e['must_match']}  "
            f"ematix {o['matches']}/{o['never']}/{o['must_match']}  "
            f"{'correct' if r['ematix_correct'] else 'WRONG'}"
        )
        if "same_stream" in r:
            s = r["same_stream"]
            e, o, p = s["expected"], s["ematix"], s["pyrapide"]
            verdict = [k for k in ("matches", "never", "must_match") if p[k] != e[k]]
            print(
                f"  {'':28} on PyRapide's {s['events']:,} events: expected "
                f"{e['matches']}/{e['never']}/{e['must_match']}  ematix "
                f"{o['matches']}/{o['never']}/{o['must_match']}  PyRapide "
                f"{p['matches']}/{p['never']}/{p['must_match']}  "
                + ("PyRapide wrong on " + ", ".join(verdict) if verdict else "all equal")
            )
    figures = {
        "benchmark": "causal",
        "events": n_events,
        "repeat": args.repeat,
        "floor_eps": round(floor_eps),
        "floor_cpu_eps": round(floor_cpu_eps),
        "floor_target_met": floor_target_met,
        "rows": rows,
        "runs": runs,
        "meta": meta,
    }
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    return 0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
