"""The Raft paper's Figure 16: time to elect a new leader after the leader crashes, per range of
randomized election timeouts, as cumulative distributions, against the paper's published figures.

    python scenarios/raft/figure16.py --trials 1000 --jobs 2          # run the sweep, then draw
    python scenarios/raft/figure16.py --trials 100 --jobs 2 --out /tmp/f16   # a quicker look
    python scenarios/raft/figure16.py --trials 1000 --cluster local:2 # the same on a Dask LocalCluster
    python scenarios/raft/figure16.py --runs results/figure16/sweep/runs.csv   # only draw
    python scenarios/raft/figure16.py --trials 200 --jobs 2 --set vote_request_delay_ms=1 --out /tmp/whatif

The sweep is ``dsim sweep`` over ``scenarios/raft/figure16.toml`` (one trial per seed; the file
describes the set-up) with the election timeout ranges as the grid, in two parts: 150-150 and
150-151 run the file's 11 s, the other ranges stop 4 s after the crash (see ``run_sweep``). Each trial's
``election_ms`` (crash until the new leader's first heartbeat has reached every other survivor) is
read back from ``runs.csv``. The top panel varies the randomness above a 150 ms minimum, the bottom
panel scales the range, as in the paper. ``figure16.csv`` gets, for each range, the trials, the
median, mean, 99th percentile and maximum election time in ms, and how many trials elected no
leader before the run ended (those count as slower than every measured one).
``figure16-vs-paper.csv`` gets each figure the paper states in its text (§9.3), the paper's value,
ours and ours / paper; the figure draws those statements as open markers over the curves.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from . import trials as trials_
except ImportError:  # run as a script: python scenarios/raft/figure16.py
    sys.path.insert(0, str(HERE))
    import trials as trials_
TOP = ["150-150", "150-151", "150-155", "150-175", "150-200", "150-300"]
BOTTOM = ["12-24", "25-50", "50-100", "100-200", "150-300"]
RANGES = TOP + [r for r in BOTTOM if r not in TOP]
SLOW = ["150-150", "150-151"]  # split votes may last until the run ends
FAST_LIMIT_S = 5.0  # the other ranges' runs: the crash is at 1 s; 4 s after it is far beyond their longest trials
MAX_TRIALS = 10_000  # per range: 9 ranges in one sweep stay within dsim sweep's 100,000 runs
CENSOR_MS = trials_.CENSOR_MS  # the paper: "longer than 10 seconds" without randomness; runs end 10 s after the crash

# What the paper says in its text (Ongaro and Ousterhout 2014, §9.3; thesis §9.4): range, what, value (ms),
# how ours is compared, and where the figure marks it (y in cumulative percent).
PAPER = [
    {"range": "150-150", "statement": "median", "paper_ms": CENSOR_MS, "relation": "above",
     "text": "leader election consistently took longer than 10 seconds", "y": 50.0, "marker": ">"},
    {"range": "150-155", "statement": "median", "paper_ms": 287.0, "relation": "about",
     "text": "median downtime of 287 ms", "y": 50.0, "marker": "D"},
    {"range": "150-200", "statement": "max", "paper_ms": 513.0, "relation": "about",
     "text": "worst-case completion time (over 1000 trials) was 513 ms", "y": 100.0, "marker": "s"},
    {"range": "12-24", "statement": "mean", "paper_ms": 35.0, "relation": "about",
     "text": "35 ms on average to elect a leader", "y": 50.0, "marker": "o"},
    {"range": "12-24", "statement": "max", "paper_ms": 152.0, "relation": "about",
     "text": "the longest trial took 152 ms", "y": 100.0, "marker": "^"},
]


def run_sweep(trials: int, jobs: int, out: Path, cluster: str | None = None, sets: list[str] = ()) -> Path:
    """Two sweeps into ``out``: the ranges whose split votes can last the whole 10 s after the crash
    (``SLOW``) run for the experiment file's 11 s; the others elect within a second, so their runs
    stop 4 s after the crash instead of simulating ten more seconds of heartbeats (a trial still
    without a leader then counts as censored, like a 150-150 one). Returns ``out/runs.csv``, both
    sweeps' rows."""
    parts = []
    for name, ranges, extra in (("slow", SLOW, []),
                                ("fast", [r for r in RANGES if r not in SLOW], ["--time-limit", f"{FAST_LIMIT_S:g}"])):
        parts.append(trials_.sweep(
            ["--config", str(HERE / "figure16.toml"), "--seeds", f"1-{trials}",
             *(["--cluster", cluster] if cluster else ["--jobs", str(jobs)]),
             *[a for kv in sets for a in ("--set", kv)],
             "--grid", "election_timeout_range=" + ",".join(ranges), *extra], out / name))
    return trials_.merge_runs(parts, out / "runs.csv")


