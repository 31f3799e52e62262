"""The kit's overhead: one kit ``Service`` against the bare ``queue`` scenario at the same load.

Both runs are the same M/M/c queue: Poisson arrivals at ``--rate``, one node with 20 cores and
exponential service times of mean 10 ms, for ``--time-limit`` simulated seconds, checkers
included. The bare ``queue`` scenario serves requests with the runtime's cost model (one message
in, one out); the kit run is a graph design whose only component is a ``Service`` (priced calls
on the same runtime core queue, a service time per operation, a kit ``Client`` with a route,
timeouts and idempotency keys through the ``Caller``, a ``kit.served`` row per request). Issue 11
asks that the kit add no more than 25% per request.

    python benchmarks/kit.py                      # 1,000 requests/s for 60 s, median of 3
    python benchmarks/kit.py --repeat 5 --json

Prints the CPU microseconds per request of each (user + system time of this process, divided by
requests; medians of ``--repeat`` runs) and their ratio. CPU time, not wall time, because a busy
machine stretches wall time by whatever else runs; the forked checker's time is left out, since
a child reaped during the next run would be counted there. With
``--json`` the last line is ``{"bench": "kit-service", "queue_us_per_request",
"service_us_per_request", "ratio", "queue_wall_seconds", "service_wall_seconds", "repeat", ...}``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402
from simulator.pipeline.run import execute  # noqa: E402

SERVICE = {"app": {"kind": "service", "replicas": 1, "cores": 20, "service_ms": "exponential:10",
                   "timeout_ms": 60_000, "retries": 0}}
ROUTES = [{"name": "get", "path": ["app"], "timeout_ms": 60_000}]


def configs(rate: float, time_s: float, seed: int):
    opts = {"rate": rate, "time_limit_s": time_s}
    bare = build_config(registry.get("queue"), seed=seed, options=opts,
                        sets={"servers": "20", "service_ms": "10"})
    kit = build_config(registry.get("graph"), seed=seed, options={**opts, "latency_ms": 0.5},
                       file={"components": SERVICE, "routes": ROUTES})
    return bare, kit


def measure(cfg) -> dict:
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out = execute(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ops = out.metrics["ops"]["invoked"]
    return {"wall": wall, "cpu": cpu, "ops": ops, "us": cpu / ops * 1e6, "valid": out.valid}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000.0, help="requests per simulated second [1000]")
    ap.add_argument("--time-limit", type=float, default=60.0, help="simulated seconds [60]")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, medians reported [3]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    a = ap.parse_args(argv)
    if a.repeat < 1 or a.rate <= 0 or a.time_limit <= 0:
        print("--repeat, --rate and --time-limit: accepted: positive numbers", file=sys.stderr)
        return 2
    bare_cfg, kit_cfg = configs(a.rate, a.time_limit, a.seed)
    runs: dict[str, list[dict]] = {"queue": [], "service": []}
    for _ in range(a.repeat):  # interleaved, so a busy spell on the machine hits both
        for name, cfg in (("queue", bare_cfg), ("service", kit_cfg)):
            r = measure(cfg)
            runs[name].append(r)
            print(f"{name:8s} {r['ops']:,} requests, {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                  f"{r['us']:.1f} CPU us per request, valid {r['valid']}", flush=True)
    med = {n: statistics.median(r["us"] for r in rs) for n, rs in runs.items()}
    ratio = med["service"] / med["queue"]
    print(f"median CPU us per request: queue {med['queue']:.1f}, kit Service {med['service']:.1f}: "
          f"ratio {ratio:.2f} (target <= 1.25)")
    if a.json:
        print(json.dumps({"bench": "kit-service", "rate": a.rate, "time_limit_s": a.time_limit, "repeat": a.repeat,
                          "queue_us_per_request": round(med["queue"], 2),
                          "service_us_per_request": round(med["service"], 2), "ratio": round(ratio, 3),
                          "queue_wall_seconds": round(statistics.median(r["wall"] for r in runs["queue"]), 3),
                          "service_wall_seconds": round(statistics.median(r["wall"] for r in runs["service"]), 3),
                          "valid": all(r["valid"] is True for rs in runs.values() for r in rs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
