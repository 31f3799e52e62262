"""Every figure dsim draws; the only module that imports matplotlib (Agg, no screen needed).

Time plots share one x axis in simulated seconds and shade each fault window with a label, so a
reader sees at a glance what a partition or a crash did to latency and throughput.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
# Extreme values (a damaged runs.csv's 1e308) make matplotlib's scales warn on stderr, two lines
# each: a figure is drawn as well as it can be, and the command's own output says what it read.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"matplotlib\.")
# Many folders compared give a legend taller than the figure: drawn as it fits, without two lines on stderr.
warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from ..checkers import metrics as M  # noqa: E402
from ..workload.history import pairs  # noqa: E402

COLORS = {"ok": "#1f77b4", "fail": "#d62728", "info": "#ff7f0e"}
FAULT_COLORS = ["#999999", "#8c564b", "#9467bd", "#17becf", "#bcbd22", "#e377c2"]


def shader(windows: Sequence[tuple[int, int, str]]) -> Callable:
    """A function ``shade(ax)`` that shades the fault windows (ns) on an axis in seconds."""
    labels = sorted({w[2] for w in windows})
    color = {lab: FAULT_COLORS[i % len(FAULT_COLORS)] for i, lab in enumerate(labels)}

    def shade(ax) -> None:
        seen = set()
        for t0, t1, lab in windows:
            ax.axvspan(t0 / 1e9, t1 / 1e9, color=color[lab], alpha=0.15, lw=0,
                       label=None if lab in seen else f"fault: {lab}")
            seen.add(lab)

    return shade


# Fixed margins in inches (left, right, bottom, top, gap between stacked panels), for figures whose
# labels are known in advance: matplotlib's tight_layout measures every tick label to place the
# axes, which was about a third of the time of a figure (0.05-0.1 s each, paid six times a run).
STANDARD_MARGINS_IN = (1.0, 0.25, 0.6, 0.6, 0.0)


def _save(fig, path: Path, margins_in: tuple[float, float, float, float, float] | None = None) -> str:
    if margins_in is None:
        fig.tight_layout()
    else:
        left, right, bottom, top, gap = margins_in
        w, h = fig.get_size_inches()
        rows = max(1, len(fig.axes))  # stacked panels, one axes each (no twins)
        axes_h = (h - bottom - top - gap * (rows - 1)) / rows
        fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                            hspace=gap / axes_h if rows > 1 else 0.2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _title(ax, title: str, subtitle: str = "") -> None:
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)


def _legend(ax, *args, **kw) -> None:
    """A legend, or none when nothing was drawn with a label (a run with no ok operation): matplotlib
    would warn on stderr, which reads as an error to a user."""
    if args or ax.get_legend_handles_labels()[0]:
        ax.legend(*args, **kw)


def latency_raw(history: list[dict], path: Path, shade: Callable, subtitle: str = "") -> str:
    """Each operation as a dot: invoke time against latency, coloured by how it ended."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    shade(ax)
    pts: dict[str, tuple[list, list]] = {k: ([], []) for k in COLORS}
    for inv, comp in pairs(history):
        if comp is None:
            continue
        pts[comp["type"]][0].append(inv["time"] / 1e9)
        pts[comp["type"]][1].append(max(comp["time"] - inv["time"], 1) / 1e6)
    for kind, (x, y) in pts.items():
        if x:
            ax.scatter(x, y, s=3, alpha=0.5, color=COLORS[kind], label=f"{kind} ({len(x)})", rasterized=True)
    ax.set_yscale("log")
    ax.set_xlabel("invoke time (simulated s)")
    ax.set_ylabel("latency (ms, log scale)")
    _title(ax, "Latency of every operation", subtitle)
    _legend(ax, loc="upper right", fontsize=8, markerscale=3)
    ax.grid(alpha=0.3)
    return _save(fig, path, STANDARD_MARGINS_IN)


