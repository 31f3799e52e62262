"""Seeded nemesis generators in the Jepsen style.

Every ``nemesis_interval_s`` the schedule alternates between starting a fault and stopping it,
choosing among the requested kinds with the ``faults`` stream. Faults never overlap, so each stop
pairs with the start before it, and recovery is measured per fault.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..engine.errors import UsageError

NEMESES = (
    "partition-random-halves", "partition-isolate-one", "partition-majorities-ring", "partition-bridge",
    "partition-oneway", "crash", "pause", "clock-bump", "clock-strobe", "clock-drift", "slow-link", "flaky-link",
)


def nemesis_plan(kinds: tuple[str, ...], servers: list[str], rng: np.random.Generator,
                 interval_ns: int, end_ns: int, custom: dict[str, Callable] | None = None) -> list[dict]:
    """Alternate start/stop every ``interval_ns`` until ``end_ns``, one random kind per cycle."""
    plan: list[dict] = []
    if not kinds or not servers:
        return plan
    t = interval_ns
    while t + interval_ns <= end_ns:
        kind = kinds[int(rng.integers(len(kinds)))] if len(kinds) > 1 else kinds[0]
        if custom and kind in custom:
            start, stop = custom[kind](list(servers), rng, interval_ns)
        else:
            start, stop = _fault(kind, list(servers), rng, interval_ns)
        for act in start:
            plan.append({"at_ns": t, **act, "nemesis": kind, "phase": "start"})
        for act in stop:
            plan.append({"at_ns": t + interval_ns, **act, "nemesis": kind, "phase": "stop"})
        t += 2 * interval_ns
    return plan


def _fault(kind: str, nodes: list[str], rng: np.random.Generator, interval_ns: int) -> tuple[list[dict], list[dict]]:
    n = len(nodes)
    pick = nodes[int(rng.integers(n))]
    heal = [{"action": "heal"}]
    if kind == "partition-random-halves":
        order = [nodes[i] for i in rng.permutation(n)]
        return [{"action": "partition", "groups": [order[: n // 2], order[n // 2:]]}], heal
    if kind == "partition-isolate-one":
        return [{"action": "partition", "groups": [[pick], [x for x in nodes if x != pick]]}], heal
    if kind == "partition-majorities-ring":
        order = [nodes[i] for i in rng.permutation(n)]
        reach = max(1, (n // 2 + 1) // 2)  # each node sees itself and its nearest ring neighbours: a majority
        pairs = []
        for i, a in enumerate(order):
            for j, b in enumerate(order):
                d = min((i - j) % n, (j - i) % n)
                if d > reach:
                    pairs.append([a, b])
        return [{"action": "block", "pairs": pairs}], heal
    if kind == "partition-bridge":
        order = [nodes[i] for i in rng.permutation(n)]
        bridge = order[n // 2]
        left, right = order[: n // 2], order[n // 2 + 1:]
        pairs = [[a, b] for a in left for b in right] + [[b, a] for a in left for b in right]
        return [{"action": "block", "pairs": pairs, "bridge": bridge}], heal
    if kind == "partition-oneway":
        return [{"action": "partition_oneway", "srcs": [x for x in nodes if x != pick], "dsts": [pick]}], heal
    if kind == "crash":
        return [{"action": "crash", "node": pick}], [{"action": "restart", "node": pick}]
    if kind == "pause":
        return [{"action": "pause", "node": pick}], [{"action": "resume", "node": pick}]
    if kind == "clock-bump":
        delta = float(rng.uniform(100, 1000)) * (1 if rng.random() < 0.5 else -1)
        return [{"action": "clock_bump", "node": pick, "delta_ms": round(delta, 3)}], [{"action": "clock_reset", "node": pick}]
    if kind == "clock-strobe":
        delta = float(rng.uniform(100, 500))
        return ([{"action": "clock_strobe", "node": pick, "delta_ms": round(delta, 3), "period_ms": 10.0,
                  "duration_ms": interval_ns / 1e6}], [{"action": "clock_reset", "node": pick}])
    if kind == "clock-drift":
        ppm = float(rng.uniform(1000, 20000)) * (1 if rng.random() < 0.5 else -1)
        return [{"action": "clock_drift", "node": pick, "ppm": round(ppm, 1)}], [{"action": "clock_reset", "node": pick}]
    if kind == "slow-link":
        return [{"action": "slow", "factor": 10.0}], [{"action": "reset_links"}]
    if kind == "flaky-link":
        pairs = [[pick, x] for x in nodes if x != pick] + [[x, pick] for x in nodes if x != pick]
        return [{"action": "flaky", "pairs": pairs, "p": 0.5}], [{"action": "reset_links"}]
    raise UsageError(f"unknown nemesis {kind!r}: accepted: {', '.join(NEMESES)}")
