"""The balancing figure: p99 latency against offered load for each balancing policy.

Each (policy, load, seed) is one run of the reverse-proxy design with no degraded upstream
(``degraded=none``), so only the balancing differs; the api cluster's upstreams are uneven
(mean service 2, 3, 4 and 6 ms on 2 cores each: 2,500 api requests/s in all, the slowest 333/s).
Writes ``policies.csv`` (one row per run) and ``policies.png``, and prints the table::

    python -m scenarios.reverse_proxy.policies
    python -m scenarios.reverse_proxy.policies --loads 500,1500,2500 --seeds 1-2 --out results/proxy-policies
    python -m scenarios.reverse_proxy.policies --from-csv results/reverse-proxy-policies/policies.csv

Other parameters go with ``--set k=v`` (``--set degraded=api-1`` puts the degradation back).
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from simulator import UsageError
from simulator import scriptargs as A
from simulator.kit.balancer import POLICIES
from simulator.kit.client import RESULT

COLUMNS = ("policy", "load_rps", "seed", "api_p99_ms", "static_p99_ms", "slowest_share", "fair_share", "failed",
           "valid")


def measure(policy: str, load: float, seed: int, time_limit_s: float, sets: dict) -> dict:
    """One run: the p99 of successful api GETs and static GETs, and the share of successful api
    GETs the slowest api upstream answered (its share of the cluster's capacity is the fair one)."""
    from simulator import build_config, execute, get_scenario, pairs

    from .scenario import clusters, means

    sc = get_scenario("reverse-proxy")
    cfg = build_config(sc, seed=seed, options={"rate": load, "time_limit_s": time_limit_s},
                       sets={"degraded": "none", **sets, "policy": policy})
    out = execute(cfg)
    ms = means(cfg.params["api_service_ms"], "api_service_ms")
    slowest = clusters(cfg.params)["api"][int(np.argmax(ms))]
    lat, failed, by_slowest = defaultdict(list), 0, 0
    for inv, done in pairs(out.run.history):
        if done is not None and done["type"] == "ok":
            lat[inv["f"]].append((done["time"] - inv["time"]) / 1e6)
            by_slowest += inv["f"] == "get-item" and done["value"][RESULT] == slowest
        else:
            failed += 1

    def p99(xs):
        return round(float(np.percentile(xs, 99)), 3) if xs else None

    return {"policy": policy, "load_rps": load, "seed": seed, "api_p99_ms": p99(lat["get-item"]),
            "static_p99_ms": p99(lat["get-static"]),
            "slowest_share": round(by_slowest / max(1, len(lat["get-item"])), 4),
            "fair_share": round((1 / max(ms)) / sum(1 / m for m in ms), 4), "failed": failed,
            "valid": out.valid}


def summarise(rows: list[dict]) -> list[dict]:
    """Per (policy, load): the median over seeds."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["policy"], float(r["load_rps"]))].append(r)
    out = []
    for (policy, load), rs in by.items():
        def med(key):
            xs = [float(r[key]) for r in rs if r[key] not in (None, "", "None")]
            return float(np.median(xs)) if xs else None
        out.append({"policy": policy, "load_rps": load, "runs": len(rs), "api_p99_ms": med("api_p99_ms"),
                    "slowest_share": med("slowest_share"), "fair_share": med("fair_share"),
                    "failed": med("failed")})
    order = {p: i for i, p in enumerate(POLICIES)}
    return sorted(out, key=lambda s: (order.get(s["policy"], 99), s["load_rps"]))


def draw(summary: list[dict], path: Path, subtitle: str = "") -> str:
    from simulator import plots

    def series(key):
        out = []
        for policy in [p for p in POLICIES if any(s["policy"] == p for s in summary)]:
            ss = [s for s in summary if s["policy"] == policy]
            ys = np.array([s[key] if s[key] is not None else np.nan for s in ss], dtype=float)
            out.append((policy, np.array([s["load_rps"] for s in ss], dtype=float), ys))
        return out

    loads = np.array(sorted({s["load_rps"] for s in summary}), dtype=float)
    fair = [("the slowest's share of capacity", loads, np.full(loads.size, summary[0]["fair_share"] or np.nan))]
    rows = [{"series": series("api_p99_ms"), "ylabel": "p99 of GET /api/items (ms, log)", "log": True,
             "time": False},
            {"series": series("slowest_share") + fair, "ylabel": "share of GET /api/items\nanswered by the slowest",
             "time": False, "xlabel": "offered load (requests/s, all routes; 70% go to the api cluster)"}]
    return plots.panels(path, "Balancing policies over uneven upstreams: p99 against load", rows, subtitle=subtitle)


def table(summary: list[dict]) -> str:
    loads = sorted({s["load_rps"] for s in summary})
    policies = [p for p in POLICIES if any(s["policy"] == p for s in summary)]
    cell = {(s["policy"], s["load_rps"]): s for s in summary}
    lines = ["p99 of GET /api/items in ms (share of them the slowest upstream answered)",
             f"{'load req/s':>12} " + " ".join(f"{p:>20}" for p in policies)]
    for load in loads:
        parts = []
        for p in policies:
            s = cell.get((p, load))
            parts.append(f"{s['api_p99_ms']:>11.1f} ({s['slowest_share']:.0%})" if s and s["api_p99_ms"] is not None
                         else f"{'-':>20}")
        lines.append(f"{load:>12g} " + " ".join(f"{x:>20}" for x in parts))
    return "\n".join(lines)


def _out_folder(text: str, option: str) -> Path:
    """A folder for the results: there already, or one that can be made."""
    path = A.folder_path(text, option)
    for name in ("policies.csv", "policies.png"):
        if (path / name).exists() and not (path / name).is_file():
            raise UsageError(f"bad value {text!r} for {option}: {path / name} is not a file; expected a folder "
                             "where policies.csv and policies.png can be written")
    return path


def _loads(text: str, option: str) -> list[float]:
    lo, hi = A.LIMITS["rate"]
    expected = f"offered loads in requests/s, comma-separated, each once, each from {lo:g} to {hi:,.0f}"
    one = A.number(lo, hi)
    try:
        values = [one.value(x, option) for x in str(text).split(",")]
    except UsageError:
        raise UsageError(f"bad value {text!r} for {option}: expected {expected}") from None
    if len(set(values)) != len(values):
        raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
    return values




def read_rows(path: Path) -> list[dict]:
    """``--from-csv``: the rows of an earlier policies.csv, each checked (a UsageError if not one)."""
    need = ("policy", "load_rps", "api_p99_ms", "slowest_share", "fair_share", "failed")
    expected = f"a policies.csv of this script (columns {', '.join(COLUMNS)}, one row per run)"
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else getattr(exc, "strerror", None) or exc
        raise UsageError(f"bad value {str(path)!r} for --from-csv: cannot read it as CSV ({why}); expected {expected}") from None
    missing = [c for c in need if c not in fields]
    if missing:
        raise UsageError(f"bad value {str(path)!r} for --from-csv: no column {missing[0]}; expected {expected}")
    if not rows:
        raise UsageError(f"bad value {str(path)!r} for --from-csv: no rows; expected {expected}")

    def number(x, empty_ok: bool) -> bool:
        if empty_ok and x in (None, "", "None"):
            return True
        try:
            return math.isfinite(float(x))
        except (TypeError, ValueError):
            return False

    for n, r in enumerate(rows, 2):
        bad = ("policy" if r["policy"] not in POLICIES else "load_rps" if not number(r["load_rps"], False)
               else next((c for c in need[2:] if not number(r[c], c == "api_p99_ms")), None))
        if bad:
            raise UsageError(f"bad value {str(path)!r} for --from-csv: line {n} has {bad} {r[bad]!r}; expected {expected}")
    return rows


def main(argv=None) -> int:
    lo, hi = A.LIMITS["time_limit_s"]
    ap = A.Parser(prog="python -m scenarios.reverse_proxy.policies",
                  description="reverse-proxy: p99 against load for each balancing policy")
    ap.add_argument("--policies", type=A.names(POLICIES), default=",".join(POLICIES),
                    help="comma-separated, e.g. round-robin,p2c")
    ap.add_argument("--loads", type=A.Check(_loads), default="500,1000,1500,2000,2500,3000",
                    help="offered loads, requests/s, comma-separated")
    ap.add_argument("--seeds", default="1", help="e.g. 1-3")
    ap.add_argument("--time-limit", type=A.number(lo, hi), default=10.0,
                    help=f"simulated seconds per run ({lo:g} to {hi:g})")
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="another parameter of the runs")
    ap.add_argument("--out", type=A.Check(_out_folder), default="results/reverse-proxy-policies",
                    help="folder for policies.csv and policies.png (made if needed)")
    ap.add_argument("--from-csv", type=A.text_file, default=None, help="redraw from an earlier policies.csv")
    a = ap.parse(argv)
    if isinstance(a, int):  # a bad argument (its one line printed, before anything is written), or --help
        return a
    # everything checked before the folder is made: a refused input leaves nothing behind
    try:
        if a.from_csv:
            rows = read_rows(a.from_csv)
        else:
            from simulator import build_config, get_scenario, parse_seeds

            seeds = parse_seeds(a.seeds)
            sets = A.sets(a.set, {"policy": "the policy is swept by --policies"})
            total = len(a.policies) * len(a.loads) * len(seeds)
            if total > A.MAX_RUNS:
                raise UsageError(f"bad value {a.seeds!r} for --seeds: {total:,} runs with {len(a.policies)} policies "
                                 f"and {len(a.loads)} loads; expected at most {A.MAX_RUNS:,} runs in all")
            sc = get_scenario("reverse-proxy")
            for policy in a.policies:
                for load in a.loads:
                    A.check_config(build_config(sc, seed=seeds[0], options={"rate": load, "time_limit_s": a.time_limit},
                                                sets={"degraded": "none", **sets, "policy": policy}))
    except UsageError as exc:
        ap.fail(str(exc))
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    if not a.from_csv:
        rows = []
        for policy in a.policies:
            for load in a.loads:
                for seed in seeds:
                    rows.append(measure(policy, load, seed, a.time_limit, sets))
                    print(f"  {policy} {load:g} req/s seed {seed}: p99 {rows[-1]['api_p99_ms']} ms", flush=True)
        with open(out / "policies.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
    summary = summarise(rows)
    sub = f"reverse-proxy, degraded=none, seeds {a.seeds}, {a.time_limit:g} s per run"
    name = draw(summary, out / "policies.png", sub + (f", {' '.join(a.set)}" if a.set else ""))
    print(table(summary))
    print(f"figure: {out / name}\ntable: {out / 'policies.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
