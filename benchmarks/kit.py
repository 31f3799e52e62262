"""The kit's overhead: a kit ``Service`` against the bare ``queue`` scenario at the same load.

Three runs of the same M/M/c queue: Poisson arrivals at ``--rate``, one node with 20 cores and
exponential service times of mean 10 ms, for ``--time-limit`` simulated seconds, checkers
included.

``queue``    the bare ``queue`` scenario: its client sends a one-field request, its server node
             answers through the runtime's cost model (one message in, one out).
``alone``    the same client and workload, but the server is one kit ``Service`` (priced calls on
             the same runtime core queue, a service time per operation, a ``kit.served`` row per
             request), called with the kit's ``Call`` and answering with its ``Reply``: what the
             Service itself adds.
``service``  a graph design whose only component is that ``Service``: the kit ``Client`` too (a
             route drawn per request, a key, a per-attempt deadline and an idempotency key
             through the ``Caller``, the ``(key, idem, result)`` value): what a graph design pays.

Issue 11 asks that the kit's Service add no more than 25% per request over the bare queue.

    python benchmarks/kit.py                      # 1,000 requests/s for 60 s, median of 3
    python benchmarks/kit.py --repeat 5 --json

Prints the CPU microseconds per request of each (user + system time of this process, divided by
requests; medians of ``--repeat`` runs, the three interleaved) and their ratios to the queue. CPU
time, not wall time, because a busy machine stretches wall time by whatever else runs; the
forked checker's time is left out, since a child reaped during the next run would be counted
there. With ``--json`` the last line is ``{"bench": "kit-service", "queue_us_per_request",
"alone_us_per_request", "service_us_per_request", "alone_ratio", "ratio" (the graph design's),
"queue_wall_seconds", "alone_wall_seconds", "service_wall_seconds", "repeat", "valid", ...}``.
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

from simulator import ClientNode, Dist, Scenario, Setup, UsageError, register  # noqa: E402
from simulator import scriptargs as A  # noqa: E402
from simulator.checkers.basic import availability  # noqa: E402
from simulator.kit.directory import Directory  # noqa: E402
from simulator.kit.messages import Call, Reply  # noqa: E402
from simulator.kit.service import Service, ServiceSpec  # noqa: E402
from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402
from simulator.pipeline.run import execute  # noqa: E402

MAX_RATE = 1e7  # dsim's --rate at most
MIN_S, MAX_TIME_S = 1e-6, 1e9  # dsim's --time-limit at least (its --rate too) and at most
MAX_REPEAT = 100

SERVICE = {"app": {"kind": "service", "replicas": 1, "cores": 20, "service_ms": "exponential:10",
                   "timeout_ms": 60_000, "retries": 0}}
ROUTES = [{"name": "get", "path": ["app"], "timeout_ms": 60_000}]
ALONE = ServiceSpec("app", replicas=1, cores=20, service_ms={"*": Dist("exponential", 10.0)})


class QueueClient(ClientNode):
    """The bare queue's client, speaking the kit's messages: a call per operation, its id as rid."""

    def on_invoke(self, ctx, op):
        ctx.send("app-1", Call(op.id, "*"))

    def on_message(self, ctx, src, msg):
        if type(msg) is Reply:
            ctx.complete(msg.rid, "ok" if msg.ok else "fail")


@register
class ServiceAlone(Scenario):
    """The ``alone`` run: the queue's client and workload in front of one kit Service (this
    benchmark's own design, registered in its process only)."""

    name = "bench-kit-service-alone"
    summary = "the bare queue's client calling one kit Service (benchmarks/kit.py)"
    defaults = {"node_count": 1, "op_timeout_ms": 60_000.0, "quiesce_s": 1.0, "final_timeout_s": 1.0}

    def build(self, sim, cfg) -> Setup:
        directory = Directory()
        directory.add("app", ["app-1"])
        sim.add_node("app-1", lambda: Service(ALONE, directory), inbox_limit=10**9)
        return Setup(servers=["app-1"], client=lambda cid: QueueClient(), generate=lambda rng: ("request", None))

    def check(self, run):
        return {"availability": availability(run.history, 0.99, until_ns=run.heal_ns)}


