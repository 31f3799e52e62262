"""The ``raft`` scenario: a five-server Raft key-value store under partitions, crashes and clock
faults, checked for linearizability and for Raft's own invariants.

Wiring: servers ``n1..nN`` run :class:`~scenarios.raft.node.RaftNode` with a disk (``fsync_ms``
per sync) and, when ``service_ms`` > 0, a CPU cost per message; clients ``c1..c4`` run
:class:`~scenarios.raft.client.RaftClient`. Operations are ``read``, ``write`` and ``cas`` on
``keys`` registers, keys drawn uniformly or Zipf-skewed; every written value is unique, which lets
the linearizability search prune unobserved timed-out writes. After the final heal every key is
read once more: those reads must succeed (liveness).
"""

from __future__ import annotations

import math
import re
from typing import Any

from simulator import CheckResult, Dist, Param, RunData, Scenario, Setup, UsageError, register
from simulator.checkers.linearizable import check_kv

from . import checkers as C
from .client import RaftClient
from .durable import entries_after
from .figures import election_figures
from .nemesis import crash_storm, figure_8, install, isolate_skewed
from .node import RaftNode, election_timeout_ms

MAX_MS = 1e9  # the bound on a time in ms, as for link_latency_ms: 1e300 ms overflows integer nanoseconds
# The arguments each fault verb reads, besides the action, its time and a generated fault's nemesis and phase
FAULT_ARGS = {"crash_storm": ("events",), "figure_8": ("tail_ms",), "isolate_skewed": ("delta_ms",),
              "crash_leader": ("in_heartbeat", "sync_heartbeat")}


