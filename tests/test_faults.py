"""Faults (simulator.faults): nemesis plans, plan validation, the Injector's verbs, final heal, windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node
from simulator.faults import NEMESES, VERBS, Injector, nemesis_plan, normalise, validate_plan, windows
from simulator.pipeline.scenario import UsageError

MS = 1_000_000
S = 1_000_000_000
SERVERS = ["n1", "n2", "n3", "n4", "n5"]


def names_in(act: dict) -> set[str]:
    """Every node id an action mentions."""
    out = set()
    for key in ("node", "bridge"):
        if key in act:
            out.add(act[key])
    for key in ("srcs", "dsts"):
        out.update(act.get(key, ()))
    for key in ("groups", "pairs"):
        for g in act.get(key, ()):
            out.update(g)
    return out


# ---- nemesis plans -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", NEMESES)
def test_nemesis_plan_alternates_start_and_stop_at_the_interval(kind):
    """Every nemesis starts a fault at odd multiples of the interval and stops it one interval later."""
    plan = nemesis_plan((kind,), SERVERS, np.random.default_rng(1), 1 * S, 10 * S)
    starts = sorted({a["at_ns"] for a in plan if a["phase"] == "start"})
    stops = sorted({a["at_ns"] for a in plan if a["phase"] == "stop"})
    assert starts == [1 * S, 3 * S, 5 * S, 7 * S, 9 * S]
    assert stops == [2 * S, 4 * S, 6 * S, 8 * S, 10 * S]
    phases = [a["phase"] for a in sorted(plan, key=lambda a: a["at_ns"])]
    assert all(p != q for p, q in zip(phases, phases[1:]))  # one start and one stop per cycle here
    assert {a["nemesis"] for a in plan} == {kind}
    assert all(a["action"] in VERBS for a in plan)
    validate_plan(plan)


@pytest.mark.parametrize("kind", NEMESES)
def test_nemesis_plan_names_only_the_given_servers(kind):
    """Generated faults only ever name the servers they were given (never clients)."""
    plan = nemesis_plan((kind,), SERVERS, np.random.default_rng(2), 1 * S, 30 * S)
    for act in plan:
        assert names_in(act) <= set(SERVERS), act


@pytest.mark.parametrize("kind", NEMESES)
def test_nemesis_plan_is_deterministic_for_a_seeded_rng(kind):
    """The same rng seed gives the same plan."""
    a = nemesis_plan((kind,), SERVERS, np.random.default_rng(7), 1 * S, 20 * S)
    b = nemesis_plan((kind,), SERVERS, np.random.default_rng(7), 1 * S, 20 * S)
    assert a == b


def test_nemesis_plan_mixes_kinds_from_the_rng():
    """With several kinds, each cycle picks one from the rng; over many cycles each appears."""
    plan = nemesis_plan(("crash", "pause", "slow-link"), SERVERS, np.random.default_rng(3), 1 * S, 200 * S)
    assert {a["nemesis"] for a in plan} == {"crash", "pause", "slow-link"}


def test_nemesis_plan_empty_without_kinds_servers_or_time():
    """No kinds, no servers, or too short a run give an empty plan."""
    rng = np.random.default_rng(0)
    assert nemesis_plan((), SERVERS, rng, S, 10 * S) == []
    assert nemesis_plan(("crash",), [], rng, S, 10 * S) == []
    assert nemesis_plan(("crash",), SERVERS, rng, 5 * S, 9 * S) == []


def test_unknown_nemesis_is_a_usage_error():
    """An unknown nemesis name raises UsageError listing the accepted names."""
    with pytest.raises(UsageError, match="unknown nemesis 'meteor'.*crash"):
        nemesis_plan(("meteor",), SERVERS, np.random.default_rng(0), S, 10 * S)


def test_custom_nemesis_is_used():
    """A scenario's custom nemesis function supplies the start and stop actions."""
    custom = {"outage": lambda servers, rng, interval: ([{"action": "outage", "node": servers[0]}],
                                                        [{"action": "recover"}])}
    plan = nemesis_plan(("outage",), SERVERS, np.random.default_rng(0), S, 3 * S, custom=custom)
    assert plan == [{"at_ns": S, "action": "outage", "node": "n1", "nemesis": "outage", "phase": "start"},
                    {"at_ns": 2 * S, "action": "recover", "nemesis": "outage", "phase": "stop"}]


def _reach(pairs, nodes):
    blocked = {tuple(p) for p in pairs}
    return {a: {b for b in nodes if a == b or ((a, b) not in blocked and (b, a) not in blocked)} for a in nodes}


