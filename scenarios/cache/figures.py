"""The cache design's plots: hit ratio over time and per node, database queries per second with the
faults shaded (a stampede is a spike), the staleness CDF, and latency by hit and miss."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from simulator import pairs
from simulator.kit.client import RESULT


def series_per_s(times_ns, end_ns: int, bin_s: float = 0.1):
    bins = np.arange(0, end_ns / 1e9 + bin_s, bin_s)
    counts, _ = np.histogram(np.asarray(times_ns, dtype=float) / 1e9, bins=bins)
    return bins[:-1].tolist(), (counts / bin_s).tolist()


def draw(scenario, run, folder, shade) -> list[str]:
    from simulator import plots

    from .scenario import effective, events, staleness_ms

    p = effective(run.cfg)
    sub = f"seed {run.cfg.seed}, strategy {p['strategy']}, protection {p['protection']}, policy {p['policy']}" + \
        (f", nemesis {','.join(run.cfg.nemesis)}" if run.cfg.nemesis else "")
    # hit ratio over time (all reads, per second) and per cache node (the nodes' own counts)
    hits, total = defaultdict(int), defaultdict(int)
    lat = defaultdict(list)
    for inv, done in pairs(run.history):
        if inv["f"] != "read" or done is None or done["type"] != "ok":
            continue
        res = done["value"][RESULT]
        if not isinstance(res, list):
            continue
        s = int(inv["time"] // 1e9)
        total[s] += 1
        hits[s] += res[1] == "hit"
        lat[res[1]].append((done["time"] - inv["time"]) / 1e6)
    secs = sorted(total)
    rows = [{"series": [("all reads", [s + 0.5 for s in secs], [hits[s] / total[s] for s in secs])],
             "ylabel": "hit ratio"}]
    per_node = []
    for node, counts in sorted(run.exposed.get("counts", {}).items()):
        ks = sorted(counts, key=int)
        per_node.append((node, [int(k) + 0.5 for k in ks],
                         [counts[k][0] / max(1, sum(counts[k])) for k in ks]))
    if per_node:
        rows.append({"series": per_node, "ylabel": "hit ratio per cache node", "step": False})
    fetch_t = [r["time_ns"] for r in events(run)["fetch"] if r["kind"] == "app.fetch.start"]
    xs, ys = series_per_s(fetch_t, run.end_ns)
    rows.append({"series": [("database reads by app servers", xs, ys)], "ylabel": "DB queries / s (100 ms bins)"})
    out = [plots.panels(folder / "cache.png", "Cache tier: hit ratio and database load", rows, shade, sub)]
    st = staleness_ms(run).tolist()
    stale = [x for x in st if x > 0]
    panels = [{"title": f"staleness of the {len(stale)} stale reads among {len(st)} judged "
                        f"(bound {p['ttl_ms'] + p['invalidation_bound_ms']:g} ms)",
               "xlabel": "staleness (ms)", "series": {p["strategy"]: stale}},
              {"title": "read latency by outcome", "xlabel": "latency (ms)",
               "series": {k: v for k, v in sorted(lat.items())}}]
    out.append(plots.cdf_panels(folder / "staleness.png", f"Cache tier ({sub})", panels))
    return out
