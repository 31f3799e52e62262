"""The ``kademlia`` scenario: a Kademlia DHT whose nodes join by the protocol, churn, and serve
finds, puts and gets, checked against a global oracle.

Wiring: nodes ``n1..nN`` run :class:`~scenarios.kademlia.node.Kad` (``n1`` is the bootstrap
contact and never churns); they arrive uniformly over the first ``join_window_s`` and join by the
protocol. Clients ``c1..c4`` send each operation to a random node, which runs the lookup for it:
``find`` (FIND_NODE of a random id; ok when it returned contacts), ``put`` (FIND_NODE of the key,
then STORE at the k closest; ok when one node stored it) and ``get`` (FIND_VALUE of a key put
before; ok when the value was found). Operations start ``settle_s`` after the join window.
After the final heal, ten finds and gets of up to ten keys put before must succeed (liveness).
Churn is the nemesis ``churn`` (churn.py); it composes with the partitions.
"""

from __future__ import annotations

import bisect

import numpy as np

from simulator import CheckResult, Param, RunData, Scenario, Setup, UsageError, register

from . import checkers as C
from .churn import CHURN_DISTS, Churn, churn_nemesis
from .client import KadClient
from .ids import key_id
from .node import Conf, Kad

MAX_WINDOW_MS = 1e12  # a churn window's longest: the longest run (1e9 s); the nemesis's is its interval
# Routing tables the samples check a simulated second, at most: a check costs about 13 wall us at
# 1,000 joined nodes, so sampling adds at most about 13 ms a simulated second (the default run's is
# 1,000 tables every 30 s; sample_s=0.0001 asked for ten million a second and never finished).
MAX_TABLE_CHECKS_PER_S = 1000


def check_sessions_end(p: dict, window_s: float, window: str) -> None:
    """Refuse a Pareto churn whose shortest session (its scale, mean x (alpha - 1) / alpha) is no
    shorter than a churn window: every session is drawn when a window opens, so none would end
    inside one and the churn would do nothing (a Weibull or exponential session can be any length)."""
    if p["churn_dist"] != "pareto":
        return
    shortest = p["session_mean_s"] * (p["pareto_alpha"] - 1.0) / p["pareto_alpha"]
    if shortest >= window_s:
        raise UsageError(f"bad value {p['session_mean_s']!r} for session_mean_s: with churn_dist=pareto and pareto_alpha "
                         f"= {p['pareto_alpha']:g} no session is shorter than {shortest:g} s, and sessions are drawn "
                         f"when a churn window opens ({window}): none would end in it; expected a mean under "
                         f"{window_s * p['pareto_alpha'] / (p['pareto_alpha'] - 1.0):g} s or a longer window")


def _hour_of_churn(nodes: int) -> dict:
    """The 100k preset's shape for ``nodes`` nodes (see ``Kademlia.benchmarks``)."""
    return {"options": {"node_count": nodes, "rate": 10.0, "time_limit_s": 4205.0,
                        "nemesis": ["churn"], "nemesis_interval_s": 600.0},
            "params": {"join_window_s": 600.0, "refresh_s": 3600.0, "sample_nodes": 200,
                       "keys": 10_000, "session_mean_s": 3600.0, "downtime_mean_s": 3600.0}}


