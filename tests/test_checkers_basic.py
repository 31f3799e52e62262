"""Shared checkers (simulator.checkers and checkers.basic): CheckResult, compose, exactly-once, sets, availability."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.checkers import UNKNOWN, CheckResult, compose, merge_valid
from simulator.checkers.basic import availability, exactly_once, set_complete

MS = 1_000_000


# ---- CheckResult and compose ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [None, "true", "Unknown", "", 0.5, "false"])
def test_check_result_rejects_other_valid_values(bad):
    """valid must be True, False or "unknown"; anything else raises ValueError."""
    with pytest.raises(ValueError, match="valid must be"):
        CheckResult(bad)


@pytest.mark.parametrize("falsy", [np.bool_(False), 0], ids=["numpy-False", "int-0"])
def test_false_like_values_never_merge_to_true(falsy):
    """A False given as a numpy bool or 0 is either rejected or stored as False, so it never merges to True."""
    try:
        r = CheckResult(falsy, "broken")
    except ValueError:
        return
    assert r.valid is False
    assert merge_valid([r.valid]) is False
    assert compose({"x": r}).valid is False


def test_numpy_true_is_stored_as_true():
    """A numpy True (say from array.all()) is accepted and stored as the Python True."""
    r = CheckResult(np.bool_(True))
    assert r.valid is True and compose({"x": r}).valid is True


def test_check_result_to_dict():
    """to_dict has valid, the message when there is one, and the details flattened in."""
    assert CheckResult(True).to_dict() == {"valid": True}
    assert CheckResult(False, "x lost", {"lost": 1}).to_dict() == {"valid": False, "message": "x lost", "lost": 1}


@pytest.mark.parametrize("values,expect", [
    ([], True), ([True, True], True), ([True, UNKNOWN], UNKNOWN), ([UNKNOWN, False], False),
    ([True, False, UNKNOWN], False), ([UNKNOWN, UNKNOWN], UNKNOWN),
])
def test_merge_valid_precedence(values, expect):
    """merge_valid: False beats unknown beats True; no values is True."""
    got = merge_valid(values)
    assert got == expect and type(got) is type(expect)


def test_compose_names_the_failing_checks():
    """compose gives the merged verdict and a message naming each check that is not True."""
    r = compose({"a": CheckResult(True), "b": CheckResult(False, "3 lost"), "c": CheckResult(UNKNOWN)})
    assert r.valid is False
    assert r.message == "b: 3 lost; c: unknown"
    assert compose({"a": CheckResult(True)}).valid is True
    assert compose({"a": CheckResult(True), "c": CheckResult(UNKNOWN, "budget")}).valid == UNKNOWN


# ---- exactly_once --------------------------------------------------------------------------------

def test_exactly_once_passes_a_clean_delivery():
    """Every expected item delivered once, in any order, is valid."""
    r = exactly_once([1, 2, 3], [3, 1, 2])
    assert r.valid is True and r.message == ""
    assert r.details == {"expected": 3, "delivered": 3, "duplicated": 0, "lost": 0, "unexpected": 0}


def test_exactly_once_finds_lost_items():
    """An expected item never delivered is reported lost, by name."""
    r = exactly_once(["a", "b", "c"], ["a", "c"])
    assert r.valid is False and r.details["lost"] == 1
    assert "1 lost (never delivered): b" in r.message


def test_exactly_once_finds_duplicates():
    """An item delivered twice is reported with its count."""
    r = exactly_once(["a", "b"], ["a", "b", "b"])
    assert r.valid is False and "b x2" in r.message and r.details["duplicated"] == 1


def test_exactly_once_finds_unexpected_items():
    """An item delivered but never sent is reported."""
    r = exactly_once(["a"], ["a", "z"])
    assert r.valid is False and "delivered but never sent: z" in r.message


def test_exactly_once_excuses_may_be_missing_but_not_their_duplicates():
    """Items of unknown fate may be absent or delivered once, never twice."""
    assert exactly_once(["a", "b"], ["a"], may_be_missing=["b"]).valid is True
    assert exactly_once(["a"], ["a", "t"], may_be_missing=["t"]).valid is True
    r = exactly_once(["a"], ["a", "t", "t"], may_be_missing=["t"])
    assert r.valid is False and "t x2" in r.message


def test_exactly_once_reports_all_problems_and_abbreviates():
    """Lost, duplicated and unexpected items all appear in one message; long lists are cut with a count."""
    r = exactly_once(range(10), [0, 0, 99])
    assert r.valid is False
    assert "9 lost" in r.message and "and 4 more" in r.message
    assert "0 x2" in r.message and "never sent: 99" in r.message


# ---- set_complete --------------------------------------------------------------------------------

def test_set_complete_finds_lost_and_phantom_elements():
    """Acknowledged adds missing from the final read and elements never added are both reported."""
    assert set_complete([1, 2], [1, 2, 3], uncertain=[3]).valid is True
    r = set_complete([1, 2], [1, 7])
    assert r.valid is False
    assert "1 acknowledged but missing from the final read: 2" in r.message
    assert "1 in the final read but never added: 7" in r.message


# ---- availability --------------------------------------------------------------------------------

def hist(outcomes, invoke_step_ms=10):
    """A history of sequential ops on process 0 with the given outcomes (None: never ended)."""
    h = []
    for k, outcome in enumerate(outcomes):
        t = k * invoke_step_ms * MS
        h.append({"index": len(h), "time": t, "type": "invoke", "process": k, "f": "w", "value": k})
        if outcome is not None:
            h.append({"index": len(h), "time": t + MS, "type": outcome, "process": k, "f": "w", "value": k})
    return h


def test_availability_below_and_above_the_floor():
    """Availability is the ok share of ended operations; below the floor is False with the figures in words."""
    h = hist(["ok", "ok", "ok", "fail"])
    above = availability(h, 0.75)
    assert above.valid is True and above.details["availability"] == 0.75
    below = availability(h, 0.9)
    assert below.valid is False
    assert "75.00% of 4 operations" in below.message and "90.00%" in below.message


def test_availability_counts_info_and_lost_as_not_ok():
    """info endings and operations that never ended (lost) both count against availability, and the
    message says how many were lost."""
    r = availability(hist(["ok", "info", None, "ok"]), 0.9)
    assert r.valid is False
    assert r.details["availability"] == 0.5 and r.details["ended"] == 3 and r.details["lost"] == 1
    assert r.details["operations"] == 4
    assert "1 lost: never ended" in r.message


def test_a_lost_operation_alone_breaks_a_full_floor():
    """A history where every ended operation is ok but one never ended is below a 100% floor."""
    assert availability(hist(["ok", "ok", None]), 1.0).valid is False
    assert availability(hist(["ok", "ok"]), 1.0).valid is True


def test_availability_until_limits_to_early_invokes():
    """With until_ns only operations invoked before it count, lost ones included."""
    h = hist(["ok", "fail", "fail"])
    assert availability(h, 1.0, until_ns=10 * MS).valid is True
    assert availability(h, 1.0, until_ns=11 * MS).valid is False
    late_lost = hist(["ok", None])
    assert availability(late_lost, 1.0, until_ns=10 * MS).valid is True
    assert availability(late_lost, 1.0).valid is False


def test_availability_with_nothing_invoked_is_unknown():
    """With no operation invoked availability is unknown; operations that never ended are lost, not unknown."""
    assert availability([], 0.5).valid == UNKNOWN
    assert availability(hist(["ok"]), 0.5, until_ns=0).valid == UNKNOWN
    r = availability(hist([None]), 0.5)
    assert r.valid is False and r.details["lost"] == 1
