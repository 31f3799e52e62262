"""The leader timeline: who led each term, drawn under the latency of every operation."""

from __future__ import annotations

from pathlib import Path

from simulator.history import pairs

from .figures import leader_spans


def leader_timeline(run, folder: Path, shade) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    shade(ax1)
    colors = {"ok": "#1f77b4", "fail": "#d62728", "info": "#ff7f0e"}
    pts = {k: ([], []) for k in colors}
    for inv, comp in pairs(run.history):
        if comp is not None and comp["type"] in pts:
            pts[comp["type"]][0].append(inv["time"] / 1e9)
            pts[comp["type"]][1].append(max(comp["time"] - inv["time"], 1) / 1e6)
    for k, (x, y) in pts.items():
        if x:
            ax1.scatter(x, y, s=2, color=colors[k], label=k, rasterized=True)
    ax1.set_yscale("log")
    ax1.set_ylabel("latency (ms)")
    ax1.legend(loc="upper right", fontsize=7, markerscale=4)
    ax1.set_title(f"raft seed {run.cfg.seed}: operation latency and the leader of each term", fontsize=10)
    shade(ax2)
    nodes = sorted({s[2] for s in leader_spans(run)} | {f"n{i + 1}" for i in range(run.cfg.node_count)},
                   key=lambda n: int(n[1:]))
    row = {n: i for i, n in enumerate(nodes)}
    cmap = plt.get_cmap("tab10")
    for t0, t1, node, term in leader_spans(run):
        ax2.barh(row[node], (t1 - t0) / 1e9, left=t0 / 1e9, height=0.6, color=cmap(term % 10))
        if (t1 - t0) / 1e9 > (run.end_ns / 1e9) / 40:
            ax2.text(t0 / 1e9, row[node], f" t{term}", va="center", fontsize=6)
    ax2.set_yticks(range(len(nodes)), nodes)
    ax2.set_xlabel("simulated time (s)")
    ax2.set_ylabel("leader")
    fig.tight_layout()
    path = Path(folder) / "leader-timeline.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
