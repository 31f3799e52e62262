"""The commerce figures (metrics.json): order latency by outcome, compensation rate, how long orders
and holds sit in intermediate or in-doubt states, ledger volume, payouts by rail.

- ``latency_ms``: from the order reaching ``orders`` to its end, by outcome (p50/p99/max);
- ``compensation_rate``: share of ended orders that ran a compensation (a release, refund, cancel
  or abort was executed for them), beside ``undone_share``;
- ``intermediate_ms``: how long an order's effects were partly visible: from its first local
  change (a hold or a journal) to its end;
- ``hold_ms``: how long stock stayed held (a saga reservation, a TCC try, a 2PC prepare: in doubt);
- ``retries``: step calls the coordinator sent again;
- ``payouts_by_rail``: per rail, payouts answered, cents sent, wire fees, and settlement (ACH in
  batches a day or two later, wire the same day, instant at once: ``settle_ms`` from sent to settled);
- ``points``: loyalty points earned on delivery, redeemed in charges, given back by compensations and
  taken back by refunds, and what customers hold at the end;
- ``refunds``: later refunds of delivered orders (asked, made, refused, reduced because the
  customer had spent the points the order earned).
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
        if r["entry"] in ("refund", "void") and not r.get("after_delivery"):  # a customer's refund is no compensation
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
    rails = defaultdict(lambda: {"payouts": 0, "cents": 0, "settled": 0, "settled_cents": 0, "fee_cents": 0})
    for r in of_kind(run, "payout.paid"):
        rails[r["rail"]]["payouts"] += 1
        rails[r["rail"]]["cents"] += r["amount"]
    settle = defaultdict(list)
    for r in of_kind(run, "rail.settled"):
        rails[r["rail"]]["settled"] += 1
        rails[r["rail"]]["settled_cents"] += r["amount"]
        settle[r["rail"]].append((r["time_ns"] - r["sent_ns"]) / 1e6)
    journals = of_kind(run, "ledger.journal")
    pts = {"earned": 0, "redeemed": 0, "given_back": 0, "taken_back": 0, "held_at_end": 0}
    refunds = {"made": 0, "cents": 0, "reduced": 0, "reduced_cents": 0}
    for r in journals:
        for acct, amt in r["lines"]:
            if acct == "fees:wire":
                rails["wire"]["fee_cents"] += amt
            elif acct.startswith("points:"):
                pts["held_at_end"] += amt
                if r["entry"] == "earn":
                    pts["earned"] += amt
                elif r["entry"] in ("charge", "authorise"):
                    pts["redeemed"] -= amt
                elif r.get("after_delivery"):
                    pts["taken_back"] -= amt
                else:
                    pts["given_back"] += amt
        if r.get("after_delivery"):
            refunds["made"] += 1
            refunds["cents"] += sum(a for acct, a in r["lines"] if acct.startswith("customer:"))
            refunds["reduced"] += r["reduced_cents"] > 0
            refunds["reduced_cents"] += r["reduced_cents"]
    asked = [e for e in run.history if e["f"] == "refund"]
    refunds["asked"] = sum(1 for e in asked if e["type"] == "invoke")
    refunds["refused"] = sum(1 for e in asked if e["type"] == "fail")
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
        "payouts_by_rail": {k: {**v, "settle_ms": _q(settle[k])} for k, v in sorted(rails.items())},
        "points": pts,
        "refunds": refunds,
        "rail_answers_lost": len(of_kind(run, "rail.lost-answer")),
    }
