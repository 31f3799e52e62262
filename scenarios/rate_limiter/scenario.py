"""A distributed rate limiter: N gateways in front of an API, with a limit per user and a global one.

The promise is a *sliding* limit: in any ``window_ms`` of time, at most ``limit_per_user`` requests
of one user and ``limit_global`` of all users are admitted. Users are drawn Zipf-like (exponent
``zipf_s`` over ``users``), so a few are hot and hit their own limit while the rest do not.

Three strategies, and the price each pays:

``central``  every gateway asks one Redis-like store node, one round trip per request; the store
             keeps a sliding log per user and a global one and checks-and-counts atomically. Exact
             (slack 0), but every request pays a round trip, and the store is a single point: a
             call that times out after ``store_timeout_ms`` admits (``on_store_unreachable=open``)
             or rejects (``closed``).
``local``    each gateway enforces limit/N (rounded up) alone: no coordination, but a user whose
             requests land unevenly is rejected early (false rejects), and N gateways together
             admit up to N * ceil(limit/N): slack N * ceil(limit/N) - limit.
``sync``     each gateway counts its own admissions plus what the others gossip every ``sync_ms``.
             What it has not heard yet is bounded by a cap: a gateway admits at most
             ceil(limit * 2 * sync_ms / window_ms) per key in any 2 * sync_ms, so the others' unseen
             admissions add at most (N - 1) times that cap (slack), as long as gossip arrives
             within sync_ms. Under a partition the gossip stops and each side enforces alone.

Simplifications: limiters count in monotonic time, timer ticks of ``tick_ms`` (see nodes.py), and
keep an entry a tick longer than the window, so they err on the side of rejecting; the API behind
a gateway answers at once (only admission is modelled); the store keeps its logs in memory, so a
crash of the store forgets them (crash is not among the design's nemeses for that reason); clients
pick a gateway uniformly at random.

Planted bugs: ``read-modify-write-race`` (central: the count is read, then written, in two round
trips, so concurrent gateways read the same count and over-admit), ``window-boundary`` (a fixed
window that resets when it turns, while the design claims a sliding limit: up to 2x across a
boundary), ``clock-skew-window`` (windows keyed by each gateway's wall clock ``ctx.now``: under
``clock-bump`` a skewed gateway's stamps fall outside the others' windows).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

import numpy as np

from simulator import CheckResult, Param, RunData, Scenario, Setup, UsageError, register
from simulator.checkers.basic import availability

from .nodes import STORE, Client, Gateway, Store, sync_cap

FALSE_REJECT_SHARE = {"central": 0.01, "local": 0.30, "sync": 0.15}
# Timer events and gossip messages a simulated second, at most: each gateway ticks every tick_ms and,
# under sync, gossips to every other gateway every sync_ms. About 3 wall us each: at this bound a run
# at the default 20 s takes under about a minute (1,000 gateways ticking every ms: 39 s), where
# 1,000 gateways gossiping every ms took 30 s for 3 simulated s.
MAX_BACKGROUND_PER_S = 1_000_000


def background_per_s(p: dict) -> float:
    """The most timer events and gossip messages a simulated second: gateways x 1000 / tick_ms
    ticks, plus under sync gateways x 1000 / sync_ms sync timers, each sending up to gateways - 1
    gossip messages."""
    n = p["gateways"]
    ticks = n * 1000.0 / p["tick_ms"]
    return ticks + (n * n * 1000.0 / p["sync_ms"] if p["strategy"] == "sync" else 0.0)


def slack(p: dict, limit: int) -> int:
    """How far above ``limit`` the strategy may admit in one window (the design's stated slack)."""
    n = p["gateways"]
    if p["strategy"] == "local":
        return n * math.ceil(limit / n) - limit
    if p["strategy"] == "sync":
        return (n - 1) * sync_cap(limit, p)
    return 0


def zipf(users: int, s: float):
    """``generate(rng) -> ("request", user)`` with P(user k) proportional to 1 / k**s."""
    w = 1.0 / np.arange(1, users + 1) ** s
    cum = np.cumsum(w / w.sum()).tolist()

    def generate(rng):
        return "request", min(bisect.bisect_right(cum, float(rng.random())), users - 1)

    return generate


def decisions(run: RunData) -> list[tuple[int, int, bool, str]]:
    """(time_ns, user, admitted, via) per answered request. An answer the store gave is timed when
    the store decided (its counting moment), any other when the gateway decided."""
    at = {(r["gw"], r["rid"]): r["time_ns"] for r in run.records if r["kind"] == "rl.store"}
    out = []
    for r in run.records:
        if r["kind"] == "rl.decide":
            t = at.get((r["node"], r["rid"]), r["time_ns"]) if r["via"] == "store" else r["time_ns"]
            out.append((t, r["user"], r["admitted"], r["via"]))
    out.sort(key=lambda d: d[0])
    return out


def max_in_window(times: list[int], window_ns: int) -> tuple[int, int]:
    """The most stamps in any half-open interval [t, t + window) and where it starts."""
    if not times:
        return 0, 0
    arr = np.asarray(times, dtype=np.int64)
    counts = np.searchsorted(arr, arr + window_ns, side="left") - np.arange(arr.size)
    i = int(np.argmax(counts))
    return int(counts[i]), int(arr[i])


def limit_held(ds, p: dict) -> CheckResult:
    """Admissions per user and globally in any window, against limit + slack. Under ``open`` the
    admissions made because the store was unreachable are left out (fail-open may exceed the
    limit by design); how far they took it is reported."""
    w = int(p["window_ms"] * 1e6)
    fail_open = p["on_store_unreachable"] == "open"

    def worst(keep) -> tuple[list[str], dict]:
        per_user: dict[int, list[int]] = defaultdict(list)
        every = []
        for t, u, ok, via in ds:
            if ok and keep(via):
                per_user[u].append(t)
                every.append(t)
        bad, top = [], {"user": 0, "global": 0}
        su, sg = slack(p, p["limit_per_user"]), slack(p, p["limit_global"])
        for u in sorted(per_user):
            n, t0 = max_in_window(per_user[u], w)
            top["user"] = max(top["user"], n)
            if n > p["limit_per_user"] + su:
                bad.append(f"user {u}: {n} admitted in the window from {t0 / 1e9:.3f}s "
                           f"(limit {p['limit_per_user']} + slack {su})")
        n, t0 = max_in_window(every, w)
        top["global"] = n
        if n > p["limit_global"] + sg:
            bad.insert(0, f"global: {n} admitted in the window from {t0 / 1e9:.3f}s (limit {p['limit_global']} + "
                          f"slack {sg})")
        return bad, top

    bad, top = worst(lambda via: not (fail_open and via == "fallback"))
    fallback = sum(1 for _, _, ok, via in ds if ok and via == "fallback")
    details = {"max_user": top["user"], "max_global": top["global"], "slack_user": slack(p, p["limit_per_user"]),
               "slack_global": slack(p, p["limit_global"]), "fallback_admits": fallback}
    if fail_open and fallback:
        over, with_fallback = worst(lambda via: True)
        details.update(max_user_with_fallback=with_fallback["user"], max_global_with_fallback=with_fallback["global"],
                       windows_over_by_fail_open=len(over),
                       note="on_store_unreachable=open: admissions made while the store was unreachable are not "
                            "held to the limit (the *_with_fallback figures count them)")
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        return CheckResult(False, "; ".join(bad[:3]) + more, details)
    return CheckResult(True, "", details)


def no_false_rejects(ds, p: dict) -> CheckResult:
    """A rejection while its user and the global count (admissions in the window before it) were
    both under their limits is false; their share of all requests must be at most the strategy's
    stated share. Under ``closed``, rejections because the store was unreachable are the price of
    failing closed: counted apart, not as false. The window looked back on is a tick longer than
    ``window_ms``: the limiters keep an entry that long on purpose (see nodes.py)."""
    w = int((p["window_ms"] + p["tick_ms"]) * 1e6)
    per_user: dict[int, list[int]] = defaultdict(list)
    every = []
    for t, u, ok, _ in ds:
        if ok:
            per_user[u].append(t)
            every.append(t)

    def in_window(times, t):
        return bisect.bisect_right(times, t) - bisect.bisect_right(times, t - w)

    false = closed = 0
    first = None
    for t, u, ok, via in ds:
        if ok:
            continue
        if via == "fallback":
            closed += 1
        elif in_window(per_user[u], t) < p["limit_per_user"] and in_window(every, t) < p["limit_global"]:
            false += 1
            first = first or (t, u)
    total = len(ds)
    share = false / total if total else 0.0
    allowed = FALSE_REJECT_SHARE[p["strategy"]]
    details = {"requests": total, "false_rejects": false, "share": round(share, 6), "allowed_share": allowed,
               "rejected_fail_closed": closed}
    if share > allowed:
        return CheckResult(False, f"{false} of {total} requests ({share:.2%}) rejected while under the limits "
                                  f"(allowed {allowed:.0%}; first: user {first[1]} at {first[0] / 1e9:.3f}s)", details)
    return CheckResult(True, "", details)


@register
class RateLimiter(Scenario):
    name = "rate-limiter"
    summary = "N gateways enforce per-user and global limits: local buckets, a central store, or gossip sync"
    params = (
        Param("strategy", "central", "how gateways share counts", type=str, choices=("central", "local", "sync")),
        Param("gateways", 4, "gateway nodes", type=int, min=1, max=1000),
        Param("limit_per_user", 20, "requests one user may have admitted per window", type=int, min=1),
        Param("limit_global", 400, "requests all users together may have admitted per window", type=int, min=1),
        Param("window_ms", 1000.0, "the sliding window, ms", min=1.0),
        Param("users", 200, "distinct users (Zipf-distributed)", type=int, min=1, max=10_000_000),
        Param("zipf_s", 1.1, "Zipf exponent of user popularity (0: uniform)", min=0.0, max=10.0),
        Param("sync_ms", 50.0, "sync: gossip period, ms", min=1.0),
        Param("store_timeout_ms", 50.0, "central: a store call unanswered this long counts as unreachable", min=0.1),
        Param("on_store_unreachable", "closed", "central: a timed-out store call admits (open) or rejects (closed)",
              type=str, choices=("open", "closed")),
        Param("tick_ms", 1.0, "the monotonic clock's tick, ms", min=0.01),
    )
    bugs = {
        "read-modify-write-race": "central: the store's count is read and written in two round trips, not "
                                  "atomically (the strategy is forced to central)",
        "window-boundary": "a fixed window that resets when it turns, while a sliding limit is claimed",
        "clock-skew-window": "windows keyed by each gateway's wall clock ctx.now (central: the store uses the "
                             "gateways' stamps)",
    }
    exposes = {"clock-skew-window": "--seed 1 --nemesis clock-bump --nemesis-interval 2"}
    checkers = {
        "limit-held": "in every window_ms, admitted <= limit + slack, per user and globally; slack 0 for central, "
                      "N*ceil(limit/N)-limit for local, (N-1)*ceil(limit*2*sync_ms/window_ms) for sync; under "
                      "on_store_unreachable=open, admissions made while the store was unreachable are left out",
        "no-false-rejects": "requests rejected while their user and the global count were under the limits are at "
                            "most 1% (central), 30% (local), 15% (sync) of all; fail-closed rejections are apart",
        "answered": "every request got an admit or reject answer (skipped under faults)",
    }
    nemeses = ("partition-random-halves", "partition-isolate-one", "pause", "clock-bump", "clock-strobe",
               "slow-link")
    unused_options = ("node_count",)  # its parameters size it
    defaults = {"rate": 600.0, "time_limit_s": 20.0, "op_timeout_ms": 2000.0, "quiesce_s": 1.0,
                "final_timeout_s": 1.0, "node_count": 1}
    examples = (
        "dsim run rate-limiter --seed 1",
        "dsim run rate-limiter --set strategy=local --seed 1",
        "dsim run rate-limiter --seed 1 --nemesis partition-random-halves --set on_store_unreachable=open",
        "dsim run rate-limiter --bug clock-skew-window --seed 1 --nemesis clock-bump --nemesis-interval 2",
    )

    @classmethod
    def validate(cls, params: dict) -> None:
        if params["tick_ms"] > params["window_ms"]:
            raise UsageError(f"bad value {params['tick_ms']!r} for tick_ms: expected at most window_ms "
                             f"({params['window_ms']!r}): a coarser clock keeps entries past the window and rejects "
                             "requests under the limit")
        load = background_per_s(params)
        if load > MAX_BACKGROUND_PER_S:
            sync = f", sync_ms={params['sync_ms']:g}" if params["strategy"] == "sync" else ""
            raise UsageError(f"bad values gateways={params['gateways']}, tick_ms={params['tick_ms']:g}{sync} "
                             f"(strategy {params['strategy']}): {load:.3g} timer events and gossip messages a "
                             f"simulated second; expected at most {MAX_BACKGROUND_PER_S:,} (gateways x 1000/tick_ms, "
                             "plus gateways^2 x 1000/sync_ms under sync)")

    def build(self, sim, cfg) -> Setup:
        p = dict(cfg.params)
        if cfg.bug == "read-modify-write-race":
            p["strategy"] = "central"
        gws = [f"gw-{i + 1}" for i in range(p["gateways"])]
        servers = list(gws)
        if p["strategy"] == "central":
            sim.add_node(STORE, lambda: Store(p, cfg.bug), inbox_limit=1_000_000)
            servers.append(STORE)
        for g in gws:
            sim.add_node(g, lambda g=g: Gateway(p, cfg.bug, [x for x in gws if x != g]), inbox_limit=1_000_000)
        return Setup(servers=servers, client=lambda cid: Client(gws), generate=zipf(p["users"], p["zipf_s"]))

    def _params(self, run: RunData) -> dict:
        p = dict(run.cfg.params)
        if run.cfg.bug == "read-modify-write-race":
            p["strategy"] = "central"
        return p

    def check(self, run: RunData) -> dict[str, CheckResult]:
        p = self._params(run)
        ds = decisions(run)
        out = {"limit-held": limit_held(ds, p), "no-false-rejects": no_false_rejects(ds, p)}
        if run.cfg.nemesis or run.cfg.faults:
            out["answered"] = CheckResult(True, "", {"skipped": "faults were injected"})
        else:
            out["answered"] = availability(run.history, 1.0, until_ns=run.heal_ns)
        return out

    def figures(self, run: RunData) -> dict:
        p = self._params(run)
        ds = decisions(run)
        via: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for _, _, ok, v in ds:
            via[v][0 if ok else 1] += 1
        admitted = sum(1 for d in ds if d[2])
        return {"strategy": p["strategy"], "requests": len(ds), "admitted": admitted, "rejected": len(ds) - admitted,
                "by_decider": {k: {"admitted": a, "rejected": r} for k, (a, r) in sorted(via.items())}}
