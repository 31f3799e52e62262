"""Figures of a run, computed from its observations (see :mod:`.checkers` for the record kinds).

* commits, aborts and the abort rate by cause; the client-seen latency of committed transfers;
* time in doubt per (RM, transaction): from its prepare to its outcome (or the run's end), with
  the number of in-doubt periods longer than the failure-detection bound;
* lock-hold time per (RM, transaction): from the grant to the release;
* the normal-case cost per committed transaction: protocol messages (client request and reply
  and 2PC's batched acknowledgements excluded), message delays on the critical path, forced
  writes; over transactions committed on the fast path, by participant count N, beside Gray and
  Lamport's formulas (Sections 3.2 and 4.3).
"""

from __future__ import annotations

import numpy as np

from simulator import RunData
from simulator import metrics as M

from .checkers import of_kind


def paper_cost(protocol: str, n: int, f: int) -> dict[str, int]:
    """Normal-case cost per committed transaction with N participants (Gray and Lamport 2006)."""
    if protocol == "2pc":
        return {"messages": 3 * n - 1, "message_delays": 4, "forced_writes": n + 1}
    return {"messages": (n + 1) * (f + 3) - 4, "message_delays": 5, "forced_writes": n + f + 1}


def _q(values, qs=(50, 99)) -> dict[str, float | None]:
    if not len(values):
        return {**{f"p{q}": None for q in qs}, "max": None}
    a = np.asarray(values, dtype=float)
    out = {f"p{q}": round(float(np.percentile(a, q)), 3) for q in qs}
    out["max"] = round(float(a.max()), 3)
    return out


def in_doubt_periods(run: RunData) -> list[tuple[int, int, str, int]]:
    """(start_ns, end_ns, rm, tx) for every prepare, ended by the first outcome after it."""
    cached = getattr(run, "_twopc_periods", None)
    if cached is not None:
        return cached
    start: dict[tuple, int] = {}
    out = []
    for r in run.records:
        kind = r["kind"]
        if kind == "applied":
            t0 = start.pop((r["node"], r["tx"]), None)
            if t0 is not None:
                out.append((t0, r["time_ns"], r["node"], r["tx"]))
        elif kind == "prepared":
            start[(r["node"], r["tx"])] = r["time_ns"]
    for (rm, tx), t0 in start.items():
        out.append((t0, run.end_ns, rm, tx))
    run._twopc_periods = out
    return out


