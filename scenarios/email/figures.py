"""Scenario figures (scalars for metrics.json and sweeps) and the email plots.

Plots: delivery latency by class (CDF), throughput per provider against its limit, queue depths,
and retries / deferrals / throttles / duplicates prevented / dead letters over time. Drawing goes
through :func:`simulator.reports.plots.panels` (matplotlib lives only in simulator.reports.plots).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .analysis import analyse


def _q(values_ns, q: float, weights=None) -> float | None:
    if len(values_ns) == 0:
        return None
    v = np.asarray(values_ns, dtype=np.float64)
    if weights is None:
        return round(float(np.percentile(v, q)) / 1e6, 3)
    order = np.argsort(v)
    cw = np.cumsum(np.asarray(weights, dtype=np.float64)[order])
    k = int(np.searchsorted(cw, q / 100 * cw[-1]))
    return round(float(v[order][min(k, len(v) - 1)]) / 1e6, 3)


def scalars(run) -> dict:
    a = analyse(run)
    c = a.counts
    tx = [l for _, l in a.tx_latency]
    bl, bw = a.bulk_latency
    out = {
        "emails": c["emails"], "campaigns": c["campaigns"], "delivered": c["delivered"], "bounced": c["bounced"],
        "suppressed": c["suppressed"], "dead_letters": c["dead_letters"],
        "duplicates_prevented": c["duplicates_prevented"], "retries": c["retried"], "deferred": c["deferred"],
        "throttled": c["throttled"], "unavailable": c["unavailable"], "redeliveries": c["redeliveries"],
        "provider_calls": int(sum(len(v) for v in a.calls.values())),
        "tx_latency_p50_ms": _q(tx, 50), "tx_latency_p99_ms": _q(tx, 99), "tx_latency_max_ms": _q(tx, 100),
        "bulk_latency_p50_ms": _q(bl, 50, bw), "bulk_latency_p99_ms": _q(bl, 99, bw),
        "campaign_drain_s": round(max(a.campaign_drain_s), 3) if a.campaign_drain_s else None,
        "campaign_drain_mean_s": round(float(np.mean(a.campaign_drain_s)), 3) if a.campaign_drain_s else None,
    }
    lease = run.records_of("kit.lease")
    if lease:
        waits = np.array([r["wait_ns"] for r in lease if r["attempt"] == 0], dtype=np.float64)
        out["queue_wait_mean_ms"] = round(float(waits.mean()) / 1e6, 4) if len(waits) else None
    peak = 0.0
    for name, arr in sorted(a.calls.items()):
        if len(arr):
            sec = arr[:, 0] // 1_000_000_000
            per_s = np.bincount(sec, weights=arr[:, 2])
            out[f"delivered_peak_s_{name}"] = int(per_s.max())
    if a.calls:
        allc = np.concatenate(list(a.calls.values()))
        per_s = np.bincount(allc[:, 0] // 1_000_000_000, weights=allc[:, 2])
        peak = float(per_s.max()) if len(per_s) else 0.0
    out["delivered_peak_s"] = int(peak)
    return out


def _per_second(t_ns: np.ndarray, w: np.ndarray, end_s: int) -> tuple[np.ndarray, np.ndarray]:
    sec = np.clip(t_ns // 1_000_000_000, 0, end_s)
    return np.arange(end_s + 1), np.bincount(sec, weights=w, minlength=end_s + 1)


def draw(run, folder: Path, shade) -> list[str]:
    from simulator import plots

    panels = plots.panels

    a = analyse(run)
    settings = run.exposed["settings"]
    end_s = int(run.end_ns // 1_000_000_000) + 1
    sub = f"email, seed {run.cfg.seed}" + (f", bug {run.cfg.bug}" if run.cfg.bug else "")
    names = []

    # latency by class, as CDFs
    series = []
    tx = np.sort(np.array([l for _, l in a.tx_latency], dtype=np.float64)) / 1e6
    if len(tx):
        series.append((f"transactional ({len(tx)})", tx, np.arange(1, len(tx) + 1) / len(tx)))
    bl, bw = a.bulk_latency
    if len(bl):
        order = np.argsort(bl)
        cw = np.cumsum(bw[order]).astype(np.float64)
        series.append((f"campaign ({int(cw[-1])})", bl[order] / 1e6, cw / cw[-1]))
    names.append(panels(folder / "email-latency.png", "End-to-end delivery latency by class",
                        [{"series": series, "xlabel": "submit to delivery (ms, log scale)", "logx": True,
                          "ylabel": "share of emails delivered", "time": False}], subtitle=sub))

    # throughput per provider, with limits
    rows = []
    for i, name in enumerate(settings.providers):
        arr = a.calls.get(name)
        if arr is None:
            continue
        x, delivered = _per_second(arr[:, 0], arr[:, 2], end_s)
        _, attempted = _per_second(arr[:, 0], arr[:, 1], end_s)
        s = [("delivered/s", x, delivered), ("requests/s", x, attempted)]
        if settings.provider_limit_s[i] > 0:
            s.append(("limit", x, np.full(len(x), settings.provider_limit_s[i])))
        rows.append({"series": s, "ylabel": f"{name} (emails/s)", "step": True})
    if rows:
        rows[-1]["xlabel"] = "simulated time (s)"
        names.append(panels(folder / "email-providers.png", "Throughput per provider", rows, shade, sub))

    # queue depths, summed over partitions at each sample second
    depth = run.records_of("kit.depth")
    if depth:
        t = np.array([r["time_ns"] for r in depth], dtype=np.int64)
        cols = {k: np.array([r[k] for r in depth], dtype=np.float64) for k in ("ready", "delayed", "leased", "dead")}
        sec = t // 1_000_000_000
        x = np.unique(sec)
        s = [(k, x / 1.0, np.array([cols[k][sec == v].sum() for v in x])) for k in ("ready", "delayed", "leased")]
        d = [("dead letters", x / 1.0, np.array([cols["dead"][sec == v].sum() for v in x]))]
        names.append(panels(folder / "email-queue.png", "Queue depth (emails, all partitions)",
                            [{"series": s, "ylabel": "emails", "step": True},
                             {"series": d, "ylabel": "dead letters", "step": True, "xlabel": "simulated time (s)"}],
                            shade, sub))

    # retries and friends over time
    if a.calls:
        allc = np.concatenate(list(a.calls.values()))
        s = []
        for col, label in ((5, "deferred"), (6, "throttled"), (7, "unavailable"), (3, "duplicates prevented"),
                           (4, "bounced")):
            x, y = _per_second(allc[:, 0], allc[:, col], end_s)
            if y.any():
                s.append((label, x, y))
        retries = run.records_of("retry")
        if retries:
            x, y = _per_second(np.array([r["time_ns"] for r in retries], dtype=np.int64),
                               np.array([r["n"] for r in retries], dtype=np.float64), end_s)
            s.append(("retried", x, y))
        red = run.records_of("kit.redeliver")
        if red:
            x, y = _per_second(np.array([r["time_ns"] for r in red], dtype=np.int64),
                               np.array([r["n"] for r in red], dtype=np.float64), end_s)
            s.append(("redelivered", x, y))
        names.append(panels(folder / "email-retries.png", "Retries, deferrals, throttles, duplicates prevented",
                            [{"series": s, "ylabel": "emails per second", "step": True,
                              "xlabel": "simulated time (s)"}], shade, sub))
    return names