def test_majorities_ring_leaves_every_node_seeing_a_majority():
    """partition-majorities-ring on 5 nodes: each node talks both ways with exactly a majority, each a different one."""
    plan = nemesis_plan(("partition-majorities-ring",), SERVERS, np.random.default_rng(4), S, 2 * S)
    start = plan[0]
    assert start["action"] == "block"
    reach = _reach(start["pairs"], SERVERS)
    assert all(len(r) == 3 for r in reach.values())
    assert len({frozenset(r) for r in reach.values()}) == 5
    blocked = {tuple(p) for p in start["pairs"]}
    assert all((b, a) in blocked for a, b in blocked)  # symmetric


def test_bridge_connects_one_node_to_both_sides():
    """partition-bridge: two halves cannot talk, and the bridge node talks to everyone."""
    plan = nemesis_plan(("partition-bridge",), SERVERS, np.random.default_rng(5), S, 2 * S)
    start = plan[0]
    bridge = start["bridge"]
    reach = _reach(start["pairs"], SERVERS)
    assert reach[bridge] == set(SERVERS)
    others = [n for n in SERVERS if n != bridge]
    sides = {frozenset(reach[n] - {bridge}) for n in others}
    assert len(sides) == 2 and all(len(s) == 2 for s in sides)
    assert frozenset().union(*sides) == set(others)


def test_random_halves_split_the_servers():
    """partition-random-halves puts every server in one of two groups of sizes n//2 and n - n//2."""
    plan = nemesis_plan(("partition-random-halves",), SERVERS, np.random.default_rng(6), S, 2 * S)
    groups = plan[0]["groups"]
    assert sorted(len(g) for g in groups) == [2, 3]
    assert sorted(groups[0] + groups[1]) == SERVERS


# ---- plan validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("plan,match", [
    ([{"at_s": 1, "action": "explode"}], "unknown fault action 'explode'"),
    ([{"action": "heal"}], "fault 1 \\(heal\\) has no time"),
    ([{"at_s": 1, "action": "crash"}], "fault 1 \\(crash\\) lacks 'node'"),
    ([{"at_s": 1, "action": "heal"}, {"at_s": 2, "action": "flaky", "pairs": []}], "fault 2 \\(flaky\\) lacks 'p'"),
    ([{"at_s": -1, "action": "heal"}], "bad time -1"),
    ([{"at_s": "soon", "action": "heal"}], "bad time 'soon'"),
    ([{"at_s": True, "action": "heal"}], "bad time True"),
    ([{"at_s": float("nan"), "action": "heal"}], "bad time nan"),
    ([{"at_s": 1, "verb": "crash"}], "fault 1 has no action: give action = one of "),
    (["heal at 3"], "fault 1 is not a table"),
])
def test_validate_plan_rejects_bad_plans_naming_the_problem(plan, match):
    """validate_plan raises UsageError for unknown verbs, missing or bad times and missing arguments, saying which."""
    with pytest.raises(UsageError, match=match):
        validate_plan(plan)


def test_validate_plan_accepts_good_plans_and_extra_verbs():
    """A plan of known verbs with their arguments passes; a scenario's own verbs are accepted when given."""
    validate_plan([{"at_s": 1.5, "action": "partition", "groups": [["n1"], ["n2"]]},
                   {"at_ns": 3, "action": "heal"}])
    with pytest.raises(UsageError):
        validate_plan([{"at_s": 1, "action": "outage"}])
    validate_plan([{"at_s": 1, "action": "outage", "provider": "p1"}], {"outage": ("provider",)})


def test_normalise_converts_seconds_and_sorts_stably():
    """normalise turns at_s into at_ns and sorts by time, keeping file order for equal times."""
    out = normalise([{"at_s": 2, "action": "heal"}, {"at_ns": 1000, "action": "a"}, {"at_s": 2, "action": "b"}])
    assert [(a["at_ns"], a["action"]) for a in out] == [(1000, "a"), (2 * S, "heal"), (2 * S, "b")]
    assert all("at_s" not in a for a in out)


# ---- the Injector --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ping:
    n: int


class Sink(Node):
    def __init__(self):
        self.got = []

    def on_message(self, ctx, src, msg):
        self.got.append((ctx.now, src, msg.n))


def small_sim():
    sim = Simulation(1, latency=Dist("constant", 1))
    for nid in ("n1", "n2", "n3", "c1"):
        sim.add_node(nid, Sink, is_client=nid.startswith("c"))
    inj = Injector(sim, ["n1", "n2", "n3"])
    sim.run(1)
    return sim, inj


