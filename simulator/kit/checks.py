"""Checkers and figures for designs built from the kit: pure functions of a run's history and
records.

``every_request_answered``  no request silently lost: each ended ok or fail. One that ended
                            ``info`` (the client gave up, or the workload's deadline passed) or
                            never ended was lost somewhere inside the design.
``slo``                     per route with ``slo_p99_ms``: the p99 of its successful requests
                            (outside fault windows when given) is within the objective.
``no_lost_writes``          every write acknowledged to a client is in the database's log after
                            the final heal.
``exactly_once``            no write is stored twice: a retried write with the idempotency key of
                            one already stored is recognised (writes of idempotent routes).
``component_figures``       per component: requests, ok share, mean and p99 time in it, mean
                            queue at arrival, utilisation (busy time / cores / elapsed), drops.
"""

from __future__ import annotations

from collections import defaultdict
from operator import itemgetter
from typing import Any, Iterable

import numpy as np

from ..checkers import UNKNOWN, CheckResult
from ..workload.history import TYPE_CODE, History, pairs
from .client import IDEM, RESULT, request_value
from .messages import SERVED

# positions in a kit.served row ((time_ns, node, *SERVED)) of the columns component_figures reads
_FIGURE_COLUMNS = tuple(2 + SERVED.index(c) for c in ("comp", "ok", "queue", "service_ns", "total_ns"))


def _few(items: list, n: int = 5) -> str:
    head = ", ".join(str(i) for i in items[:n])
    return head + (f" and {len(items) - n} more" if len(items) > n else "")


def every_request_answered(history: list[dict]) -> CheckResult:
    lost = []
    total = 0
    for inv, done in pairs(history):
        total += 1
        if done is None or done["type"] == "info":
            v = request_value(done["value"]) if done is not None else None
            why = v[RESULT] if v is not None else ("never ended" if done is None else "deadline")
            lost.append(f"{inv['f']} at {inv['time'] / 1e9:.3f}s ({why})")
    if lost:
        return CheckResult(False, f"{len(lost)} of {total} requests got no answer: {_few(lost)}",
                           {"requests": total, "lost": len(lost)})
    return CheckResult(True, "", {"requests": total, "lost": 0})


def _p99_ms(values: Iterable[float]) -> float | None:
    arr = np.fromiter(values, dtype=float)
    return None if arr.size == 0 else float(np.percentile(arr, 99))


def slo(history: list[dict], objectives: dict[str, float], exclude: list[tuple[int, int]] = ()) -> CheckResult:
    """``objectives``: route -> p99 in ms. ``exclude``: (start, end) ns windows left out (faults)."""
    if not objectives:
        return CheckResult(True, "", {"routes": {}, "note": "no route sets slo_p99_ms"})
    lat: dict[str, list[float]] = defaultdict(list)
    for inv, done in pairs(history):
        if done is None or done["type"] != "ok" or inv["f"] not in objectives:
            continue
        t = inv["time"]
        if any(a <= t <= b for a, b in exclude):
            continue
        lat[inv["f"]].append((done["time"] - t) / 1e6)
    routes, bad, unknown = {}, [], []
    for name in sorted(objectives):
        p99 = _p99_ms(lat.get(name, ()))
        routes[name] = {"p99_ms": None if p99 is None else round(p99, 3), "slo_p99_ms": objectives[name],
                        "requests_ok": len(lat.get(name, ()))}
        if p99 is None:
            unknown.append(name)
        elif p99 > objectives[name]:
            bad.append(f"route {name!r} p99 {p99:.1f} ms > {objectives[name]:g} ms")
    if bad:
        return CheckResult(False, "; ".join(bad), {"routes": routes})
    if unknown:
        return CheckResult(UNKNOWN, f"no successful requests on {', '.join(unknown)}", {"routes": routes})
    return CheckResult(True, "", {"routes": routes})


def no_lost_writes(history: list[dict], write_routes: Iterable[str], final: dict[str, list]) -> CheckResult:
    """``final``: database -> the write ids (idempotency keys) in its primary's log after the
    final heal. A write is in the database if any database holds it (a route's database is not
    tracked, for simplicity)."""
    write_routes = set(write_routes)
    if not write_routes:
        return CheckResult(True, "", {"note": "no route writes to a database"})
    present = set()
    for ids in final.values():
        present.update(ids)
    acked, lost = 0, []
    for inv, done in pairs(history):
        if inv["f"] in write_routes and done is not None and done["type"] == "ok":
            acked += 1
            key, idem, _ = done["value"]
            if idem not in present:
                lost.append(f"request {idem} (key {key}, acknowledged at {done['time'] / 1e9:.3f}s)")
    if lost:
        return CheckResult(False, f"{len(lost)} of {acked} acknowledged writes are not in the database: {_few(lost)}",
                           {"acknowledged": acked, "lost": len(lost)})
    return CheckResult(True, "", {"acknowledged": acked, "lost": 0})