def configs(rate: float, time_s: float, seed: int):
    """(queue, alone, service): the three runs' configurations."""
    opts = {"rate": rate, "time_limit_s": time_s}
    bare = build_config(registry.get("queue"), seed=seed, options=opts,
                        sets={"servers": "20", "service_ms": "10"})
    alone = build_config(ServiceAlone, seed=seed, options={**opts, "latency_ms": 0.5})
    kit = build_config(registry.get("graph"), seed=seed, options={**opts, "latency_ms": 0.5},
                       file={"components": SERVICE, "routes": ROUTES})
    return bare, alone, kit


def measure(cfg) -> dict:
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out = execute(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ops = out.metrics["ops"]["invoked"]
    return {"wall": wall, "cpu": cpu, "ops": ops, "us": cpu / ops * 1e6, "valid": out.valid}


def main(argv=None) -> int:
    ap = A.Parser(prog=Path(__file__).name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=A.number(MIN_S, MAX_RATE), default=1000.0,
                    help=f"requests per simulated second, {MIN_S:g} to {MAX_RATE:,.0f} [1000]")
    ap.add_argument("--time-limit", type=A.number(MIN_S, MAX_TIME_S), default=60.0,
                    help=f"simulated seconds, {MIN_S:g} to {MAX_TIME_S:,.0f} [60]")
    ap.add_argument("--repeat", type=A.integer(1, MAX_REPEAT), default=3,
                    help=f"runs of each, medians reported, 1 to {MAX_REPEAT} [3]")
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    a = ap.parse(argv)
    if isinstance(a, int):  # a bad argument (its one line printed), or --help
        return a
    try:  # before any output: dsim's own checks of the three configurations
        bare_cfg, alone_cfg, kit_cfg = configs(a.rate, a.time_limit, a.seed)
    except UsageError as exc:
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict]] = {"queue": [], "alone": [], "service": []}
    for _ in range(a.repeat):  # interleaved, so a busy spell on the machine hits all three
        for name, cfg in (("queue", bare_cfg), ("alone", alone_cfg), ("service", kit_cfg)):
            r = measure(cfg)
            runs[name].append(r)
            print(f"{name:8s} {r['ops']:,} requests, {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                  f"{r['us']:.1f} CPU us per request, valid {r['valid']}", flush=True)
    med = {n: statistics.median(r["us"] for r in rs) for n, rs in runs.items()}
    alone_ratio, ratio = med["alone"] / med["queue"], med["service"] / med["queue"]
    print(f"median CPU us per request: queue {med['queue']:.1f}, the queue's client and a kit Service "
          f"{med['alone']:.1f}, a graph design (kit Client and Service) {med['service']:.1f}")
    print(f"ratio to the queue: the kit Service alone {alone_ratio:.2f}, the graph design {ratio:.2f} "
          f"(target <= 1.25)")
    if a.json:
        walls = {n: round(statistics.median(r["wall"] for r in rs), 3) for n, rs in runs.items()}
        print(json.dumps({"bench": "kit-service", "rate": a.rate, "time_limit_s": a.time_limit, "repeat": a.repeat,
                          "queue_us_per_request": round(med["queue"], 2),
                          "alone_us_per_request": round(med["alone"], 2),
                          "service_us_per_request": round(med["service"], 2),
                          "alone_ratio": round(alone_ratio, 3), "ratio": round(ratio, 3),
                          "queue_wall_seconds": walls["queue"], "alone_wall_seconds": walls["alone"],
                          "service_wall_seconds": walls["service"],
                          "valid": all(r["valid"] is True for rs in runs.values() for r in rs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
