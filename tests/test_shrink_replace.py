"""`dsim shrink`'s simplification by replacement: compound actions written out, and remaining faults
replaced by one basic fault aimed at a node they touched."""

from __future__ import annotations

from dataclasses import replace

from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.shrink import (Episode, Failure, Shrinker, episodes, fault_actions, replacements,
                                       write_out)


def test_write_out_turns_each_storm_event_into_a_crash_and_a_restart():
    """A compound action's [at_ms, node, down_ms] events become plain crashes and restarts at absolute
    times, as many actions as fault_actions counted; a plan with no such action is left alone (None)."""
    storm = {"at_s": 2.0, "action": "crash_storm", "events": [[60.0, "n1", 30.0], [120.0, "n3", 20.0]]}
    plan = [{"at_s": 1.0, "action": "pause", "node": "n2"}, storm, {"at_s": 2.5, "action": "resume", "node": "n2"}]
    out = write_out(plan)
    assert [(a["at_s"], a["action"], a.get("node")) for a in out] == [
        (1.0, "pause", "n2"), (2.06, "crash", "n1"), (2.09, "restart", "n1"), (2.12, "crash", "n3"),
        (2.14, "restart", "n3"), (2.5, "resume", "n2")]
    assert fault_actions(out) == fault_actions(plan) == 6
    assert write_out([{"at_s": 1.0, "action": "crash", "node": "n1"}]) is None
    assert write_out([{"at_s": 1.0, "action": "figure_8", "events": [["not", "an", "event"]]}]) is None


def test_episodes_pair_each_fault_with_what_ends_it_and_single_out_the_minority():
    """episodes() pairs a crash with the next restart of the same node and a partition with the next heal
    (minority side first), expands storm events, leaves an unended pause open, and skips verbs naming no node."""
    plan = [{"at_s": 1.0, "action": "partition", "groups": [["n3", "n4", "n5"], ["n1", "n2"]], "nemesis": "p",
             "phase": "start"},
            {"at_s": 1.1, "action": "crash", "node": "n4"}, {"at_s": 1.2, "action": "restart", "node": "n5"},
            {"at_s": 1.3, "action": "heal"}, {"at_s": 1.4, "action": "restart", "node": "n4"},
            {"at_s": 1.5, "action": "slow", "factor": 10.0},
            {"at_s": 2.0, "action": "crash_storm", "events": [[120.0, "n3", 20.0]]},
            {"at_s": 2.5, "action": "pause", "node": "n2"}]
    assert episodes(plan) == [Episode(1.0, 1.3, ("n1", "n2")), Episode(1.1, 1.4, ("n4",)),
                              Episode(2.12, 2.14, ("n3",)), Episode(2.5, None, ("n2",))]


def test_replacements_are_smaller_plans_of_basic_faults_named_nodes_first():
    """Every replacement has fewer fault actions than the plan and uses crash/restart, isolate/heal or
    pause/resume on a node the plan touched over one of its windows; the simplest come first, then those on
    a node the checker's message names; the same plan gives the same list."""
    plan = [{"at_s": 1.0, "action": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]},
            {"at_s": 1.3, "action": "heal"},
            {"at_s": 2.0, "action": "crash_storm", "events": [[60.0, "n1", 30.0], [120.0, "n3", 20.0]]}]
    got = replacements(plan, 3.0, "n3 voted twice in term 4: for n1 at 2120.5 ms and for n2 at 2150.1 ms")
    assert got == replacements(plan, 3.0, "n3 voted twice in term 4: for n1 at 2120.5 ms and for n2 at 2150.1 ms")
    assert got and all(fault_actions(p) < fault_actions(plan) == 6 for p in got)
    assert {(a["action"], a.get("node")) for p in got for a in p} <= {
        (v, n) for n in ("n1", "n2", "n3") for v in ("crash", "restart", "isolate", "pause", "resume")} | {("heal", None)}
    assert got[0] == [{"at_s": 2.12, "action": "crash", "node": "n3"}, {"at_s": 2.14, "action": "restart", "node": "n3"}]
    assert [{"at_s": 1.0, "action": "isolate", "node": "n2"}, {"at_s": 1.3, "action": "heal"}] in got
    # windows that outlast the run lose their end (the final heal ends them) or go if they start after it
    assert replacements(plan, 1.2, "") == [[{"at_s": 1.0, "action": v, "node": n}] for n in ("n1", "n2")
                                           for v in ("crash", "isolate", "pause")]


