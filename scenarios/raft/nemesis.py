"""Raft's own nemeses: faults shaped for what Raft must survive.

``isolate-skewed``  isolate the leader and set its clock back 300-900 ms (its lease then outlives
                    its reign: read_mode=lease serves stale reads, read-index does not).
``crash-storm``     throughout the window, crash a random server every 20-80 ms and restart it
                    5-60 ms later (votes and logs must survive restarts).
``crash_leader``    (a fault verb for plans) crash whoever leads, at a random point of one
                    heartbeat interval: the leader loss of the paper's Figure 16; with
                    ``sync_heartbeat = true`` the leader first broadcasts a heartbeat, so that
                    interval starts with the same message at every follower.
``figure-8``        the Raft paper's Figure 8, staged: the leader S1 gathers a tail of entries that
                    only S2 stores; S1 crashes and a leader L of a later term, isolated the moment it
                    is elected, appends conflicting entries and crashes; S1 returns without S2 and
                    is elected (M) with the other two; M is crashed the moment it first commits,
                    and L returns beside those two. If M counted replicas of S1's old-term entries
                    to commit them, L can now be elected and overwrite entries M applied.

The staged faults look at the run's observations (``leader`` and ``applied`` records) to find the
leader, as a Jepsen nemesis asks the cluster who leads; every step is recorded in the fault log.
"""

from __future__ import annotations

NEMESIS_POLL_NS = 50_000  # how often a staged step looks for the observation it waits on


def isolate_skewed(servers: list[str], rng, interval_ns: int):
    delta = -float(round(rng.uniform(300, 900), 3))
    start = [{"action": "isolate_skewed", "delta_ms": delta}]
    stop = [{"action": "heal"}] + [{"action": "clock_reset", "node": s} for s in servers]
    return start, stop


def crash_storm(servers: list[str], rng, interval_ns: int):
    events = []
    t = 0.0
    span_ms = interval_ns / 1e6
    while True:
        t += float(rng.uniform(20, 80))
        down = float(rng.uniform(5, 60))
        if t + down >= span_ms:
            break
        events.append([round(t, 3), servers[int(rng.integers(len(servers)))], round(down, 3)])
    return [{"action": "crash_storm", "events": events}], []


def figure_8(servers: list[str], rng, interval_ns: int):
    tail_ms = round(min(1500.0, interval_ns / 1e6 / 3), 3)
    stop = [{"action": "heal"}] + [{"action": "restart", "node": s} for s in servers]
    return [{"action": "figure_8", "tail_ms": tail_ms}], stop


def install(sim, heartbeat_ms: float) -> None:
    """Register the scenario's fault verbs on the run's injector."""
    sim.faults.register("crash_storm", lambda act: _apply_storm(sim, act))
    sim.faults.register("figure_8", lambda act: Figure8(sim, act).start())
    sim.faults.register("isolate_skewed", lambda act: _isolate_skewed(sim, act))
    sim.faults.register("crash_leader", lambda act: _crash_leader(sim, act, heartbeat_ms))


def _crash_leader(sim, act: dict, heartbeat_ms: float) -> None:
    """Crash the leader; with ``in_heartbeat`` at a uniformly random point of one heartbeat interval.
    With no leader yet, look again every heartbeat until there is one."""
    node = current_leader(sim)
    if node is None:
        sim.schedule(int(heartbeat_ms * 1e6), lambda a, b: _crash_leader(sim, act, heartbeat_ms))
        return
    if act.get("sync_heartbeat", False):
        # the Raft paper's benchmark "triggered a synchronized broadcast of heartbeat RPCs from the
        # leader before terminating its process": the leader's heartbeat fires now, and the crash
        # falls within the heartbeat interval that follows
        sim.hosts[node].set_timer("heartbeat", 0.0)
    delay_ns = 0
    if act.get("in_heartbeat", True):
        delay_ns = int(float(sim.streams.get("faults.crash_leader").random()) * heartbeat_ms * 1e6)

    def crash(_a, _b):
        if sim.hosts[node].crash():
            _note(sim, "crash", node=node, nemesis="crash-leader")

    sim.schedule(delay_ns, crash)


def current_leader(sim) -> str | None:
    """The up server with the newest ``leader`` observation (what a nemesis asking "who leads?" learns)."""
    best = None
    for r in sim.records:
        if r["kind"] == "leader" and sim.hosts[r["node"]].up and (best is None or r["term"] > best[0]):
            best = (r["term"], r["node"])
    return best[1] if best else None


def _isolate_skewed(sim, act: dict) -> None:
    servers = list(sim.faults.servers)
    node = current_leader(sim) or servers[0]
    sim.clock_of(node).bump(int(float(act["delta_ms"]) * 1e6))
    groups = [[node], [s for s in servers if s != node]]
    sim.network.partition(groups)
    _note(sim, "partition", groups=groups, clock_bump_ms=act["delta_ms"], nemesis="isolate-skewed")


