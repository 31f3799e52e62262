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
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The repository first: this folder's scenarios.py must not shadow the designs' package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if sys.path[1:2] == [str(Path(__file__).resolve().parent)]:
    sys.path.pop(1)

from simulator.engine.errors import UsageError  # noqa: E402
from simulator.pipeline import hunt as H  # noqa: E402
from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline import shrink as S  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402

DESIGNS = ("queue", "raft", "twopc", "email")


def bugs_to_hunt(designs: str, bugs: str | None) -> list[tuple[str, str]]:
    if bugs:
        out = []
        for item in bugs.split(","):
            design, sep, bug = item.strip().partition(":")
            scen = registry.get(design)
            if not sep or bug not in scen.bugs:
                raise UsageError(f"bad value {item!r} for --bugs: expected DESIGN:BUG, e.g. raft:no-persist-vote")
            out.append((design, bug))
        return out
    return [(d, b) for d in designs.split(",") for b in registry.get(d.strip()).bugs]


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
    shrunk = S.shrink(S.load_failure(f.folder), jobs=jobs, budget=shrink_budget)
    after = shrunk.after
    faults_after = len(after.faults) if shrunk.explicit else shrunk.faults_before
    row.update(shrink_runs=len(shrunk.rows), faults_before=shrunk.faults_before, faults_after=faults_after,
               time_limit_before_s=shrunk.before.time_limit_s, time_limit_after_s=after.time_limit_s,
               shrink_wall_s=round(time.perf_counter() - t1, 1),
               shrink_ok=faults_after <= 3 and after.time_limit_s <= shrunk.before.time_limit_s / 4)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--designs", default=",".join(DESIGNS), help="designs whose every planted bug is hunted")
    ap.add_argument("--bugs", help="instead, these DESIGN:BUG pairs (comma-separated)")
    ap.add_argument("--budget", type=int, default=300, help="hunt budget in runs, the same for every bug")
    ap.add_argument("--shrink-budget", type=int, default=150, help="shrink budget in runs")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1, help="first hunt seed")
    ap.add_argument("--repeat", type=int, default=1, help="hunts per bug (seeds seed, seed+1, ...), for medians")
    ap.add_argument("--out", help="folder for the hunts (default: a temporary one)")
    ap.add_argument("--json", action="store_true", help="print a JSON line last")
    args = ap.parse_args(argv)
    try:
        for name in ("budget", "shrink_budget", "jobs", "repeat"):
            if getattr(args, name) < 1:
                raise UsageError(f"bad value {getattr(args, name)!r} for --{name.replace('_', '-')}: expected an integer >= 1")
        pairs = bugs_to_hunt(args.designs, args.bugs)
    except UsageError as exc:
        print(f"hunt.py: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dsim-hunt-bench-"))
    rows = []
    print(f"{'bug':34s} {'found':>5s} {'runs':>5s} {'CPU s':>7s} {'shrink runs':>11s} {'faults':>9s} {'time limit s':>14s}  ok")
    for design, bug in pairs:
        for k in range(args.repeat):
            r = one(design, bug, args.seed + k, args.budget, args.shrink_budget, args.jobs, out)
            rows.append(r)
            faults = f"{r.get('faults_before', '-')}->{r.get('faults_after', '-')}" if r["found"] else "-"
            limit = f"{r.get('time_limit_before_s', 0):g}->{r.get('time_limit_after_s', 0):g}" if r["found"] else "-"
            ok = "yes" if r["found"] and r["runs"] <= 300 and r.get("shrink_ok") else "no"
            print(f"{design + ':' + bug:34s} {'yes' if r['found'] else 'NO':>5s} {r['runs']:>5} {r['cpu_s']:>7} "
                  f"{r.get('shrink_runs', '-'):>11} {faults:>9s} {limit:>14s}  {ok}", flush=True)
    found = [r for r in rows if r["found"]]
    summary = {"bugs": len(pairs), "hunts": len(rows), "found": len(found), "budget": args.budget,
               "median_runs_to_failure": statistics.median([r["runs"] for r in found]) if found else None,
               "median_cpu_s_to_failure": statistics.median([r["cpu_s"] for r in found]) if found else None,
               "shrunk_within_targets": sum(1 for r in found if r.get("shrink_ok")), "out": str(out), "rows": rows}
    print(f"found {len(found)}/{len(rows)} hunts; median {summary['median_runs_to_failure']} runs, "
          f"{summary['median_cpu_s_to_failure']} CPU s to a failure; {summary['shrunk_within_targets']} shrunk within targets")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
