"""The four modes under the same faults: one table (markdown) of latency, compensation and in-doubt time.

    python -m scenarios.commerce.compare --seeds 1-5
    python -m scenarios.commerce.compare --seeds 1-3 --nemesis crash --rate 200 --time-limit 30
    python -m scenarios.commerce.compare --config scenarios/commerce/coordinator-crash.toml --seeds 1

Every mode runs with the same seeds and options, so the nemesis draws the same fault plan for each
(the plan depends on the seed and the servers; saga-choreographed adds its queues to the servers, so
its plan differs). Per mode, over all seeds: orders, the share undone, the compensation rate, order
latency (placed to end) p50 / p99 / max for done orders, how long an order's effects were partly
visible (first local change to end, p99 / max), how long stock stayed held (p99 / max: for 2PC the
time in doubt), coordinator retries, and how many runs were valid.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from simulator import UsageError, build_config, execute, get_scenario, parse_seeds
from simulator import scriptargs as A

from .figures import hold_periods, order_times
from .scenario import MODES


def seeds_of(text: str) -> list[int]:
    """``--seeds``: ``1-5``, ``1,3`` or a mix (a UsageError naming --seeds if not)."""
    return parse_seeds(text)




def main(argv=None) -> int:
    ap = A.Parser(prog="python -m scenarios.commerce.compare", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-5", help="e.g. 1-5 or 1,3")
    ap.add_argument("--config", help="a TOML run configuration (faults, options, params)")
    ap.add_argument("--nemesis", default=None, help="comma-separated nemeses (default crash,partition-random-halves)")
    ap.add_argument("--rate", type=A.number(*A.LIMITS["rate"]), help="requests per second")
    ap.add_argument("--time-limit", type=A.number(*A.LIMITS["time_limit_s"]), dest="time_limit_s",
                    help="simulated seconds per run")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a scenario parameter")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed, before any output), or --help
        return args
    sc = get_scenario("commerce")
    try:  # every input checked, and each mode's run built once, before the table starts
        seeds = seeds_of(args.seeds)
        file = A.load_toml(args.config) if args.config is not None else None
        options = {"rate": args.rate, "time_limit_s": args.time_limit_s}
        if args.nemesis is not None or file is None:
            options["nemesis"] = args.nemesis or "crash,partition-random-halves"
        options = {k: v for k, v in options.items() if v is not None}
        sets = A.sets(args.set, {"mode": f"every mode runs ({', '.join(MODES)})"})
        for mode in MODES:
            A.check_config(build_config(sc, seed=seeds[0], file=file, options=options, sets={**sets, "mode": mode}))
    except UsageError as exc:
        ap.fail(str(exc))
    print("| mode | valid | orders | undone | compensated | done p50 / p99 / max ms | intermediate max ms "
          "| hold p99 / max ms | retries |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        lat, inter, hold = [], [], []
        orders = undone = compensated = retries = valid = 0
        for seed in seeds:
            cfg = build_config(sc, seed=seed, file=dict(file) if file else None, options=options,
                               sets={**sets, "mode": mode})
            res = execute(cfg)
            run, fig = res.run, res.metrics["figures"]
            valid += res.valid is True
            orders += fig["orders"]
            undone += fig["undone"]
            compensated += round(fig["compensation_rate"] * fig["ended"])
            retries += fig["retries"]
            times = order_times(run)
            lat += [(t1 - t0) / 1e6 for t0, t1, out in times.values() if out == "done"]
            inter.append(fig["intermediate_ms"].get("max", 0.0))
            hold += [(b - a) / 1e6 for a, b, _ in hold_periods(run)]
        lat_a, hold_a = np.asarray(lat or [0.0]), np.asarray(hold or [0.0])
        print(f"| {mode} | {valid}/{len(seeds)} | {orders} | {undone / max(orders, 1):.1%} | "
              f"{compensated / max(orders, 1):.1%} | {np.percentile(lat_a, 50):.0f} / {np.percentile(lat_a, 99):.0f} / "
              f"{lat_a.max():.0f} | {max(inter):.0f} | {np.percentile(hold_a, 99):.0f} / {hold_a.max():.0f} | "
              f"{retries} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
