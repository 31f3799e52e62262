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
import tomllib

import numpy as np

from simulator import build_config, execute, get_scenario

from .figures import hold_periods, order_times
from .scenario import MODES


def seeds_of(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("--config", help="a TOML run configuration (faults, options, params)")
    ap.add_argument("--nemesis", default=None, help="comma-separated nemeses (default crash,partition-random-halves)")
    ap.add_argument("--rate", type=float)
    ap.add_argument("--time-limit", type=float, dest="time_limit_s")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a scenario parameter")
    args = ap.parse_args(argv)
    sc = get_scenario("commerce")
    file = None
    if args.config:
        with open(args.config, "rb") as fh:
            file = tomllib.load(fh)
    options = {"rate": args.rate, "time_limit_s": args.time_limit_s}
    if args.nemesis is not None or file is None:
        options["nemesis"] = args.nemesis or "crash,partition-random-halves"
    options = {k: v for k, v in options.items() if v is not None}
    sets = dict(s.split("=", 1) for s in args.set)
    print("| mode | valid | orders | undone | compensated | done p50 / p99 / max ms | intermediate max ms "
          "| hold p99 / max ms | retries |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        lat, inter, hold = [], [], []
        orders = undone = compensated = retries = valid = 0
        seeds = seeds_of(args.seeds)
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
