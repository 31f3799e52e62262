"""The commerce figures (drawn by :func:`simulator.plots.panels`, the only matplotlib user).

``commerce-orders.png``  orders in flight (placed, not yet ended) and stock held in reservations over
                         time, units available / held / sold over all SKUs and warehouses, and orders
                         ended per second by outcome; fault windows shaded (2PC's
                         holds stay up while its coordinator is down; sagas keep ending orders)
``commerce-money.png``   ledger volume (what journals moved), payouts by rail as they settle (ACH a day or
                         two after it is sent, in batches) and the wire fees, cumulative, in dollars;
                         loyalty points customers hold, and points earned and redeemed, cumulative
``commerce-times.png``   survival curves of order latency by outcome and of how long stock stayed
                         held (saga reservation, TCC try or 2PC prepare), log scales
"""

from __future__ import annotations

import numpy as np

from .checkers import of_kind
from .figures import hold_periods, order_times


def stock_series(run) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Units available, held and sold over all SKUs and warehouses, after every change."""
    rows: dict[tuple[int, int], tuple[int, int, int]] = {}
    tot = [0, 0, 0]
    ts, avail, held, sold = [], [], [], []
    for r in of_kind(run, "inv.level"):
        key = (r["sku"], r["wh"])
        old = rows.get(key, (0, 0, 0))
        new = (r["stock"] - r["held"] - r["sold"], r["held"], r["sold"])
        rows[key] = new
        for i in range(3):
            tot[i] += new[i] - old[i]
        ts.append(r["time_ns"] / 1e9)
        avail.append(tot[0])
        held.append(tot[1])
        sold.append(tot[2])
    t = np.asarray(ts, dtype=float)
    return [("available", t, np.asarray(avail)), ("held", t, np.asarray(held)), ("sold", t, np.asarray(sold))]


def _level(starts: list[int], ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
    ev = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    if not ev:
        return np.zeros(1), np.zeros(1)
    t = np.asarray([e[0] for e in ev], dtype=float) / 1e9
    n = np.cumsum([e[1] for e in ev])
    return t, n


def _survival(values_ms: list[float]) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(np.maximum(np.asarray(values_ms, dtype=float), 1e-3))
    return v, 1.0 - np.arange(len(v)) / max(len(v), 1)


def draw(run, folder, shade) -> list[str]:
    from simulator import plots as P

    mode = run.cfg.params["mode"]
    times = order_times(run)
    t_f, n_f = _level([v[0] for v in times.values()], [v[1] for v in times.values() if v[1] is not None])
    holds = hold_periods(run)
    t_h, n_h = _level([a for a, _, _ in holds], [b for _, b, _ in holds if b < run.end_ns])
    bucket = max(0.25, run.end_ns / 1e9 / 200)
    edges = np.arange(0.0, run.end_ns / 1e9 + bucket, bucket)
    rate = []
    for outcome in ("done", "undone"):
        ts = [v[1] / 1e9 for v in times.values() if v[2] == outcome]
        counts, _ = np.histogram(ts, bins=edges)
        rate.append((outcome, edges[:-1], counts / bucket))
    names = [P.panels(folder / "commerce-orders.png", f"Orders in flight and stock held ({mode})", [
        {"series": [("orders in flight", t_f, n_f), ("holds (reservations / tries / prepares)", t_h, n_h)],
         "ylabel": "count", "step": True},
        {"series": stock_series(run), "ylabel": "units, all SKUs", "step": True},
        {"series": rate, "ylabel": "orders ended / s", "xlabel": "simulated time (s)"},
    ], shade, subtitle=f"seed {run.cfg.seed}")]
    money = []
    journals = of_kind(run, "ledger.journal")
    if journals:
        t = np.asarray([r["time_ns"] for r in journals], dtype=float) / 1e9
        v = np.cumsum([sum(a for _, a in r["lines"] if a > 0) for r in journals]) / 100.0
        money.append(("ledger volume (all journals)", t, v))
    rails = []
    settled = of_kind(run, "rail.settled")
    for rail in sorted({r["rail"] for r in settled}):
        paid = [r for r in settled if r["rail"] == rail]
        rails.append((f"settled over {rail}", np.asarray([r["time_ns"] for r in paid], dtype=float) / 1e9,
                      np.cumsum([r["amount"] for r in paid]) / 100.0))
    fees = [(r["time_ns"], a) for r in journals if r["entry"] == "payout"
            for acct, a in r["lines"] if acct == "fees:wire"]
    if fees:
        rails.append(("wire fees (at the sweep)", np.asarray([t for t, _ in fees], dtype=float) / 1e9,
                      np.cumsum([a for _, a in fees]) / 100.0))
    points = []
    held, earned, redeemed = 0, 0, 0
    ts, h_s, e_s, r_s = [], [], [], []
    for r in journals:
        d = [(a, r["entry"]) for acct, a in r["lines"] if acct.startswith("points:")]
        if not d:
            continue
        for a, entry in d:
            held += a
            if entry == "earn":
                earned += a
            elif entry in ("charge", "authorise"):
                redeemed -= a
        ts.append(r["time_ns"] / 1e9)
        h_s.append(held / 100.0)
        e_s.append(earned / 100.0)
        r_s.append(redeemed / 100.0)
    if ts:
        t = np.asarray(ts)
        points = [("points held by customers", t, np.asarray(h_s)), ("earned on delivery", t, np.asarray(e_s)),
                  ("redeemed in charges", t, np.asarray(r_s))]
    if money:
        rows = [{"series": money, "ylabel": "dollars, cumulative", "step": True}]
        if rails:
            rows.append({"series": rails, "ylabel": "payouts, dollars", "step": True})
        if points:
            rows.append({"series": points, "ylabel": "points (dollars)", "step": True})
        rows[-1]["xlabel"] = "simulated time (s)"
        names.append(P.panels(folder / "commerce-money.png", f"Ledger, payouts by rail, loyalty points ({mode})",
                              rows, shade, subtitle=f"seed {run.cfg.seed}"))
    rows = []
    lat = {}
    for t0, t1, out in times.values():
        if t1 is not None:
            lat.setdefault(out, []).append((t1 - t0) / 1e6)
    series = [(f"order latency, {k}", *_survival(v)) for k, v in sorted(lat.items()) if v]
    if series:
        rows.append({"series": series, "ylabel": "fraction longer", "xlabel": "ms", "log": True, "logx": True,
                     "time": False})
    by_kind: dict[str, list[float]] = {}
    for a, b, kind in holds:
        by_kind.setdefault(kind, []).append((b - a) / 1e6)
    series = [(f"hold time, {k}", *_survival(v)) for k, v in sorted(by_kind.items()) if v]
    if series:
        rows.append({"series": series, "ylabel": "fraction longer", "xlabel": "ms", "log": True, "logx": True,
                     "time": False})
    if rows:
        names.append(P.panels(folder / "commerce-times.png", f"Order latency and hold time ({mode})", rows, None,
                              subtitle=f"seed {run.cfg.seed}"))
    return names
