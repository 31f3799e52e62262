"""The thesis's WAN election experiment (Ongaro 2014, §9.4, run there with AvailSim): five servers,
one-way latency uniform in 30-40 ms, election timeouts 300-600 ms, with one and then two servers
down; the distribution of election times (mean, 99th and 99.9th percentiles) beside the thesis's.

    python scenarios/raft/availsim.py --trials 10000 --jobs 2     # the thesis's 10,000 elections a curve
    python scenarios/raft/availsim.py --trials 500 --out /tmp/avail   # a quicker look

Each curve is one ``dsim sweep raft`` over ``scenarios/raft/availsim.toml`` (one trial per seed);
"two servers down" is the same file with one more server crashed at the start (written to the
output folder as ``availsim-2down.toml``). ``availsim.csv`` gets one row per curve; ``availsim.png``
draws the CDFs with the thesis's means as markers.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from . import trials as trials_
except ImportError:  # run as a script: python scenarios/raft/availsim.py
    sys.path.insert(0, str(HERE))
    import trials as trials_

# The thesis, §9.4: "When only one of the five servers has failed, the average election completes
# within about 475 ms, and 99.9% of elections complete within 1.5 s. Even when two of the five
# servers have failed, the average election takes about 650 ms ..., and 99.9% of elections
# complete in 3 s."
THESIS = {1: {"mean_ms": 475.0, "p999_ms": 1500.0}, 2: {"mean_ms": 650.0, "p999_ms": 3000.0}}
RANGE = "300-600"
MAX_TRIALS = 100_000  # per curve: one dsim sweep each, and dsim sweep runs at most 100,000
MAX_JOBS = max(8, 4 * (os.cpu_count() or 1))  # as dsim sweep --jobs
OUTPUTS = ("availsim-2down.toml", "availsim.csv", "availsim.png")


def configs(out: Path) -> dict[int, Path]:
    """Servers down -> the TOML file of that curve."""
    base = HERE / "availsim.toml"
    two = out / "availsim-2down.toml"
    # n5, or whichever server leads once n5 is gone, is down before the measured crash; if n5 led
    # at 0.05 s the crash_leader at 2 s still finds four servers up and crashes their leader
    two.write_text(base.read_text() + '\n[[faults]]\nat_s = 0.05\naction = "crash"\nnode = "n5"\n')
    return {1: base, 2: two}


def run_sweep(config: Path, trials: int, jobs: int, out: Path) -> Path:
    return trials_.sweep(["--config", str(config), "--seeds", f"1-{trials}", "--jobs", str(jobs),
                          "--grid", f"election_timeout_range={RANGE}"], out)


def summary(down: int, values: list[float]) -> dict:
    """The shared summary of one curve (``trials.summarise``, to 0.1 ms) beside the thesis's figures."""
    row = {"servers_down": down, **trials_.summarise(values, digits=1)}
    mean, p999 = row["mean_ms"], row["p999_ms"]
    row.update({"thesis_mean_ms": THESIS[down]["mean_ms"], "thesis_p999_ms": THESIS[down]["p999_ms"],
                "mean_ratio": round(mean / THESIS[down]["mean_ms"], 3) if math.isfinite(mean) else "",
                "p999_ratio": round(p999 / THESIS[down]["p999_ms"], 3) if math.isfinite(p999) else ""})
    return row


def check_out(raw: str) -> str | None:
    """``--out``: a folder that can be made (or is), without a sweep of this script already."""
    from simulator import UsageError
    from simulator import scriptargs as A

    try:
        out = A.folder_path(raw, "--out")
    except UsageError as exc:
        return str(exc)
    for name in ("sweep-1down", "sweep-2down"):
        done = out / name
        if done.exists() and (not done.is_dir() or any(done.iterdir())):
            return f"bad value {raw!r} for --out: it holds {done} already; expected a new folder"
    for name in OUTPUTS:
        if (out / name).exists() and not (out / name).is_file():
            return f"bad value {raw!r} for --out: {out / name} is not a file; expected a folder where {name} can be written"
    return None


def main(argv=None) -> int:
    from simulator import scriptargs as A

    ap = A.Parser(prog="availsim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=A.integer(1, MAX_TRIALS), default=10000,
                    help=f"elections per curve (the thesis: 10,000; 1 to {MAX_TRIALS:,})")
    ap.add_argument("--jobs", type=A.integer(1, MAX_JOBS), default=1, help=f"parallel sweep workers (1 to {MAX_JOBS})")
    ap.add_argument("--out", default="results/availsim", help="folder for the sweeps, the figure and the CSV")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed, before anything is written), or --help
        return args
    problem = check_out(args.out)
    if problem:
        ap.fail(problem)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {}
    for down, config in configs(out).items():
        runs = run_sweep(config, args.trials, args.jobs, out / f"sweep-{down}down")
        curves[down] = trials_.read_runs(runs).get(RANGE, [])
    rows = [summary(down, values) for down, values in curves.items() if values]
    trials_.write_csv(out / "availsim.csv", rows)
    from simulator import plots

    plots.cdf_panels(out / "availsim.png", "Raft elections on a simulated WAN (thesis §9.4, AvailSim's set-up)", [
        {"title": "five servers, one-way latency 30-40 ms, election timeouts 300-600 ms",
         "xlabel": "election time (ms); open markers: the thesis's means and 99.9th percentiles",
         "series": {f"{d} server{'s' if d > 1 else ''} down": v for d, v in curves.items()},
         "markers": [m for i, d in enumerate(curves) for m in (  # coloured as the curve they belong to
             {"x": THESIS[d]["mean_ms"], "y": 50.0, "marker": "o", "color": f"C{i}",
              "label": f"thesis, {d} down: mean {THESIS[d]['mean_ms']:g} ms"},
             {"x": THESIS[d]["p999_ms"], "y": 99.9, "marker": "s", "color": f"C{i}",
              "label": f"thesis, {d} down: 99.9% within {THESIS[d]['p999_ms']:g} ms"})]}])
    for r in rows:
        print(trials_.line(f"{r['servers_down']} down", r)
              + f"  (thesis: mean {r['thesis_mean_ms']:g}, p99.9 {r['thesis_p999_ms']:g})")
    print(f"wrote {out / 'availsim.png'} and {out / 'availsim.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
