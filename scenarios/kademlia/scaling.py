"""Hops and latency of Kademlia lookups against network size, with the fit of mean hops to a·log2(N) + b.

    python -m scenarios.kademlia.scaling --sizes 1000,10000,100000 --out kademlia-scaling.png

Each size is one seeded run without churn: N nodes join by the protocol (50 arrivals per
simulated second), then clients run finds, puts and gets for ``--lookup-s`` seconds. The figure
shows mean hops (with the fitted line) and lookup latency quantiles against N; the last line
printed is a JSON object with the sizes, the per-size figures and the fitted a and b.
"""

from __future__ import annotations

import json
import math
import resource
import sys

from simulator import build_config, execute, get_scenario, plots
from simulator import scriptargs as A

JOINS_PER_S = 50.0
MAX_NODES = 1_000_000  # dsim's node_count at most
MAX_LOOKUP_S = 1e6


def run_size(n: int, seed: int, lookup_s: float) -> dict:
    join_s = max(5.0, n / JOINS_PER_S)
    cfg = build_config(get_scenario("kademlia"), seed=seed,
                       options={"node_count": n, "time_limit_s": join_s + 5.0 + lookup_s, "rate": 20.0},
                       sets={"join_window_s": join_s, "sample_s": 0.0})
    base = _rss_bytes()
    out = execute(cfg)
    f = out.metrics["figures"]
    lc = out.checks["lookup-correctness"]
    peak = _peak_rss_bytes()
    return {"nodes": n, "mean_hops": f["mean_hops"], "latency_ms": f["lookup_latency_ms"],
            "messages_per_lookup": f["messages_per_lookup"]["mean"], "valid": out.valid,
            # without churn every lookup after the joins is held exact against the oracle
            "lookups_held_exact": lc.details["held_exact"], "lookups_not_exact": lc.details["not_exact"],
            "wall_seconds": round(out.wall_seconds, 1), "peak_rss_mib": round(peak / 2**20, 1),
            # sizes run in increasing order, so the peak is this run's: memory per node, all included
            "bytes_per_node": round((peak - base) / n)}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least squares of mean hops on log2(N)."""
    xs = [math.log2(r["nodes"]) for r in rows]
    ys = [r["mean_hops"] for r in rows]
    if len(xs) < 2:
        return float("nan"), float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")
    return a, my - a * mx


def main(argv: list[str] | None = None) -> int:
    ap = A.Parser(prog="python -m scenarios.kademlia.scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=A.integers(2, MAX_NODES, increasing=True), default="250,500,1000",
                    help=f"network sizes, increasing, comma-separated (e.g. 1000,10000,100000; 2 to {MAX_NODES:,})")
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--lookup-s", type=A.number(0, MAX_LOOKUP_S, lo_open=True), default=30.0,
                    help=f"simulated seconds of lookups after the joins (above 0, at most {MAX_LOOKUP_S:,.0f})")
    ap.add_argument("--out", type=A.out_file(A.FIGURE_SUFFIXES), default="kademlia-scaling.png",
                    help=f"where to write the figure ({', '.join(A.FIGURE_SUFFIXES)}; its folder must exist)")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed, before any run), or --help
        return args
    sizes = args.sizes
    rows = []
    for n in sizes:
        rows.append(run_size(n, args.seed, args.lookup_s))
        print(json.dumps(rows[-1]), flush=True)
    a, b = fit(rows)
    ns = [r["nodes"] for r in rows]
    line = [a * math.log2(n) + b for n in ns]
    sign = "-" if b < 0 else "+"
    plots.panels(args.out, f"Kademlia lookups against network size: mean hops = {a:.3f}·log2(N) {sign} "
                 f"{abs(b):.3f}", [
        {"series": [("mean hops", ns, [r["mean_hops"] for r in rows]), ("fit a·log2(N) + b", ns, line)],
         "ylabel": "hops", "xlabel": "nodes N", "time": False, "logx": True, "marker": "o",
         "legend": "upper left"},
        {"series": [(q, ns, [r["latency_ms"][q] for r in rows]) for q in ("p50", "p95", "p99")],
         "ylabel": "lookup latency, ms", "xlabel": "nodes N", "time": False, "logx": True, "marker": "o",
         "legend": "upper left"},
    ])
    print(json.dumps({"sizes": ns, "rows": rows, "a": round(a, 4), "b": round(b, 4), "figure": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
