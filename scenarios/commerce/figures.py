"""The commerce figures (metrics.json): order latency by outcome, compensation rate, how long orders
and holds sit in intermediate or in-doubt states, ledger volume, payouts by rail.

- ``latency_ms``: from the order reaching ``orders`` to its end, by outcome (p50/p99/max);
- ``compensation_rate``: share of ended orders that ran a compensation (a release, refund, cancel
  or abort was executed for them), beside ``undone_share``;
- ``intermediate_ms``: how long an order's effects were partly visible: from its first local
  change (a hold or a journal) to its end;
- ``hold_ms``: how long stock stayed held (a saga reservation, a TCC try, a 2PC prepare: in doubt);
- ``retries``: step calls the coordinator sent again.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .checkers import of_kind

COMPENSATIONS = {"release", "refund", "cancel-inv", "cancel-pay", "abort-inv", "abort-pay"}


def _q(values) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3)}


def order_times(run) -> dict[int, tuple[int, int | None, str | None]]:
    """order -> (placed ns, ended ns or None, outcome or None)."""
    out: dict[int, list] = {}
    for r in of_kind(run, "order.placed"):
        out.setdefault(r["order"], [r["time_ns"], None, None])
    for r in of_kind(run, "order.end"):
        if r["order"] in out and out[r["order"]][1] is None:
            out[r["order"]][1:] = [r["time_ns"], r["outcome"]]
    return {k: tuple(v) for k, v in out.items()}


def hold_periods(run) -> list[tuple[int, int, str]]:
    """(start ns, end ns, kind) of every stock hold (end: the run's end if it never ended)."""
    ends = {r["saga"]: r["time_ns"] for r in of_kind(run, "inv.unhold")}
    return [(r["time_ns"], ends.get(r["saga"], run.end_ns), r["hold"]) for r in of_kind(run, "inv.hold")]


def compute(run) -> dict:
    times = order_times(run)
    lat = defaultdict(list)
    for t0, t1, out in times.values():
        if t1 is not None:
            lat[out].append((t1 - t0) / 1e6)
    compensated = set()
    for r in of_kind(run, "inv.unhold"):
        if r["why"] == "release":
            compensated.add(r["saga"])
    for r in of_kind(run, "ledger.journal"):
        if r["entry"] in ("refund", "void"):
            compensated.add(r["order"])
    first_touch: dict[int, int] = {}
    for r in of_kind(run, "inv.hold"):
        first_touch.setdefault(r["saga"], r["time_ns"])
    for r in of_kind(run, "ledger.journal"):
        if r["order"] >= 0 and r["order"] not in first_touch:
            first_touch[r["order"]] = r["time_ns"]
    inter = [(times[o][1] - t) / 1e6 for o, t in first_touch.items() if o in times and times[o][1] is not None]
    ended = [o for o, v in times.items() if v[1] is not None]
    holds = defaultdict(list)
    for a, b, kind in hold_periods(run):
        holds[kind].append((b - a) / 1e6)
    rails = defaultdict(lambda: {"payouts": 0, "cents": 0})
    for r in of_kind(run, "payout.paid"):
        rails[r["rail"]]["payouts"] += 1
        rails[r["rail"]]["cents"] += r["amount"]
    journals = of_kind(run, "ledger.journal")
    undone = sum(1 for o in ended if times[o][2] == "undone")
    return {
        "mode": run.cfg.params["mode"],
        "orders": len(times), "ended": len(ended), "done": len(ended) - undone, "undone": undone,
        "undone_share": round(undone / len(ended), 4) if ended else 0.0,
        "compensation_rate": round(len(compensated & set(ended)) / len(ended), 4) if ended else 0.0,
        "latency_ms": {k: _q(v) for k, v in sorted(lat.items())},
        "intermediate_ms": _q(inter),
        "hold_ms": {k: _q(v) for k, v in sorted(holds.items())},
        "retries": len(of_kind(run, "saga.retry")),
        "ledger": {"journals": len(journals), "volume_cents": sum(a for r in journals for _, a in r["lines"] if a > 0)},
        "payouts_by_rail": {k: dict(v) for k, v in sorted(rails.items())},
        "rail_answers_lost": len(of_kind(run, "rail.lost-answer")),
    }
