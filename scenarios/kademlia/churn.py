"""Churn as a nemesis: nodes leave silently and come back, with measured session-time shapes.

During a ``churn`` window every node but the bootstrap lives a *session* drawn from
``churn_dist``: Weibull with shape ``weibull_shape`` (0.5 by default: Stutzbach and Rejaie, IMC
2006, measured session times in Kad and BitTorrent fitting a Weibull with shape about 0.5, many
short sessions and a long tail), exponential, or Pareto with tail index ``pareto_alpha``; each has
mean ``session_mean_s``. When a session ends the node crashes (leaving is silent: no goodbye
message). After a down time drawn from an exponential of mean ``downtime_mean_s`` it comes back,
with its old id (kept in its storage) with probability ``rejoin_old_id``, else as a new node with a
fresh id; either way it joins again through the bootstrap, and lives a new session. Leaves stop
at the window's end; returns already drawn still happen, during the run and after its final
heal alike: the final heal does not restart a node that left (``Injector.departed``), so the
departed come back one by one, as drawn, instead of all at once. Draws come from the stream
``faults.churn``; every leave and return is in the fault log (``leave`` / ``return``).

Sessions are drawn afresh when a window opens, so a session ends only if it is shorter than what
is left of the window. A Pareto's sessions are never shorter than its scale (mean x (alpha - 1) /
alpha): a scale at least the window's length would churn nobody, and the design refuses it
(``scenario.check_sessions_end``).
"""

from __future__ import annotations

import math

CHURN_DISTS = ("weibull", "exponential", "pareto")


def churn_nemesis(servers: list[str], rng, interval_ns: int):
    """The ``churn`` nemesis: one window of churn, its draws made when it starts."""
    return [{"action": "churn", "window_ms": round(interval_ns / 1e6, 3)}], [{"action": "churn_stop"}]


def session_sampler(p: dict, gen):
    """``draw() -> seconds``: one session time of the configured distribution and mean."""
    mean = float(p["session_mean_s"])
    kind = p["churn_dist"]
    if kind == "weibull":
        shape = float(p["weibull_shape"])
        scale = mean / math.gamma(1.0 + 1.0 / shape)
        return lambda: scale * float(gen.weibull(shape))
    if kind == "pareto":
        a = float(p["pareto_alpha"])
        xm = mean * (a - 1.0) / a
        return lambda: xm * (1.0 + float(gen.pareto(a)))
    return lambda: float(gen.exponential(mean))


class Churn:
    """Applies ``churn`` windows to a simulation (see the module docstring)."""

    def __init__(self, sim, servers: list[str], p: dict):
        self.sim = sim
        self.servers = [s for s in servers if s != "n1"]
        self.p = p
        self.gen = sim.streams.get("faults.churn")
        self.session = session_sampler(p, self.gen)
        self.until_ns = -1
        self.sessions_s: list[float] = []  # every session drawn, for the session-time CDF
        sim.faults.register("churn", self.start)
        sim.faults.register("churn_stop", self.stop)

    def start(self, act: dict) -> None:
        sim = self.sim
        self.until_ns = sim.now + int(float(act["window_ms"]) * 1e6)
        for s in self.servers:
            if sim.hosts[s].up:
                self._live(s)

    def stop(self, act: dict) -> None:
        self.until_ns = self.sim.now

    def _live(self, node: str) -> None:
        s = self.session()
        self.sessions_s.append(s)
        at = self.sim.now + int(s * 1e9)
        if at < self.until_ns:
            self.sim.at(at, self._leave, node)

    def _leave(self, node: str, _b=None) -> None:
        sim = self.sim
        if sim.now >= self.until_ns or not sim.hosts[node].up:
            return
        host = sim.hosts[node]
        host.crash()
        sim.faults.departed.add(node)
        self._note("leave", node)
        down_s = float(self.gen.exponential(float(self.p["downtime_mean_s"])))
        old = bool(self.gen.random() < float(self.p["rejoin_old_id"]))
        sim.schedule(int(down_s * 1e9), self._return, node, old)

    def _return(self, node: str, old_id: bool) -> None:
        sim = self.sim
        host = sim.hosts[node]
        sim.faults.departed.discard(node)
        if host.up:
            return  # a fault's restart (the crash nemesis) brought it back already
        if not old_id:
            host.storage.delete("id", sync=False)
        host.restart()
        self._note("return", node, old_id=old_id)
        if sim.now < self.until_ns:
            self._live(node)

    def _note(self, action: str, node: str, **fields) -> None:
        sim = self.sim
        sim.faults.applied.append({"time_ns": sim.now, "action": action, "node": node, "nemesis": "churn", **fields})
        sim.trace_event("fault", action, node)
