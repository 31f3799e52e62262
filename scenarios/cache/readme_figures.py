"""The figures of scenarios/cache/README.md, from seeded runs anyone can repeat.

    python -m scenarios.cache.readme_figures --out scenarios/cache

readme-stampede.png   database queries per second for one hot key that expires every 500 ms (lambda =
               1,000 reads/s, recompute 50 ms), without protection and with leases
readme-staleness.png  the staleness CDF of the reads of ``delete`` and of ``lease`` (recompute 20 ms) under the same crashes
               and partitions of the cache nodes (seed 3)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulator import UsageError, build_config, execute, get_scenario, plots
from simulator import scriptargs as A

from .figures import series_per_s
from .scenario import read_staleness


def run(sets: dict, **options):
    return execute(build_config(get_scenario("cache"), seed=options.pop("seed", 1), options=options, sets=sets))


FIGURES = ("readme-stampede.png", "readme-staleness.png")


def _out_folder(text: str, option: str) -> Path:
    """A folder for the figures: there already, or one that can be made."""
    path = A.folder_path(text, option)
    for name in FIGURES:
        if (path / name).exists() and not (path / name).is_file():
            raise UsageError(f"bad value {text!r} for {option}: {path / name} is not a file; expected a folder "
                             f"where {' and '.join(FIGURES)} can be written")
    return path


def main(argv=None) -> int:
    ap = A.Parser(prog="python -m scenarios.cache.readme_figures", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=A.Check(_out_folder), default="scenarios/cache",
                    help="folder for the PNGs (made if needed)")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed, before anything is written), or --help
        return args
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    hot = {"keys": 1, "write_share": 0.0, "ttl_ms": 500.0, "recompute_ms": 50.0}
    series = []
    for prot in ("none", "singleflight", "lease"):
        o = run({**hot, "protection": prot}, rate=1000.0, time_limit_s=3.0, quiesce_s=0.5)
        xs, ys = series_per_s([r["time_ns"] for r in o.run.records if r["kind"] == "app.fetch.start"], o.run.end_ns, 0.01)
        n = sum(1 for r in o.run.records if r["kind"] == "app.fetch")
        series.append((f"protection={prot} ({n} fetches)", xs, ys))
        print(f"stampede: protection {prot}: {n} database fetches in 3 s")
    plots.panels(out / "readme-stampede.png", "A hot key expiring every 500 ms: database queries per second",
                 [{"series": series, "ylabel": "DB queries / s (10 ms bins)", "time": False,
                   "xlabel": "simulated time (s)"}],
                 subtitle="1 key, 1,000 reads/s, recompute 50 ms, ttl 500 ms, 4 app servers")
    cdfs = {}
    for strategy in ("delete", "lease"):
        o = run({"strategy": strategy, "recompute_ms": 20.0}, seed=3, time_limit_s=6.0,
                nemesis="crash,partition-random-halves", nemesis_interval_s=1.5)
        st = [r[3] for r in read_staleness(o.run)]
        stale = [x for x in st if x > 0]
        cdfs[f"{strategy}: {len(stale)} stale of {len(st)} reads, verdict {o.valid}"] = stale
        print(f"staleness: {strategy}: {len(stale)} stale of {len(st)} reads; valid {o.valid}")
    plots.cdf_panels(out / "readme-staleness.png", "Staleness of stale reads: delete vs lease, same faults (seed 3)",
                     [{"title": "recompute_ms=20; crash + partition-random-halves of app and cache nodes every 1.5 s",
                       "xlabel": "staleness (ms)", "series": cdfs}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