def read_runs(path: Path) -> dict[str, list[float]]:
    """Range -> election times in ms (inf for a trial that elected nobody within 10 s of the crash)."""
    return trials_.read_runs(path, CENSOR_MS)


def summarise(times: dict[str, list[float]]) -> list[dict]:
    """One row per range that has trials, in the figure's order."""
    return [{"election_timeout_ms": rng, **trials_.summarise(times[rng])} for rng in RANGES if times.get(rng)]


def versus_paper(rows: list[dict]) -> list[dict]:
    """One row per statement of the paper: its value, ours, ours / paper (a censored value is
    written as ">10000": no leader yet when the run ended)."""
    by_range = {r["election_timeout_ms"]: r for r in rows}
    out = []
    for st in PAPER:
        r = by_range.get(st["range"])
        if r is None:
            continue
        ours = r[f"{st['statement']}_ms"]
        censored_share = r["no_leader"] / r["trials"]
        if math.isinf(ours):
            shown, ratio = f">{CENSOR_MS:g}", ""
        else:
            shown, ratio = ours, round(ours / st["paper_ms"], 3)
        out.append({"range_ms": st["range"], "statement": st["statement"],
                    "paper_ms": (">" if st["relation"] == "above" else "") + f"{st['paper_ms']:g}",
                    "ours_ms": shown, "ratio": ratio, "trials": r["trials"],
                    "no_leader_share": round(censored_share, 4), "paper_says": st["text"]})
    return out


def draw(times: dict[str, list[float]], path: Path) -> None:
    from simulator import plots

    def markers(group):
        return [{"x": st["paper_ms"], "y": st["y"], "marker": st["marker"], "color": f"C{group.index(st['range'])}",
                 "label": f"paper {st['range']}: {st['statement']} {'> ' if st['relation'] == 'above' else ''}"
                          f"{st['paper_ms']:g} ms"}
                for st in PAPER if st["range"] in group and st["range"] in times]

    def label(rng, values):
        censored = sum(1 for v in values if math.isinf(v))
        return f"{rng} ms" + (f" ({censored} of {len(values)}: no leader by 10 s)" if censored else "")

    plots.cdf_panels(path, "Raft leader election after a leader crash (Figure 16 of the Raft paper)", [
        {"title": title, "xlabel": "time without leader (ms); open markers: the paper's published figures",
         "series": {label(rng, times.get(rng, [])): times.get(rng, []) for rng in group}, "markers": markers(group)}
        for group, title in ((TOP, "more randomness above a 150 ms minimum"), (BOTTOM, "scaled election timeouts"))])


def check_sweep(sets: list[str]) -> str | None:
    """Every run's config of the two sweeps, built and checked as ``dsim sweep`` would before its first
    run (so a bad ``--set`` is one line before anything is written); the message if one is refused."""
    from simulator import UsageError, build_config, get_scenario
    from simulator import scriptargs as A

    scen = get_scenario("raft")
    with open(HERE / "figure16.toml", "rb") as fh:
        file = tomllib.load(fh)
    pairs = []
    for kv in sets:
        key, _, value = kv.partition("=")
        pairs.append((key.strip(), value.strip()))
    try:
        for rng in RANGES:
            options = {} if rng in SLOW else {"time_limit_s": FAST_LIMIT_S}
            cfg = build_config(scen, seed=1, file=dict(file), options=options,
                               sets={**dict(pairs), "election_timeout_range": rng})
            A.check_config(cfg)
    except UsageError as exc:
        return str(exc)
    return None


