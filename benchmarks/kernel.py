"""Kernel speed: all-to-all messaging through dsim against the same workload on bare simpy.

N handler nodes; a fixed number of messages in flight; each delivery makes the receiver send one
message to a node drawn at random (destinations pre-drawn in per-node batches in both versions, so
both do the same random work). Latency is exponential with mean 1 ms in both. The bare version is
what a careful simpy user writes: one ``Timeout`` per message with a delivery callback.

Two smaller loops isolate the engine's two kinds of event, each against its bare simpy version:

``pingpong``
    pairs of nodes bounce one message each back and forth (a delivery, a handler, a send); no
    random destinations, so what is left is the kernel loop, ``Host.send`` and the delivery.
``timer``
    every node re-arms one named timer each time it fires (a fire, a handler, ``set_timer``); the
    simpy version re-arms a ``Timeout`` from its callback.

Rates are events per CPU second (``time.process_time``), also printed as µs per event.
Repetitions come in adjacent pairs (which side runs first alternates) and the ratio is the median
of the pairs' ratios: this machine's speed drifts by tens of percent from minute to minute, and a
pair measured back to back sees the same speed, where two medians taken apart may not.

    python benchmarks/kernel.py --nodes 100
    python benchmarks/kernel.py --nodes 10000 --json
    python benchmarks/kernel.py --workload pingpong,timer --repeat 7 --json
    python benchmarks/kernel.py --idle 1000000 --json      # memory of idle nodes

The last line with ``--json``: ``{"nodes", "dsim_msgs_per_s", "simpy_msgs_per_s", "ratio",
"ratio_min", "ratio_max", "peak_rss_mib"}`` for the all-to-all workload (the default), plus, for
each workload run, ``"<name>": {"dsim_us_per_event", "simpy_us_per_event", "ratio", ...}``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import simpy  # noqa: E402

from simulator import scriptargs as A  # noqa: E402
from simulator.engine.dists import Dist  # noqa: E402
from simulator.engine.kernel import Simulation  # noqa: E402
from simulator.engine.node import Node  # noqa: E402

BATCH = 256
MAX_NODES = 10_000_000  # --nodes and --idle at most
MAX_IN_FLIGHT = 10_000_000
MAX_SIM_MS = 10_000_000  # simulated ms a repetition at most (about three simulated hours)
MAX_REPEAT = 1000


class Hopper(Node):
    """Forwards every message to a random node; ``seed_msgs`` messages start at boot."""

    __slots__ = ("ids", "dests", "seed_msgs")

    def __init__(self, ids: list[str], seed_msgs: int):
        self.ids = ids
        self.dests: list[int] = []
        self.seed_msgs = seed_msgs

    def _next(self, ctx) -> str:
        if not self.dests:
            self.dests = ctx.rng.integers(0, len(self.ids), BATCH).tolist()
        return self.ids[self.dests.pop()]

    def on_start(self, ctx):
        for _ in range(self.seed_msgs):
            ctx.send(self._next(ctx), "hop")

    def on_message(self, ctx, src, msg):
        ctx.send(self._next(ctx), msg)


def run_dsim(nodes: int, in_flight: int, sim_ms: int, seed: int = 1) -> tuple[int, float]:
    sim = Simulation(seed, latency=Dist("exponential", 1.0))
    ids = [f"n{i}" for i in range(nodes)]
    per = [in_flight // nodes + (1 if i < in_flight % nodes else 0) for i in range(nodes)]
    for i, nid in enumerate(ids):
        sim.add_node(nid, lambda k=per[i]: Hopper(ids, k))
        sim.streams.get(f"node.{nid}")  # generators made before timing, as in the simpy version
    t0 = time.process_time()
    sim.run(until_ns=sim_ms * 1_000_000)
    cpu = time.process_time() - t0
    return sim.network.delivered, cpu


def run_simpy(nodes: int, in_flight: int, sim_ms: int, seed: int = 1) -> tuple[int, float]:
    env = simpy.Environment()
    gens = [np.random.default_rng([seed, i]) for i in range(nodes)]
    dests: list[list[int]] = [[] for _ in range(nodes)]
    latency = _latency_source(seed)
    delivered = 0

    def next_dest(i: int) -> int:
        d = dests[i]
        if not d:
            d = dests[i] = gens[i].integers(0, nodes, BATCH).tolist()
        return d.pop()

    def deliver(ev):
        nonlocal delivered
        delivered += 1
        dst = ev._value
        t = env.timeout(latency(), next_dest(dst))
        t.callbacks.append(deliver)

    per = [in_flight // nodes + (1 if i < in_flight % nodes else 0) for i in range(nodes)]
    for i in range(nodes):
        for _ in range(per[i]):
            t = env.timeout(latency(), next_dest(i))
            t.callbacks.append(deliver)
    t0 = time.process_time()
    env.run(until=sim_ms * 1_000_000)
    cpu = time.process_time() - t0
    return delivered, cpu


class Bouncer(Node):
    """Sends one message to its partner at boot (if it serves first) and answers every one."""

    __slots__ = ("partner", "serve")

    def __init__(self, partner: str, serve: bool):
        self.partner = partner
        self.serve = serve

    def on_start(self, ctx):
        if self.serve:
            ctx.send(self.partner, "ball")

    def on_message(self, ctx, src, msg):
        ctx.send(src, msg)


class Ticker(Node):
    """Re-arms its one timer every time it fires, 1 ms apart (the first staggered), counting firings."""

    __slots__ = ("first_ms", "fired")

    def __init__(self, first_ms: float, fired: list[int]):
        self.first_ms = first_ms
        self.fired = fired

    def on_start(self, ctx):
        ctx.set_timer("tick", self.first_ms)

    def on_timer(self, ctx, name):
        self.fired[0] += 1
        ctx.set_timer(name, 1.0)


def run_dsim_pingpong(nodes: int, sim_ms: int, seed: int = 1) -> tuple[int, float]:
    sim = Simulation(seed, latency=Dist("exponential", 1.0))
    pairs = max(1, nodes // 2)
    for i in range(pairs):
        a, b = f"a{i}", f"b{i}"
        sim.add_node(a, lambda b=b: Bouncer(b, True))
        sim.add_node(b, lambda a=a: Bouncer(a, False))
    t0 = time.process_time()
    sim.run(until_ns=sim_ms * 1_000_000)
    return sim.network.delivered, time.process_time() - t0


def _latency_source(seed: int):
    """Exponential latencies with mean 1 ms in integer ns, drawn 4,096 at a time, as the network draws them."""
    lat_gen = np.random.default_rng([seed, 10**9])
    lat_buf: list[int] = []

    def latency() -> int:
        nonlocal lat_buf
        if not lat_buf:
            lat_buf = np.rint(lat_gen.exponential(1.0, 4096) * 1e6).astype(np.int64).tolist()
            lat_buf.reverse()
        return lat_buf.pop()

    return latency


def run_simpy_pingpong(nodes: int, sim_ms: int, seed: int = 1) -> tuple[int, float]:
    env = simpy.Environment()
    latency = _latency_source(seed)
    delivered = 0

    def deliver(ev):
        nonlocal delivered
        delivered += 1
        t = env.timeout(latency(), ev._value)  # the value (the ball's pair) rides along
        t.callbacks.append(deliver)

    for i in range(max(1, nodes // 2)):
        t = env.timeout(latency(), i)
        t.callbacks.append(deliver)
    t0 = time.process_time()
    env.run(until=sim_ms * 1_000_000)
    return delivered, time.process_time() - t0


def run_dsim_timer(nodes: int, sim_ms: int, seed: int = 1) -> tuple[int, float]:
    sim = Simulation(seed)
    fired = [0]
    for i in range(nodes):
        sim.add_node(f"n{i}", lambda k=i: Ticker(1.0 + k / nodes, fired))
    t0 = time.process_time()
    sim.run(until_ns=sim_ms * 1_000_000)
    return fired[0], time.process_time() - t0


def run_simpy_timer(nodes: int, sim_ms: int, seed: int = 1) -> tuple[int, float]:
    env = simpy.Environment()
    fired = 0

    def fire(ev):
        nonlocal fired
        fired += 1
        t = env.timeout(1_000_000)
        t.callbacks.append(fire)

    for i in range(nodes):
        t = env.timeout(round((1.0 + i / nodes) * 1_000_000))
        t.callbacks.append(fire)
    t0 = time.process_time()
    env.run(until=sim_ms * 1_000_000)
    return fired, time.process_time() - t0


WORKLOADS = {"pingpong": (run_dsim_pingpong, run_simpy_pingpong), "timer": (run_dsim_timer, run_simpy_timer)}


def compare(name: str, nodes: int, sim_ms: int, reps: int) -> dict:
    """Adjacent dsim/simpy pairs of one workload: µs per event (medians) and the median ratio of
    their rates (dsim over simpy: 1.0 is as fast as bare simpy)."""
    run_d, run_s = WORKLOADS[name]
    d_us, s_us, ratios = [], [], []
    for rep in range(reps):
        sides = (run_d, run_s) if rep % 2 == 0 else (run_s, run_d)
        got = {}
        for side in sides:
            gc.collect()
            n, c = side(nodes, sim_ms, seed=rep + 1)
            got[side] = c * 1e6 / max(n, 1)
        d_us.append(got[run_d])
        s_us.append(got[run_s])
        ratios.append(got[run_s] / got[run_d])
    return {"dsim_us_per_event": round(statistics.median(d_us), 3),
            "simpy_us_per_event": round(statistics.median(s_us), 3),
            "ratio": round(statistics.median(ratios), 3), "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def idle(nodes: int) -> dict:
    """Build ``nodes`` idle nodes and run to quiescence; report peak memory."""
    gc.collect()
    before = peak_rss_mib()
    sim = Simulation(1)
    t0 = time.process_time()
    for i in range(nodes):
        sim.add_node(f"n{i}", Node)
    sim.run()
    cpu = time.process_time() - t0
    peak = peak_rss_mib()
    return {"idle_nodes": nodes, "build_and_run_cpu_s": round(cpu, 2), "peak_rss_mib": round(peak, 1),
            "bytes_per_node": round((peak - before) * 1024 * 1024 / nodes)}


def main(argv=None) -> int:
    ap = A.Parser(prog=Path(__file__).name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=A.integer(1, MAX_NODES), default=100, help=f"handler nodes, 1 to {MAX_NODES:,} (default 100)")
    ap.add_argument("--in-flight", type=A.integer(1, MAX_IN_FLIGHT), default=1000,
                    help=f"messages in flight, 1 to {MAX_IN_FLIGHT:,} (default 1000)")
    ap.add_argument("--sim-ms", type=A.integer(0, MAX_SIM_MS), default=0,
                    help=f"simulated ms per repetition, up to {MAX_SIM_MS:,} (default 0: ~300k deliveries)")
    ap.add_argument("--repeat", "--reps", dest="reps", type=A.integer(1, MAX_REPEAT), default=11,
                    help=f"pairs of repetitions, dsim and simpy back to back, 1 to {MAX_REPEAT} (default 11)")
    ap.add_argument("--workload", type=A.names(("hop", *WORKLOADS)), default="hop", metavar="NAMES",
                    help="comma-separated: hop (all-to-all, the default), pingpong, timer; e.g. hop,pingpong,timer")
    ap.add_argument("--idle", type=A.integer(0, MAX_NODES), default=0,
                    help=f"instead: build this many idle nodes (up to {MAX_NODES:,}; 0: no), report memory")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed), or --help
        return args
    if args.idle:
        out = idle(args.idle)
        print(f"{out['idle_nodes']:,} idle nodes: {out['build_and_run_cpu_s']} CPU s, peak RSS "
              f"{out['peak_rss_mib']} MiB, {out['bytes_per_node']} bytes a node")
        if args.json:
            print(json.dumps(out))
        return 0
    names = args.workload
    out: dict = {"nodes": args.nodes}
    if "hop" in names:
        out.update(hop(args))
    for name in names:
        if name == "hop":
            continue
        # about 150,000 events a repetition: a pair bounces one message a ms, a ticker fires once a ms
        per_ms = max(1, args.nodes // 2) if name == "pingpong" else args.nodes
        sim_ms = args.sim_ms or max(2, 150_000 // per_ms)
        got = out[name] = compare(name, args.nodes, sim_ms, args.reps)
        print(f"{name}: {args.nodes} nodes, {sim_ms} simulated ms x {args.reps} pairs (CPU time)")
        print(f"  dsim : {got['dsim_us_per_event']:.3f} µs an event (median)")
        print(f"  simpy: {got['simpy_us_per_event']:.3f} µs an event (median)")
        print(f"  ratio: {got['ratio']:.3f} of bare simpy's rate (median of pairs; {got['ratio_min']:.3f} "
              f"to {got['ratio_max']:.3f})")
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if args.json:
        print(json.dumps(out))
    return 0


def hop(args) -> dict:
    """The all-to-all workload: dsim against bare simpy, deliveries per CPU second."""
    sim_ms = args.sim_ms or max(1, 150_000 // args.in_flight)
    dsim_rates, simpy_rates, ratios = [], [], []
    for rep in range(args.reps):
        first_dsim = rep % 2 == 0
        for side in ((run_dsim, run_simpy) if first_dsim else (run_simpy, run_dsim)):
            gc.collect()  # the previous side's cycles (a Simulation and its hosts), outside the timing
            n, c = side(args.nodes, args.in_flight, sim_ms, seed=rep + 1)
            (dsim_rates if side is run_dsim else simpy_rates).append(n / c)
        ratios.append(dsim_rates[-1] / simpy_rates[-1])
    dm, sm = statistics.median(dsim_rates), statistics.median(simpy_rates)
    out = {"dsim_msgs_per_s": round(dm), "simpy_msgs_per_s": round(sm),
           "dsim_us_per_event": round(1e6 / dm, 3), "simpy_us_per_event": round(1e6 / sm, 3),
           "ratio": round(statistics.median(ratios), 3), "ratio_min": round(min(ratios), 3),
           "ratio_max": round(max(ratios), 3)}
    print(f"hop: {args.nodes} nodes, {args.in_flight} in flight, {sim_ms} simulated ms x {args.reps} pairs (CPU time)")
    print(f"  dsim : {dm:12,.0f} deliveries/s (median), {out['dsim_us_per_event']:.3f} µs each")
    print(f"  simpy: {sm:12,.0f} deliveries/s (median), {out['simpy_us_per_event']:.3f} µs each")
    print(f"  ratio: {out['ratio']:.3f} (median of pairs; {out['ratio_min']:.3f} to {out['ratio_max']:.3f})")
    return out


if __name__ == "__main__":
    sys.exit(main())
