"""Faults as data: actions, timed plans, and seeded nemesis generators in the Jepsen style.

An action is a dict: ``{"at_ns": 10_000_000_000, "action": "partition", "groups": [["n1"], ["n2", "n3"]]}``
plus, for generated ones, ``"nemesis"`` (which generator) and ``"phase"`` (``start``/``stop``).
A plan is a list of actions sorted by time; the :class:`Injector` applies them at their times and
keeps every applied action for ``faults.jsonl`` and for shading plots.

Verbs (``action`` values) and their arguments:

=================  =================================================================
partition          groups: lists of node ids that can talk only within their group
partition_oneway   srcs, dsts: messages from srcs to dsts are lost
block              pairs: directed (src, dst) pairs that are cut
isolate            node: cut from every other server
heal               (none): remove every partition
slow               factor: multiply all latencies (1 restores)
set_loss           p: drop each message with probability p
set_duplicate      p: duplicate each message with probability p
flaky              pairs, p: loss on the given directed links only
reset_links        (none): undo slow and flaky
crash              node, lose_unsynced (default false)
restart            node
pause / resume     node
clock_bump         node, delta_ms
clock_drift        node, ppm
clock_strobe       node, delta_ms, period_ms, duration_ms: flip the offset every period
clock_reset        node: back to true time
=================  =================================================================

Scenarios add verbs of their own (a provider outage, a coordinator crash at a phase boundary)
with :meth:`Injector.register`.

Nemeses (``--nemesis a,b``): every ``nemesis_interval_s`` the schedule alternates between starting
a fault and stopping it, choosing among the requested kinds with the ``faults`` stream. Faults never
overlap, so each stop pairs with the start before it, and recovery is measured per fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .scenario import UsageError

if TYPE_CHECKING:
    from .kernel import Simulation

NEMESES = (
    "partition-random-halves", "partition-isolate-one", "partition-majorities-ring", "partition-bridge",
    "partition-oneway", "crash", "pause", "clock-bump", "clock-strobe", "clock-drift", "slow-link", "flaky-link",
)

VERBS: dict[str, tuple[str, ...]] = {
    "partition": ("groups",), "partition_oneway": ("srcs", "dsts"), "block": ("pairs",),
    "isolate": ("node",), "heal": (), "slow": ("factor",), "set_loss": ("p",), "set_duplicate": ("p",),
    "flaky": ("pairs", "p"), "reset_links": (), "crash": ("node",), "restart": ("node",),
    "pause": ("node",), "resume": ("node",), "clock_bump": ("node", "delta_ms"),
    "clock_drift": ("node", "ppm"), "clock_strobe": ("node", "delta_ms", "period_ms", "duration_ms"),
    "clock_reset": ("node",), "final_heal": (),
}


def validate_plan(plan: list[dict], extra_verbs: dict[str, tuple[str, ...]] | None = None) -> None:
    """Check a plan from a TOML file: known verbs, required arguments, a time for each."""
    verbs = {**VERBS, **(extra_verbs or {})}
    for i, act in enumerate(plan):
        if not isinstance(act, dict):
            raise UsageError(f"fault {i + 1} is not a table: write [[faults]] at_s = ..., action = ...")
        name = act.get("action")
        if name not in verbs:
            raise UsageError(f"unknown fault action {name!r}: accepted: {', '.join(sorted(verbs))}")
        if "at_s" not in act and "at_ns" not in act:
            raise UsageError(f"fault {i + 1} ({name}) has no time: give at_s")
        at = act.get("at_s", act.get("at_ns"))
        if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
            raise UsageError(f"bad time {at!r} for fault {i + 1}: expected a number >= 0")
        for arg in verbs[name]:
            if arg not in act:
                raise UsageError(f"fault {i + 1} ({name}) lacks {arg!r}: needs {', '.join(verbs[name])}")


def normalise(plan: list[dict]) -> list[dict]:
    """Times in ns, sorted by time (stably: equal times keep file order)."""
    out = []
    for act in plan:
        act = dict(act)
        if "at_s" in act:
            act["at_ns"] = int(round(float(act.pop("at_s")) * 1e9))
        out.append(act)
    return sorted(out, key=lambda a: a["at_ns"])


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


class Injector:
    """Applies fault actions to a simulation at their times and remembers what it applied."""

    def __init__(self, sim: "Simulation", servers: list[str]):
        self.sim = sim
        self.servers = list(servers)
        self.applied: list[dict] = []
        self._extra: dict[str, Callable[[dict], None]] = {}
        self._on_final_heal: list[Callable[[], None]] = []
        sim.faults = self

    def register(self, verb: str, fn: Callable[[dict], None]) -> None:
        """A scenario's own fault verb: ``fn(action)`` applies it."""
        self._extra[verb] = fn

    def schedule(self, plan: list[dict]) -> None:
        for act in normalise(plan):
            self.sim.at(act["at_ns"], self._apply_now, act)

    def _apply_now(self, act: dict, _b=None) -> None:
        self.apply(act)

    def apply(self, act: dict) -> None:
        """Apply one action now and record it (with the time it took effect)."""
        sim, net = self.sim, self.sim.network
        verb = act["action"]
        rec = {k: v for k, v in act.items() if k != "at_ns"}
        rec = {"time_ns": sim.now, **rec}
        self.applied.append(rec)
        sim.trace_event("fault", verb, {k: v for k, v in act.items() if k not in ("at_ns",)})
        if verb in self._extra:
            self._extra[verb](act)
        elif verb == "partition":
            net.partition(act["groups"])
        elif verb == "partition_oneway":
            net.partition_oneway(act["srcs"], act["dsts"])
        elif verb == "block":
            net.block([tuple(p) for p in act["pairs"]])
        elif verb == "isolate":
            net.isolate(act["node"], self.servers)
        elif verb == "heal":
            net.heal()
        elif verb == "slow":
            net.slow(float(act["factor"]))
        elif verb == "set_loss":
            net.set_loss(float(act["p"]))
        elif verb == "set_duplicate":
            net.set_duplicate(float(act["p"]))
        elif verb == "flaky":
            net.flaky([tuple(p) for p in act["pairs"]], float(act["p"]))
        elif verb == "reset_links":
            net.reset_links()
        elif verb == "crash":
            sim.hosts[act["node"]].crash(bool(act.get("lose_unsynced", False)))
        elif verb == "restart":
            sim.hosts[act["node"]].restart()
        elif verb == "pause":
            sim.hosts[act["node"]].pause()
        elif verb == "resume":
            sim.hosts[act["node"]].resume()
        elif verb == "clock_bump":
            sim.clock_of(act["node"]).bump(round(float(act["delta_ms"]) * 1e6))
        elif verb == "clock_drift":
            sim.clock_of(act["node"]).set_drift(float(act["ppm"]), sim.now)
        elif verb == "clock_strobe":
            self._strobe(act["node"], round(float(act["delta_ms"]) * 1e6), max(1, round(float(act["period_ms"]) * 1e6)),
                         sim.now + round(float(act["duration_ms"]) * 1e6), +1)
        elif verb == "clock_reset":
            node = act["node"]
            if sim.hosts[node].clock is not None:
                sim.hosts[node].clock.reset(sim.now)
        elif verb == "final_heal":
            self.final_heal()
        else:
            raise ValueError(f"unknown fault action {verb!r}")

    def _strobe(self, node: str, delta_ns: int, period_ns: int, until_ns: int, sign: int) -> None:
        """Flip the offset +delta, -delta, ... every period; end where it started."""
        sim = self.sim
        if sim.now >= until_ns:
            if sign < 0:  # the last flip was +delta: undo it
                sim.clock_of(node).bump(-delta_ns)
            return
        sim.clock_of(node).bump(sign * delta_ns)
        sim.schedule(period_ns, lambda a, b: self._strobe(node, delta_ns, period_ns, until_ns, -sign))

    def final_heal(self) -> None:
        """End every fault: heal the network, restart and resume nodes, reset clocks."""
        sim, net = self.sim, self.sim.network
        net.heal()
        net.reset_links()
        for node_id in sorted(sim.hosts):
            host = sim.hosts[node_id]
            if host.clock is not None:
                host.clock.reset(sim.now)
            if host.paused:
                host.resume()
            if not host.up:
                host.restart()
        for fn in self._on_final_heal:
            fn()

    def on_final_heal(self, fn: Callable[[], None]) -> None:
        """A scenario's own clean-up at the final heal (end a provider outage, say)."""
        self._on_final_heal.append(fn)


def windows(applied: list[dict], end_ns: int) -> list[tuple[int, int, str]]:
    """(start_ns, stop_ns, label) for every fault that started, for shading plots."""
    out = []
    open_: dict[str, tuple[int, str]] = {}
    for act in applied:
        label = act.get("nemesis") or act["action"]
        if act.get("phase") == "start":
            open_[label] = (act["time_ns"], label)
        elif act.get("phase") == "stop" and label in open_:
            t0, lab = open_.pop(label)
            out.append((t0, act["time_ns"], lab))
    for t0, lab in open_.values():
        out.append((t0, end_ns, lab))
    return sorted(out)
