"""What figure16.py and availsim.py share: run a ``dsim sweep`` of one-trial runs, read each trial's
``election_ms`` back from ``runs.csv``, summarise a set of trials, print a summary line and write CSVs.

Both scripts run as ``python scenarios/raft/NAME.py`` and are imported as ``scenarios.raft.NAME`` (by
the tests), so they import this module either way (see their imports).
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CENSOR_MS = 10_000.0  # a trial with no leader this long after the crash counts as slower than every measured one


def sweep(args: list[str], out: Path) -> Path:
    """Run ``dsim sweep raft ARGS --out OUT`` from the repository root; return ``OUT/runs.csv``.

    Exit status 1 is expected: a trial that elects nobody before its run ends fails the liveness
    check, and it counts as censored rather than as an error."""
    cmd = [sys.executable, "-c", "from simulator.cli import main; main()", "sweep", "raft", *args, "--out", str(out)]
    print("dsim " + " ".join(cmd[3:]), flush=True)
    done = subprocess.run(cmd, cwd=HERE.parent.parent, check=False)
    if done.returncode not in (0, 1) or not (out / "runs.csv").exists():
        print(f"the sweep failed (exit status {done.returncode})", file=sys.stderr)
        raise SystemExit(2 if done.returncode == 2 else 3)  # bad input stays bad input
    return out / "runs.csv"


def merge_runs(parts: list[Path], path: Path) -> Path:
    """Concatenate several sweeps' ``runs.csv`` into ``path`` (columns: the union, in first-seen order)."""
    rows, fields = [], []
    for part in parts:
        with open(part) as fh:
            reader = csv.DictReader(fh)
            fields += [f for f in reader.fieldnames or [] if f not in fields]
            rows += list(reader)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def read_runs(path: Path, censor_ms: float = CENSOR_MS) -> dict[str, list[float]]:
    """Election timeout range -> election times in ms (inf for a trial without a leader within
    ``censor_ms`` of the crash, or whose leader came only after the run's final heal)."""
    out: dict[str, list[float]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            raw = row.get("election_ms", "")
            value = float(raw) if raw not in ("", "None", None) else math.inf
            if value > censor_ms:
                value = math.inf
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


def summarise(values: list[float], digits: int = 3) -> dict:
    """Trials, median, mean, 99th and 99.9th percentiles, maximum (ms) and trials without a leader.
    The mean is inf when any trial is censored (its true value is unknown)."""
    values = sorted(values)
    finite = [v for v in values if math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite and len(finite) == len(values) else math.inf
    row = {"trials": len(values), "median_ms": round(quantile(values, 0.5), digits),
           "mean_ms": round(mean, digits) if math.isfinite(mean) else math.inf,
           "p99_ms": round(quantile(values, 0.99), digits), "p999_ms": round(quantile(values, 0.999), digits),
           "max_ms": round(values[-1], digits)}
    row["no_leader"] = len(values) - len(finite)
    return row


def line(label: str, row: dict) -> str:
    """One printed line per set of trials, the same for every script."""
    return (f"{label:>10}: n={row['trials']:<5} median {row['median_ms']:>9} mean {row['mean_ms']:>9} "
            f"p99 {row['p99_ms']:>9} p99.9 {row['p999_ms']:>9} max {row['max_ms']:>9}  no leader {row['no_leader']}")


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
