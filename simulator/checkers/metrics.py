"""Pure functions from a history (and the applied faults) to the figures users read.

Latency is completion time minus invoke time of ``ok`` operations. Throughput counts ``ok``
completions per simulated second over the main phase. Availability is the share of main-phase
operations (those invoked before ``main_end_ns``, the final heal) that ended ``ok``; a main-phase
operation that never ended by the end of the run (no ok, fail or info) is *lost* and counts as not
ok, as in :func:`simulator.checkers.basic.availability`: a request dropped without trace is the
worst unavailability, and with a per-operation timeout longer than the rest of the run it never
even times out to ``info``. The quiesce after the heal is the grace for operations still in flight
then; the final operations started after it always end (they time out at ``final_timeout_s``), so
in a run's ``ops``, ``invoked = ok + fail + info + lost``. For every fault that was healed (a ``stop`` action), recovery is the
time from the heal until the first operation invoked after it completes ``ok``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.ma  # noqa: F401 - np.quantile imports it on first use; load it with us, not mid-run

from ..workload.history import History, pairs

QUANTILES = {"p50": 50, "p95": 95, "p99": 99, "p999": 99.9}


def latencies(history: list[dict], f: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(invoke times ns, latencies ns) of ok operations, optionally only those of function ``f``."""
    t, lat = [], []
    for inv, comp in pairs(history):
        if comp is not None and comp["type"] == "ok" and (f is None or inv["f"] == f):
            t.append(inv["time"])
            lat.append(comp["time"] - inv["time"])
    return np.asarray(t, dtype=np.int64), np.asarray(lat, dtype=np.int64)


def latency_summary_ms(lat_ns: np.ndarray) -> dict[str, float | None]:
    if len(lat_ns) == 0:
        return {**{k: None for k in QUANTILES}, "max": None, "mean": None}
    ms = lat_ns / 1e6
    out = {k: round(float(np.percentile(ms, q)), 4) for k, q in QUANTILES.items()}
    out["max"] = round(float(ms.max()), 4)
    out["mean"] = round(float(ms.mean()), 4)
    return out


def op_counts(history: list[dict]) -> dict[str, int]:
    counts = {"ok": 0, "fail": 0, "info": 0}
    for op in history:
        if op["type"] in counts:
            counts[op["type"]] += 1
    counts["invoked"] = sum(1 for op in history if op["type"] == "invoke")
    return counts


def throughput_series(history: list[dict], end_ns: int, bucket_s: float = 1.0) -> dict[str, np.ndarray]:
    """Completions per second by type, in buckets of ``bucket_s`` simulated seconds."""
    n = max(1, int(np.ceil(end_ns / 1e9 / bucket_s)))
    out = {k: np.zeros(n) for k in ("ok", "fail", "info")}
    for op in history:
        if op["type"] in out:
            i = min(n - 1, int(op["time"] / 1e9 / bucket_s))
            out[op["type"]][i] += 1 / bucket_s
    out["t_s"] = np.arange(n) * bucket_s
    return out


def availability(history: list[dict], until_ns: int | None = None) -> float | None:
    """The ok share of operations invoked before ``until_ns`` (all if None), lost ones (never
    ended) counted as not ok; None if none was invoked."""
    counted = [c for i, c in pairs(history) if until_ns is None or i["time"] < until_ns]
    if not counted:
        return None
    return round(sum(1 for c in counted if c is not None and c["type"] == "ok") / len(counted), 6)


def recovery(history: list[dict], faults: list[dict]) -> list[dict[str, Any]]:
    """For each healed fault: seconds from the heal to the first ok completion of an op invoked after it."""
    oks = sorted((inv["time"], comp["time"]) for inv, comp in pairs(history) if comp is not None and comp["type"] == "ok")
    return _recovery(np.asarray([t for t, _ in oks], dtype=np.int64), np.asarray([c for _, c in oks], dtype=np.int64), faults)


def _recovery(invoke_ns: np.ndarray, done_ns: np.ndarray, faults: list[dict]) -> list[dict[str, Any]]:
    """``invoke_ns`` sorted, ``done_ns`` the matching ok completions: one suffix minimum, then a
    binary search per healed fault."""
    first_done_from = np.minimum.accumulate(done_ns[::-1])[::-1] if len(done_ns) else done_ns
    out = []
    for i, act in enumerate(faults):
        if act.get("phase") != "stop" and act.get("action") != "final_heal":
            continue
        if act.get("action") == "final_heal" and i == 0:
            continue  # nothing had failed: the final heal healed nothing
        t = act["time_ns"]
        j = int(np.searchsorted(invoke_ns, t))
        first = int(first_done_from[j]) if j < len(first_done_from) else None
        out.append({"fault": act.get("nemesis") or act["action"], "healed_at_s": round(t / 1e9, 6),
                    "recovery_s": None if first is None else round((first - t) / 1e9, 6)})
    return out