def latency_quantiles(history: list[dict], end_ns: int, path: Path, shade: Callable, subtitle: str = "") -> str:
    """p50 / p95 / p99 / max of ok latency per time bucket."""
    t, lat = M.latencies(history)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    shade(ax)
    if len(t):
        nb = min(100, max(5, int(end_ns / 1e9)))
        edges = np.linspace(0, end_ns, nb + 1)
        idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, nb - 1)
        mids = (edges[:-1] + edges[1:]) / 2 / 1e9
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", "-."), ("max", ":")):
            ys = []
            for b in range(nb):
                sel = lat[idx == b]
                if len(sel) == 0:
                    ys.append(np.nan)
                else:
                    ys.append((sel.max() if q == "max" else np.percentile(sel, M.QUANTILES[q])) / 1e6)
            ax.plot(mids, ys, style, label=q)
        ax.set_yscale("log")
    ax.set_xlabel("invoke time (simulated s)")
    ax.set_ylabel("latency of ok operations (ms, log scale)")
    _title(ax, "Latency quantiles over time", subtitle)
    _legend(ax, loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, STANDARD_MARGINS_IN)


def rate(history: list[dict], end_ns: int, path: Path, shade: Callable, subtitle: str = "") -> str:
    """Completions per second by outcome."""
    series = M.throughput_series(history, end_ns, bucket_s=max(0.1, end_ns / 1e9 / 200))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    shade(ax)
    for kind in ("ok", "fail", "info"):
        if series[kind].any():
            ax.step(series["t_s"], series[kind], where="post", color=COLORS[kind], label=kind)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("completions per second")
    _title(ax, "Throughput by outcome", subtitle)
    _legend(ax, loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, STANDARD_MARGINS_IN)


def standard(history: list[dict], end_ns: int, folder: Path, windows, subtitle: str = "") -> list[str]:
    shade = shader(windows)
    return [latency_raw(history, folder / "latency-raw.png", shade, subtitle),
            latency_quantiles(history, end_ns, folder / "latency-quantiles.png", shade, subtitle),
            rate(history, end_ns, folder / "rate.png", shade, subtitle)]


def compare(runs: list[dict], histories: list[list[dict]], path: Path) -> str:
    """Overlaid latency CDFs, throughput and verdicts of several runs in one figure."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [2, 2, 1.2]})
    ax_cdf, ax_rate, ax_v = axes
    labels = []
    for r, hist in zip(runs, histories):
        label = r["label"]
        labels.append(label)
        _, lat = M.latencies(hist)
        if len(lat):
            xs = np.sort(lat / 1e6)
            ax_cdf.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=label)
        end_ns = int((r["manifest"].get("end_time_s") or 1) * 1e9)
        s = M.throughput_series(hist, end_ns, bucket_s=max(0.1, end_ns / 1e9 / 100))
        ax_rate.plot(s["t_s"], s["ok"], label=label)
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("latency of ok operations (ms, log scale)")
    ax_cdf.set_ylabel("fraction of operations")
    ax_cdf.set_title("Latency CDF", fontsize=10)
    ax_cdf.grid(alpha=0.3)
    _legend(ax_cdf, fontsize=8)
    ax_rate.set_xlabel("simulated time (s)")
    ax_rate.set_ylabel("ok completions per second")
    ax_rate.set_title("Throughput", fontsize=10)
    ax_rate.grid(alpha=0.3)
    verdict_color = {True: "#2ca02c", False: "#d62728", "unknown": "#ff7f0e"}
    y = np.arange(len(runs))
    vals = [r["metrics"].get("valid", "unknown") for r in runs]
    ax_v.barh(y, [1] * len(runs), color=[verdict_color.get(v, "#999999") for v in vals])
    for i, v in enumerate(vals):
        ax_v.text(0.5, i, {True: "valid", False: "INVALID"}.get(v, str(v)), ha="center", va="center", color="white",
                  fontweight="bold")
    ax_v.set_yticks(y, labels, fontsize=8)
    ax_v.set_xticks([])
    ax_v.set_title("Verdict", fontsize=10)
    ax_v.invert_yaxis()
    return _save(fig, path)


def compare_sweeps(points: list[dict], path: Path) -> str:
    """Sweeps side by side, a line or bar per grid point: the CDF over seeds of each run's p99 latency and of
    its throughput, and the verdict counts."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [2, 2, 1.4]})
    for ax, key, xlabel in ((axes[0], "p99s", "p99 latency of a run (ms, log scale)"),
                            (axes[1], "throughputs", "throughput of a run (ok ops/s)")):
        for pt in points:
            xs = pt[key]
            if xs:
                ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=f"{pt['label']} ({len(xs)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of runs")
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=7)
    axes[0].set_xscale("log")
    axes[0].set_title("p99 latency across seeds", fontsize=10)
    axes[1].set_title("Throughput across seeds", fontsize=10)
    y = np.arange(len(points))
    ok = np.array([p["valid"] for p in points])
    bad = np.array([p["invalid"] for p in points])
    unk = np.array([p["unknown"] for p in points])
    axes[2].barh(y, ok, color="#2ca02c", label="valid")
    axes[2].barh(y, bad, left=ok, color=COLORS["fail"], label="invalid")
    axes[2].barh(y, unk, left=ok + bad, color=COLORS["info"], label="unknown")
    axes[2].set_yticks(y, [p["label"] for p in points], fontsize=7)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("runs")
    axes[2].set_title("Verdicts", fontsize=10)
    _legend(axes[2], fontsize=7)
    return _save(fig, path)


