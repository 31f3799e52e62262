"""Bytes per node of a Kademlia network, walked object by object after a run without churn.

    python -m scenarios.kademlia.memory --nodes 1000
    python -m scenarios.kademlia.memory --nodes 30000 --every-s 60    # a progress line a simulated minute

Builds the network alone (no clients, no workload, no churn: the nodes join by the protocol over
``nodes / 50`` simulated seconds, then run ``--settle-s`` more), then sums ``sys.getsizeof`` over
what each node holds: the engine's share (the Host, its timer entries,
its Storage and its numpy random stream) and the protocol's (the node object, its routing table,
replacement caches and other dicts). An object held by several nodes (a contact's int is the
object its node sent) counts once; shared objects (the Conf, small ints) are not counted.
The last line printed is a JSON object; it also gives what the joins cost (``cpu_seconds`` of
the simulation, ``deliveries``, ``joins_per_cpu_second``), the process's peak RSS once the
network is built (``rss_before_walk_mib``) and at the end (``peak_rss_mib``: the walk's own
bookkeeping included).

``--tables oracle`` skips the joins, which take hours at a million nodes: the nodes start (each
draws its id), then every bucket is filled from the sorted list of all ids with up to ``k`` of
the nodes in its range, as PeerSim does at start, and every full bucket's replacement cache with
up to ``k`` more (full caches: more than joins leave, so the ``cache`` part is an upper bound). That
is not a network to run (no node has joined) but a table of the size joins build, to measure:
at 10,000 and 100,000 nodes it is checked against the walk after real joins (the README).

    python -m scenarios.kademlia.memory --nodes 1000000 --tables oracle
"""

from __future__ import annotations

import json
import resource
import sys
from bisect import bisect_left
from sys import getsizeof

from simulator import NS_PER_S, Dist, Simulation, Stopwatch, build_config, get_scenario
from simulator import scriptargs as A

from .node import Conf, Kad

JOINS_PER_S = 50.0
MAX_S = 1e6  # simulated seconds at most for --settle-s and --every-s


