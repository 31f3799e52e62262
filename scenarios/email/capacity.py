"""The capacity figure: send workers against transactional p99 latency and campaign drain time.

One command runs the grid (workers x seeds) through :func:`simulator.pipeline.sweep.run_sweep`, writes
``runs.csv`` and draws ``capacity.png``; ``--from-csv`` redraws from an earlier sweep, including one
made by ``dsim sweep email --grid workers=...``::

    python -m scenarios.email.capacity --workers 1,2,4,8 --seeds 1-2 --out results/email-capacity
    python -m scenarios.email.capacity --from-csv results/sweeps/email/.../runs.csv --out DIR

Other parameters of the runs go with ``--set k=v`` (e.g. ``--set connections=4``).
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np

from simulator import UsageError
from simulator import scriptargs as A

MAX_WORKERS = 10_000  # the email design's workers parameter at most
MAX_JOBS = max(8, 4 * (os.cpu_count() or 1))  # as dsim sweep --jobs


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


def _out_folder(text: str, option: str) -> Path:
    """A folder for the results: there already, or one that can be made."""
    path = A.folder_path(text, option)
    for name in ("runs.csv", "capacity.png", "runs"):
        if (path / name).exists() and (path / name).is_dir() != (name == "runs"):
            raise UsageError(f"bad value {text!r} for {option}: {path / name} is in the way; expected a folder "
                             "where runs.csv, runs/ and capacity.png can be written")
    return path




def read_rows(path: Path) -> list[dict]:
    """``--from-csv``: the rows of an earlier sweep's runs.csv with a workers column (a UsageError if not)."""
    expected = "a runs.csv of a sweep over workers (a workers column of whole numbers, one row per run)"
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else getattr(exc, "strerror", None) or exc
        raise UsageError(f"bad value {str(path)!r} for --from-csv: cannot read it as CSV ({why}); expected {expected}") from None
    if "workers" not in fields:
        raise UsageError(f"bad value {str(path)!r} for --from-csv: no column workers; expected {expected}")
    if not rows:
        raise UsageError(f"bad value {str(path)!r} for --from-csv: no rows; expected {expected}")
    for n, r in enumerate(rows, 2):
        w = _num(r["workers"])
        if w is None or w < 1 or w != int(w):
            raise UsageError(f"bad value {str(path)!r} for --from-csv: line {n} has workers {r['workers']!r}; "
                             f"expected {expected}")
    return rows


def main(argv=None) -> int:
    ap = A.Parser(prog="python -m scenarios.email.capacity",
                  description="email capacity sweep: workers vs tx p99 and campaign drain")
    ap.add_argument("--workers", type=A.integers(1, MAX_WORKERS), default="1,2,4,8,16",
                    help=f"send worker counts, comma-separated (1 to {MAX_WORKERS:,})")
    ap.add_argument("--seeds", default="1-2", help="e.g. 1-3 or 1,5")
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="another parameter of the runs")
    ap.add_argument("--nemesis", default="", help="comma-separated nemeses (default none)")
    ap.add_argument("--jobs", type=A.integer(1, MAX_JOBS), default=1, help=f"parallel workers (1 to {MAX_JOBS})")
    ap.add_argument("--out", type=A.Check(_out_folder), default="results/email-capacity",
                    help="folder for runs/, runs.csv and capacity.png (made if needed)")
    ap.add_argument("--from-csv", type=A.text_file, default=None, help="redraw from an earlier runs.csv")
    a = ap.parse(argv)
    if isinstance(a, int):  # a bad argument (its one line printed, before anything is written), or --help
        return a
    # everything checked before the folder is made: a refused input leaves nothing behind
    try:
        if a.from_csv:
            rows = read_rows(a.from_csv)
        else:
            from simulator import build_config, get_scenario, parse_seeds

            seeds = parse_seeds(a.seeds)
            sets = A.sets(a.set, {"workers": "workers are swept by --workers"})
            if len(a.workers) * len(seeds) > A.MAX_RUNS:
                raise UsageError(f"bad value {a.seeds!r} for --seeds: {len(a.workers) * len(seeds):,} runs with "
                                 f"{len(a.workers)} worker counts; expected at most {A.MAX_RUNS:,} runs in all")
            configs = []
            for w in a.workers:
                for i, seed in enumerate(seeds):
                    opts = {"nemesis": a.nemesis} if a.nemesis else {}
                    cfg = build_config(get_scenario("email"), seed=seed, options=opts, sets={**sets, "workers": str(w)})
                    if i == 0:
                        A.check_config(cfg)
                    configs.append((cfg, {"workers": str(w)}))
    except UsageError as exc:
        ap.fail(str(exc))
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    if not a.from_csv:
        from simulator import run_sweep, write_csv

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