@register
class Raft(Scenario):
    name = "raft"
    summary = "a Raft-replicated key-value store (read/write/cas), checked for linearizability"
    params = (
        Param("election_timeout_min_ms", 150.0, "lower end of the randomized election timeout, ms", min=1.0),
        Param("election_timeout_max_ms", 300.0, "upper end of the randomized election timeout, ms", min=1.0),
        Param("election_timeout_range", "", "LOW-HIGH election timeout in ms (e.g. 150-300); overrides the two above",
              type=str),
        Param("heartbeat_ms", 50.0, "leader heartbeat interval, ms (0: half the minimum election timeout)", min=0.0),
        Param("pre_vote", False, "PreVote: ask for votes before bumping the term", type=bool),
        Param("check_quorum", False, "CheckQuorum: a leader not hearing from a majority steps down", type=bool),
        Param("read_mode", "log", "how reads are served", type=str, choices=("log", "read-index", "lease")),
        Param("lease_ms", 135.0, "leader lease after a majority heartbeat (read_mode=lease), ms", min=0.0),
        Param("batch_ms", 1.0, "leader gathers client requests this long into one fsync and append, ms", min=0.0),
        Param("batch_entries", 64, "most entries per AppendEntries", type=int, min=1),
        Param("snapshot_every", 4096, "snapshot and compact the log every this many applied entries (0: never)",
              type=int, min=0),
        # at most 10,000: every key is read once after the final heal (10,000 keys: a second's run; 100,000: minutes)
        Param("keys", 8, "number of registers", type=int, min=1, max=10_000),
        Param("key_dist", "uniform", "how keys are drawn", type=str, choices=("uniform", "zipf")),
        Param("zipf_s", 1.2, "Zipf exponent when key_dist=zipf", min=0.0),
        Param("read_share", 0.5, "share of reads among operations", min=0.0, max=1.0),
        Param("cas_share", 0.1, "share of compare-and-set among operations", min=0.0, max=1.0),
        Param("fsync_ms", 1.5, "mean fsync latency of a server's disk (lognormal), ms", min=0.0),
        Param("service_ms", 0.0, "mean CPU time per message on a server (exponential; 0: no CPU model), ms", min=0.0),
        Param("client_retry_ms", 200.0, "a client re-sends to another server after this silence, ms", min=1.0),
        Param("lin_budget_s", 60.0, "wall-second budget of the linearizability search", min=0.1),
        Param("vote_write_overlap", False, "a candidate sends RequestVote while writing its own vote, and counts that "
              "vote once durable (the thesis's election model; the Figure 16 set-up)", type=bool),
        Param("leader_write_overlap", False, "a new leader sends its first heartbeat before its no-op is durable "
              "(a leader writing its disk in parallel; the Figure 16 set-up)", type=bool),
        Param("link_latency_ms", "", "LOW-HIGH: every message's one-way latency uniform in this range, replacing the "
              "run's latency model (AvailSim's WAN: 30-40)", type=str),
        Param("election_timeout_step_ms", 0.0, "draw election timeouts as whole multiples of this many ms, rounded "
              "to the nearest (0: any value; LogCabin, Figure 16: 1)", min=0.0),
        Param("vote_request_delay_ms", 0.0, "with vote_write_overlap: a candidate's RequestVotes leave this long after "
              "it times out (a what-if for Figure 16: a short term-and-vote write before asking, as LogCabin orders it)",
              min=0.0),
        Param("lagging_followers", 0, "the leader sends this many followers (highest ids) heartbeats but no "
              "entries, so their logs stay too short to win (the Figure 16 set-up)", type=int, min=0),
    )
    bugs = {
        "no-persist-vote": "the vote is kept only in memory: a restarted server can vote twice in one term",
        "commit-old-term": "a leader commits entries of earlier terms by counting replicas (the paper's Figure 8)",
        "stale-read": "a leader answers reads from its own state without confirming it still leads",
        "ack-by-index": "a client is acknowledged when an entry at its index commits, whatever its term",
    }
    # A run at the defaults that each bug breaks (the same runs without the bug are valid).
    exposes = {
        "no-persist-vote": "--bug no-persist-vote --seed 2 --nemesis crash-storm",
        "commit-old-term": "--bug commit-old-term --seed 1 --nemesis figure-8",
        "stale-read": "--bug stale-read --seed 1 --nemesis partition-random-halves",
        "ack-by-index": "--bug ack-by-index --seed 1 --nemesis partition-isolate-one,partition-random-halves "
                        "--nemesis-interval 0.5",
    }
    checkers = {
        "linearizable": "the read/write/cas history is linearizable, key by key (info ops may or may not have happened)",
        "vote-once": "no server votes for two candidates in one term, even across a crash",
        "election-safety": "at most one leader per term",
        "state-machine-safety": "no two servers apply different entries at an index; no applied entry is lost",
        "log-matching": "final logs agreeing on an entry's index and term agree on every entry before it",
        "liveness": "after the final heal, reads of every key succeed",
    }
    nemeses = ("partition-random-halves", "partition-isolate-one", "partition-majorities-ring", "partition-bridge",
               "crash", "pause", "clock-bump", "clock-strobe", "clock-drift", "isolate-skewed", "crash-storm", "figure-8")
    custom_nemeses = {"isolate-skewed": isolate_skewed, "crash-storm": crash_storm, "figure-8": figure_8}
    # What `dsim hunt` draws from: narrow election-timeout ranges make split votes and many terms
    # (the stress votes and logs must survive), short nemesis intervals many faults per run.
    # rate x time at most 6,000 operations, and a 5 s linearizability budget a key: a hunt's run costs
    # seconds, never minutes (a 60 s budget ran out at 4 nodes, 390 ops/s, pauses and partitions)
    search = {"node_count": (3, 5), "rate": (50.0, 300.0), "nemesis_interval_s": (0.3, 5.0), "time_limit_s": (5.0, 20.0),
              "election_timeout_range": ["", "150-151", "150-160", "150-200"], "lin_budget_s": [5.0]}
    fault_verbs = {"crash_storm": ("events",), "figure_8": (), "isolate_skewed": ("delta_ms",), "crash_leader": ()}
    defaults = {"node_count": 5, "rate": 200.0, "time_limit_s": 30.0, "nemesis_interval_s": 3.0, "latency_ms": 1.0,
                "op_timeout_ms": 1000.0,
                "quiesce_s": 2.0, "final_timeout_s": 5.0}
    benchmarks = {"raft": {"options": {"node_count": 5, "rate": 1000, "time_limit_s": 60,
                                       "nemesis": ["partition-random-halves", "crash"]}, "params": {}}}
    examples = (
        "dsim run raft --seed 1",
        "dsim run raft --seed 3 --nemesis partition-random-halves,partition-isolate-one,crash,pause,clock-bump",
        "dsim run raft --seed 1 --bug stale-read --nemesis partition-random-halves",
        "dsim run raft --seed 2 --set read_mode=lease --nemesis isolate-skewed --nemesis-interval 2",
        "dsim sweep raft --config scenarios/raft/figure16.toml --seeds 1-1000 --jobs 2",
    )

    @classmethod
    def validate(cls, params: dict) -> None:
        if params["read_share"] + params["cas_share"] > 1.0 + 1e-9:
            raise UsageError(f"bad value {params['read_share'] + params['cas_share']:g} for read_share + cas_share: "
                             "expected at most 1")
        spec = str(params["election_timeout_range"] or "").strip()
        if spec:
            try:
                lo, hi = election_timeout_ms(params)
            except ValueError:
                lo = hi = math.nan
            # a bound, as for link_latency_ms: 1e300 (or inf) ms overflows integer nanoseconds
            if not 0 < lo <= hi <= MAX_MS:
                raise UsageError(f"bad value {params['election_timeout_range']!r} for election_timeout_range: "
                                 "expected LOW-HIGH in ms with 0 < LOW <= HIGH <= 1e9, e.g. 150-300")

    @classmethod
    def check_fault(cls, n: int, act: dict, hosts: set[str], params: dict) -> None:
        verb = act["action"]

        def bad(arg: str, value: Any, expected: str) -> UsageError:
            return UsageError(f"bad value {value!r} for {arg} of fault {n} ({verb}): expected {expected}")

        def ms(arg: str, value: Any, lo: float, hi: float) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise bad(arg, value, f"a number of ms from {lo:g} to {hi:.0e}".replace("e+0", "e"))

        cls.check_fault_keys(n, act, FAULT_ARGS[verb])
        if verb == "crash_storm":
            events = act["events"]
            servers = sorted((h for h in hosts if not re.fullmatch(r"c\d+", h)), key=lambda h: (len(h), h))
            shape = f"a list of [at_ms, node, down_ms] events, each ms from 0 to 1e9 and a server of this run " \
                    f"({', '.join(servers[:12])}{' ...' if len(servers) > 12 else ''})"
            if not isinstance(events, list):
                raise bad("events", events, shape)
            for e in events:
                if not (isinstance(e, list) and len(e) == 3 and isinstance(e[1], str) and e[1] in servers
                        and all(not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)
                                and 0 <= x <= MAX_MS for x in (e[0], e[2]))):
                    raise bad("events", e, shape)
        elif verb == "figure_8" and "tail_ms" in act:
            ms("tail_ms", act["tail_ms"], 0.0, MAX_MS)
        elif verb == "isolate_skewed":
            ms("delta_ms", act["delta_ms"], -1e12, 1e12)  # as a clock_bump's
        elif verb == "crash_leader":
            for key in ("in_heartbeat", "sync_heartbeat"):
                if key in act and not isinstance(act[key], bool):
                    raise bad(key, act[key], "true or false")

    def build(self, sim, cfg) -> Setup:
        p = dict(cfg.params)
        try:
            lo, hi = election_timeout_ms(p)
        except ValueError:
            raise UsageError(f"bad value {p['election_timeout_range']!r} for election_timeout_range: "
                             "expected LOW-HIGH in ms, e.g. 150-300") from None
        if not 0 < lo <= hi:
            raise UsageError(f"bad election timeout {lo:g}-{hi:g} ms (election_timeout_range, or election_timeout_min_ms "
                             "and election_timeout_max_ms): expected 0 < LOW <= HIGH")
        most = (cfg.node_count - 1) // 2  # more, and the leader's entries never reach a majority: nothing commits
        if p["lagging_followers"] > most:
            raise UsageError(f"bad value {p['lagging_followers']} for lagging_followers: expected at most "
                             f"(node_count - 1) // 2 = {most} (with more, no majority of a {cfg.node_count}-server "
                             "cluster gets the entries and nothing commits)")
        servers = [f"n{i + 1}" for i in range(cfg.node_count)]
        if str(p["link_latency_ms"]).strip():
            sim.network.set_latency(_link_latency(str(p["link_latency_ms"])))
        service = Dist("exponential", p["service_ms"]) if p["service_ms"] > 0 else None
        fsync = Dist("lognormal", p["fsync_ms"], cv=0.5) if p["fsync_ms"] > 0 else None
        for s in servers:
            sim.add_node(s, (lambda s=s: RaftNode(s, servers, p, cfg.bug)), service=service, fsync=fsync)
        install(sim, float(p["heartbeat_ms"]) or lo / 2)

        keys = [f"k{i}" for i in range(p["keys"])]
        cum = _key_cdf(p["keys"], p["key_dist"], p["zipf_s"])
        read_share, cas_share = p["read_share"], p["cas_share"]
        counter = [0]
        last_written: dict[str, Any] = {}

        buf: list[float] = []

        def generate(rng):
            if len(buf) < 2:  # uniforms drawn in batches from the workload's stream: no numpy call per op
                buf[:0] = reversed(rng.random(4096).tolist())
            u = buf.pop()
            k = keys[_bisect(cum, buf.pop())]
            if u < read_share:
                return "read", (k, None)
            counter[0] += 1
            v = counter[0]
            if u < read_share + cas_share:
                old = last_written.get(k)
                last_written[k] = v
                return "cas", (k, (old, v))
            last_written[k] = v
            return "write", (k, v)

        def expose() -> dict:
            logs = {}
            for s in servers:
                st = sim.hosts[s].storage
                snap = st.get("snap")
                si, sterm, chain = (snap[0], snap[1], snap[4]) if snap else (0, 0, 0)
                logs[s] = (si, sterm, chain, entries_after(st, si))
            return {"logs": logs}

        return Setup(servers=servers,
                     client=lambda cid: RaftClient(cid, servers, p["client_retry_ms"], cfg.op_timeout_ms),
                     generate=generate, final=[("read", (k, None)) for k in keys], expose=expose)

    def check(self, run: RunData) -> dict[str, CheckResult]:
        p = run.cfg.params
        out = {"linearizable": check_kv(run.history, budget_s=p["lin_budget_s"]),
               "vote-once": C.vote_once(run.records),
               "election-safety": C.election_safety(run.records),
               "state-machine-safety": C.state_machine_safety(run.records, run.exposed.get("logs"))}
        if run.exposed.get("logs"):
            out["log-matching"] = C.log_matching(run.exposed["logs"])
        out["liveness"] = C.liveness(run.history, run.heal_ns)
        return out

    def figures(self, run: RunData) -> dict:
        return election_figures(run)

    def plots(self, run: RunData, folder, shade) -> list[str]:
        from .plots import leader_timeline

        return [leader_timeline(run, folder, shade)]


def _key_cdf(n: int, dist: str, s: float) -> list[float]:
    w = [1.0] * n if dist == "uniform" else [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(w)
    out, acc = [], 0.0
    for x in w:
        acc += x / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _bisect(cum: list[float], u: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _link_latency(spec: str) -> Dist:
    """``LOW-HIGH`` (ms) as a uniform distribution over exactly that range."""
    try:
        lo, _, hi = spec.partition("-")
        lo_ms, hi_ms = float(lo), float(hi or lo)
    except ValueError:
        raise UsageError(f"bad value {spec!r} for link_latency_ms: expected LOW-HIGH in ms, e.g. 30-40") from None
    if not 0 < lo_ms <= hi_ms <= 1e9:  # a bound, or 1e300 ms overflows the network's int64 nanoseconds
        raise UsageError(f"bad value {spec!r} for link_latency_ms: expected 0 < LOW <= HIGH <= 1e9 (ms)")
    mean = (lo_ms + hi_ms) / 2
    # Dist's uniform spans mean +- mean*cv*sqrt(3)
    return Dist("uniform", mean, cv=(hi_ms - lo_ms) / 2 / (mean * 3 ** 0.5))