def deep(obj, seen: set) -> int:
    """Size of ``obj`` and what it holds (dicts, lists, tuples, ints), each object once."""
    if id(obj) in seen or obj is None or isinstance(obj, bool) or (isinstance(obj, int) and -5 <= obj <= 256):
        return 0
    seen.add(id(obj))
    n = getsizeof(obj)
    if isinstance(obj, dict):
        n += sum(deep(k, seen) + deep(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        n += sum(deep(x, seen) for x in obj)
    return n


def walk(sim, servers: list[str]) -> dict:
    parts = {"host": 0, "timers": 0, "storage": 0, "rng": 0, "node": 0, "table": 0, "cache": 0, "node_other": 0}
    contacts = cached = 0
    # One set for the whole network: a contact int is usually the very object its node sent as
    # ``me``, held by every table that lists it, so it is counted once, where first met.
    seen: set = set()
    for s in servers:
        h = sim.hosts[s]
        parts["host"] += getsizeof(h)
        parts["timers"] += deep(h.timers, seen)
        st = h._storage
        if st is not None:
            parts["storage"] += getsizeof(st) + deep(st._durable, seen) + deep(st._cache, seen)
        if h._rng is not None:  # a Generator holds its bit generator and seed sequence
            bg = h._rng.bit_generator
            parts["rng"] += getsizeof(h._rng) + getsizeof(bg) + deep(bg.state, set()) + getsizeof(bg.seed_seq)
        node = h.node
        if node is None:
            continue
        parts["node"] += getsizeof(node)
        parts["table"] += deep(node.buckets, seen)
        parts["cache"] += deep(node.repl, seen)
        contacts += sum(len(b) for b in node.buckets.values())
        cached += sum(len(r) for r in node.repl.values())
        for name in ("fails", "rpcs", "lookups", "data", "touched", "pinging", "puts", "quiet_mask"):
            parts["node_other"] += deep(getattr(node, name), seen)
    n = len(servers)
    per = {k: round(v / n) for k, v in parts.items()}
    return {"nodes": n, "bytes_per_node": sum(per.values()), "parts": per,
            "engine_bytes_per_node": per["host"] + per["timers"] + per["storage"] + per["rng"],
            "contacts_per_node": round(contacts / n, 1), "cached_per_node": round(cached / n, 1),
            "table_bytes_per_contact": round(parts["table"] / max(contacts, 1), 1)}


def fill_from_oracle(sim, servers: list[str], k: int, id_bits: int) -> float:
    """Fill every started node's buckets with up to ``k`` of the nodes in each bucket's range, from
    the sorted list of all ids (global knowledge, for measuring only); returns the CPU seconds."""
    clock = Stopwatch()
    nodes = [sim.hosts[s].node for s in servers]
    nodes.sort(key=lambda n: n.nid)
    ids = [n.nid for n in nodes]
    mes = [n.me for n in nodes]  # the very int each node sends, as a table after joins holds it
    for node in nodes:
        nid = node.nid
        buckets, caches = {}, {}
        i = id_bits
        while i > 0:
            i -= 1
            # bucket i: ids sharing ours above bit i and differing at bit i
            lo = ((nid >> i) ^ 1) << i
            a = bisect_left(ids, lo)
            b = bisect_left(ids, lo + (1 << i), a)
            if b > a:
                buckets[i] = mes[a:min(b, a + k)]
                if b > a + k:  # the next k of the range wait in the cache: full caches, an upper bound
                    caches[i] = mes[a + k:min(b, a + 2 * k)]
            # ours alone in our own block of 2^i ids: every bucket below is empty
            own = (nid >> i) << i
            x = bisect_left(ids, own)
            if bisect_left(ids, own + (1 << i), x) - x <= 1:
                break
        node.buckets = dict(sorted(buckets.items()))
        node.repl = caches
    return clock.cpu_s


def _run_with_progress(sim, end_ns: int, every_ns: int, clock: Stopwatch) -> None:
    """Run in chunks (the chunks do not change event order) and print what the joins cost."""
    last = (0, 0, 0.0)
    while sim.now < end_ns:
        sim.run(min(end_ns, sim.now + every_ns))
        joined = sum(1 for r in sim.tables.get("kad.member", ()) if r[2] == "joined")
        cpu, delivered = clock.cpu_s, sim.network.delivered
        dj = joined - last[0]
        per = (f"{(cpu - last[2]) / dj * 1e3:.1f} ms CPU and {(delivered - last[1]) / dj:.0f} deliveries a join"
               if dj else "no joins")
        print(f"t={sim.now / NS_PER_S:.0f}s joined={joined} deliveries={delivered} cpu_s={cpu:.1f} "
              f"({per} since the last line)", flush=True)
        last = (joined, delivered, cpu)


def main(argv: list[str] | None = None) -> int:
    ap = A.Parser(prog="python -m scenarios.kademlia.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=A.integer(None, what="2 to 1,000,000"), default=1000, help="nodes, 2 to 1,000,000 (default 1000)")
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--settle-s", type=A.number(0, MAX_S), default=10.0,
                    help=f"simulated seconds after the last join (0 to {MAX_S:g})")
    ap.add_argument("--tables", choices=("joins", "oracle"), default="joins",
                    help="joins: the nodes join by the protocol (default); oracle: no joins, every bucket filled "
                         "from the list of all ids (to measure a million nodes in minutes rather than hours)")
    ap.add_argument("--every-s", type=A.number(0, MAX_S), default=0.0,
                    help="print a progress line every this many simulated seconds: nodes joined, deliveries and CPU "
                         "seconds so far, and the CPU and deliveries per join since the last line (0: none)")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed, before any run), or --help
        return args
    if not 2 <= args.nodes <= 1_000_000:
        print(f"{ap.prog}: error: bad value {args.nodes} for --nodes: expected an integer from 2 to 1,000,000",
              file=sys.stderr)
        return 2
    join_s = max(5.0, args.nodes / JOINS_PER_S)
    cfg = build_config(get_scenario("kademlia"), seed=args.seed, options={"node_count": args.nodes},
                       sets={"join_window_s": join_s})
    sim = Simulation(cfg.seed, latency=Dist(cfg.latency_dist, cfg.latency_ms))
    conf = Conf(dict(cfg.params), None)
    servers = [f"n{i}" for i in range(1, args.nodes + 1)]
    for i, name in enumerate(servers, 1):
        sim.add_node(name, (lambda i=i: Kad(conf, i)))
    clock = Stopwatch()
    if args.tables == "oracle":
        sim.run(1)  # the hosts start and draw their ids; the joins (timers) never fire
        start_cpu_s = clock.cpu_s
        fill_cpu_s = fill_from_oracle(sim, servers, conf.k, conf.id_bits)
        built_mib = _peak_rss_mib()
        out = walk(sim, servers)
        out.update(tables="oracle", start_cpu_seconds=round(start_cpu_s, 1), fill_cpu_seconds=round(fill_cpu_s, 1),
                   rss_before_walk_mib=built_mib, peak_rss_mib=_peak_rss_mib())
        print(json.dumps(out))
        return 0
    end_ns = int((join_s + args.settle_s) * NS_PER_S)
    if args.every_s > 0:
        _run_with_progress(sim, end_ns, int(args.every_s * NS_PER_S), clock)
    sim.run(end_ns)
    cpu_s = clock.cpu_s
    built_mib = _peak_rss_mib()
    out = walk(sim, servers)
    out.update(tables="joins", cpu_seconds=round(cpu_s, 1), deliveries=sim.network.delivered,
               joins_per_cpu_second=round(args.nodes / cpu_s, 1),
               rss_before_walk_mib=built_mib, peak_rss_mib=_peak_rss_mib())
    print(json.dumps(out))
    return 0


def _peak_rss_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    sys.exit(main())