def _note(sim, action: str, **fields) -> None:
    sim.faults.applied.append({"time_ns": sim.now, "action": action, **fields})
    sim.trace_event("fault", action, fields)


def _apply_storm(sim, act: dict) -> None:
    for at_ms, node, down_ms in act["events"]:
        host = sim.hosts[node]
        sim.schedule(int(at_ms * 1e6), _storm_crash, sim, host)
        sim.schedule(int((at_ms + down_ms) * 1e6), _storm_restart, sim, host)


def _storm_crash(sim, host) -> None:
    if host.crash():
        _note(sim, "crash", node=host.id, nemesis="crash-storm")


def _storm_restart(sim, host) -> None:
    if host.restart():
        _note(sim, "restart", node=host.id, nemesis="crash-storm")


class Figure8:
    """The staged Figure 8 (see the module docstring); each step waits on observations."""

    def __init__(self, sim, act: dict):
        self.sim = sim
        self.net = sim.network
        self.servers = list(sim.faults.servers)
        self.tail_ns = int(float(act.get("tail_ms", 1000.0)) * 1e6)
        self.seen = len(sim.records)
        # The final heal ends the staging: a step still waiting must not cut or crash nodes after it
        # (found by `dsim hunt raft`: the liveness check failed with no bug planted).
        self.over = False
        sim.faults.on_final_heal(self._end)

    def _end(self) -> None:
        self.over = True

    def wait_for(self, kind: str, nodes: list[str], then) -> None:
        """Call ``then(node)`` at the first ``kind`` record from one of ``nodes`` from now on."""
        self.seen = len(self.sim.records)

        def poll(_a, _b):
            if self.over:
                return
            recs = self.sim.records
            for r in recs[self.seen:]:
                if r["kind"] == kind and r["node"] in nodes:
                    then(r["node"])
                    return
            self.seen = len(recs)
            self.sim.schedule(NEMESIS_POLL_NS, poll)

        self.sim.schedule(NEMESIS_POLL_NS, poll)

    def partition(self, groups) -> None:
        if self.over:
            return
        self.net.partition(groups)
        _note(self.sim, "partition", groups=groups, nemesis="figure-8")

    def crash(self, node: str) -> None:
        if self.over:
            return
        if self.sim.hosts[node].crash():
            _note(self.sim, "crash", node=node, nemesis="figure-8")

    def restart(self, node: str) -> None:
        if self.over:
            return
        if self.sim.hosts[node].restart():
            _note(self.sim, "restart", node=node, nemesis="figure-8")

    def start(self) -> None:
        s1 = current_leader(self.sim)
        if s1 is None:
            return
        self.s1 = s1
        self.s2 = next(s for s in self.servers if s != s1)
        self.rest = [s for s in self.servers if s not in (s1, self.s2)]
        # (a) S1 leads, but only S2 hears it: a tail of S1's term on S1 and S2 alone
        self.partition([[s1, self.s2]] + [[s] for s in self.rest])
        self.sim.schedule(self.tail_ns, lambda a, b: self.step_b())

    def step_b(self) -> None:
        # (b) S1 crashes; the others elect L, which is cut off the moment it wins
        self.crash(self.s1)
        self.partition([[self.s1], [self.s2], self.rest])  # name everyone: unnamed nodes are not cut
        self.wait_for("leader", self.rest, self.isolate_l)

    def isolate_l(self, l: str) -> None:
        self.l = l
        self.partition([[l], [self.s2], [s for s in self.rest if s != l]])
        self.sim.schedule(200 * 1_000_000, lambda a, b: self.step_c())

    def step_c(self) -> None:
        # (c) L crashes with its conflicting entries; S1 returns and, cut off from S2, can only
        # win with S3 and S4, which lack its tail: M = S1 must copy the old-term tail to them
        self.crash(self.l)
        self.restart(self.s1)
        self.others = [s for s in self.rest if s != self.l]
        self.partition([[self.s1, *self.others], [self.s2], [self.l]])
        self.wait_for("leader", [self.s1], self.step_d)

    def step_d(self, m: str) -> None:
        self.wait_for("applied", [m], self.step_e)

    def step_e(self, m: str) -> None:
        # (d) M crashes at its first commit; L returns beside S3 and S4 (S2 still cut off): if
        # M committed old-term entries that S3 and S4 hold without M's own-term entry, L, whose
        # last term is newer, is the only one who can win, and it overwrites them
        self.crash(m)
        self.restart(self.l)
        self.partition([[self.l, *self.others], [self.s2], [m]])
