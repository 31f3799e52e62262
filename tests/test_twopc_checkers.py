"""The twopc atomicity checker on hand-built runs: what clients were told must match the decisions."""

from __future__ import annotations

from scenarios.twopc.checkers import atomicity
from simulator.pipeline.config import RunConfig
from simulator.pipeline.scenario import RunData

S = 1_000_000_000


def hand_run(endings: list[str], decisions: dict[int, str]) -> RunData:
    """Transfers 0, 1, ... invoked a second apart and ended as ``endings``; ``decisions``: tx -> C/A."""
    history = []
    for tx, end in enumerate(endings):
        history.append({"index": 0, "time": tx * S, "type": "invoke", "process": tx, "f": "transfer", "value": {}})
        history.append({"index": 0, "time": tx * S + S // 2, "type": end, "process": tx, "f": "transfer", "value": {}})
    records = [{"kind": "decided", "tx": tx, "outcome": o, "node": "tm1", "time_ns": tx * S + S // 4, "parts": []}
               for tx, o in decisions.items()]
    cfg = RunConfig(scenario="twopc", quiesce_s=1.0)
    return RunData(cfg=cfg, history=history, records=records, faults=[], exposed={"rms": {}},
                   end_ns=20 * S, heal_ns=10 * S, network={})


def test_outcomes_told_to_clients_that_match_the_decisions_are_valid():
    """ok after a commit decision, fail after an abort, info after anything: valid, and counted."""
    res = atomicity(hand_run(["ok", "fail", "info"], {0: "C", 1: "A", 2: "C"}))
    assert res.valid is True and res.details["outcomes_told"] == 2


def test_an_ok_no_commit_decision_backs_is_caught():
    """A client told committed for a transaction no coordinator decided to commit fails atomicity."""
    res = atomicity(hand_run(["ok", "ok"], {0: "C", 1: "A"}))
    assert res.valid is False and "transfer 1 committed" in res.message and "no coordinator decided" in res.message


def test_a_fail_for_a_committed_transaction_is_caught():
    """A client told failed (definitely did not happen) for a transaction decided commit fails atomicity."""
    res = atomicity(hand_run(["fail"], {0: "C"}))
    assert res.valid is False and "transfer 0 failed" in res.message and "decided commit" in res.message
