"""Bad input the fourth probe and the third's leftovers found: unknown arguments on the shared fault
verbs, a spacetime window that starts after the trace ends, a raft cluster with too many lagging
followers to commit anything, an email campaign too large to run. One line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from simulator.faults import validate_plan
from simulator import UsageError
from tests.test_bad_input import assert_refused, dsim_in
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
