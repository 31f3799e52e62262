"""Faults of this scenario: coordinator crashes at phase boundaries, and its nemeses.

A phase-boundary crash is a *trap*: the verb ``crash_coordinator`` arms it (``node`` is a
coordinator id, or ``"any"`` for whichever coordinator gets there first), and the next time that
coordinator reaches the boundary ``phase`` it stops dead: the handler returns at once and the
host crashes at the same instant, so messages sent before the boundary are in flight and none
after it leave. ``recover_coordinator`` restarts the node the trap crashed (or just disarms it).

Boundaries, in protocol order (both protocols):

``before-prepare``         the coordinator heard the initiating RM, before it sends any Prepare
``after-some-votes``       Prepare sent, some votes in, not all
``after-decision-logged``  2PC: the commit record is forced, nothing sent yet;
                           Paxos Commit: the leader learned the outcome, nothing sent yet
``mid-decision``           the decision went to the first participant only

Nemeses (``--nemesis``): ``coordinator-crash`` (a trap at a random boundary, then recovery),
``rm-crash`` (a random resource manager crashes, sometimes losing unsynced writes),
``isolate-coordinator`` (tm1 cut from every other server), ``lossy-network`` (5% message loss).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator import Simulation

PHASES = ("before-prepare", "after-some-votes", "after-decision-logged", "mid-decision")


class Traps:
    """Armed phase-boundary crashes, shared by the coordinators of one run."""

    def __init__(self, sim: "Simulation"):
        self.sim = sim
        self.armed: dict[str, str] = {}   # node id or "any" -> phase
        self.sprung: dict[str, str] = {}  # arming key -> node the trap crashed

    def arm(self, act: dict) -> None:
        phase = act["phase_at"]
        if phase not in PHASES:
            raise ValueError(f"unknown coordinator phase {phase!r}: accepted: {', '.join(PHASES)}")
        self.armed[act["node"]] = phase
        self.sprung.pop(act["node"], None)

    def recover(self, act: dict) -> None:
        key = act["node"]
        self.armed.pop(key, None)
        node = self.sprung.pop(key, None)
        if node is not None:
            self.sim.hosts[node].restart()

    def disarm_all(self) -> None:
        self.armed.clear()
        self.sprung.clear()

    def hit(self, node: str, phase: str) -> bool:
        """Called by a coordinator at each boundary; True means: stop now, you are crashing."""
        key = node if self.armed.get(node) == phase else ("any" if self.armed.get("any") == phase else None)
        if key is None:
            return False
        del self.armed[key]
        self.sprung[key] = node
        self.sim.record(node, "coordinator-crash", {"phase": phase})
        self.sim.schedule(0, self._crash, node)
        return True

    def _crash(self, node: str, _b=None) -> None:
        self.sim.hosts[node].crash()


def install(sim: "Simulation", traps: Traps) -> None:
    """Register this scenario's fault verbs on the run's injector."""
    sim.faults.register("crash_coordinator", traps.arm)
    sim.faults.register("recover_coordinator", traps.recover)
    sim.faults.on_final_heal(traps.disarm_all)


FAULT_VERBS = {"crash_coordinator": ("node", "phase_at"), "recover_coordinator": ("node",)}


def coordinator_crash(servers, rng, interval_ns):
    phase = PHASES[int(rng.integers(len(PHASES)))]
    return ([{"action": "crash_coordinator", "node": "any", "phase_at": phase}],
            [{"action": "recover_coordinator", "node": "any"}])


def rm_crash(servers, rng, interval_ns):
    rms = [s for s in servers if s.startswith("rm")]
    node = rms[int(rng.integers(len(rms)))]
    lose = bool(rng.random() < 0.5)
    return [{"action": "crash", "node": node, "lose_unsynced": lose}], [{"action": "restart", "node": node}]


def isolate_coordinator(servers, rng, interval_ns):
    return ([{"action": "partition", "groups": [["tm1"], [s for s in servers if s != "tm1"]]}],
            [{"action": "heal"}])


def lossy_network(servers, rng, interval_ns):
    return [{"action": "set_loss", "p": 0.05}], [{"action": "set_loss", "p": 0.0}]


NEMESES = {
    "coordinator-crash": coordinator_crash,
    "rm-crash": rm_crash,
    "isolate-coordinator": isolate_coordinator,
    "lossy-network": lossy_network,
}
