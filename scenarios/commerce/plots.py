"""The commerce figures (drawn by :func:`simulator.plots.panels`, the only matplotlib user).

``commerce-orders.png``  orders in flight (placed, not yet ended) and stock held in reservations over
                         time, and orders ended per second by outcome; fault windows shaded (2PC's
                         holds stay up while its coordinator is down; sagas keep ending orders)
``commerce-times.png``   survival curves of order latency by outcome and of how long stock stayed
                         held (saga reservation, TCC try or 2PC prepare), log scales
"""

from __future__ import annotations

import numpy as np

from .figures import hold_periods, order_times


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
        {"series": rate, "ylabel": "orders ended / s", "xlabel": "simulated time (s)"},
    ], shade, subtitle=f"seed {run.cfg.seed}")]
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
