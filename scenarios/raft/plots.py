"""The leader timeline: who led each term, drawn under the latency of every operation
(by :func:`simulator.reports.plots.latency_and_spans`; matplotlib lives only in simulator.reports.plots)."""

from __future__ import annotations

from pathlib import Path

from simulator import plots

from .figures import leader_spans


def leader_timeline(run, folder: Path, shade) -> str:
    spans = leader_spans(run)
    lanes = sorted({s[2] for s in spans} | {f"n{i + 1}" for i in range(run.cfg.node_count)}, key=lambda n: int(n[1:]))
    return plots.latency_and_spans(run.history, spans, lanes, Path(folder) / "leader-timeline.png", shade,
                                   f"raft seed {run.cfg.seed}: operation latency and the leader of each term", "leader")