def test_injector_network_verbs():
    """apply() performs each network verb on the simulation's network."""
    sim, inj = small_sim()
    net = sim.network
    inj.apply({"action": "partition", "groups": [["n1"], ["n2", "n3"]]})
    assert ("n1", "n2") in net.blocked and ("n2", "n1") in net.blocked and ("n2", "n3") not in net.blocked
    inj.apply({"action": "partition_oneway", "srcs": ["n1"], "dsts": ["n2"]})
    assert net.blocked == {("n1", "n2")}
    inj.apply({"action": "block", "pairs": [["n3", "n1"]]})
    assert net.blocked == {("n3", "n1")}
    inj.apply({"action": "isolate", "node": "n2"})
    assert net.blocked == {("n2", "n1"), ("n2", "n3"), ("n1", "n2"), ("n3", "n2")}  # servers only, not c1
    inj.apply({"action": "heal"})
    assert net.blocked == set()
    inj.apply({"action": "slow", "factor": 4})
    assert net.slow_factor == 4.0
    inj.apply({"action": "set_loss", "p": 0.25})
    inj.apply({"action": "set_duplicate", "p": 0.5})
    inj.apply({"action": "flaky", "pairs": [["n1", "n2"]], "p": 0.9})
    assert net.loss == 0.25 and net.duplicate == 0.5 and net.link_loss == {("n1", "n2"): 0.9}
    inj.apply({"action": "reset_links"})
    assert net.slow_factor == 1.0 and net.link_loss == {} and net.loss == 0.0 and net.duplicate == 0.0


def test_reset_links_restores_the_configured_base_loss():
    """reset_links (and so the final heal) undoes fault loss and duplication, back to the configured base."""
    sim, inj = small_sim()
    sim.network.configure_base(loss=0.01, duplicate=0.02)
    inj.apply({"action": "set_loss", "p": 0.5})
    inj.apply({"action": "set_duplicate", "p": 0.5})
    inj.apply({"action": "final_heal"})
    assert sim.network.loss == 0.01 and sim.network.duplicate == 0.02


def test_injector_node_verbs():
    """apply() crashes, restarts, pauses and resumes hosts."""
    sim, inj = small_sim()
    h = sim.host("n2")
    inj.apply({"action": "crash", "node": "n2"})
    assert not h.up
    inj.apply({"action": "restart", "node": "n2"})
    assert h.up and h.node is not None
    inj.apply({"action": "pause", "node": "n2"})
    assert h.paused
    inj.apply({"action": "resume", "node": "n2"})
    assert not h.paused


def test_injector_crash_can_lose_unsynced_writes():
    """A crash action with lose_unsynced true discards the node's unsynced writes."""
    sim, inj = small_sim()
    st = sim.host("n1").storage
    st.put("d", 1)
    st.put("u", 2, sync=False)
    inj.apply({"action": "crash", "node": "n1", "lose_unsynced": True})
    assert st.get("d") == 1 and st.get("u") is None


def test_injector_clock_verbs():
    """apply() bumps, drifts and resets a node's clock."""
    sim, inj = small_sim()
    h = sim.host("n1")
    inj.apply({"action": "clock_bump", "node": "n1", "delta_ms": 250})
    assert h.now - sim.now == 250 * MS
    inj.apply({"action": "clock_drift", "node": "n1", "ppm": 1_000_000})
    t0 = sim.now
    local0 = h.now
    sim.run(t0 + 10 * MS)
    assert h.now - local0 == 20 * MS
    inj.apply({"action": "clock_reset", "node": "n1"})
    assert h.now == sim.now
    inj.apply({"action": "clock_reset", "node": "n2"})  # a node with no clock: nothing to do
    assert sim.host("n2").clock is None


def test_clock_strobe_flips_the_offset_every_period():
    """clock_strobe alternates the offset between +delta and 0 every period for its duration."""
    sim, inj = small_sim()
    h = sim.host("n1")
    inj.apply({"action": "clock_strobe", "node": "n1", "delta_ms": 100, "period_ms": 10, "duration_ms": 55})
    t0 = sim.now
    offsets = []
    for k in range(5):
        sim.run(t0 + k * 10 * MS + 5 * MS)
        offsets.append(h.now - sim.now)
    assert offsets == [100 * MS, 0, 100 * MS, 0, 100 * MS]