def _state(plan: list[dict], node: str, at_s: float) -> tuple[bool, bool, bool]:
    """In a toy model of the plan at ``at_s``: whether ``node`` is crashed, paused, and cut off from the
    majority (isolated or on a partition's smaller side)."""
    crashed = paused = cut = False
    for act in sorted(write_out(plan) or plan, key=lambda a: a["at_s"]):
        if act["at_s"] > at_s:
            break
        verb = act["action"]
        if act.get("node") == node:
            crashed = {"crash": True, "restart": False}.get(verb, crashed)
            paused = {"pause": True, "resume": False}.get(verb, paused)
            cut = cut or verb == "isolate"
        if verb == "partition":
            cut = any(node in g and len(g) < max(len(h) for h in act["groups"]) for g in act["groups"])
        if verb == "heal":
            cut = False
    return crashed, paused, cut


def _gone_and_back(plan: list[dict]) -> bool:
    """The toy failure: n2 neither runs nor is reachable at 1.2 s (crashed, or paused and cut off), and
    is back, running and reachable, at 2 s (a leader that comes back, say)."""
    crashed, paused, cut = _state(plan, "n2", 1.2)
    return (crashed or (paused and cut)) and not any(_state(plan, "n2", 2.0))


def test_replacement_shrinks_below_what_ddmin_alone_reaches(monkeypatch):
    """A failure that needs n2 both stopped and cut off for a while, drawn as a partition and a pause with
    their ends (4 actions among others), is 1-minimal at 4 actions for ddmin; replacement finds one crash
    of n2 and its restart over the pause's window (2)."""
    cfg = build_config(registry.get("raft"), seed=1, options={"time_limit_s": 3.0})
    plan = [{"at_s": 0.5, "action": "clock_bump", "node": "n5", "delta_ms": 300.0},
            {"at_s": 1.0, "action": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]},
            {"at_s": 1.1, "action": "pause", "node": "n2"},
            {"at_s": 1.3, "action": "heal"},
            {"at_s": 1.4, "action": "resume", "node": "n2"},
            {"at_s": 1.6, "action": "crash_storm", "events": [[60.0, "n4", 30.0], [120.0, "n3", 20.0]]}]
    assert _gone_and_back(plan)

    def first_index(self, step, cfgs):
        for i, c in enumerate(cfgs):
            self.rows.append({"step": step})
            if _gone_and_back(c.faults):
                return i
        return None

    monkeypatch.setattr(Shrinker, "first_index", first_index)
    s = Shrinker(Failure(None, cfg, "election-safety", "", 3.0, 0))
    by_ddmin = s.ddmin_faults(replace(cfg, faults=plan))
    assert fault_actions(by_ddmin.faults) == 4
    got = s.replaced(by_ddmin)
    # the latest window first: the pause's
    assert got.faults == [{"at_s": 1.1, "action": "crash", "node": "n2"}, {"at_s": 1.4, "action": "restart", "node": "n2"}]
    assert s.replaced(got) is got  # nothing smaller than one crash and its restart over a window


def test_a_crash_storm_written_out_runs_the_same_observations():
    """raft's crash storm and its written-out crashes and restarts give the run the same node observations
    (votes, leaders, applied entries) and the same verdict: write_out changes how faults are written, not what happens."""
    from simulator.pipeline.run import execute

    cfg = build_config(registry.get("raft"), seed=3, bug="no-persist-vote",
                       options={"time_limit_s": 1.5, "node_count": 3, "rate": 30.0})
    storm = [{"at_s": 0.4, "action": "crash_storm", "events": [[20.0, "n1", 30.0], [70.5, "n2", 10.0], [130.0, "n3", 50.0]]}]
    a, b = execute(replace(cfg, faults=storm)), execute(replace(cfg, faults=write_out(storm)))
    observed = [[r for r in out.run.records if r["kind"] != "fault"] for out in (a, b)]
    assert observed[0] == observed[1] and {r["kind"] for r in observed[0]} >= {"vote", "leader"}
    assert a.valid == b.valid