def compare_hunts(hunts: list[tuple[str, list[dict]]], path: Path) -> str:
    """Hunts side by side: distinct failures found and coverage features reached, against runs and CPU seconds."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharey="row")
    for i, (label, rows) in enumerate(hunts):
        color = f"C{i % 10}"
        runs = np.arange(1, len(rows) + 1, dtype=float)
        cpu = np.cumsum([r["cpu_s"] for r in rows])
        found = np.array([r["failures_so_far"] for r in rows], dtype=float)
        feats = np.cumsum([r["new_features"] for r in rows])
        for col, x in ((0, runs), (1, cpu)):
            if len(x):
                axes[0][col].step(x, found, where="post", color=color, lw=2, label=label)
                axes[1][col].plot(x, feats, color=color, lw=1.2, label=label)
    for col, xlabel in ((0, "runs"), (1, "CPU seconds")):
        axes[1][col].set_xlabel(xlabel)
        for row in (0, 1):
            axes[row][col].grid(alpha=0.3)
    axes[0][0].set_ylabel("distinct failures found")
    axes[0][0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1][0].set_ylabel("coverage features reached")
    _legend(axes[0][0], fontsize=8, loc="upper left")
    axes[0][0].set_title("Failures against runs", fontsize=10)
    axes[0][1].set_title("Failures against CPU seconds", fontsize=10)
    return _save(fig, path)


def summary(rows: list[dict], grid_keys: list[str], path: Path, title: str) -> str:
    """A sweep at a glance: p99 latency and throughput per grid point (seeds as dots), verdict counts."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in grid_keys), []).append(row)
    keys = list(groups)
    names = [", ".join(f"{k}={v}" for k, v in zip(grid_keys, key)) or "all runs" for key in keys]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, metric, label in ((axes[0], "latency_p99_ms", "p99 latency (ms)"),
                              (axes[1], "throughput_ops_s", "throughput (ok ops/s)")):
        for i, key in enumerate(keys):
            ys = [r[metric] for r in groups[key] if r.get(metric) not in (None, "")]
            ax.scatter([i] * len(ys), ys, s=12, alpha=0.6)
            if ys:
                ax.plot([i - 0.25, i + 0.25], [np.median(ys)] * 2, color="black")
        ax.set_xticks(range(len(keys)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_title(label + " per seed (bar: median)", fontsize=10)
    ok = [sum(1 for r in groups[k] if r["valid"] in (True, "True")) for k in keys]
    bad = [sum(1 for r in groups[k] if r["valid"] in (False, "False")) for k in keys]
    unk = [len(groups[k]) - o - b for k, o, b in zip(keys, ok, bad)]
    x = np.arange(len(keys))
    axes[2].bar(x, ok, color="#2ca02c", label="valid")
    axes[2].bar(x, bad, bottom=ok, color="#d62728", label="invalid")
    axes[2].bar(x, unk, bottom=np.array(ok) + np.array(bad), color="#ff7f0e", label="unknown")
    axes[2].set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    axes[2].set_ylabel("runs")
    axes[2].set_title("Verdicts", fontsize=10)
    _legend(axes[2], fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def panels(path: Path, title: str, rows: list[dict], shade: Callable | None = None, subtitle: str = "",
           margins_in: tuple[float, float, float, float, float] | None = None) -> str:
    """Stacked panels of named curves in one PNG, for a scenario's own figures.

    Each row: ``{"series": [(label, xs, ys), ...], "ylabel": str}`` and optionally ``"xlabel"``,
    ``"log"`` (log y), ``"logx"``, ``"step"`` (step lines), ``"marker"`` (a matplotlib marker on
    each point, for curves of a few measured points), ``"legend"`` (its place, "upper right" by
    default) and ``"time"`` (default True: shade the fault windows with ``shade``, x in simulated
    seconds). ``margins_in`` (left, right, bottom, top, gap, inches) places the axes without
    ``tight_layout``'s measuring, for labels known to fit.
    """
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 + 2.4 * len(rows)), squeeze=False,
                             sharex=all(r.get("time", True) for r in rows))
    for ax, row in zip(axes[:, 0], rows):
        if shade is not None and row.get("time", True):
            shade(ax)
        for label, xs, ys in row["series"]:
            if row.get("step"):
                ax.step(xs, ys, where="post", label=label)
            else:
                ax.plot(xs, ys, label=label, marker=row.get("marker"))
        if row.get("log"):
            ax.set_yscale("log")
        if row.get("logx"):
            ax.set_xscale("log")
        ax.set_ylabel(row.get("ylabel", ""))
        if row.get("xlabel"):
            ax.set_xlabel(row["xlabel"])
        if row["series"]:
            _legend(ax, loc=row.get("legend", "upper right"), fontsize=8)
        ax.grid(alpha=0.3)
    _title(axes[0, 0], title, subtitle)
    return _save(fig, path, margins_in)


def _plain_log_ticks(ax) -> None:
    """Label a log x axis with plain numbers (0.2, 0.5, 10, 20, 50...) and no crowded minor labels.
    Each label is its own value's shortest form: ScalarFormatter chose one count of decimals for
    the whole axis, so an axis reaching 10,000 labelled 0.2 and 0.5 as "0"."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_xlim()
    # Over more than three decades, 1-2-5 labels run into each other ("5000" met "10000").
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if 0 < lo and hi < lo * 1e3 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v < 1e5 else f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def cdf_panels(path: Path, title: str, panels: list[dict],
               margins_in: tuple[float, float, float, float, float] | None = None) -> str:
    """Stacked cumulative distributions, one panel per dict:
    ``{"title": str, "xlabel": str, "series": {label: [values...]}}``, and optionally ``"markers"``:
    points drawn over the curves (``{"x", "y", "label"}``, e.g. a paper's published figures).
    Infinite values (did not happen) count in the total but are not drawn, so a curve that never
    reaches 100% says so. ``margins_in``: as for :func:`panels`."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3.75 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        for label, values in panel["series"].items():
            values = sorted(values)
            if not values:
                continue
            xs = [v for v in values if np.isfinite(v)]
            ys = [100.0 * (i + 1) / len(values) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=label)
        for m in panel.get("markers", ()):  # published points to compare with: {"x", "y", "label", "marker"?}
            ax.plot([m["x"]], [m["y"]], linestyle="none", marker=m.get("marker", "D"), markersize=7,
                    markerfacecolor="none", markeredgewidth=1.5, color=m.get("color", "black"), label=m["label"])
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel("cumulative percent")
        ax.set_ylim(0, 100)
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax, fontsize=8, loc="best" if panel.get("markers") else "lower right")
        ax.set_title(panel.get("title", ""), fontsize=10)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path, margins_in)


