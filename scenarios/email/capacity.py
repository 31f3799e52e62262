"""The capacity figure: send workers against transactional p99 latency and campaign drain time.

One command runs the grid (workers x seeds) through :func:`simulator.pipeline.sweep.run_sweep`, writes
``runs.csv`` and draws ``capacity.png``; ``--from-csv`` redraws from an earlier sweep, including one
made by ``dsim sweep email --grid workers=...``::

    python -m scenarios.email.capacity --workers 1,2,4,8 --seeds 1-2 --out results/email-capacity
    python -m scenarios.email.capacity --from-csv results/sweeps/email/.../runs.csv --out DIR

Other parameters of the runs go with ``--set k=v`` (e.g. ``--set connections=4``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def summarise(rows: list[dict]) -> list[dict]:
    """Per worker count: median over seeds of tx p99 (ms) and campaign drain (s), and verdicts."""
    by: dict[int, list[dict]] = {}
    for r in rows:
        by.setdefault(int(float(r["workers"])), []).append(r)
    out = []
    for w in sorted(by):
        rs = by[w]
        p99 = [x for x in (_num(r.get("tx_latency_p99_ms")) for r in rs) if x is not None]
        drain = [x for x in (_num(r.get("campaign_drain_s")) for r in rs) if x is not None]
        out.append({"workers": w, "runs": len(rs), "valid": sum(1 for r in rs if str(r.get("valid")) == "True"),
                    "tx_p99_ms": float(np.median(p99)) if p99 else None,
                    "campaign_drain_s": float(np.median(drain)) if drain else None})
    return out


def draw(summary: list[dict], path: Path, subtitle: str = "") -> str:
    from simulator import plots

    panels = plots.panels

    xs = np.array([s["workers"] for s in summary], dtype=float)

    def series(key, label):
        med = np.array([s[key] if s[key] is not None else np.nan for s in summary], dtype=float)
        return [(f"{label} (median over seeds)", xs, med)]

    rows = [{"series": series("tx_p99_ms", "transactional p99"), "ylabel": "transactional p99 (ms)",
             "log": True, "logx": True, "time": False},
            {"series": series("campaign_drain_s", "slowest campaign drain"),
             "ylabel": "campaign drain (s)", "logx": True, "time": False, "xlabel": "send workers"}]
    return panels(path, "Capacity: send workers vs transactional p99 and campaign drain time", rows,
                  subtitle=subtitle)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="email capacity sweep: workers vs tx p99 and campaign drain")
    ap.add_argument("--workers", default="1,2,4,8,16")
    ap.add_argument("--seeds", default="1-2")
    ap.add_argument("--set", action="append", default=[], metavar="K=V")
    ap.add_argument("--nemesis", default="")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="results/email-capacity")
    ap.add_argument("--from-csv", default=None)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.from_csv:
        with open(a.from_csv) as fh:
            rows = list(csv.DictReader(fh))
    else:
        from simulator import build_config, get_scenario, parse_seeds, run_sweep, write_csv

        sets = dict(kv.split("=", 1) for kv in a.set)
        configs = []
        for w in a.workers.split(","):
            for seed in parse_seeds(a.seeds):
                opts = {"nemesis": a.nemesis} if a.nemesis else {}
                cfg = build_config(get_scenario("email"), seed=seed, options=opts, sets={**sets, "workers": w})
                configs.append((cfg, {"workers": w}))
        rows = run_sweep(configs, out, a.jobs, plots=False)
        write_csv(out / "runs.csv", rows)
    summary = summarise(rows)
    name = draw(summary, out / "capacity.png", f"email, seeds {a.seeds}" + (f", {' '.join(a.set)}" if a.set else ""))
    print(f"{'workers':>8} {'runs':>5} {'valid':>6} {'tx_p99_ms':>10} {'campaign_drain_s':>17}")
    for s in summary:
        p99 = f"{s['tx_p99_ms']:.1f}" if s["tx_p99_ms"] is not None else "-"
        dr = f"{s['campaign_drain_s']:.1f}" if s["campaign_drain_s"] is not None else "-"
        print(f"{s['workers']:>8} {s['runs']:>5} {s['valid']:>6} {p99:>10} {dr:>17}")
    print(f"figure: {out / name}")


if __name__ == "__main__":
    main()