@register
class Kademlia(Scenario):
    name = "kademlia"
    summary = "a Kademlia DHT: nodes join by the protocol, churn, find, put and get; checked against an oracle"
    params = (
        Param("k", 20, "bucket size and replication factor (the paper's k)", type=int, min=1, max=1000),
        Param("alpha", 3, "parallel RPCs per lookup (the paper's alpha)", type=int, min=1, max=100),
        Param("id_bits", 160, "bits in a node id or key", type=int, min=16, max=256),
        Param("rpc_timeout_ms", 500.0, "an RPC unanswered this long has failed, ms", min=1.0),
        Param("stale_after", 5, "failed RPCs in a row after which a contact is dropped (when a replacement waits)",
              type=int, min=1),
        Param("recheck_s", 60.0, "a full bucket whose oldest contact answered a ping in the current period of this "
              "length sends newcomers to the replacement cache without pinging again (0: ping every time), s",
              min=0.0),
        Param("refresh_s", 3600.0, "a bucket with no lookup in this long is refreshed, s", min=1.0),
        Param("republish_s", 3600.0, "holders re-store each value this often, s", min=1.0),
        Param("expire_s", 86400.0, "a stored value expires this long after it was (re)stored, s", min=1.0),
        Param("cache", False, "FIND_VALUE caches the value at the closest node on the path that lacked it", type=bool),
        Param("join_window_s", 20.0, "the initial nodes arrive uniformly over this window, s", min=0.0),
        Param("settle_s", 5.0, "quiet time after a join, leave or fault before lookups are held exact, s", min=0.0),
        Param("keys", 200, "distinct keys put and got", type=int, min=1, max=10_000_000),
        Param("key_dist", "uniform", "how keys are drawn", type=str, choices=("uniform", "zipf")),
        Param("zipf_s", 1.0, "Zipf exponent when key_dist=zipf", min=0.0, max=10.0),
        Param("put_share", 0.2, "share of puts among operations", min=0.0, max=1.0),
        Param("get_share", 0.4, "share of gets among operations (the rest are finds)", min=0.0, max=1.0),
        Param("client_retry_ms", 2000.0, "a client asks another node after this silence, ms", min=1.0),
        Param("lookup_floor", 0.9, "under churn, the least mean share of the true k closest a lookup must find",
              min=0.0, max=1.0),
        Param("value_floor", 0.9, "under churn, the least share of gets with a live copy that must succeed",
              min=0.0, max=1.0),
        Param("churn_dist", "weibull", "session-time distribution of the churn nemesis", type=str, choices=CHURN_DISTS),
        Param("session_mean_s", 120.0, "mean session time under churn, s", min=0.001),
        Param("weibull_shape", 0.5, "Weibull shape of session times (Stutzbach and Rejaie: about 0.5)", min=0.05,
              max=10.0),
        Param("pareto_alpha", 2.0, "Pareto tail index of session times", min=1.01, max=100.0),
        Param("downtime_mean_s", 60.0, "mean time a departed node stays away (exponential), s", min=0.001),
        Param("rejoin_old_id", 0.5, "share of returning nodes that come back with their old id", min=0.0, max=1.0),
        Param("sample_s", 30.0, "routing tables are checked every this many seconds (0: only at the end)", min=0.0),
        Param("sample_nodes", 1000, "nodes whose tables each sample checks (all, up to this many)", type=int, min=1),
    )
    bugs = {
        "evict-live-contact": "a full bucket replaces its least-recently-seen contact without pinging it",
        "no-refresh": "buckets are never refreshed, neither after the join nor periodically",
        "no-republish": "values are never republished, nor handed to new nodes that should hold them",
        "stop-early": "a lookup stops at the first answer that brings nothing closer, without querying the k closest",
        "count-unresponsive": "contacts that never answered are counted among the k closest a lookup returns",
    }
    exposes = {
        # A bucket fills during the joins: the bug evicts contacts that are up. No fault needed.
        "evict-live-contact": "--bug evict-live-contact --seed 1",
        # Without the join's refresh, far buckets stay thin and lookups miss some of the k closest.
        "no-refresh": "--bug no-refresh --seed 1",
        # No fault, every parameter at its default: a simulated day and a little (past expire_s,
        # 86,400 s) on a small quiet network, with few operations so that the run stays cheap.
        # Holders that stay up let values put early expire, as nobody re-stores them hourly; the
        # gets of those keys fail while their holders are up.
        "no-republish": "--bug no-republish --seed 1 --node-count 30 --time-limit 90000 --rate 0.01",
        # Without churn every lookup is held exact: stopping early misses some of the k closest.
        "stop-early": "--bug stop-early --seed 1",
        # Churn leaves dead contacts in tables; the bug returns them as if they had answered.
        "count-unresponsive": "--bug count-unresponsive --seed 1 --nemesis churn",
    }
    checkers = {
        "lookup-correctness": "against the oracle of live ids: with no churn or fault, every FIND_NODE returns exactly "
                              "the k closest live nodes; no lookup returns a node down throughout it; under churn the "
                              "mean share of the true k closest found reaches lookup_floor",
        "value-availability": "a get of a key put before succeeds while a node holding a live copy is up throughout "
                              "it (every one undisturbed; under churn at least value_floor of them)",
        "routing-table": "at the end and at sampled instants every bucket holds at most k contacts, all in its range, "
                         "no duplicates, not the node itself; no contact up and reachable was evicted for a newcomer",
        "liveness": "after the final heal, finds succeed, and gets of keys put before that one of the key's k closest "
                    "live nodes holds (keys with no copy there are counted: lost or out of reach)",
    }
    nemeses = ("churn", "partition-random-halves", "partition-isolate-one", "crash", "pause", "slow-link")
    custom_nemeses = {"churn": churn_nemesis}
    fault_verbs = {"churn": ("window_ms",), "churn_stop": ()}
    defaults = {"node_count": 1000, "rate": 20.0, "time_limit_s": 120.0, "nemesis_interval_s": 30.0,
                "latency_ms": 20.0, "op_timeout_ms": 10_000.0, "quiesce_s": 5.0, "final_timeout_s": 20.0}
    # 100k (and 10k): joins over 600 s, then a simulated hour of 10 lookups/s with churn windows from 600 s on
    # (600-1200, 1800-2400, 3000-3600); 1M: joins over 1000 s, then 10,000 lookups without churn.
    # The 100k preset's churn has the measured scale, not the short sessions that make the small
    # default run churn: Stutzbach and Rejaie (IMC 2006) fit session times with Weibull shapes
    # 0.34-0.59 and scales of 21-42 minutes, a mean of about an hour at shape 0.5 (scale 30 min);
    # down times were as long. 44% of sessions still end within a 600 s window at that shape.
    benchmarks = {
        "kademlia-100k": _hour_of_churn(100_000),
        # The 100k preset's shape at a tenth of the nodes (joins over the same 600 s, the same hour,
        # churn and rate): minutes rather than hours, to see that run's figures and plots at a
        # size a laptop runs while one waits.
        "kademlia-10k": _hour_of_churn(10_000),
        "kademlia-1m-static": {"options": {"node_count": 1_000_000, "rate": 10.0, "time_limit_s": 2005.0},
                               "params": {"join_window_s": 1000.0, "sample_s": 0.0, "sample_nodes": 100,
                                          "keys": 10_000}},
    }
    examples = (
        "dsim run kademlia --seed 1",
        "dsim run kademlia --seed 2 --nemesis churn,partition-random-halves",
        "dsim run kademlia --seed 1 --nemesis churn --set churn_dist=pareto --set session_mean_s=40",
        "dsim run kademlia --seed 1 --bug stop-early",
        "dsim sweep kademlia --seeds 1-30 --nemesis churn,partition-random-halves --jobs 2",
        "python -m scenarios.kademlia.scaling --sizes 1000,10000,100000",
    )

    @classmethod
    def check_fault(cls, n, act, hosts, params) -> None:
        verb = act["action"]
        cls.check_fault_keys(n, act, cls.fault_verbs[verb])
        if verb == "churn":  # the window's length: churn.py's sessions end and restart until it closes
            w = act["window_ms"]
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= MAX_WINDOW_MS:
                raise UsageError(f"bad value {w!r} for window_ms of fault {n} (churn): expected a number of ms "
                                 f"above 0 and at most {MAX_WINDOW_MS:g} (1e9 s, the longest run)")
            check_sessions_end(params, w / 1e3, f"window_ms = {w:g} of fault {n} (churn)")

    @classmethod
    def validate(cls, params: dict) -> None:
        if params["put_share"] + params["get_share"] > 1.0 + 1e-9:
            raise UsageError(f"bad value {params['put_share'] + params['get_share']:g} for put_share + get_share: "
                             "expected at most 1")
        if params["expire_s"] < 2 * params["republish_s"]:
            # a holder's republish timer fires every republish_s and skips a value stored within the
            # last period, so it re-stores a value between one and two republish_s after storing it
            raise UsageError(f"bad value {params['expire_s']!r} for expire_s: expected at least 2 x republish_s "
                             f"({2 * params['republish_s']:g}), as a holder re-stores a value up to two republish "
                             "periods after storing it")

    def build(self, sim, cfg) -> Setup:
        p = dict(cfg.params)
        n = cfg.node_count
        if n < 2:
            raise UsageError(f"bad value {n} for node_count: expected at least 2 (a value is stored on the "
                             "nodes its writer's lookup finds, and a lone node finds none)")
        if n >= 2 ** (p["id_bits"] // 2):
            raise UsageError(f"bad value {p['id_bits']} for id_bits: {n} nodes need at least "
                             f"{2 * n.bit_length()} bits so that random ids do not collide")
        if "churn" in cfg.nemesis:
            check_sessions_end(p, cfg.nemesis_interval_s, f"--nemesis-interval {cfg.nemesis_interval_s:g} s")
        tables = min(n, p["sample_nodes"])
        if 0 < p["sample_s"] < tables / MAX_TABLE_CHECKS_PER_S:
            raise UsageError(f"bad value {p['sample_s']!r} for sample_s: expected 0 (only at the end) or at least "
                             f"{tables / MAX_TABLE_CHECKS_PER_S:g} s, as each sample checks {tables} routing tables "
                             f"(node_count, up to sample_nodes) and at most {MAX_TABLE_CHECKS_PER_S:,} are checked "
                             "a simulated second")
        conf = Conf(p, cfg.bug)
        servers = [f"n{i}" for i in range(1, n + 1)]
        for i, s in enumerate(servers, 1):
            sim.add_node(s, (lambda i=i: Kad(conf, i)))
        Churn(sim, servers, p)
        samples = {"bad": [], "count": 0}
        if p["sample_s"] > 0:
            _sample_tables(sim, servers, p, samples)

        names = [f"k{i}" for i in range(p["keys"])]
        cum = None
        if p["key_dist"] == "zipf":
            w = 1.0 / np.arange(1, p["keys"] + 1) ** p["zipf_s"]
            cum = np.cumsum(w / w.sum()).tolist()
        put_names: list[str] = []
        put_seen: set[str] = set()
        counter = [0]
        final: list[tuple[str, object]] = []
        nbytes = (p["id_bits"] + 7) // 8
        for i in range(10):
            final.append(("find", f"{key_id(f'final-{i}', p['id_bits']):x}"))
        put_share, get_share = p["put_share"], p["get_share"]

        def generate(rng):
            u = float(rng.random())
            if u < put_share or (u < put_share + get_share and not put_names):
                if cum is None:
                    name = names[int(rng.integers(len(names)))]
                else:
                    name = names[min(bisect.bisect_right(cum, float(rng.random())), len(names) - 1)]
                counter[0] += 1
                if name not in put_seen:
                    put_seen.add(name)
                    put_names.append(name)
                    if len(put_names) <= 10:
                        final.append(("get", name))
                return "put", (name, counter[0])
            if u < put_share + get_share:
                return "get", put_names[int(rng.integers(len(put_names)))]
            t = int.from_bytes(rng.bytes(nbytes), "big") >> (8 * nbytes - p["id_bits"])
            return "find", f"{t:x}"

        start_s = p["join_window_s"] + p["settle_s"]
        rate = cfg.rate

        def rate_at(t_s: float) -> float:
            return rate if t_s >= start_s else 0.0

        def expose() -> dict:
            # Called once the simulation has stopped for good (the run's checking phase), so each
            # node's own table is handed over, not copied: a copy was as large again as every
            # table (about 0.7 GB at 100,000 nodes, 7 GB at a million).
            tables = {}
            for s in servers:
                h = sim.hosts[s]
                if h.up and h.node is not None and h.node.joined:
                    tables[s] = (h.node.nid, h.node.buckets)
            return {"tables": tables, "table_samples_bad": samples["bad"], "table_samples": samples["count"]}

        return Setup(servers=servers, client=lambda cid: KadClient(n, p["client_retry_ms"], p["id_bits"]),
                     generate=generate, final=final, expose=expose, rate_at=rate_at)

    def check(self, run: RunData) -> dict[str, CheckResult]:
        p = dict(run.cfg.params)
        m = C.Membership(run)
        return {"lookup-correctness": C.lookup_correctness(run, p, m),
                "value-availability": C.value_availability(run, p, m),
                "routing-table": C.routing_table(run, p, m),
                "liveness": C.liveness(run, p, m)}

    def figures(self, run: RunData) -> dict:
        from .figures import figures

        return figures(run)

    def plots(self, run: RunData, folder, shade) -> list[str]:
        from .figures import plots

        return plots(run, folder, shade)


def _sample_tables(sim, servers: list[str], p: dict, samples: dict) -> None:
    """Check the structure of (up to ``sample_nodes``) routing tables every ``sample_s``."""
    every_ns = int(p["sample_s"] * 1e9)
    pick = sim.streams.get("kad.samples")

    def sample(_a, _b):
        samples["count"] += 1
        chosen = servers if len(servers) <= p["sample_nodes"] else \
            [servers[int(i)] for i in sorted(pick.choice(len(servers), p["sample_nodes"], replace=False))]
        for s in chosen:
            h = sim.hosts[s]
            if h.up and h.node is not None and len(samples["bad"]) < 10:
                for v in C.table_violations(s, h.node.nid, h.node.buckets, p["k"]):
                    samples["bad"].append(f"at {sim.now / 1e9:.1f}s {v}")
        sim.schedule(every_ns, sample)

    sim.schedule(every_ns, sample)
