"""The twopc figures (drawn by :func:`simulator.reports.plots.panels`, the only matplotlib user).

``twopc-in-doubt.png``   transactions in doubt over time, commits and aborts by cause per second;
                         fault windows shaded (2PC's blocking shows as a plateau that lasts until
                         the coordinator returns)
``twopc-times.png``      how long RMs stayed in doubt and held locks: survival curves, log scales
"""

from __future__ import annotations

import numpy as np

from .checkers import of_kind
from .figures import in_doubt_periods, in_doubt_series


def _per_second(times_ns: list[int], end_ns: int, bucket_s: float) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(0.0, end_ns / 1e9 + bucket_s, bucket_s)
    counts, _ = np.histogram(np.asarray(times_ns, dtype=float) / 1e9, bins=edges)
    return edges[:-1], counts / bucket_s


def _survival(values_ms: list[float]) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(np.maximum(np.asarray(values_ms, dtype=float), 1e-3))
    return v, 1.0 - np.arange(len(v)) / max(len(v), 1)


def draw(run, folder, shade) -> list[str]:
    from simulator import plots as P

    p = run.cfg.params
    label = p["protocol"] + (f", F={p['F']}" if p["protocol"] == "paxos-commit" else "")
    t, n = in_doubt_series(run)
    first: dict[int, tuple[int, str, str]] = {}
    for r in of_kind(run, "applied"):
        if r["tx"] not in first or (r["outcome"] == "C" and first[r["tx"]][1] != "C"):
            first[r["tx"]] = (r["time_ns"], r["outcome"], r["cause"])
    bucket = max(0.25, run.end_ns / 1e9 / 200)
    by_cause: dict[str, list[int]] = {}
    for t_ns, outcome, cause in first.values():
        by_cause.setdefault("committed" if outcome == "C" else f"aborted: {cause or 'unknown'}", []).append(t_ns)
    rate_series = []
    for name in sorted(by_cause):
        xs, ys = _per_second(by_cause[name], run.end_ns, bucket)
        rate_series.append((name, xs, ys))
    names = [P.panels(folder / "twopc-in-doubt.png", f"Transactions in doubt ({label})", [
        {"series": [("in doubt (RM x transaction)", t, n)], "ylabel": "in doubt", "step": True},
        {"series": rate_series, "ylabel": "per second", "xlabel": "simulated time (s)"},
    ], shade, subtitle=f"seed {run.cfg.seed}")]
    doubt = [(t1 - t0) / 1e6 for t0, t1, _, _ in in_doubt_periods(run)]
    held = [r["held_ms"] for r in of_kind(run, "applied")]
    rows = []
    if doubt:
        xs, ys = _survival(doubt)
        rows.append({"series": [("time in doubt", xs, ys)], "ylabel": "fraction longer", "xlabel": "ms",
                     "log": True, "logx": True, "time": False})
    if held:
        xs, ys = _survival(held)
        rows.append({"series": [("lock-hold time", xs, ys)], "ylabel": "fraction longer", "xlabel": "ms",
                     "log": True, "logx": True, "time": False})
    if rows:
        names.append(P.panels(folder / "twopc-times.png", f"Time in doubt and lock-hold time ({label})", rows,
                              None, subtitle=f"seed {run.cfg.seed}"))
    return names