def in_doubt_series(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, transactions in doubt) as a step function."""
    periods = in_doubt_periods(run)
    if not periods:
        return np.array([0.0, run.end_ns / 1e9]), np.array([0, 0])
    ev = sorted([(t0, 1) for t0, _, _, _ in periods] + [(t1, -1) for _, t1, _, _ in periods])
    t = np.array([0] + [e[0] for e in ev] + [run.end_ns], dtype=float) / 1e9
    n = np.concatenate([[0], np.cumsum([e[1] for e in ev]), [0]])
    n[-1] = n[-2]
    return t, n


def own_downtime(run: RunData) -> dict[str, list[tuple[int, int]]]:
    """node -> [(crash, restart)] from the applied faults (a crashed RM's wait is its own doing)."""
    out: dict[str, list] = {}
    start: dict[str, int] = {}
    for act in run.faults:
        node = act.get("node")
        if act["action"] == "crash" and node not in start:
            start[node] = act["time_ns"]
        elif act["action"] in ("restart", "final_heal"):
            for n in ([node] if act["action"] == "restart" else sorted(start)):
                if n in start:
                    out.setdefault(n, []).append((start.pop(n), act["time_ns"]))
    for n, t0 in start.items():
        out.setdefault(n, []).append((t0, run.end_ns))
    return out


def _overlaps(windows, t0: int, t1: int) -> bool:
    return any(a < t1 and b > t0 for a, b in windows)


def detection_ms(p: dict) -> float:
    """How long an RM may stay in doubt before a live quorum must have resolved it: its first
    query, one retry to the next coordinator, and a recovery round with its retry."""
    return p["doubt_timeout_ms"] + p["doubt_retry_ms"] + 2 * p["recovery_timeout_ms"]


def abort_causes(run: RunData) -> tuple[int, dict[str, int]]:
    """(committed transactions, {cause: aborted transactions})."""
    outcome: dict[int, tuple[str, str]] = {}
    for r in of_kind(run, "applied"):
        if r["tx"] not in outcome or r["outcome"] == "C":
            outcome[r["tx"]] = (r["outcome"], r["cause"])
    committed = sum(1 for o, _ in outcome.values() if o == "C")
    causes: dict[str, int] = {}
    for o, c in outcome.values():
        if o == "A":
            causes[c or "unknown"] = causes.get(c or "unknown", 0) + 1
    return committed, dict(sorted(causes.items()))


def costs(run: RunData) -> dict[int, dict[str, float]]:
    """Mean normal-case cost per fast-path committed transaction, by participant count."""
    sent: dict[int, int] = {}
    writes: dict[int, int] = {}
    depth: dict[int, int] = {}
    applied_n: dict[int, int] = {}
    fast: dict[int, int] = {}
    for r in run.records:
        kind = r["kind"]
        if kind in ("prepared", "accepted", "decided"):
            tx = r["tx"]
            sent[tx] = sent.get(tx, 0) + r["sent"]
            writes[tx] = writes.get(tx, 0) + r["writes"]
            if kind == "decided":
                if r["outcome"] == "C" and r["fast"] and tx not in fast:
                    fast[tx] = len(r["parts"])
                elif tx in fast:
                    fast[tx] = -1  # decided twice: not a clean normal case
        elif kind == "applied" and r["outcome"] == "C":
            tx = r["tx"]
            applied_n[tx] = applied_n.get(tx, 0) + 1
            d = depth.get(tx)
            # every participant must have learned from the one decision broadcast (not a re-send)
            depth[tx] = r["depth"] if d is None or d == r["depth"] else 0
    by_n: dict[int, list] = {}
    for tx, n in fast.items():
        if n > 0 and applied_n.get(tx) == n and depth.get(tx, 0) > 0:
            by_n.setdefault(n, []).append((sent[tx], depth.get(tx, 0), writes[tx]))
    out = {}
    for n in sorted(by_n):
        a = np.asarray(by_n[n], dtype=float)
        out[n] = {"transactions": len(a), "messages": round(float(a[:, 0].mean()), 3),
                  "message_delays": round(float(a[:, 1].mean()), 3), "forced_writes": round(float(a[:, 2].mean()), 3)}
    return out


def compute(run: RunData) -> dict:
    p = run.cfg.params
    protocol = p["protocol"]
    f = p["F"] if protocol == "paxos-commit" else 0
    committed, causes = abort_causes(run)
    aborted = sum(causes.values())
    periods = in_doubt_periods(run)
    doubt_ms = [(t1 - t0) / 1e6 for t0, t1, _, _ in periods]
    bound = detection_ms(p)
    down = own_downtime(run)
    _, series = in_doubt_series(run)
    held = [r["held_ms"] for r in of_kind(run, "applied")]
    cost = costs(run)
    out = {
        "protocol": protocol,
        "committed": committed,
        "aborted": aborted,
        "abort_rate": round(aborted / (committed + aborted), 4) if committed + aborted else None,
        "aborts_by_cause": causes,
        "committed_per_s": round(committed / max(run.end_ns / 1e9, 1e-9), 3),
        "commit_latency_ms": M.latency_summary_ms(M.latencies(run.history, "transfer")[1]),
        "time_in_doubt_ms": _q(doubt_ms),
        "in_doubt_max_concurrent": int(series.max()) if len(series) else 0,
        "failure_detection_ms": bound,
        "in_doubt_beyond_detection": sum(1 for t0, t1, rm, _ in periods
                                         if (t1 - t0) / 1e6 > bound and not _overlaps(down.get(rm, ()), t0, t1)),
        "lock_hold_ms": _q(held),
        "coordinator_crashes": len(of_kind(run, "coordinator-crash")),
        "cost_by_participants": {str(n): {**c, "paper": paper_cost(protocol, n, f)} for n, c in cost.items()},
    }
    legs = p["transfer_legs"]
    if legs in cost:
        out["messages_per_commit"] = cost[legs]["messages"]
        out["message_delays_per_commit"] = cost[legs]["message_delays"]
        out["forced_writes_per_commit"] = cost[legs]["forced_writes"]
    return out