def summarise(history: list[dict], faults: list[dict], main_end_ns: int) -> dict[str, Any]:
    """The shared part of metrics.json, in one pass over the operations.

    ``ops`` counts invokes and each ending, and ``lost``: operations invoked before ``main_end_ns``
    (the final heal) that never ended; ``availability`` counts those as not ok (see the module
    docstring). A :class:`History` is summarised from its columns, without a dict an event."""
    if isinstance(history, History):
        return _summarise_columns(history, faults, main_end_ns)
    counts = {"ok": 0, "fail": 0, "info": 0}
    ok_inv, ok_done = [], []
    invoked_main = ok_main_invoked = oks_main = lost = 0
    for inv, comp in pairs(history):
        main = inv["time"] < main_end_ns
        if main:
            invoked_main += 1
        if comp is None:
            lost += main
            continue
        kind = comp["type"]
        counts[kind] += 1
        if kind == "ok":
            ok_inv.append(inv["time"])
            ok_done.append(comp["time"])
            if main:
                ok_main_invoked += 1
            if comp["time"] <= main_end_ns:
                oks_main += 1
    counts["invoked"] = sum(1 for op in history if op["type"] == "invoke")
    counts["lost"] = lost
    return _summary(counts, np.asarray(ok_inv, dtype=np.int64), np.asarray(ok_done, dtype=np.int64),
                    oks_main, invoked_main, ok_main_invoked, faults, main_end_ns)


def _summarise_columns(h: History, faults: list[dict], main_end_ns: int) -> dict[str, Any]:
    """:func:`summarise` of a History, with numpy over its paired columns: the same figures."""
    time_ns = np.frombuffer(h.time, dtype=np.int64) if len(h.time) else np.zeros(0, dtype=np.int64)
    types = np.frombuffer(bytes(h.type), dtype=np.uint8)
    inv_at = np.frombuffer(h.inv_at, dtype=np.int64) if len(h.inv_at) else np.zeros(0, dtype=np.int64)
    done_at = np.frombuffer(h.done_at, dtype=np.int64) if len(h.done_at) else np.zeros(0, dtype=np.int64)
    inv_ns = time_ns[inv_at]
    main = inv_ns < main_end_ns
    ended = done_at >= 0
    kind = np.full(len(inv_at), 255, dtype=np.uint8)
    kind[ended] = types[done_at[ended]]
    done_ns = np.zeros(len(inv_at), dtype=np.int64)
    done_ns[ended] = time_ns[done_at[ended]]
    ok = kind == 1
    counts = {"ok": int(ok.sum()), "fail": int((kind == 2).sum()), "info": int((kind == 3).sum())}
    counts["invoked"] = int((types == 0).sum())
    counts["lost"] = int((main & ~ended).sum())
    invoked_main = int(main.sum())
    ok_main_invoked = int((ok & main).sum())
    ok_inv, ok_done = inv_ns[ok], done_ns[ok]
    oks_main = int((ok_done <= main_end_ns).sum())
    return _summary(counts, ok_inv, ok_done, oks_main, invoked_main, ok_main_invoked, faults, main_end_ns)


def _summary(counts: dict[str, int], ok_inv: np.ndarray, ok_done: np.ndarray, oks_main: int, invoked_main: int,
             ok_main_invoked: int, faults: list[dict], main_end_ns: int) -> dict[str, Any]:
    """The summary both paths end in, from the ok operations' invoke and completion times (run order)."""
    order = np.argsort(ok_inv, kind="stable")
    rec = _recovery(ok_inv[order], ok_done[order], faults)
    known = [r["recovery_s"] for r in rec if r["recovery_s"] is not None]
    return {
        "ops": counts,
        "latency_ms": latency_summary_ms(ok_done - ok_inv),
        "throughput_ops_s": round(oks_main / (main_end_ns / 1e9), 4) if main_end_ns > 0 else None,
        "availability": round(ok_main_invoked / invoked_main, 6) if invoked_main else None,
        "recovery": rec,
        "recovery_max_s": max(known) if known else None,
    }