def check_out(raw: str, sweep: bool) -> str | None:
    """``--out``: a folder that can be made (or is), and, for a sweep, without one of its sweeps already."""
    from simulator import UsageError
    from simulator import scriptargs as A

    try:
        out = A.folder_path(raw, "--out")
    except UsageError as exc:
        return str(exc)
    for done in (out / "sweep", out / "sweep" / "slow", out / "sweep" / "fast"):
        if sweep and done.exists() and (not done.is_dir() or done.name != "sweep" and any(done.iterdir())):
            return (f"bad value {raw!r} for --out: it holds {done} already; expected a new folder "
                    "(or --runs to draw a sweep again)")
    return None


def read_given_runs(path: Path) -> tuple[dict[str, list[float]] | None, str | None]:
    """``--runs``: the trials of a figure16 sweep's runs.csv, or the message saying why not."""
    try:
        times = read_runs(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else getattr(exc, "strerror", None) or exc
        return None, f"bad value {str(path)!r} for --runs: cannot read it as CSV ({why}); expected a runs.csv of a sweep"
    except (KeyError, ValueError, TypeError, AttributeError):
        return None, (f"bad value {str(path)!r} for --runs: no election_timeout_range and election_ms columns of "
                      "numbers; expected a runs.csv of a figure16 sweep")
    if not any(times.get(rng) for rng in RANGES):
        return None, (f"bad value {str(path)!r} for --runs: no trials of the ranges {', '.join(RANGES)}; "
                      "expected a runs.csv of a figure16 sweep")
    return times, None


def main(argv=None) -> int:
    from simulator import scriptargs as A

    ap = A.Parser(prog="figure16", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=A.integer(1, MAX_TRIALS), default=1000,
                    help=f"trials (seeds) per election timeout range (1 to {MAX_TRIALS:,})")
    max_jobs = max(8, 4 * (os.cpu_count() or 1))  # as dsim sweep --jobs
    ap.add_argument("--jobs", type=A.integer(1, max_jobs), default=1, help=f"parallel sweep workers (1 to {max_jobs})")
    ap.add_argument("--cluster", type=A.cluster,
                    help="run the sweep on Dask instead: local:N or tcp://HOST:PORT (pip install -e '.[cluster]')")
    ap.add_argument("--out", default="results/figure16", help="folder for the sweep, the figure and the CSV")
    ap.add_argument("--runs", type=A.text_file, help="an existing runs.csv: skip the sweep, only draw")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a raft parameter over the experiment file's, for a what-if (repeatable), "
                         "e.g. --set vote_request_delay_ms=1")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed), or --help
        return args
    for kv in args.set:
        if "=" not in kv or not kv.partition("=")[0].strip():
            print(f"figure16: error: bad value {kv!r} for --set: expected KEY=VALUE", file=sys.stderr)
            return 2
    # everything checked before anything is written: a refused input leaves no folder behind
    out = Path(args.out)
    times = None
    if args.runs:
        times, problem = read_given_runs(args.runs)
    else:
        problem = check_sweep(args.set)
    problem = problem or check_out(args.out, sweep=not args.runs)
    if problem:
        print(f"figure16: error: {problem}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    # absolute: the sweep runs from the repository root, wherever this was started
    runs = args.runs or run_sweep(args.trials, args.jobs, out.absolute() / "sweep", args.cluster, args.set)
    if times is None:
        times = read_runs(runs)
    rows = summarise(times)
    if not rows:
        raise SystemExit(f"no trials in {runs}")
    trials_.write_csv(out / "figure16.csv", rows)
    vs = versus_paper(rows)
    if vs:
        trials_.write_csv(out / "figure16-vs-paper.csv", vs)
    draw(times, out / "figure16.png")
    for r in rows:
        print(trials_.line(f"{r['election_timeout_ms']} ms", r))
    for v in vs:
        print(f"{v['range_ms']:>8} ms {v['statement']:>6}: paper {v['paper_ms']:>7} ours {v['ours_ms']:>9} "
              f"ratio {v['ratio'] or '-':>6}  (no leader by 10 s: {v['no_leader_share']:.1%})")
    print(f"wrote {out / 'figure16.png'}, {out / 'figure16.csv'} and {out / 'figure16-vs-paper.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