def test_injector_custom_verb_and_record():
    """A registered verb is applied by its function; every applied action is recorded with its time, without at_ns."""
    sim, inj = small_sim()
    seen = []
    inj.register("outage", lambda act: seen.append(act["provider"]))
    inj.apply({"action": "outage", "provider": "p1", "at_ns": 1})
    assert seen == ["p1"]
    assert inj.applied == [{"time_ns": sim.now, "action": "outage", "provider": "p1"}]


def test_injector_rejects_unknown_verb():
    """apply() of an unknown, unregistered verb raises ValueError."""
    sim, inj = small_sim()
    with pytest.raises(ValueError, match="meteor"):
        inj.apply({"action": "meteor"})


def test_schedule_applies_actions_at_their_times():
    """schedule(plan) applies each action at its time (at_s or at_ns); a partition then loses messages."""
    sim, inj = small_sim()
    inj.schedule([{"at_s": 0.02, "action": "heal"},
                  {"at_ns": 10 * MS, "action": "partition", "groups": [["n1"], ["n2"]]}])
    sim.at(15 * MS, lambda a, b: sim.network.send("n1", "n2", Ping(1)))
    sim.at(25 * MS, lambda a, b: sim.network.send("n1", "n2", Ping(2)))
    sim.run(100 * MS)
    assert [(a["time_ns"], a["action"]) for a in inj.applied] == [(10 * MS, "partition"), (20 * MS, "heal")]
    assert sim.host("n2").node.got == [(26 * MS, "n1", 2)]


def test_final_heal_ends_every_fault():
    """final_heal restarts crashed nodes, resumes paused ones, resets clocks, heals and resets links, runs hooks."""
    sim, inj = small_sim()
    hooks = []
    inj.on_final_heal(lambda: hooks.append(sim.now))
    inj.apply({"action": "crash", "node": "n1"})
    inj.apply({"action": "pause", "node": "n2"})
    inj.apply({"action": "clock_bump", "node": "n3", "delta_ms": 40})
    inj.apply({"action": "partition", "groups": [["n1"], ["n2", "n3"]]})
    inj.apply({"action": "slow", "factor": 5})
    inj.apply({"action": "flaky", "pairs": [["n1", "n2"]], "p": 1})
    sim.run(10 * MS)
    inj.apply({"action": "final_heal"})
    net = sim.network
    assert sim.host("n1").up and not sim.host("n2").paused
    assert sim.host("n3").now == sim.now
    assert net.blocked == set() and net.slow_factor == 1.0 and net.link_loss == {}
    assert hooks == [10 * MS]
    assert inj.applied[-1]["action"] == "final_heal"


def test_final_heal_leaves_a_departed_node_down():
    """A node the scenario marked departed (it left, as under churn) is not restarted by the final heal;
    a crashed one beside it is."""
    sim, inj = small_sim()
    inj.apply({"action": "crash", "node": "n1"})
    inj.apply({"action": "crash", "node": "n2"})
    inj.departed.add("n2")
    inj.apply({"action": "final_heal"})
    assert sim.host("n1").up and not sim.host("n2").up


# ---- windows -------------------------------------------------------------------------------------

def test_windows_pair_starts_with_stops():
    """windows() gives (start, stop, label) for each start/stop pair and runs an unclosed one to the end."""
    applied = [
        {"time_ns": 1, "action": "partition", "nemesis": "partition-random-halves", "phase": "start"},
        {"time_ns": 2, "action": "heal", "nemesis": "partition-random-halves", "phase": "stop"},
        {"time_ns": 3, "action": "crash", "nemesis": "crash", "phase": "start"},
        {"time_ns": 4, "action": "heal"},  # a planned action without phase: not a window
        {"time_ns": 5, "action": "restart", "nemesis": "crash", "phase": "stop"},
        {"time_ns": 7, "action": "pause", "nemesis": "pause", "phase": "start"},
    ]
    assert windows(applied, 10) == [(1, 2, "partition-random-halves"), (3, 5, "crash"), (7, 10, "pause")]


def test_windows_of_a_real_nemesis_plan():
    """Applying a generated plan and reading windows() gives one window per cycle."""
    sim, inj = small_sim()
    plan = nemesis_plan(("crash",), ["n1", "n2", "n3"], sim.streams.get("faults"), 10 * MS, 100 * MS)
    inj.schedule(plan)
    sim.run(200 * MS)
    w = windows(inj.applied, sim.now)
    assert [(a, b) for a, b, _ in w] == [(t * MS, (t + 10) * MS) for t in (10, 30, 50, 70, 90)]
    assert all(sim.host(n).up for n in ("n1", "n2", "n3"))
