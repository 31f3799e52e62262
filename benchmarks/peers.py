"""dsim against Ciw on Ciw's own ground: an M/M/10 queue, customers served per CPU second.

Both simulate the same queue: Poisson arrivals at 9/s, exponential service of mean 1 s, 10
servers, 20,000 simulated seconds (about 180,000 customers). Ciw (``pip install -e '.[bench]'``)
runs it with ``simulate_until_max_time``; dsim runs the whole command a user would type::

    dsim run queue --rate 9 --set servers=10 --set service_ms=1000 --latency 0 \\
        --time-limit 20000 --no-plots --seed N --out TMP

(simulation, checkers, metrics, history and manifest written; no plots). Each side runs in its
own fresh process. dsim's CPU is counted in-process from after the imports (the CLI, the run
pipeline, numpy and the scenarios are imported first, then ``dsim run`` is called through its
click entry point; the forked checker's CPU is included), so interpreter start-up is left out of
both sides. Ciw's CPU is counted from after ``import ciw`` to the mean sojourn time computed.

Each side's mean sojourn time (over its runs) must be within 3% of Erlang C's (1.6687 s), or the
comparison is void:
the script says so and exits 1. The history-writing rate (lines of history.jsonl per CPU second
of writing) is measured in the same dsim run.

    python benchmarks/peers.py                      # three runs each, seeds 1 to 3
    python benchmarks/peers.py --repeat 5 --json    # medians of 5 adjacent pairs
    python benchmarks/peers.py --time-limit 200     # a quick look

The last line with ``--json``: ``{"ciw_customers_per_cpu_s", "dsim_customers_per_cpu_s",
"ratio", "ratio_min", "ratio_max", "ciw_mean_sojourn_s", "dsim_mean_sojourn_s", "erlang_c_s",
"history_lines_per_s", "time_limit_s", "repeat", "valid_comparison"}``. Rates are medians; the
ratio is the median of the ratios of adjacent pairs (which side runs first alternates), because
this machine's speed drifts from minute to minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATE = 9.0
MIN_S, MAX_TIME_S = 10.0, 1e9  # below 10 s a side may serve no customer (no rate to compare); dsim's most
MAX_REPEAT = 100
SERVERS = 10
SERVICE_S = 1.0
TOLERANCE = 0.03


def _cpu() -> float:
    """User and system CPU of this process and its waited-for children (the forked checker)."""
    t = os.times()
    return t[0] + t[1] + t[2] + t[3]


# os.times counts in clock ticks (10 ms here): a tiny run can read 0 CPU s, and a rate per 0 s is no
# figure, so a reading is never less than one tick.
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def child_ciw(time_limit_s: float, seed: int) -> dict:
    import ciw

    t0 = _cpu()
    net = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(rate=RATE)],
                             service_distributions=[ciw.dists.Exponential(rate=1 / SERVICE_S)],
                             number_of_servers=[SERVERS])
    ciw.seed(seed)
    q = ciw.Simulation(net)
    q.simulate_until_max_time(time_limit_s)
    recs = q.get_all_records()
    mean = statistics.fmean(r.exit_date - r.arrival_date for r in recs) if recs else float("nan")
    cpu = _cpu() - t0
    return {"customers": len(recs), "cpu_s": max(cpu, TICK_S), "mean_sojourn_s": mean}


def child_dsim(time_limit_s: float, seed: int) -> dict:
    import simulator.cli as cli
    import simulator.pipeline.results as results
    import simulator.pipeline.runner  # noqa: F401 - imported before timing, as start-up
    from simulator.pipeline import scenario as registry

    registry.names()  # loads the shipped designs
    writing = {"lines": 0, "cpu_s": 0.0}
    write_lines = results.write_lines

    def timed_write_lines(path, rows):
        t = time.process_time()
        write_lines(path, rows)
        if Path(path).name == "history.jsonl":
            writing["cpu_s"] += time.process_time() - t
            writing["lines"] += len(rows)

    results.write_lines = timed_write_lines
    with tempfile.TemporaryDirectory(prefix="dsim-peers-") as tmp:
        out = Path(tmp) / "run"
        argv = ["run", "queue", "--rate", str(RATE), "--set", f"servers={SERVERS}",
                "--set", f"service_ms={SERVICE_S * 1000:g}", "--latency", "0", "--time-limit", f"{time_limit_s:g}",
                "--no-plots", "--seed", str(seed), "--out", str(out)]
        t0 = _cpu()
        try:
            cli.main(argv)
        except SystemExit as e:  # dsim run exits with the verdict's status: a short run may be invalid or unknown
            if e.code not in (0, None, 1, 3) or not (out / "metrics.json").is_file():  # its "valid" says which
                raise
        cpu = _cpu() - t0
        metrics = json.loads((out / "metrics.json").read_text())
    return {"customers": metrics["ops"]["ok"], "cpu_s": max(cpu, TICK_S), "mean_sojourn_s": metrics["latency_ms"]["mean"] / 1000,
            "valid": metrics["valid"], "history_lines": writing["lines"],
            "history_lines_per_s": writing["lines"] / writing["cpu_s"] if writing["cpu_s"] else None}


def run_side(side: str, time_limit_s: float, seed: int) -> dict:
    """One measurement of ``side`` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, __file__, "--child", side, "--time-limit", repr(time_limit_s),
                           "--seed", str(seed)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} side failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    # imported here: the Ciw side's process imports no more of dsim than it did
    from simulator import scriptargs as A
    from simulator.engine.rng import MAX_SEED

    ap = A.Parser(prog=Path(__file__).name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=A.number(MIN_S, MAX_TIME_S), default=20_000.0, metavar="S",
                    help=f"simulated seconds of arrivals, {MIN_S:g} to {MAX_TIME_S:,.0f} (default 20000)")
    ap.add_argument("--seed", type=A.seed, default=1, help="seed of the first pair (pair k uses seed + k)")
    ap.add_argument("--repeat", type=A.integer(1, MAX_REPEAT), default=3, metavar="N",
                    help=f"adjacent pairs to run, 1 to {MAX_REPEAT} (default 3); rates are medians, sojourn times means")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--child", choices=("ciw", "dsim"), help=argparse.SUPPRESS)
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed), or --help
        return args
    if args.child:
        out = (child_ciw if args.child == "ciw" else child_dsim)(args.time_limit, args.seed)
        print(json.dumps(out))
        return 0
    if args.seed + args.repeat - 1 > MAX_SEED:
        ap.fail(f"bad value {args.seed} for --seed with --repeat {args.repeat}: expected seed + repeat - 1 "
                f"at most {MAX_SEED} (pair k uses seed + k)")
    try:
        import ciw  # noqa: F401
    except ImportError:
        print("Ciw is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from simulator import erlang_c

    expected = erlang_c(SERVERS, RATE, 1 / SERVICE_S).response_s
    ciw_runs, dsim_runs, ratios = [], [], []
    for k in range(args.repeat):
        sides = ("ciw", "dsim") if k % 2 == 0 else ("dsim", "ciw")
        got = {side: run_side(side, args.time_limit, args.seed + k) for side in sides}
        ciw_runs.append(got["ciw"])
        dsim_runs.append(got["dsim"])
        c, d = (got[s]["customers"] / got[s]["cpu_s"] for s in ("ciw", "dsim"))
        ratios.append(d / c)
        print(f"pair {k + 1}: Ciw {c:,.0f}, dsim {d:,.0f} customers per CPU s (ratio {d / c:.3f}); mean sojourn "
              f"Ciw {got['ciw']['mean_sojourn_s']:.4f} s, dsim {got['dsim']['mean_sojourn_s']:.4f} s", flush=True)

    ciw_rate = statistics.median(r["customers"] / r["cpu_s"] for r in ciw_runs)
    dsim_rate = statistics.median(r["customers"] / r["cpu_s"] for r in dsim_runs)
    lines_rates = [r["history_lines_per_s"] for r in dsim_runs if r["history_lines_per_s"]]
    # One 20,000 s run at 90% load has a standard error of a percent or two in its mean sojourn, so
    # each side's mean over all its runs is held to the 3%, not every run's.
    pooled = {side: statistics.fmean(r["mean_sojourn_s"] for r in runs) for side, runs in (("ciw", ciw_runs),
                                                                                          ("dsim", dsim_runs))}
    valid = all(abs(m - expected) <= TOLERANCE * expected for m in pooled.values())
    ciw_mean, dsim_mean = pooled["ciw"], pooled["dsim"]
    out = {"time_limit_s": args.time_limit, "repeat": args.repeat,
           "ciw_customers_per_cpu_s": round(ciw_rate), "dsim_customers_per_cpu_s": round(dsim_rate),
           "ratio": round(statistics.median(ratios), 3), "ratio_min": round(min(ratios), 3),
           "ratio_max": round(max(ratios), 3), "erlang_c_s": round(expected, 4),
           "ciw_mean_sojourn_s": round(ciw_mean, 4), "dsim_mean_sojourn_s": round(dsim_mean, 4),
           "ciw_customers": ciw_runs[0]["customers"], "dsim_customers": dsim_runs[0]["customers"],
           "history_lines_per_s": round(statistics.median(lines_rates)) if lines_rates else None,
           "valid_comparison": valid}
    print(f"M/M/{SERVERS}, lambda {RATE:g}/s, mu {1 / SERVICE_S:g}/s, {args.time_limit:,.0f} simulated s, "
          f"{args.repeat} pair(s) (CPU time, start-up excluded)")
    print(f"  Ciw : {ciw_rate:10,.0f} customers per CPU s, mean sojourn {ciw_mean:.4f} s")
    print(f"  dsim: {dsim_rate:10,.0f} customers per CPU s, mean sojourn {dsim_mean:.4f} s")
    print(f"  ratio dsim/Ciw: {out['ratio']:.3f} (median of pairs; {out['ratio_min']:.3f} to {out['ratio_max']:.3f})")
    print(f"  Erlang C: {expected:.4f} s; history.jsonl written at {out['history_lines_per_s'] or 0:,} lines per CPU s")
    if not valid:
        print(f"VOID: a mean sojourn time is more than {TOLERANCE:.0%} from Erlang C's {expected:.4f} s, so the two "
              "did not simulate the same queue", flush=True)
    if args.json:
        print(json.dumps(out))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