def exactly_once(history: list[dict], write_routes: Iterable[str], final: dict[str, list]) -> CheckResult:
    """``final`` as for :func:`no_lost_writes`; only writes of ``write_routes`` are judged."""
    write_routes = set(write_routes)
    if not write_routes:
        return CheckResult(True, "", {"note": "no idempotent route writes to a database"})
    ours = {v[IDEM] for inv, done in pairs(history)
            if inv["f"] in write_routes and done is not None and (v := request_value(done["value"])) is not None}
    counts: dict = defaultdict(int)
    for ids in final.values():
        for i in ids:
            if i in ours:
                counts[i] += 1
    dups = sorted(k for k, c in counts.items() if c > 1)
    if dups:
        return CheckResult(False, f"{len(dups)} writes stored more than once: " +
                           _few([f"request {k} x{counts[k]}" for k in dups]), {"writes": len(ours), "duplicated": len(dups)})
    return CheckResult(True, "", {"writes": len(ours), "duplicated": 0})


def component_figures(records: list[dict], served: list[tuple], cores: dict[str, int],
                      elapsed_ns: int) -> dict[str, Any]:
    """``served``: the run's ``kit.served`` rows (``RunData.table("kit.served")``, each
    ``(time_ns, node, *SERVED)``); ``records``: its records (drops and rate limiters'
    decisions); ``cores``: component -> total cores over its instances (for utilisation)."""
    drops: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    admits: dict[str, int] = defaultdict(int)  # rate limiters decide, they do not serve
    for r in records:
        k = r["kind"]
        if k == "kit.drop":
            drops[r["comp"]][r["reason"]] += 1
        elif k == "kit.admit":
            admits[r["comp"]] += 1
    by: dict[str, tuple] = {}  # comp -> (total ms, queue, service ns, ok) arrays
    if served:
        # The five columns read, each in one C-level pass (map over an itemgetter), then a mask per
        # component. Not zip(*served): that makes an iterator per row and pulls all nine columns,
        # three times the time, and after the checker's fork every object it touches copies its page.
        comp, ok, queue, service_ns, total_ns = (list(map(itemgetter(i), served)) for i in _FIGURE_COLUMNS)
        comp = np.array(comp, dtype=object)
        cols = (np.array(total_ns, dtype=float) / 1e6, np.array(queue, dtype=float),
                np.array(service_ns, dtype=float), np.array(ok, dtype=float))
        for name in sorted(set(comp.tolist())):
            mine = comp == name
            by[name] = tuple(c[mine] for c in cols)
    out = {}
    for comp in sorted(set(by) | set(drops) | set(admits)):
        total, queues, services, oks = by.get(comp, (np.zeros(0),) * 4)
        busy_ms = float(np.sum(services)) / 1e6
        c = cores.get(comp)
        out[comp] = {
            "requests": int(total.size) or admits.get(comp, 0),
            "ok_share": round(float(np.mean(oks)), 6) if total.size else None,
            "mean_ms": round(float(total.mean()), 4) if total.size else None,
            "p99_ms": round(float(np.percentile(total, 99)), 4) if total.size else None,
            "mean_queue": round(float(np.mean(queues)), 4) if total.size else None,
            "utilisation": round(busy_ms * 1e6 / (c * elapsed_ns), 4) if c and elapsed_ns else None,
            "drops": dict(sorted(drops.get(comp, {}).items())),
        }
    return out


def route_figures(history: list[dict]) -> dict[str, Any]:
    """Per route: requests, ok / fail / info counts, p50 and p99 of successful requests (ms)."""
    if isinstance(history, History):
        return _route_figures_columns(history)
    lat: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"ok": 0, "fail": 0, "info": 0})
    for inv, done in pairs(history):
        kind = done["type"] if done is not None else "info"
        counts[inv["f"]][kind] += 1
        if kind == "ok":
            lat[inv["f"]].append((done["time"] - inv["time"]) / 1e6)
    out = {}
    for name in sorted(counts):
        arr = np.asarray(lat.get(name, ()), dtype=float)
        out[name] = {**counts[name],
                     "p50_ms": round(float(np.percentile(arr, 50)), 3) if arr.size else None,
                     "p99_ms": round(float(np.percentile(arr, 99)), 3) if arr.size else None}
    return out


def _route_figures_columns(h: History) -> dict[str, Any]:
    """:func:`route_figures` from a columnar History's arrays, with numpy rather than a Python
    loop over every pair: the same counts and the same latencies (int ns / 1e6)."""
    inv = np.frombuffer(h.inv_at, dtype=np.int64)
    done = np.frombuffer(h.done_at, dtype=np.int64)
    time = np.frombuffer(h.time, dtype=np.int64)
    types = np.frombuffer(h.type, dtype=np.uint8)
    f = np.frombuffer(h.f, dtype=np.uint32)[inv]
    ended = done >= 0
    kind = np.full(inv.size, TYPE_CODE["info"], dtype=np.uint8)  # never ended counts as info
    kind[ended] = types[done[ended]]
    ok = kind == TYPE_CODE["ok"]
    lat_ms = (time[done[ok]] - time[inv[ok]]) / 1e6
    f_ok = f[ok]
    out = {}
    for code in sorted(set(np.unique(f).tolist()), key=lambda c: h.f_names[c]):
        mine = f == code
        arr = lat_ms[f_ok == code]
        out[h.f_names[code]] = {
            "ok": int(np.count_nonzero(kind[mine] == TYPE_CODE["ok"])),
            "fail": int(np.count_nonzero(kind[mine] == TYPE_CODE["fail"])),
            "info": int(np.count_nonzero(kind[mine] == TYPE_CODE["info"])),
            "p50_ms": round(float(np.percentile(arr, 50)), 3) if arr.size else None,
            "p99_ms": round(float(np.percentile(arr, 99)), 3) if arr.size else None}
    return out