def latency_and_spans(history: list[dict], spans: list[tuple[int, int, str, int]], lanes: list[str], path: Path,
                      shade: Callable, title: str, lane_label: str) -> str:
    """Every operation's latency on top; below, one lane per name with bars for its spans
    ``(start_ns, end_ns, lane, tag)``, coloured and labelled by tag (e.g. who led each term)."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    shade(ax1)
    pts: dict[str, tuple[list, list]] = {k: ([], []) for k in COLORS}
    for inv, comp in pairs(history):
        if comp is not None and comp["type"] in pts:
            pts[comp["type"]][0].append(inv["time"] / 1e9)
            pts[comp["type"]][1].append(max(comp["time"] - inv["time"], 1) / 1e6)
    for kind, (x, y) in pts.items():
        if x:
            ax1.scatter(x, y, s=2, color=COLORS[kind], label=kind, rasterized=True)
    ax1.set_yscale("log")
    ax1.set_ylabel("latency (ms, log scale)")
    _legend(ax1, loc="upper right", fontsize=7, markerscale=4)
    ax1.set_title(title, fontsize=10)
    ax1.grid(alpha=0.3)
    shade(ax2)
    row = {name: i for i, name in enumerate(lanes)}
    cmap = plt.get_cmap("tab10")
    end_s = max([s[1] for s in spans], default=1) / 1e9
    for t0, t1, lane, tag in spans:
        ax2.barh(row[lane], (t1 - t0) / 1e9, left=t0 / 1e9, height=0.6, color=cmap(tag % 10))
        if (t1 - t0) / 1e9 > end_s / 40:
            ax2.text(t0 / 1e9, row[lane], f" t{tag}", va="center", fontsize=6)
    ax2.set_yticks(range(len(lanes)), lanes)
    ax2.set_xlabel("simulated time (s)")
    ax2.set_ylabel(lane_label)
    return _save(fig, path)


def component_graph(nodes: list[dict], edges: list[tuple[str, str, str]], path: Path, title: str,
                    subtitle: str = "") -> str:
    """A directed graph of components, left to right by ``layer``: each node a box with its
    ``label`` (several lines allowed), each edge an arrow with an optional label.

    ``nodes``: ``[{"id": "lb", "label": "lb\\nutil 0.42", "layer": 0}, ...]``."""
    import networkx as nx

    g = nx.DiGraph()
    for n in nodes:
        g.add_node(n["id"], layer=n["layer"])
    for a, b, _ in edges:
        g.add_edge(a, b)
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
    layers = max((n["layer"] for n in nodes), default=0) + 1
    tall = max((sum(1 for n in nodes if n["layer"] == k) for k in range(layers)), default=1)
    fig, ax = plt.subplots(figsize=(max(6.0, 3.2 * layers), max(3.5, 1.6 * tall + 1)))
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=18, node_size=6000, edge_color="#555555")
    labels = {(a, b): lab for a, b, lab in edges if lab}
    if labels:
        nx.draw_networkx_edge_labels(g, pos, edge_labels=labels, ax=ax, font_size=8)
    for n in nodes:
        x, y = pos[n["id"]]
        ax.text(x, y, n["label"], ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.5", "fc": n.get("color", "#dbe9f6"), "ec": "#1f77b4"})
    ax.margins(0.25)
    ax.set_axis_off()
    _title(ax, title, subtitle)
    return _save(fig, path)


def hunt(rows: list[dict], path: Path, title: str) -> str:
    """A hunt's progress: distinct failures found and coverage features reached, against runs and
    against CPU seconds (so two hunts with different run lengths compare fairly)."""
    runs = np.array([r["run"] for r in rows], dtype=float)
    cpu = np.cumsum([float(r.get("cpu_s") or 0.0) for r in rows])
    found = np.array([r.get("failures_so_far", 0) for r in rows], dtype=float)
    feats = np.cumsum([int(r.get("new_features") or 0) for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, x, xlabel in ((axes[0], runs, "runs"), (axes[1], cpu, "CPU seconds")):
        if len(x):
            ax.step(x, found, where="post", color=COLORS["fail"], lw=2, label="distinct failures found")
            bad = [i for i, r in enumerate(rows) if r.get("valid") is False]
            ax.plot(x[bad], found[bad], "x", color=COLORS["fail"], ms=6, label="failing run")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("distinct failures")
        ax.set_ylim(bottom=0, top=max(1.0, float(found.max()) if len(found) else 1.0) * 1.15)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        if len(x):
            twin.plot(x, feats, color=COLORS["ok"], lw=1.2, label="coverage features")
        twin.set_ylabel("coverage features reached", color=COLORS["ok"])
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        _legend(ax, lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    n_found = int(found.max()) if len(found) else 0
    _title(axes[0], title, f"{len(rows)} runs, {n_found} distinct failure{'' if n_found == 1 else 's'}")
    return _save(fig, path)
