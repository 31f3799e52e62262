"""Planted bugs as the benchmark of `dsim hunt` and `dsim shrink`.

For every planted bug of the chosen designs (default: queue, raft, twopc, email), hunt with no
nemesis named and one common budget, then shrink the failure found. Prints one row per bug and,
with --json, a JSON line last: bug, found, runs and CPU seconds to find, and the shrunk
reproducer's fault count and time limit against the originals.

Targets (issue 14): every bug found within 300 runs; each shrunk to at most 3 fault actions and at
most a quarter of the original time limit, in at most 150 runs.

    python benchmarks/hunt.py                                  # every bug, budget 300, --jobs 2
    python benchmarks/hunt.py --bugs raft:no-persist-vote,twopc:decide-before-log --json
    python benchmarks/hunt.py --designs queue --budget 50 --repeat 3

--speedup instead times one hunt with no bug (raft, hunt seed 1, --budget runs) with --jobs 1 and
--jobs 2 (or --cluster local:2 with --cluster), checks that both wrote the same rows, and prints
the wall times and their ratio (target: at least 1.8 on 2 cores):

    python benchmarks/hunt.py --speedup --budget 200 --json
    python benchmarks/hunt.py --speedup --design queue --budget 100 --cluster local:2
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
from dataclasses import replace
from pathlib import Path

# The repository first: this folder's scenarios.py must not shadow the designs' package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if sys.path[1:2] == [str(Path(__file__).resolve().parent)]:
    sys.path.pop(1)

from simulator import scriptargs as A  # noqa: E402
from simulator.engine.errors import UsageError  # noqa: E402
from simulator.engine.rng import MAX_SEED  # noqa: E402
from simulator.pipeline import hunt as H  # noqa: E402
from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline import shrink as S  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402
from simulator.pipeline.runner import run_to_folder  # noqa: E402
from simulator.pipeline.sweep import write_csv  # noqa: E402

DESIGNS = ("queue", "raft", "twopc", "email")
MAX_BUDGET = 1_000_000  # dsim hunt's --budget at most
MAX_JOBS = max(8, 4 * (os.cpu_count() or 1))  # as dsim hunt --jobs
MAX_REPEAT = 100


def bugs_to_hunt(designs: str, bugs: str | None) -> list[tuple[str, str]]:
    if bugs:
        out = []
        for item in bugs.split(","):
            design, sep, bug = item.strip().partition(":")
            scen = registry.get(design)
            if not sep or bug not in scen.bugs:
                raise UsageError(f"bad value {item!r} for --bugs: expected DESIGN:BUG, e.g. raft:no-persist-vote")
            if (design, bug) in out:
                raise UsageError(f"bad value {bugs!r} for --bugs: expected each DESIGN:BUG once")
            out.append((design, bug))
        return out
    names = [d.strip() for d in designs.split(",")]
    if "" in names or len(set(names)) != len(names):
        raise UsageError(f"bad value {designs!r} for --designs: expected design names, comma-separated, each once")
    for d in names:
        if not registry.get(d).bugs:
            raise UsageError(f"bad value {d!r} in --designs: it has no planted bugs; expected designs with bugs, "
                             f"such as {', '.join(DESIGNS)}")
    return [(d, b) for d in names for b in registry.get(d).bugs]


def check_out(raw: str | None) -> None:
    """``--out``: a folder there or one that can be made (hunts go in folders inside it)."""
    if raw is not None:
        A.folder_path(raw, "--out")


def one(design: str, bug: str, seed: int, budget: int, shrink_budget: int, jobs: int, out: Path) -> dict:
    scen = registry.get(design)
    base = build_config(scen, seed=0, bug=bug)
    space = H.Space.of(scen, base, set())
    t0 = time.perf_counter()
    result = H.run_hunt(space, seed, H.Budget(runs=budget), jobs, "first", out / f"{design}-{bug}-s{seed}")
    row = {"design": design, "bug": bug, "hunt_seed": seed, "found": bool(result.findings),
           "runs": None, "cpu_s": None, "hunt_wall_s": round(time.perf_counter() - t0, 1)}
    if not result.findings:
        row.update(runs=len(result.rows), cpu_s=round(result.cpu_s, 1))
        return row
    f = result.findings[0]
    row.update(runs=f.runs_so_far, cpu_s=round(f.cpu_so_far_s, 1), checker=f.checker, deterministic=f.deterministic,
               folder=str(f.folder))
    t1 = time.perf_counter()
    # as `dsim shrink` of a `dsim hunt` folder: the hunt fixed nothing (hunt.json's "fixed" is empty)
    shrunk = S.shrink(replace(S.load_failure(f.folder), fixed=frozenset()), jobs=jobs, budget=shrink_budget)
    after = shrunk.after
    faults_after = shrunk.faults_after  # a crash storm counts its crashes and restarts, as written out
    row.update(shrink_runs=len(shrunk.rows), faults_before=shrunk.faults_before, faults_after=faults_after,
               time_limit_before_s=shrunk.before.time_limit_s, time_limit_after_s=after.time_limit_s,
               shrink_wall_s=round(time.perf_counter() - t1, 1),
               shrink_ok=faults_after <= 3 and after.time_limit_s <= shrunk.before.time_limit_s / 4)
    # the reproducer's folder, as `dsim shrink` writes it, and `dsim replay` of it as a user would run it
    folder = Path(f"{f.folder}-shrunk") / "run"
    outcome, _, _ = run_to_folder(replace(after, trace=True), folder, plots=False)
    replay = subprocess.run([sys.executable, "-c", "import sys; from simulator.cli import main; sys.exit(main())",
                             "replay", str(folder)], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    row.update(shrunk_valid=outcome.valid, replay_exit=replay.returncode, shrunk_folder=str(folder))
    return row


TIMING = ("wall_s", "cpu_s", "folder")


def speedup(design: str, seed: int, budget: int, jobs: int, cluster: str | None, out: Path) -> dict:
    """Wall time of one hunt on 1 process and on ``jobs`` processes (or ``cluster``); same rows required."""
    from simulator.pipeline.executor import open_executor

    scen = registry.get(design)
    space = H.Space.of(scen, build_config(scen, seed=0), set())
    walls, rows, cpu, busy = {}, {}, {}, {}
    out.mkdir(parents=True, exist_ok=True)
    for name, kw in (("jobs1", {"jobs": 1}), (cluster or f"jobs{jobs}", {"cluster": cluster} if cluster else {"jobs": jobs})):
        with open_executor(**kw) as ex:  # a LocalCluster's start-up is not the hunt's time
            t0 = time.perf_counter()
            res = H.run_hunt(space, seed, H.Budget(runs=budget), 1, "all", out / name, executor=ex)
            walls[name] = time.perf_counter() - t0
        rows[name] = [{k: v for k, v in r.items() if k not in TIMING} for r in res.rows]
        write_csv(out / f"{name}.csv", res.rows)
        cpu[name] = res.cpu_s
        # share of the hunt's wall time its workers spent inside runs: near 1 when no worker waits,
        # whatever else loads the machine (a loaded machine stretches runs and the hunt alike)
        workers = jobs if name != "jobs1" and not cluster else (2 if cluster else 1)
        busy[name] = sum(r["wall_s"] for r in res.rows) / (workers * walls[name])
        slowest = max(res.rows, key=lambda r: r["wall_s"])
        print(f"{design} hunt seed {seed}, {budget} runs, {name}: {walls[name]:,.1f} s wall, {res.cpu_s:,.1f} CPU s in runs, "
              f"workers busy {busy[name]:.0%}; "
              f"slowest run {slowest['run']} {slowest['wall_s']:.1f} s; "
              f"{sum(1 for r in res.rows if r['valid'] not in (True, False, 'skipped'))} unknown", flush=True)
    one, other = walls.values()
    first, second = rows.values()
    for a, b in zip(first, second):
        if a != b:
            print(f"rows differ first at run {a['run']}: " + ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}"
                                                                   for k in a if a.get(k) != b.get(k)))
            break
    same = list(rows.values())[0] == list(rows.values())[1]
    return {"design": design, "hunt_seed": seed, "budget": budget, "wall_s": {k: round(v, 1) for k, v in walls.items()},
            "cpu_s_in_runs": {k: round(v, 1) for k, v in cpu.items()}, "workers_busy": {k: round(v, 3) for k, v in busy.items()},
            "load_avg_1m": round(os.getloadavg()[0], 2), "speedup": round(one / other, 2),
            "same_rows": same, "out": str(out)}


def main(argv=None) -> int:
    ap = A.Parser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0],
                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--designs", default=",".join(DESIGNS), help="designs whose every planted bug is hunted")
    ap.add_argument("--bugs", help="instead, these DESIGN:BUG pairs (comma-separated)")
    ap.add_argument("--budget", type=A.integer(1, MAX_BUDGET), default=300,
                    help=f"hunt budget in runs, the same for every bug (1 to {MAX_BUDGET:,})")
    ap.add_argument("--shrink-budget", type=A.integer(1, MAX_BUDGET), default=150,
                    help=f"shrink budget in runs (1 to {MAX_BUDGET:,})")
    ap.add_argument("--jobs", type=A.integer(1, MAX_JOBS), default=2, help=f"worker processes (1 to {MAX_JOBS})")
    ap.add_argument("--seed", type=A.seed, default=1, help="first hunt seed")
    ap.add_argument("--repeat", type=A.integer(1, MAX_REPEAT), default=1,
                    help=f"hunts per bug (seeds seed, seed+1, ...), for medians (1 to {MAX_REPEAT})")
    ap.add_argument("--out", help="folder for the hunts (default: a temporary one)")
    ap.add_argument("--json", action="store_true", help="print a JSON line last")
    ap.add_argument("--speedup", action="store_true", help="time one hunt (no bug) with --jobs 1 and with --jobs N")
    ap.add_argument("--design", default="raft", help="with --speedup: the design hunted")
    ap.add_argument("--cluster", type=A.cluster,
                    help="with --speedup: compare --jobs 1 with this Dask cluster (local:2) instead")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed), or --help
        return args
    try:  # everything checked before the first line of output
        if args.seed + args.repeat - 1 > MAX_SEED:
            raise UsageError(f"bad value {args.seed} for --seed with --repeat {args.repeat}: expected seed + repeat - 1 "
                             f"at most {MAX_SEED} (hunt k uses seed + k)")
        check_out(args.out)
        if args.speedup:
            registry.get(args.design)
        else:
            pairs = bugs_to_hunt(args.designs, args.bugs)
    except UsageError as exc:
        print(f"hunt.py: error: {exc}", file=sys.stderr)
        return 2
    if args.speedup:
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dsim-hunt-speedup-"))
        res = speedup(args.design, args.seed, args.budget, args.jobs, args.cluster, out)
        print(f"speed-up {res['speedup']:.2f}x ({', '.join(f'{k} {v:,.1f} s' for k, v in res['wall_s'].items())}); "
              f"same rows: {'yes' if res['same_rows'] else 'NO'}")
        if args.json:
            print(json.dumps(res))
        return 0 if res["same_rows"] else 1
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dsim-hunt-bench-"))
    rows = []
    print(f"{'bug':34s} {'found':>5s} {'runs':>5s} {'CPU s':>7s} {'shrink runs':>11s} {'faults':>9s} {'time limit s':>14s}  ok  replay")
    for design, bug in pairs:
        for k in range(args.repeat):
            r = one(design, bug, args.seed + k, args.budget, args.shrink_budget, args.jobs, out)
            rows.append(r)
            faults = f"{r.get('faults_before', '-')}->{r.get('faults_after', '-')}" if r["found"] else "-"
            limit = f"{r.get('time_limit_before_s', 0):g}->{r.get('time_limit_after_s', 0):g}" if r["found"] else "-"
            ok = "yes" if r["found"] and r["runs"] <= 300 and r.get("shrink_ok") else "no"
            print(f"{design + ':' + bug:34s} {'yes' if r['found'] else 'NO':>5s} {r['runs']:>5} {r['cpu_s']:>7} "
                  f"{r.get('shrink_runs', '-'):>11} {faults:>9s} {limit:>14s}  {ok:3s} "
                  f"{'-' if 'replay_exit' not in r else 'exit ' + str(r['replay_exit'])}", flush=True)
    found = [r for r in rows if r["found"]]
    summary = {"bugs": len(pairs), "hunts": len(rows), "found": len(found), "budget": args.budget,
               "median_runs_to_failure": statistics.median([r["runs"] for r in found]) if found else None,
               "median_cpu_s_to_failure": statistics.median([r["cpu_s"] for r in found]) if found else None,
               "shrunk_within_targets": sum(1 for r in found if r.get("shrink_ok")),
               "shrunk_replayed": sum(1 for r in found if r.get("replay_exit") == 0), "out": str(out), "rows": rows}
    print(f"found {len(found)}/{len(rows)} hunts; median {summary['median_runs_to_failure']} runs, "
          f"{summary['median_cpu_s_to_failure']} CPU s to a failure; {summary['shrunk_within_targets']} shrunk within targets; "
          f"{summary['shrunk_replayed']} shrunk folders replayed (dsim replay exit 0)")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
