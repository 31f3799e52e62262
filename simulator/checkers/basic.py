"""Shared checkers: exactly-once delivery, set completeness and availability floors."""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Iterable

from ..workload.history import pairs
from . import CheckResult


def _few(items: list, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def exactly_once(expected: Iterable[Hashable], delivered: Iterable[Hashable],
                 may_be_missing: Iterable[Hashable] = ()) -> CheckResult:
    """Every expected item delivered exactly once; items in ``may_be_missing`` (their fate unknown,
    e.g. timed-out requests) may be absent but never duplicated; nothing unexpected delivered.

    An operation that never ended has an unknown fate too: put it in ``may_be_missing`` (left out of
    both lists, a delivery of it reads as "delivered but never sent"). That it never ended is
    :func:`availability`'s business, which counts it as lost."""
    expected = list(expected)
    counts = Counter(delivered)
    excused = set(may_be_missing)
    expected_set = set(expected)
    dups = sorted((k for k, c in counts.items() if c > 1), key=str)
    lost = [k for k in expected if counts.get(k, 0) == 0 and k not in excused]
    strange = sorted((k for k in counts if k not in expected_set and k not in excused), key=str)
    details = {"expected": len(expected), "delivered": sum(counts.values()), "duplicated": len(dups),
               "lost": len(lost), "unexpected": len(strange)}
    problems = []
    if lost:
        problems.append(f"{len(lost)} lost (never delivered): {_few(lost)}")
    if dups:
        problems.append(f"{len(dups)} delivered more than once: " + _few([f"{k} x{counts[k]}" for k in dups]))
    if strange:
        problems.append(f"{len(strange)} delivered but never sent: {_few(strange)}")
    return CheckResult(not problems, "; ".join(problems), details)


def set_complete(added: Iterable[Hashable], final_read: Iterable[Hashable], uncertain: Iterable[Hashable] = ()) -> CheckResult:
    """Every acknowledged addition appears in the final read; nothing appears that was never added.

    Additions that ended info or never ended belong in ``uncertain``. The final read must be one
    that ended ok: for a final read that failed or never ended there is nothing to compare, and
    passing an empty read would report every addition lost."""
    added = list(added)
    final = set(final_read)
    uncertain = set(uncertain)
    lost = [a for a in added if a not in final]
    phantom = sorted((x for x in final if x not in set(added) and x not in uncertain), key=str)
    problems = []
    if lost:
        problems.append(f"{len(lost)} acknowledged but missing from the final read: {_few(lost)}")
    if phantom:
        problems.append(f"{len(phantom)} in the final read but never added: {_few(phantom)}")
    return CheckResult(not problems, "; ".join(problems), {"acknowledged": len(added), "lost": len(lost)})


def availability(history: list[dict], floor: float, until_ns: int | None = None) -> CheckResult:
    """At least ``floor`` of the operations invoked before ``until_ns`` (all, if None) ended ok.

    An operation that never ended (no ok, fail or info by the end of the history) is *lost*: it
    counts as not ok, in the denominator. A request dropped without trace is the worst kind of
    unavailability, and with a long per-operation timeout it never even times out to ``info``.
    Pass the final heal (``RunData.heal_ns``) as ``until_ns`` to count the main phase only: the
    quiesce after it is the grace in which operations still in flight at the heal may end, and the
    final operations a run starts after it always end (they time out at ``final_timeout_s``).
    Unknown only when no operation was invoked at all."""
    counted = [c for i, c in pairs(history) if until_ns is None or i["time"] < until_ns]
    if not counted:
        return CheckResult("unknown", "no operation was invoked", {"floor": floor})
    ended = [c for c in counted if c is not None]
    lost = len(counted) - len(ended)
    ok = sum(1 for c in ended if c["type"] == "ok")
    share = ok / len(counted)
    details = {"floor": floor, "availability": round(share, 6), "operations": len(counted), "ended": len(ended),
               "lost": lost}
    if share < floor:
        why = f" ({lost} lost: never ended)" if lost else ""
        return CheckResult(False, f"only {share:.2%} of {len(counted)} operations succeeded{why}; "
                                  f"the floor is {floor:.2%}", details)
    return CheckResult(True, "", details)
