"""The Injector: applies fault actions to a simulation at their times and remembers them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .plan import normalise

if TYPE_CHECKING:
    from ..engine.kernel import Simulation


class Injector:
    """Applies fault actions to a simulation at their times and remembers what it applied."""

    def __init__(self, sim: "Simulation", servers: list[str]):
        self.sim = sim
        self.servers = list(servers)
        self.applied: list[dict] = []
        self._extra: dict[str, Callable[[dict], None]] = {}
        self._on_final_heal: list[Callable[[], None]] = []
        # Nodes down because they left (a scenario's membership change, churn), not by a fault:
        # the final heal leaves them as they are (see final_heal).
        self.departed: set[str] = set()
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
        """End every fault: heal the network, restart and resume nodes, reset clocks. A node in
        ``departed`` (it left, as churn makes nodes leave) is not a fault's: it stays down, and comes
        back when and if its scenario brings it back. Restarting every departed node at once would
        be a join storm no real network sees (at 100,000 nodes under an hour's churn, tens of
        thousands of joins in one instant)."""
        sim, net = self.sim, self.sim.network
        net.heal()
        net.reset_links()
        for node_id in sorted(sim.hosts):
            host = sim.hosts[node_id]
            if host.clock is not None:
                host.clock.reset(sim.now)
            if host.paused:
                host.resume()
            if not host.up and node_id not in self.departed:
                host.restart()
        for fn in self._on_final_heal:
            fn()

    def on_final_heal(self, fn: Callable[[], None]) -> None:
        """A scenario's own clean-up at the final heal (end a provider outage, say)."""
        self._on_final_heal.append(fn)
