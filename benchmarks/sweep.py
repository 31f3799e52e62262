"""Sweep speed by executor: the same 48-run raft sweep with ``--jobs 1``, ``--jobs 2`` and
``--cluster local:2``, the wall time of each and the speed-ups over ``--jobs 1``, and what Dask's
scheduling costs per run.

    python benchmarks/sweep.py --json                 # the issue's figures (targets: 1.8x and 1.7x on 2 cores)
    python benchmarks/sweep.py --runs 12 --json       # a quick look
    flock /tmp/heavy.lock nice -n 5 python benchmarks/sweep.py --json    # on a shared machine

Each sweep runs through :func:`simulator.pipeline.sweep.run_sweep` into a fresh temporary folder,
as ``dsim sweep raft --seeds 1-48`` would (no plots). The LocalCluster's start-up (spawning its
worker processes) is timed apart from its sweep: a user pays it once per sweep, and a cluster
started by hand does not pay it at all. The three sweeps' digests are compared: they must agree.

Scheduling overhead: the client sends empty batches to a worker one after another and times the
round trip (submit, the worker's environment check, the result back); divided by the default batch
size, that is Dask's cost per run, reported against a run's mean wall time (target: under 1%).
``idle_per_run_s`` is the cruder upper bound (workers x wall - time inside batches) / runs, which
also counts unpacking folders on the client and the last batch's tail.

The last line with ``--json``: ``{"bench", "runs", "wall_s": {...}, "speedup": {...},
"cluster_startup_s", "run_mean_s", "batch_mean", "dask_round_trip_s", "dask_overhead_per_run_s",
"dask_overhead_fraction", "idle_per_run_s", "same_digests", "cpus", "load_avg_1m"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import scriptargs as A  # noqa: E402
from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402
from simulator.pipeline.executor import (INSTALL_HINT, DaskExecutor, LocalExecutor, batch_sizes,  # noqa: E402
                                         environment, run_batch)
from simulator.pipeline.sweep import run_sweep  # noqa: E402

MAX_RUNS = 2000  # seeds: each runs three times (--jobs 1, --jobs N, local:N); 40 times the default
MAX_WORKERS = min(64, max(8, 4 * (os.cpu_count() or 1)))  # dsim sweep's --jobs at most (and local:N's 64)


def sweep(configs, executor) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory(prefix="dsim-bench-sweep-") as tmp:
        t0 = time.perf_counter()
        rows = run_sweep(configs, Path(tmp), executor=executor)
        return time.perf_counter() - t0, rows


def main(argv=None) -> int:
    ap = A.Parser(prog=Path(__file__).name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=A.integer(1, MAX_RUNS), default=48,
                    help=f"seeds 1..RUNS of raft at its defaults, 1 to {MAX_RUNS:,} (default 48; each is run three times)")
    ap.add_argument("--workers", type=A.integer(1, MAX_WORKERS), default=2,
                    help=f"--jobs N and --cluster local:N, 1 to {MAX_WORKERS} (default 2)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    a = ap.parse(argv)
    if isinstance(a, int):  # a bad argument (its one line printed), or --help
        return a
    if find_spec("distributed") is None:  # the third sweep's, before the first two run
        ap.fail(f"--cluster local:{a.workers} needs Dask's distributed package, which is not installed: {INSTALL_HINT}")
    scen = registry.get("raft")
    configs = [(build_config(scen, seed=s), {}) for s in range(1, a.runs + 1)]
    n = a.workers
    wall: dict[str, float] = {}
    digests: dict[str, list] = {}

    wall["jobs1"], rows = sweep(configs, LocalExecutor(1))
    digests["jobs1"] = [r.get("digest") for r in rows]
    run_mean_s = statistics.fmean(r["wall_seconds"] for r in rows)
    print(f"--jobs 1            {wall['jobs1']:8.2f} s   ({run_mean_s:.3f} s per run)", flush=True)

    wall[f"jobs{n}"], rows = sweep(configs, LocalExecutor(n))
    digests[f"jobs{n}"] = [r.get("digest") for r in rows]
    print(f"--jobs {n}            {wall[f'jobs{n}']:8.2f} s", flush=True)

    t0 = time.perf_counter()
    dask = DaskExecutor(f"local:{n}")
    startup_s = time.perf_counter() - t0
    try:
        sizes = batch_sizes(len(configs), dask.workers)
        batch = statistics.fmean(sizes)  # the Dask round trip is paid once per batch
        wall[f"local{n}"], rows = sweep(configs, dask)
        digests[f"local{n}"] = [r.get("digest") for r in rows]
        idle_per_run_s = max(0.0, (n * wall[f"local{n}"] - dask.stats.busy_s) / len(configs))
        print(f"--cluster local:{n}   {wall[f'local{n}']:8.2f} s   (+{startup_s:.1f} s to start the cluster; "
              f"{dask.stats.batches} batches of {sizes[0]} down to {sizes[-1]})", flush=True)
        expect = environment([configs[0][0].to_dict()])
        trips = []
        for i in range(20):
            t0 = time.perf_counter()
            dask.client.submit(run_batch, [], False, expect, None, pure=False, key=f"bench-empty-{i}").result()
            trips.append(time.perf_counter() - t0)
        round_trip_s = statistics.median(trips)
    finally:
        dask.close()

    speedup = {k: round(wall["jobs1"] / v, 3) for k, v in wall.items() if k != "jobs1"}
    per_run_s = round_trip_s / batch
    out = {"bench": "sweep", "scenario": "raft", "runs": len(configs), "workers": n,
           "wall_s": {k: round(v, 3) for k, v in wall.items()}, "speedup": speedup,
           "cluster_startup_s": round(startup_s, 3), "run_mean_s": round(run_mean_s, 4), "batch_mean": round(batch, 2),
           "dask_round_trip_s": round(round_trip_s, 5), "dask_overhead_per_run_s": round(per_run_s, 5),
           "dask_overhead_fraction": round(per_run_s / run_mean_s, 5), "idle_per_run_s": round(idle_per_run_s, 4),
           "same_digests": len({tuple(d) for d in digests.values()}) == 1 and None not in digests["jobs1"],
           "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    for k, v in speedup.items():
        print(f"speed-up {k}: {v:.2f}x")
    print(f"Dask per batch {round_trip_s * 1000:.1f} ms / {batch:.2f} runs = {per_run_s * 1000:.2f} ms per run "
          f"= {100 * per_run_s / run_mean_s:.2f}% of a run; digests {'agree' if out['same_digests'] else 'DIFFER'}")
    if a.json:
        print(json.dumps(out))
    return 0 if out["same_digests"] else 1


if __name__ == "__main__":
    sys.exit(main())
