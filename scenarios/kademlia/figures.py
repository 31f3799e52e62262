"""Kademlia's figures (metrics.json) and plots, computed from the run's observations.

hops per lookup (histogram), lookup latency (CDF), messages per lookup, lookup success over time
with faults shaded, bucket occupancy by bucket against the expected min(k, (N-1)·2^-(j+1)) for the
j-th farthest bucket, replicas alive per stored key over time, and the session times churn applied.
Matplotlib is reached only through ``simulator.plots``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from pathlib import Path

from .checkers import Membership, lookups

CLIENT = ("find", "get", "put")
BIN_S = 5.0
# Fixed margins (left, right, bottom, top, gap between panels; inches) for the three PNGs, whose
# labels are all known here: tight_layout measured every tick label first, a third of their time.
PANEL_MARGINS_IN = (0.9, 0.25, 0.6, 0.45, 0.75)
CDF_MARGINS_IN = (0.75, 0.25, 0.55, 0.75, 0.95)


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 3)


def client_lookups(run) -> list[dict]:
    return list(lookups(run, CLIENT))


def occupancy(run) -> tuple[list[int], list[float], list[float]]:
    """(j, mean contacts, expected) per bucket counted from the far end (j = 0: the half of the
    id space farthest away)."""
    tables = run.exposed.get("tables", {})
    p = run.cfg.params
    bits, k = p["id_bits"], p["k"]
    n = len(tables)
    total: Counter = Counter()
    for nid, buckets in tables.values():
        for i, b in buckets.items():
            total[bits - 1 - i] += len(b)
    if not total:  # no node, or one alone with nobody to know
        return [], [], []
    depth = max(total) + 1
    js = list(range(depth))
    return js, [total[j] / n for j in js], [min(k, (n - 1) * 2.0 ** -(j + 1)) for j in js]


def sessions_s(run) -> list[float]:
    """Session lengths churn applied: from a node's return (or the start of the churn window it
    was up in) to its next leave."""
    began: dict[str, int] = {}
    window_start = None
    out = []
    for f in run.faults:
        a = f.get("action")
        if a == "churn" and f.get("phase") == "start":
            window_start = f["time_ns"]
        elif a == "return":
            began[f["node"]] = f["time_ns"]
        elif a == "leave":
            t0 = began.pop(f["node"], window_start)
            if t0 is not None:
                out.append((f["time_ns"] - t0) / 1e9)
    return out


def replicas_over_time(run, m: Membership | None = None) -> tuple[list[float], list[float]]:
    """Mean number of up nodes holding a copy, over the keys put so far, every BIN_S seconds.

    A node holds a key from its first store of it in an up period to the end of that period, so
    the (key, node, period) spans are disjoint for one key and node; the holders at an instant are
    the spans begun by then less those ended before it (two sorted lists and a bisection a bin,
    rather than a pass over every store in every bin)."""
    m = m or Membership(run)
    began: dict[tuple, int] = {}  # (key, node, end of the up period) -> first store in it
    first: dict[int, int] = {}
    for t, node, key in run.table("kad.stored"):  # ids.STORED
        until = run.end_ns
        for _, a, b, _ in m.up.get(node, ()):
            if a <= t and b is not None and t <= b:
                until = b
        span = (key, node, until)
        if span not in began or t < began[span]:
            began[span] = t
        if key not in first or t < first[key]:
            first[key] = t
    starts = sorted(began.values())
    ends = sorted(span[2] for span in began)
    firsts = sorted(first.values())
    xs, ys = [], []
    t = BIN_S
    while t * 1e9 <= run.end_ns:
        now = int(t * 1e9)
        keys = bisect_right(firsts, now)
        if keys:
            xs.append(t)
            ys.append((bisect_right(starts, now) - bisect_left(ends, now)) / keys)
        t += BIN_S
    return xs, ys


def success_over_time(run) -> tuple[list[float], list[float]]:
    """Share of client operations ending ok, per BIN_S bin of completion time."""
    ok: Counter = Counter()
    done: Counter = Counter()
    for op in run.history:
        if op["type"] == "invoke":
            continue
        b = int(op["time"] / 1e9 // BIN_S)
        done[b] += 1
        ok[b] += op["type"] == "ok"
    bins = sorted(done)
    return [(b + 0.5) * BIN_S for b in bins], [ok[b] / done[b] for b in bins]


def figures(run) -> dict:
    looks = client_lookups(run)
    hops = [r["hops"] for r in looks]
    lat = [(r["time_ns"] - r["start_ns"]) / 1e6 for r in looks]
    msgs = [r["msgs"] for r in looks]
    js, occ, exp = occupancy(run)
    sess = sessions_s(run)
    return {
        "nodes": run.cfg.node_count,
        "lookups": len(run.table("kad.lookup")),
        "client_lookups": len(looks),
        "mean_hops": round(sum(hops) / len(hops), 3) if hops else None,
        "hops_histogram": dict(sorted(Counter(hops).items())),
        "lookup_latency_ms": {"p50": _q(lat, 0.5), "p95": _q(lat, 0.95), "p99": _q(lat, 0.99)},
        "messages_per_lookup": {"mean": round(sum(msgs) / len(msgs), 2) if msgs else None, "p50": _q(msgs, 0.5),
                                "p99": _q(msgs, 0.99)},
        "bucket_occupancy": {"mean": [round(x, 2) for x in occ[:12]], "expected": [round(x, 2) for x in exp[:12]]},
        "churn_sessions": len(sess),
        "churn_session_median_s": _q(sess, 0.5),
        # left and not back at the final heal, which leaves them away (they return as drawn)
        "churn_away_at_heal": away_at(run, run.heal_ns),
    }


def away_at(run, t_ns: int) -> int:
    """Nodes that churn had taken away and not yet brought back at ``t_ns``."""
    away: set[str] = set()
    for f in run.faults:
        if f["time_ns"] > t_ns:
            break
        a = f.get("action")
        if a == "leave":
            away.add(f["node"])
        elif a == "return":
            away.discard(f["node"])
    return len(away)


def plots(run, folder, shade) -> list[str]:
    """Kademlia's three PNGs. Each costs matplotlib's fixed price (ticks, text, PNG encoding: about
    0.15 s a figure here, with fixed margins rather than tight_layout), not its data's: the data
    behind all three takes about 0.01 s.
    Drawing two of them in forked children was tried and measured slower (1.2-1.7 s against
    0.9 s wall at load 1.2): the child's first touch of the run's objects copies their pages."""
    folder = Path(folder)
    sub = f"kademlia seed {run.cfg.seed}, {run.cfg.node_count} nodes"
    return [_lookups_png(run, folder, sub), _over_time_png(run, folder, sub, shade), _cdfs_png(run, folder, sub)]


def _lookups_png(run, folder: Path, sub: str) -> str:
    from simulator import plots as P

    looks = client_lookups(run)
    hops = Counter(r["hops"] for r in looks)
    hx = sorted(hops)
    js, occ, exp = occupancy(run)
    return P.panels(folder / "kademlia-lookups.png", f"Kademlia lookups ({sub})", [
        {"series": [("client lookups", [h - 0.5 for h in hx] + [hx[-1] + 0.5] if hx else [],
                     [hops[h] for h in hx] + [hops[hx[-1]]] if hx else [])],
         "ylabel": "lookups", "xlabel": "hops per lookup (hops to the closest node found)", "time": False,
         "step": True},
        {"series": [("mean contacts", js, occ), ("expected min(k, (N-1)·2^-(j+1))", js, exp)],
         "ylabel": "contacts per bucket", "xlabel": "bucket j, counted from the farthest (j = 0: the far half)",
         "time": False, "log": True},
    ], margins_in=PANEL_MARGINS_IN)


def _over_time_png(run, folder: Path, sub: str, shade) -> str:
    from simulator import plots as P

    sx, sy = success_over_time(run)
    rx, ry = replicas_over_time(run)
    return P.panels(folder / "kademlia-over-time.png", f"Kademlia over time ({sub})", [
        {"series": [("operations ok", sx, sy)], "ylabel": f"ok share per {BIN_S:g} s"},
        {"series": [("mean up holders per key put", rx, ry)], "ylabel": "replicas alive", "xlabel": "simulated s"},
    ], shade, margins_in=PANEL_MARGINS_IN)


def _cdfs_png(run, folder: Path, sub: str) -> str:
    from simulator import plots as P

    looks = client_lookups(run)
    cdfs = [{"title": "lookup latency", "xlabel": "ms",
             "series": {"client lookups": [max(1e-3, (r["time_ns"] - r["start_ns"]) / 1e6) for r in looks]}},
            {"title": "messages per lookup", "xlabel": "RPCs sent", "series": {"client lookups": [max(1, r["msgs"])
                                                                                              for r in looks]}}]
    sess = sessions_s(run)
    if sess:
        cdfs.append({"title": f"session times applied by churn ({run.cfg.params['churn_dist']})", "xlabel": "s",
                     "series": {"sessions": [max(1e-3, s) for s in sess]}})
    return P.cdf_panels(folder / "kademlia-cdfs.png", f"Kademlia distributions ({sub})", cdfs,
                        margins_in=CDF_MARGINS_IN)
