"""The Raft paper's Figure 16: time to elect a new leader after the leader crashes, per range of
randomized election timeouts, as cumulative distributions.

    python scenarios/raft/figure16.py --trials 1000 --jobs 2          # run the sweep, then draw
    python scenarios/raft/figure16.py --trials 1000 --cluster local:2 # the same on a Dask LocalCluster
    python scenarios/raft/figure16.py --runs results/figure16/sweep/runs.csv   # only draw

The sweep is one ``dsim sweep`` over ``scenarios/raft/figure16.toml`` (one trial per seed; the
file describes the set-up) with the election timeout ranges as the grid. Each trial's
``election_ms`` (crash until the new leader's first heartbeat has reached every other survivor) is
read back from ``runs.csv``. The top panel varies the randomness above a 150 ms minimum, the bottom
panel scales the range, as in the paper. ``figure16.csv`` gets, for each range, the trials, the
median, mean, 99th percentile and maximum election time in ms, and how many trials elected no
leader before the run ended (those count as slower than every measured one).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = ["150-150", "150-151", "150-155", "150-175", "150-200", "150-300"]
BOTTOM = ["12-24", "25-50", "50-100", "100-200", "150-300"]
RANGES = TOP + [r for r in BOTTOM if r not in TOP]


def run_sweep(trials: int, jobs: int, out: Path, cluster: str | None = None) -> Path:
    cmd = [sys.executable, "-c", "from simulator.cli import main; main()", "sweep", "raft", "--config", str(HERE / "figure16.toml"),
           "--seeds", f"1-{trials}", *(["--cluster", cluster] if cluster else ["--jobs", str(jobs)]), "--out", str(out),
           "--grid", "election_timeout_range=" + ",".join(RANGES)]
    print("dsim " + " ".join(cmd[3:]), flush=True)
    # exit status 1 is expected: with 150-150 ms some trials elect nobody before the run ends, and
    # the liveness check says so; those trials count as slower than every measured one
    done = subprocess.run(cmd, cwd=HERE.parent.parent)
    if done.returncode not in (0, 1) or not (out / "runs.csv").exists():
        raise SystemExit(f"the sweep failed (exit status {done.returncode})")
    return out / "runs.csv"


def read_runs(path: Path) -> dict[str, list[float]]:
    """Range -> election times in ms (inf for a trial that elected nobody in time)."""
    out: dict[str, list[float]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            raw = row.get("election_ms", "")
            value = float(raw) if raw not in ("", "None", None) else math.inf
            out.setdefault(row["election_timeout_range"], []).append(value)
    return out


def quantile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1), linear between order statistics; inf if it falls among the censored."""
    n = len(sorted_values)
    pos = q * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = sorted_values[lo], sorted_values[hi]
    if math.isinf(a) or math.isinf(b):
        return math.inf
    return a + (b - a) * (pos - lo)


def summarise(times: dict[str, list[float]]) -> list[dict]:
    rows = []
    for rng in RANGES:
        values = sorted(times.get(rng, []))
        if not values:
            continue
        finite = [v for v in values if math.isfinite(v)]
        rows.append({"election_timeout_ms": rng, "trials": len(values),
                     "median_ms": round(quantile(values, 0.5), 3),
                     "mean_ms": round(sum(finite) / len(finite), 3) if len(finite) == len(values) else math.inf,
                     "p99_ms": round(quantile(values, 0.99), 3),
                     "max_ms": round(values[-1], 3), "no_leader": len(values) - len(finite)})
    return rows


def draw(times: dict[str, list[float]], path: Path) -> None:
    from simulator import plots

    plots.cdf_panels(path, "Raft leader election after a leader crash (Figure 16 of the Raft paper)", [
        {"title": title, "xlabel": "time without leader (ms)",
         "series": {f"{rng} ms": times.get(rng, []) for rng in group}}
        for group, title in ((TOP, "more randomness above a 150 ms minimum"), (BOTTOM, "scaled election timeouts"))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000, help="trials (seeds) per election timeout range")
    ap.add_argument("--jobs", type=int, default=1, help="parallel sweep workers")
    ap.add_argument("--cluster", help="run the sweep on Dask instead: local:N or tcp://HOST:PORT (pip install -e '.[cluster]')")
    ap.add_argument("--out", default="results/figure16", help="folder for the sweep, the figure and the CSV")
    ap.add_argument("--runs", help="an existing runs.csv: skip the sweep, only draw")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs) if args.runs else run_sweep(args.trials, args.jobs, out / "sweep", args.cluster)
    times = read_runs(runs)
    rows = summarise(times)
    with open(out / "figure16.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    draw(times, out / "figure16.png")
    for r in rows:
        print(f"{r['election_timeout_ms']:>8} ms: n={r['trials']:<5} median {r['median_ms']:>9} mean {r['mean_ms']:>9} "
              f"p99 {r['p99_ms']:>9} max {r['max_ms']:>9}  no leader {r['no_leader']}")
    print(f"wrote {out / 'figure16.png'} and {out / 'figure16.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
