"""Scenario speed: run a scenario's named benchmark preset and print how fast it simulates.

Each scenario names its presets in its ``benchmarks`` class attribute (the figures its issue asks
for), e.g. ``raft`` (5 nodes, 1,000 ops/s, 60 s, partitions and crashes). The run includes the
checkers, as a user's run would.

    python benchmarks/scenarios.py --list
    python benchmarks/scenarios.py raft --json
    python benchmarks/scenarios.py raft --repeat 5 --json     # median of five runs
    python benchmarks/scenarios.py queue --json
    python benchmarks/scenarios.py raft-hour --json            # a simulated hour: ops, wall_seconds, peak_rss_mib
    python benchmarks/scenarios.py raft-hour --time-limit 300  # the same preset, five simulated minutes
    python benchmarks/scenarios.py kademlia-100k --progress --json   # long: where it is, on stderr

The last line with ``--json``: ``{"bench", "scenario", "sim_seconds", "wall_seconds",
"sim_seconds_per_wall_second", "ops", "checker_seconds", "peak_rss_mib", "peak_rss_children_mib",
"valid", ...figures}``;
with ``--repeat N`` also ``repeat`` and ``sim_seconds_per_wall_second_min`` / ``_max``, the speed
and wall time being medians. ``cpu_seconds`` includes the forked checker (``simulator.checkers.parallel``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import UsageError  # noqa: E402
from simulator import scriptargs as A  # noqa: E402
from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402
from simulator.pipeline.run import execute  # noqa: E402

MIN_S, MAX_TIME_S = 1e-6, 1e9  # dsim's --time-limit at least (its --rate too) and at most
MAX_REPEAT = 100

BUILTIN = {
    "queue": ("queue", {"options": {"rate": 1000.0, "time_limit_s": 60.0}, "params": {"servers": 20}}),
    # Issue 10's memory benchmark: one simulated hour of the raft preset (3.6M operations).
    "raft-hour": ("raft", {"options": {"node_count": 5, "rate": 1000, "time_limit_s": 3600,
                                       "nemesis": ["partition-random-halves", "crash"]}, "params": {}}),
}


def presets() -> dict[str, tuple[str, dict]]:
    out = dict(BUILTIN)
    for name in registry.names():
        for bench, spec in registry.get(name).benchmarks.items():
            out[bench] = (name, spec)
    return out


def main(argv=None) -> int:
    ap = A.Parser(prog=Path(__file__).name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="?", help="a preset name (see --list)")
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--list", action="store_true", help="list the presets")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--time-limit", type=A.number(MIN_S, MAX_TIME_S), default=None, metavar="S",
                    help="override the preset's simulated seconds (e.g. raft-hour --time-limit 300 while developing)")
    ap.add_argument("--progress", action="store_true",
                    help="print the simulated seconds reached to stderr every 10 wall s or so (long presets)")
    ap.add_argument("--repeat", type=A.integer(1, MAX_REPEAT), default=1, metavar="N",
                    help=f"run N times (1 to {MAX_REPEAT}) and report the median speed (with min and max): for noisy machines")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed), or --help
        return args
    table = presets()
    if args.list or not args.bench:
        for name, (scen, spec) in sorted(table.items()):
            print(f"{name:18s} {scen:8s} {json.dumps(spec)}")
        return 0
    if args.bench not in table:
        print(f"{ap.prog}: error: bad value {args.bench!r} for BENCH: expected a preset, one of {', '.join(sorted(table))}",
              file=sys.stderr)
        return 2
    scen, spec = table[args.bench]
    options = dict(spec.get("options", {}))
    if args.time_limit is not None:
        options["time_limit_s"] = args.time_limit
    try:  # before any output: dsim's own checks of the preset's options with these
        cfg = build_config(registry.get(scen), seed=args.seed, options=options,
                           sets={k: str(v) if not isinstance(v, str) else v for k, v in spec.get("params", {}).items()})
    except UsageError as exc:
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 2
    results = []
    for _ in range(args.repeat):
        gc.collect()  # the previous run's cycles (hosts and their simulation), outside the timing
        result = measure(args.bench, scen, cfg, progress_printer() if args.progress else None)
        results.append(result)
        print(f"{args.bench} ({scen}, seed {args.seed}): {result['sim_seconds']:,.1f} simulated s in "
              f"{result['wall_seconds']:,.2f} s wall ({result['sim_seconds_per_wall_second']} sim s per wall s), "
              f"{result['ops']:,} ops, checkers {result['checker_seconds']} s, peak RSS {result['peak_rss_mib']} MiB, "
              f"valid {result['valid']}", flush=True)
    speeds = sorted(r["sim_seconds_per_wall_second"] for r in results)
    result = min(results, key=lambda r: abs(r["sim_seconds_per_wall_second"] - statistics.median(speeds)))
    if args.repeat > 1:
        result = {**result, "repeat": args.repeat, "sim_seconds_per_wall_second": round(statistics.median(speeds), 2),
                  "sim_seconds_per_wall_second_min": speeds[0], "sim_seconds_per_wall_second_max": speeds[-1],
                  "wall_seconds": round(statistics.median(r["wall_seconds"] for r in results), 3)}
        print(f"median of {args.repeat}: {result['sim_seconds_per_wall_second']} sim s per wall s "
              f"(min {speeds[0]}, max {speeds[-1]})")
    if args.json:
        print(json.dumps(result))
    return 0


def progress_printer(every_s: float = 10.0):
    """A ``progress(done_s, total_s)`` for ``execute`` that prints to stderr at most every
    ``every_s`` wall seconds. Running in chunks does not change the order of events."""
    t0 = last = time.perf_counter()

    def progress(done_s: float, total_s: float) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_s or done_s >= total_s:
            last = now
            print(f"  {done_s:,.1f} of {total_s:,.1f} simulated s, {now - t0:,.0f} s wall, "
                  f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB",
                  file=sys.stderr, flush=True)

    return progress


def measure(bench: str, scen: str, cfg, progress=None) -> dict:
    """One run of ``cfg``: wall time, and CPU time including the checker child (simulator.checkers.parallel)."""
    t0 = time.perf_counter()
    c0 = os.times()
    out = execute(cfg, progress)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = sum(c1[:4]) - sum(c0[:4])  # user and system, this process and its children
    sim_s = out.run.end_ns / 1e9
    result = {"bench": bench, "scenario": scen, "seed": cfg.seed, "sim_seconds": round(sim_s, 3),
              "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
              "sim_seconds_per_wall_second": round(sim_s / wall, 2), "ops": out.metrics["ops"]["invoked"],
              "checker_seconds": out.metrics["checker_seconds"],
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              # the forked checker (simulator.checkers.parallel) is a second process with its own peak
              "peak_rss_children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
              "valid": out.valid}
    for k, v in (out.metrics.get("figures") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            result.setdefault(k, v)
    return result

if __name__ == "__main__":
    sys.exit(main())
