"""`dsim shrink`: ddmin, the nemesis written out as its plan, the experiment file, and the command."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config, load_toml
from simulator.pipeline.run import execute
from simulator.pipeline.shrink import ddmin, explicit_plan, to_toml

from .cli_helpers import dsim


def failing_when(pred, calls=None):
    def fails_many(cands):
        if calls is not None:
            calls.append(len(cands))
        return [pred(set(c)) for c in cands]
    return fails_many


def test_ddmin_finds_the_two_needed_items():
    """A failure that needs items 3 and 7 out of 20 shrinks to exactly [3, 7]."""
    assert ddmin(range(20), failing_when(lambda s: {3, 7} <= s)) == [3, 7]


def test_ddmin_returns_nothing_when_nothing_is_needed():
    """A failure that needs no item shrinks to the empty list."""
    assert ddmin(range(5), failing_when(lambda s: True)) == []


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 24), needed=st.lists(st.sets(st.integers(0, 23), min_size=1, max_size=3), min_size=1, max_size=3),
       chunk=st.integers(1, 4))
def test_ddmin_result_is_1_minimal(n, needed, chunk):
    """For a failure that any of several item sets triggers, ddmin's result still fails and dropping
    any single item of it makes the failure go away; the chunk size does not change the result."""
    needed = [s for s in (set(x) & set(range(n)) for x in needed) if s] or [{0}]

    def pred(s):
        return any(x <= s for x in needed)

    got = ddmin(range(n), failing_when(pred), chunk=chunk)
    assert pred(set(got))
    for i in range(len(got)):
        assert not pred(set(got[:i] + got[i + 1:]))
    assert got == ddmin(range(n), failing_when(pred), chunk=1)


def test_a_nemesis_written_as_its_plan_runs_the_same_run():
    """The explicit plan of a crash nemesis gives a run with the same digest as the nemesis run."""
    scen = registry.get("queue")
    cfg = build_config(scen, seed=3, options={"time_limit_s": 2.0, "nemesis": "crash,pause", "nemesis_interval_s": 0.3})
    plan = explicit_plan(cfg)
    assert len(plan) >= 4 and {a["phase"] for a in plan} == {"start", "stop"}
    written = replace(cfg, nemesis=(), faults=plan)
    assert execute(written).digest == execute(cfg).digest


def test_the_experiment_file_reads_back_to_the_same_configuration(tmp_path):
    """to_toml writes a file that build_config turns back into the same run configuration."""
    scen = registry.get("raft")
    cfg = build_config(scen, seed=8, options={"time_limit_s": 1.5, "rate": 30.0},
                       sets={"election_timeout_range": "150-151", "pre_vote": "true"}, bug="no-persist-vote",
                       file={"faults": [{"at_s": 0.5, "action": "crash", "node": "n2", "nemesis": "crash", "phase": "start"}]})
    path = tmp_path / "x.toml"
    path.write_text(to_toml(cfg, ["a header"]))
    file = load_toml(path)
    again = build_config(scen, seed=file.pop("seed"), file=file)
    assert again == cfg


def test_shrink_cuts_a_failing_run_and_its_toml_fails_again(capsys, tmp_path):
    """`dsim shrink` on a failing queue run writes shrunk.toml, shrink.csv and a traced run folder with
    spacetime.svg; `dsim run --config shrunk.toml` fails again and `dsim replay` of the folder exits 0."""
    run = tmp_path / "run"
    code, _, err = dsim(capsys, "run", "queue", "--bug", "double-serve", "--seed", "2", "--time-limit", "4",
                        "--nemesis", "crash,pause", "--nemesis-interval", "0.5", "--out", run, "--no-plots")
    assert code == 1, err
    out = tmp_path / "shrunk"
    code, text, err = dsim(capsys, "shrink", run, "--budget", "30", "--out", out)
    assert code == 1, text + err
    assert "still fails" in text and "before" in text and "after" in text
    for name in ("shrunk.toml", "shrink.csv", "run/manifest.json", "run/trace.jsonl", "run/spacetime.svg"):
        assert (out / name).is_file(), name
    toml = load_toml(out / "shrunk.toml")
    assert toml["time_limit_s"] <= 4 and toml["nemesis"] == []
    assert len(toml.get("faults", [])) < 6  # the nemesis made 6 actions in 4 s
    code, text, err = dsim(capsys, "run", "queue", "--config", out / "shrunk.toml", "--out", tmp_path / "again", "--no-plots")
    assert code == 1, text + err
    code, text, err = dsim(capsys, "replay", out / "run")
    assert code == 0, text + err


def test_shrink_refuses_a_run_that_did_not_fail(capsys, tmp_path):
    """A valid run cannot be shrunk: one line, exit 2, no shrink folder."""
    run = tmp_path / "ok"
    code, _, _ = dsim(capsys, "run", "queue", "--seed", "1", "--time-limit", "0.3", "--out", run, "--no-plots")
    assert code == 0
    code, text, err = dsim(capsys, "shrink", run, "--out", tmp_path / "s")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "failed a check" in err
    assert not (tmp_path / "s").exists()
    for args, needle in ((["--budget", "x"], "--budget"), (["--jobs", "99999"], "--jobs")):
        code, text, err = dsim(capsys, "shrink", run, *args)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    code, text, err = dsim(capsys, "shrink", tmp_path / "nowhere")
    assert code == 2 and "RUN_DIR" in err


def test_fault_cycles_pair_each_start_with_its_stop():
    """cycles() groups a nemesis start with the stop that ends it; a planned action stands alone."""
    from simulator.pipeline.shrink import cycles

    plan = [{"at_s": 0.5, "action": "partition", "nemesis": "p", "phase": "start"},
            {"at_s": 0.7, "action": "crash", "node": "n1"},
            {"at_s": 1.0, "action": "heal", "nemesis": "p", "phase": "stop"},
            {"at_s": 1.5, "action": "crash", "node": "n2", "nemesis": "crash", "phase": "start"},
            {"at_s": 2.0, "action": "restart", "node": "n2", "nemesis": "crash", "phase": "stop"}]
    assert cycles(plan) == [[0, 2], [1], [3, 4]]


def test_shrink_gives_the_same_candidates_and_reproducer_whatever_the_workers(tmp_path):
    """Shrinking one failure with one worker and with two tries the same candidates in the same order,
    spends the same runs and ends at the same configuration (only wall times differ)."""
    from simulator.pipeline.executor import open_executor
    from simulator.pipeline.shrink import load_failure, shrink

    from simulator.pipeline.runner import run_to_folder

    run = tmp_path / "run"

    cfg = build_config(registry.get("queue"), seed=2, bug="double-serve",
                       options={"time_limit_s": 4.0, "nemesis": "crash,pause", "nemesis_interval_s": 0.5})
    run_to_folder(cfg, run, plots=False)
    failure = load_failure(run)
    got = []
    for jobs in (1, 2):
        with open_executor(jobs=jobs) as ex:
            res = shrink(failure, budget=25, executor=ex)
        got.append((res.after, [{k: v for k, v in r.items() if k != "wall_s"} for r in res.rows]))
    assert got[0] == got[1]
    assert got[0][1] and len(got[0][1]) <= 25
    assert got[0][0].time_limit_s < 4.0 or len(got[0][0].faults) < len(explicit_plan(cfg))


def test_fault_kinds_group_every_action_of_one_nemesis():
    """fault_kinds() puts every action of one nemesis together; an action of no nemesis is grouped by its verb."""
    from simulator.pipeline.shrink import fault_kinds

    plan = [{"at_s": 0.5, "action": "crash", "node": "n1", "nemesis": "crash", "phase": "start"},
            {"at_s": 0.6, "action": "partition", "nemesis": "partition-random-halves", "phase": "start"},
            {"at_s": 0.9, "action": "restart", "node": "n1", "nemesis": "crash", "phase": "stop"},
            {"at_s": 1.0, "action": "pause", "node": "n2"}]
    assert fault_kinds(plan) == [[0, 2], [1], [3]]


def test_less_time_divides_the_workloads_declared_time_scales_too(monkeypatch):
    """The "less time" candidates, after those that keep the workload as it is, divide a parameter declared
    time_scale (email's campaign gap and day) by the factor the time limit comes down, and leave other
    parameters and designs without one alone."""
    from simulator.pipeline.shrink import Failure, Shrinker

    seen = []
    monkeypatch.setattr(Shrinker, "first", lambda self, step, cands: seen.extend(cands))
    email = build_config(registry.get("email"), seed=1, bug="fifo-only", options={"time_limit_s": 16.0})
    Shrinker(Failure(None, email, "tx-latency", "", 16.0, 0)).compressed(email)
    assert [(c.time_limit_s, c.params["campaign_every_s"], c.params["day_s"]) for c in seen] == \
        [(2.0, 30.0, 60.0), (4.0, 30.0, 60.0), (8.0, 30.0, 60.0), (2.0, 3.75, 7.5), (4.0, 7.5, 15.0), (8.0, 15.0, 30.0)]
    assert all(c.params["visibility_timeout_s"] == email.params["visibility_timeout_s"] for c in seen)
    seen.clear()
    queue = build_config(registry.get("queue"), seed=1, options={"time_limit_s": 16.0})
    Shrinker(Failure(None, queue, "availability", "", 16.0, 0)).compressed(queue)
    assert seen and all(c.params == queue.params for c in seen)


def test_fault_actions_count_a_crash_storms_crashes_and_restarts():
    """A crash storm counts two fault actions per crash event (a crash and its restart), any other entry one."""
    from simulator.pipeline.shrink import fault_actions

    storm = {"at_s": 1.0, "action": "crash_storm", "events": [[64.7, "n2", 40.3], [129.5, "n3", 22.9]]}
    assert fault_actions([{"at_s": 0.5, "action": "isolate", "node": "n1"}, storm, {"at_s": 2.0, "action": "heal"}]) == 6
    assert fault_actions([]) == 0


def test_ddmin_faults_also_cuts_a_crash_storm_down_to_the_crash_it_needs(monkeypatch):
    """After ddmin over whole actions, a compound action's events are shrunk too (ddmin_events): a failure
    that needs one partition and the second crash of a four-crash storm ends with exactly those."""
    from simulator.pipeline.shrink import Failure, Shrinker, fault_actions

    cfg = build_config(registry.get("raft"), seed=1, options={"time_limit_s": 3.0})
    needed = [120.0, "n3", 20.0]
    plan = [{"at_s": 0.5, "action": "partition", "groups": [["n1"], ["n2", "n3", "n4", "n5"]]},
            {"at_s": 0.9, "action": "heal"},
            {"at_s": 1.0, "action": "crash_storm", "events": [[60.0, "n1", 30.0], needed, [200.0, "n2", 10.0],
                                                              [280.0, "n5", 50.0]]},
            {"at_s": 2.0, "action": "pause", "node": "n2"}]

    def fails(c):
        acts = [a["action"] for a in c.faults]
        return "partition" in acts and any(needed in a.get("events", []) for a in c.faults)

    def first_index(self, step, cfgs):
        self.rows.extend({"step": step} for _ in cfgs)
        return next((i for i, c in enumerate(cfgs) if fails(c)), None)

    monkeypatch.setattr(Shrinker, "first_index", first_index)
    s = Shrinker(Failure(None, cfg, "linearizable", "", 3.0, 0))
    got = s.ddmin_events(s.ddmin_faults(replace(cfg, faults=plan)))
    assert [a["action"] for a in got.faults] == ["partition", "crash_storm"]
    assert got.faults[1]["events"] == [needed] and fault_actions(got.faults) == 3


def test_fresh_plans_are_drawn_from_the_nemeses_left_in_shorter_runs(monkeypatch):
    """The fresh-plan candidates are explicit plans of the nemeses the plan still uses, in a quarter and
    a half of the time limit, shortest first, and the same candidates every time."""
    from simulator.pipeline.shrink import Failure, Shrinker

    cfg = build_config(registry.get("raft"), seed=4, bug="ack-by-index",
                       options={"time_limit_s": 8.0, "nemesis": "partition-isolate-one,pause", "nemesis_interval_s": 0.4})
    plan = [a for a in explicit_plan(cfg) if a["nemesis"] == "pause"]
    seen = []
    monkeypatch.setattr(Shrinker, "first", lambda self, step, cands: seen.append(cands))
    cur = replace(cfg, nemesis=(), faults=plan)
    for _ in range(2):
        Shrinker(Failure(None, cfg, "linearizable", "", 8.0, 0)).redrawn(cur)
    first, again = seen
    assert first == again and first
    assert [c.time_limit_s for c in first] == sorted(c.time_limit_s for c in first) and first[0].time_limit_s == 2.0
    assert {c.time_limit_s for c in first} == {2.0, 4.0}
    for c in first:
        assert c.nemesis == () and c.seed != cfg.seed
        assert {a["nemesis"] for a in c.faults} <= {"pause"} and all(a["at_s"] <= c.time_limit_s for a in c.faults)


def test_named_times_include_the_end_of_each_operation_a_linearizability_message_names():
    """A linearizability counter-example's operations ("6813.347-6820.604 ms") name instants in seconds, as "at" does."""
    from simulator.pipeline.shrink import named_times_s

    msg = ("key 'k7': not linearizable: read -> 924 (process 0, 6813.347-6820.604 ms) cannot be placed: after "
           "read -> 944 (process 4, 6759.891-6770.869 ms); crash at 5.5 s; in the 1000 ms")
    assert [round(t, 6) for t in named_times_s(msg)] == [6.820604, 6.770869, 5.5]


def test_a_shorter_limit_may_end_the_run_at_its_last_fault_action(monkeypatch):
    """One shorter-limit candidate ends the run at the last fault action, which it drops: the final
    heal (which resumes, restarts and heals everything) takes its place."""
    from simulator.pipeline.shrink import Failure, Shrinker

    cfg = build_config(registry.get("raft"), seed=1, options={"time_limit_s": 5.0})
    cfg = replace(cfg, faults=[{"at_s": 2.46, "action": "pause", "node": "n4"},
                               {"at_s": 2.7681, "action": "resume", "node": "n4"}])
    seen = []
    monkeypatch.setattr(Shrinker, "first", lambda self, step, cands: seen.extend(cands))
    Shrinker(Failure(None, cfg, "linearizable", "", 5.0, 0)).shorter(cfg)
    at_last = [c for c in seen if c.time_limit_s == 2.7681]
    assert len(at_last) == 1 and at_last[0].faults == cfg.faults[:1]
    assert [c.time_limit_s for c in seen] == sorted(c.time_limit_s for c in seen)


def test_a_candidate_whose_faults_name_a_host_it_lacks_is_not_run():
    """Fewer nodes can leave a fault naming a node that is gone: such a candidate is refused as the
    CLI would refuse its config, not run (it used to crash with KeyError and count as passing)."""
    from simulator.pipeline.shrink import _valid

    cfg = build_config(registry.get("raft"), seed=1, options={"time_limit_s": 1.0},
                       file={"faults": [{"at_s": 0.5, "action": "crash", "node": "n3"}]})
    assert _valid(cfg)
    assert not _valid(replace(cfg, node_count=2))
