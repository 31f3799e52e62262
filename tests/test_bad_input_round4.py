"""Bad input the fourth probe and the third's leftovers found: unknown arguments on the shared fault
verbs, a spacetime window that starts after the trace ends, a raft cluster with too many lagging
followers to commit anything, an email campaign too large to run. One line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from simulator.faults import validate_plan
from simulator import UsageError
from tests.test_bad_input import TINY, assert_refused, dsim_in
from tests.test_bad_input_plans import RUN, plan


@pytest.mark.parametrize("body, needle", [
    ('action = "clock_reset"\nnode = "n1"\nppm = 5', "unknown argument 'ppm' of fault 1 (clock_reset)"),
    ('action = "heal"\nnode = "n1"', "unknown argument 'node' of fault 1 (heal): accepted: action, at_s, at_ns"),
    ('action = "crash"\nnode = "n1"\nlose_unsyncd = true', "unknown argument 'lose_unsyncd' of fault 1 (crash)"),
    ('action = "set_loss"\np = 0.1\nnodes = ["n1"]', "unknown argument 'nodes' of fault 1 (set_loss)"),
])
def test_an_unknown_argument_of_a_shared_fault_verb_is_refused(here, capsys, body, needle):
    code, _, err = dsim_in(capsys, "run", "raft", *RUN, "--config", plan(here, body), "--out", here / "out")
    assert_refused(code, err, needle)
    assert not (here / "out").exists()


def test_the_optional_arguments_of_the_shared_verbs_still_pass():
    validate_plan([{"at_s": 1, "action": "crash", "node": "n1", "lose_unsynced": True},
                   {"at_s": 2, "action": "block", "pairs": [["n1", "n2"]], "bridge": "n3", "nemesis": "x", "phase": "start"}])
    with pytest.raises(UsageError, match="unknown argument 'bridge' of fault 1 \\(partition\\)"):
        validate_plan([{"at_s": 1, "action": "partition", "groups": [["n1"], ["n2"]], "bridge": "n3"}])


def test_a_design_verb_is_left_to_the_design(here, capsys):
    # twopc's crash_coordinator is the design's own: its check_fault names the unknown key
    body = 'action = "crash_coordinator"\nnode = "any"\nphase_at = "prepare"\nextra = 1'
    code, _, err = dsim_in(capsys, "run", "twopc", *RUN, "--config", plan(here, body), "--out", here / "out")
    assert_refused(code, err, "unknown argument 'extra' of fault 1 (crash_coordinator)")


def test_a_spacetime_window_after_the_trace_is_refused(here, capsys):
    code, _, err = dsim_in(capsys, "run", "queue", *RUN, "--trace", "--out", here / "run")
    assert code == 0, err
    code, _, err = dsim_in(capsys, "show", here / "run", "--spacetime", "--from", "50")
    assert_refused(code, err, "bad value 50.0 for --from: expected a time within the run's trace")
    assert not (here / "run" / "spacetime.svg").exists()


@pytest.mark.parametrize("design, sets, needle", [
    ("raft", ["lagging_followers=3"], "bad value 3 for lagging_followers: expected at most (node_count - 1) // 2 = 2"),
    ("email", ["campaign_recipients=200000000"], "bad value 200000000 for campaign_recipients: expected at most 10,000,000"),
])
def test_parameters_that_cannot_run_are_refused(here, capsys, design, sets, needle):
    args = [a for s in sets for a in ("--set", s)]
    code, _, err = dsim_in(capsys, "run", design, *RUN, *args, "--out", here / "out")
    assert_refused(code, err, needle)
    assert not (here / "out").exists()


@pytest.mark.parametrize("cmd, args, needle", [
    ("run", ["--bug", "set-on-write", "--bug", "ignore-lease"], "--bug is given more than once"),
    ("run", ["--bug", "set-on-write", "--bug", "set-on-write"], "--bug is given more than once"),
    ("run", ["--nemesis", "crash", "--nemesis", "pause"], "--nemesis is given more than once"),
    ("sweep", ["--seeds", "1-2", "--bug", "set-on-write", "--bug", "ignore-lease"], "--bug is given more than once"),
])
def test_a_bug_or_nemesis_given_twice_is_refused(here, capsys, cmd, args, needle):
    # click would keep the last and drop the first without a word
    code, _, err = dsim_in(capsys, cmd, "cache", *(RUN if cmd == "run" else []), *args, "--out", here / "out")
    assert_refused(code, err, needle)
    assert not (here / "out").exists()


def test_metrics_json_is_strict_json(here, capsys):
    import json
    import math

    # a cache run with no stale read has infinitely many nines of freshness: null in the file
    code, _, err = dsim_in(capsys, "run", "cache", *RUN, "--out", here / "run")
    assert code == 0, err
    text = (here / "run" / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text

    def finite(v):
        return all(map(finite, v.values() if isinstance(v, dict) else v)) if isinstance(v, (dict, list)) else \
            not isinstance(v, float) or math.isfinite(v)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert finite(data)
    assert data["figures"]["fresh_nines"] is None


def test_a_run_option_the_design_does_not_use_is_refused(here, capsys):
    for design in ("queue", "cache", "graph", "commerce", "reverse-proxy", "rate-limiter", "email"):
        code, _, err = dsim_in(capsys, "run", design, *RUN, "--node-count", "7", "--out", here / "out")
        assert_refused(code, err, f"bad value 7 for node_count: {design} does not use it")
        assert not (here / "out").exists()
    code, out, _ = dsim_in(capsys, "describe", "queue")
    assert "not used by queue" in out
    code, _, err = dsim_in(capsys, "run", "queue", *RUN, "--node-count", "1", "--out", here / "same")  # its default
    assert code == 0, err


def test_config_files_nested_too_deep_or_with_a_table_twice_are_refused(here, capsys):
    deep = here / "deep.toml"
    for depth, needle in ((3000, "nested deeper than TOML's parser goes"), (40, "nested more than 32 deep")):
        deep.write_text("seed = " + "[" * depth + "]" * depth + "\n")
        for cmd in (["run", "queue", *RUN], ["sweep", "queue", "--seeds", "1", *TINY]):
            code, _, err = dsim_in(capsys, *cmd, "--config", deep, "--out", here / "out")
            assert_refused(code, err, needle)
    both = here / "both.toml"
    both.write_text('[components]\na = { kind = "service" }\n[params.components]\nb = { kind = "service" }\n'
                    '[[routes]]\nname = "r"\npath = ["a"]\n')
    code, _, err = dsim_in(capsys, "run", "graph", *RUN, "--config", both, "--out", here / "out")
    assert_refused(code, err, "bad value [components] in config file: [params.components] is given too")
    assert not (here / "out").exists()


def test_a_sweep_record_says_complete_and_a_resume_checks_its_files_first(here, capsys):
    import json

    code, _, err = dsim_in(capsys, "sweep", "queue", "--seeds", "1-2", *TINY, "--out", here / "sw")
    assert code == 0, err
    about = json.loads((here / "sw" / "sweep.json").read_text())
    assert about["status"] == "complete" and "ended_utc" in about
    (here / "sw" / "runs.csv").unlink()
    (here / "sw" / "runs.csv").mkdir()
    code, _, err = dsim_in(capsys, "sweep", "--resume", here / "sw")
    assert_refused(code, err, "its runs.csv is not a file")
    (here / "sw" / "runs.csv").rmdir()
    code, _, err = dsim_in(capsys, "sweep", "--resume", here / "sw")
    assert code == 0, err
    again = json.loads((here / "sw" / "sweep.json").read_text())
    assert again["status"] == "complete" and again["started_utc"] == about["started_utc"] and "resumed_utc" in again


def test_compare_shows_absurd_numbers_short_and_quietly(here, capsys):
    import csv

    code, _, err = dsim_in(capsys, "sweep", "queue", "--seeds", "1-2", *TINY, "--out", here / "a")
    assert code == 0, err
    rows = list(csv.DictReader((here / "a" / "runs.csv").open()))
    rows[0]["throughput_ops_s"], rows[1]["latency_p99_ms"] = "-1e308", "1e308"
    (here / "b").mkdir()
    (here / "b" / "sweep.json").write_text((here / "a" / "sweep.json").read_text())
    with (here / "b" / "runs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    code, out, err = dsim_in(capsys, "compare", here / "a", here / "b", "--out", here / "c.png")
    assert code == 0 and err == "", err
    assert "1e+308" in out and max(map(len, out.splitlines())) < 200


def test_a_pareto_churn_that_could_never_end_a_session_is_refused(here, capsys):
    # sessions are drawn when a churn window opens; a Pareto's shortest is mean x (alpha - 1) / alpha:
    # 30 s at a 60 s mean, as long as the default 30 s window, so nobody ever left (the README's old example)
    args = ["run", "kademlia", "--seed", "1", "--nemesis", "churn", "--set", "churn_dist=pareto",
            "--set", "session_mean_s=60", "--out", here / "out"]
    code, _, err = dsim_in(capsys, *args)
    assert_refused(code, err, "bad value 60.0 for session_mean_s: with churn_dist=pareto and pareto_alpha = 2 no session "
                              "is shorter than 30 s")
    assert not (here / "out").exists()
    body = 'action = "churn"\nwindow_ms = 20000'
    code, _, err = dsim_in(capsys, "run", "kademlia", *RUN, "--set", "churn_dist=pareto", "--set", "session_mean_s=40",
                           "--config", plan(here, body), "--out", here / "out")
    assert_refused(code, err, "(window_ms = 20000 of fault 1 (churn)): none would end in it")
