"""Two-phase commit beside Paxos Commit: one seed, the same faults, one figure.

    python -m scenarios.twopc.compare --seed 1 --out results/twopc-compare.png
    python -m scenarios.twopc.compare --seed 1 --set shards=5 --rate 500 --time-limit 30

Both runs use the same seed and options; the scenario's own nemeses draw the same fault plan for
both protocols (they choose only among resource managers and phases, never by node count), so
the shaded windows are the same faults. Prints each run's verdict and headline figures, and draws
transactions in doubt and commits per second for both.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from simulator import UsageError, build_config, execute, get_scenario, windows
from simulator import scriptargs as A

from .checkers import of_kind
from .figures import in_doubt_series


def commits_per_second(run, bucket_s: float) -> tuple[np.ndarray, np.ndarray]:
    first: dict[int, int] = {}
    for r in of_kind(run, "applied"):
        if r["outcome"] == "C" and r["tx"] not in first:
            first[r["tx"]] = r["time_ns"]
    edges = np.arange(0.0, run.end_ns / 1e9 + bucket_s, bucket_s)
    counts, _ = np.histogram(np.asarray(list(first.values()), dtype=float) / 1e9, bins=edges)
    return edges[:-1], counts / bucket_s




def main(argv=None) -> int:
    ap = A.Parser(prog="python -m scenarios.twopc.compare", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--rate", type=A.number(*A.LIMITS["rate"]), help="transactions per second")
    ap.add_argument("--time-limit", type=A.number(*A.LIMITS["time_limit_s"]), dest="time_limit_s",
                    help="simulated seconds per run")
    ap.add_argument("--nemesis", help="comma-separated nemeses (default: the scenario's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a scenario parameter")
    ap.add_argument("--out", type=A.out_file(A.FIGURE_SUFFIXES), default="twopc-compare.png",
                    help=f"the figure ({', '.join(A.FIGURE_SUFFIXES)}; its folder must exist)")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed, before any run), or --help
        return args
    sc = get_scenario("twopc")
    options = {"rate": args.rate, "time_limit_s": args.time_limit_s, "nemesis": args.nemesis}
    try:  # both runs built and checked before either starts
        sets = A.sets(args.set, {"protocol": "both protocols run (2pc, paxos-commit)"})
        configs = [build_config(sc, seed=args.seed, options=options, sets={**sets, "protocol": protocol})
                   for protocol in ("2pc", "paxos-commit")]
        for cfg in configs:
            A.check_config(cfg)
    except UsageError as exc:
        ap.fail(str(exc))
    runs = []
    valid = []
    for protocol, cfg in zip(("2pc", "paxos-commit"), configs):
        out = execute(cfg)
        f = out.metrics["figures"]
        print(f"{protocol:13s} valid={out.valid} committed={f['committed']} abort_rate={f['abort_rate']} "
              f"in_doubt_max_ms={f['time_in_doubt_ms']['max']} beyond_detection={f['in_doubt_beyond_detection']} "
              f"msgs/commit={f.get('messages_per_commit')} delays={f.get('message_delays_per_commit')} "
              f"writes={f.get('forced_writes_per_commit')}")
        runs.append((protocol, out.run))
        valid.append(out.valid is True)
    from pathlib import Path

    from simulator import plots as P

    base = runs[0][1]
    shade = P.shader(windows(base.faults, base.end_ns))
    bucket = max(0.25, base.end_ns / 1e9 / 200)
    doubt = []
    rate = []
    for protocol, run in runs:
        t, n = in_doubt_series(run)
        doubt.append((protocol, t, n))
        xs, ys = commits_per_second(run, bucket)
        rate.append((protocol, xs, ys))
    name = P.panels(Path(args.out), "Two-phase commit vs Paxos Commit under the same faults", [
        {"series": doubt, "ylabel": "RM x transaction in doubt", "step": True},
        {"series": rate, "ylabel": "commits per second", "xlabel": "simulated time (s)"},
    ], shade, subtitle=f"seed {args.seed}")
    print(f"figure: {Path(args.out).parent / name}")
    return 0 if all(valid) else 1


if __name__ == "__main__":
    sys.exit(main())
