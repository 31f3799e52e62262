"""Scenario figures for metrics.json: elections, time to elect after a leader is lost (a crash, a
pause, a step-down or a partition that leaves it without a majority, until the next leader), the
Figure 16 election time when a run crashes its leader on purpose, and latency by operation."""

from __future__ import annotations

import numpy as np

from simulator import metrics as M


def leader_spans(run) -> list[tuple[int, int, str, int]]:
    """(start_ns, end_ns, node, term) for each leadership: ends at step-down, crash or the next leader."""
    events = []
    for r in run.records:
        if r["kind"] in ("leader", "step_down"):
            events.append((r["time_ns"], r["kind"], r["node"], r["term"]))
    for f in run.faults:
        if f.get("action") in ("crash", "pause"):
            events.append((f["time_ns"], "lost", f["node"], -1))
    events.sort(key=lambda e: e[0])
    spans = []
    open_: dict[str, tuple[int, int]] = {}
    for t, kind, node, term in events:
        if kind == "leader":
            for other in sorted(open_):  # a newer leader ends older reigns (as far as the cluster knows)
                if open_[other][1] < term:
                    t0, tt = open_.pop(other)
                    spans.append((t0, t, other, tt))
            open_[node] = (t, term)
        elif node in open_:
            t0, tt = open_.pop(node)
            spans.append((t0, t, node, tt))
    for node, (t0, tt) in sorted(open_.items()):
        spans.append((t0, run.end_ns, node, tt))
    return sorted(spans)


def election_figures(run) -> dict:
    leaders = sorted((r["time_ns"], r["node"], r["term"]) for r in run.records if r["kind"] == "leader")
    losses = sorted([(r["time_ns"], r["node"]) for r in run.records if r["kind"] == "step_down"]
                    + [(f["time_ns"], f["node"]) for f in run.faults if f.get("action") in ("crash", "pause")])
    majority = run.cfg.node_count // 2 + 1
    cuts = [(f["time_ns"], f["groups"]) for f in run.faults if f.get("action") == "partition" and f.get("groups")]
    elect_ms = []
    for (t_prev, node_prev, _), (t_new, _, _) in zip(leaders, leaders[1:]):
        cands = [t for t, n in losses if n == node_prev and t_prev <= t <= t_new]
        # a partition loses the leader only if it leaves it without a majority
        cands += [t for t, groups in cuts if t_prev <= t <= t_new
                  and all(len(g) < majority for g in groups if node_prev in g)]
        if cands:
            elect_ms.append((t_new - min(cands)) / 1e6)
    out = {"elections": len(leaders), "leaders_distinct": len({n for _, n, _ in leaders})}
    out.update(figure16_time(run))
    if elect_ms:
        a = np.asarray(elect_ms)
        out.update({"elect_after_loss_p50_ms": round(float(np.percentile(a, 50)), 3),
                    "elect_after_loss_max_ms": round(float(a.max()), 3), "leader_losses_measured": len(a)})
    started: dict[int, tuple[str, int]] = {}
    lat: dict[str, list[int]] = {"write": [], "cas": [], "read": []}
    for ev in run.history:  # one pass: latency of ok operations by function
        if ev["type"] == "invoke":
            started[ev["process"]] = (ev["f"], ev["time"])
        else:
            f, t0 = started.pop(ev["process"], (None, 0))
            if ev["type"] == "ok" and f in lat:
                lat[f].append(ev["time"] - t0)
    for f, values in lat.items():
        s = M.latency_summary_ms(np.asarray(values, dtype=np.int64))
        out[f"{f}_latency_p50_ms"] = s["p50"]
        out[f"{f}_latency_p99_ms"] = s["p99"]
    return out


def figure16_time(run) -> dict:
    """Figure 16's measure: from the crash of the leader (the ``crash_leader`` fault) until a leader
    of a later term has reached every other surviving server with its first message (``follow``
    records). With very short timeouts the first leaders may be deposed before that: the earliest
    leader to reach everyone counts. Servers down before the crash are not counted as survivors."""
    crash = next((f for f in run.faults if f.get("nemesis") == "crash-leader"), None)
    if crash is None:
        return {}
    dead, t0 = crash["node"], crash["time_ns"]
    old_term = max((r["term"] for r in run.records if r["kind"] == "leader" and r["node"] == dead
                    and r["time_ns"] <= t0), default=0)
    # servers already down when the leader crashed (a "two servers down" trial) are not waited for
    last_event: dict[str, str] = {}
    for f in sorted((f for f in run.faults if f.get("action") in ("crash", "restart") and f["time_ns"] < t0),
                    key=lambda f: f["time_ns"]):
        last_event[f["node"]] = f["action"]
    survivors = [f"n{i + 1}" for i in range(run.cfg.node_count)
                 if f"n{i + 1}" != dead and last_event.get(f"n{i + 1}") != "crash"]
    leaders = {r["term"]: r["node"] for r in run.records
               if r["kind"] == "leader" and r["time_ns"] > t0 and r["term"] > old_term}
    reached: dict[int, dict[str, int]] = {}
    for r in run.records:
        if r["kind"] == "follow" and r["term"] in leaders and r["time_ns"] > t0:
            reached.setdefault(r["term"], {}).setdefault(r["node"], r["time_ns"])
    best = None
    for term, leader in leaders.items():
        got = reached.get(term, {})
        others = [n for n in survivors if n != leader]
        if all(n in got for n in others):
            t = max(got[n] for n in others)
            best = t if best is None else min(best, t)
    return {"election_ms": None if best is None else round((best - t0) / 1e6, 3)}
