"""The shared linearizable key-value checker: hand-written histories and a brute-force cross-check."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.checkers.linearizable import check_kv


class H:
    """Builds a history: ``h.op(process, f, value, t0, t1, outcome, result)``; times in ms."""

    def __init__(self):
        self.events = []

    def op(self, p, f, value, t0, t1=None, outcome="ok", result=None):
        self.events.append((t0, 0, {"type": "invoke", "process": p, "f": f, "value": value, "time": int(t0 * 1e6)}))
        if t1 is not None:
            v = result if f == "read" else value
            self.events.append((t1, 1, {"type": outcome, "process": p, "f": f, "value": v, "time": int(t1 * 1e6)}))
        return self

    def history(self):
        out = [e for _, _, e in sorted(self.events, key=lambda x: (x[0], x[1]))]
        for i, e in enumerate(out):
            e["index"] = i
        return out


def test_sequential_read_after_write_is_linearizable():
    """A read that follows a completed write and returns its value is linearizable."""
    h = H().op(0, "write", ("x", 1), 0, 1).op(1, "read", ("x", None), 2, 3, result=("x", 1))
    assert check_kv(h.history()).valid is True


def test_stale_read_after_completed_write_is_not():
    """A read that starts after a write completed but returns the older value is caught, naming the key."""
    h = (H().op(0, "write", ("x", 1), 0, 1).op(1, "write", ("x", 2), 2, 3)
         .op(2, "read", ("x", None), 4, 5, result=("x", 1)))
    r = check_kv(h.history())
    assert r.valid is False
    assert "'x'" in r.message and "read -> 1" in r.message


def test_concurrent_read_may_see_either_value():
    """A read concurrent with a write may return the old or the new value."""
    for seen in (None, 7):
        h = H().op(0, "write", ("k", 7), 0, 10).op(1, "read", ("k", None), 1, 2, result=("k", seen))
        assert check_kv(h.history()).valid is True


def test_reads_cannot_go_back_in_time():
    """Two sequential reads concurrent with one write cannot see new then old."""
    h = (H().op(0, "write", ("k", 7), 0, 10).op(1, "read", ("k", None), 1, 2, result=("k", 7))
         .op(1, "read", ("k", None), 3, 4, result=("k", None)))
    assert check_kv(h.history()).valid is False


def test_cas_ok_requires_matching_value():
    """A successful cas must find its expected value; one from a value never held is caught."""
    good = H().op(0, "write", ("k", 1), 0, 1).op(1, "cas", ("k", (1, 2)), 2, 3).op(2, "read", ("k", None), 4, 5, result=("k", 2))
    bad = H().op(0, "write", ("k", 1), 0, 1).op(1, "cas", ("k", (5, 2)), 2, 3)
    assert check_kv(good.history()).valid is True
    assert check_kv(bad.history()).valid is False


def test_failed_ops_did_not_happen():
    """A write that ended fail is left out: reading its value is not linearizable."""
    h = H().op(0, "write", ("k", 1), 0, 1, outcome="fail").op(1, "read", ("k", None), 2, 3, result=("k", 1))
    assert check_kv(h.history()).valid is False


def test_info_write_may_take_effect_late_or_never():
    """A timed-out write may be seen long after its invoke, or never."""
    seen = H().op(0, "write", ("k", 1), 0, 1, outcome="info").op(1, "read", ("k", None), 50, 51, result=("k", 1))
    never = H().op(0, "write", ("k", 1), 0, 1, outcome="info").op(1, "read", ("k", None), 50, 51, result=("k", None))
    pending = H().op(0, "write", ("k", 1), 0).op(1, "read", ("k", None), 50, 51, result=("k", 1))
    for h in (seen, never, pending):
        assert check_kv(h.history()).valid is True


def test_info_write_cannot_flicker():
    """Once a timed-out write was seen, a later read cannot see the value before it."""
    h = (H().op(0, "write", ("k", 1), 0, 1, outcome="info").op(1, "read", ("k", None), 50, 51, result=("k", 1))
         .op(1, "read", ("k", None), 60, 61, result=("k", None)))
    assert check_kv(h.history()).valid is False


def test_keys_are_independent():
    """Operations on another key do not constrain this one; a bad key is named."""
    h = (H().op(0, "write", ("a", 1), 0, 1).op(1, "write", ("b", 2), 0, 1)
         .op(2, "read", ("a", None), 2, 3, result=("a", 1)).op(3, "read", ("b", None), 2, 3, result=("b", 9)))
    r = check_kv(h.history())
    assert r.valid is False and "'b'" in r.message


def test_budget_gives_unknown():
    """With no steps to spend, the verdict is unknown rather than a guess."""
    h = H()
    for p in range(6):
        h.op(p, "write", ("k", p), 0, 100)
    h.op(9, "read", ("k", None), 200, 201, result=("k", 99))
    r = check_kv(h.history(), max_steps=3)
    assert r.valid == "unknown"


def test_large_sequential_history_is_fast():
    """A long, mostly sequential history of 20,000 operations is decided (and valid)."""
    h = H()
    v = None
    for i in range(10_000):
        h.op(i % 4, "write", ("k", i), i * 10, i * 10 + 3)
        h.op(4 + i % 4, "read", ("k", None), i * 10 + 2, i * 10 + 8, result=("k", i))
        v = i
    r = check_kv(h.history(), budget_s=30)
    assert r.valid is True, r.message
    assert v == 9999


# ---- brute force cross-check ---------------------------------------------------------------------

def _brute(ops):
    """ops: (t0, t1 or None, f, arg, out, ok). Linearizable for one key by trying every order/subset."""
    required = [o for o in ops if o[5]]
    optional = [o for o in ops if not o[5]]
    for k in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, k):
            chosen_ops = required + list(chosen)
            for perm in itertools.permutations(chosen_ops):
                ok = True
                for i, a in enumerate(perm):  # real-time order: a before b if a ended before b began
                    for b in perm[:i]:
                        if a[1] is not None and a[1] < b[0]:
                            ok = False
                            break
                    if not ok:
                        break
                if not ok:
                    continue
                state = None
                for o in perm:
                    if o[2] == "read":
                        if o[4] != state:
                            ok = False
                            break
                    elif o[2] == "write":
                        state = o[3]
                    else:
                        if state != o[3][0]:
                            ok = False
                            break
                        state = o[3][1]
                if ok:
                    return True
    return False


op_strategy = st.tuples(
    st.integers(0, 20), st.integers(1, 10), st.sampled_from(["read", "write", "cas"]),
    st.integers(0, 2), st.integers(0, 2), st.sampled_from(["ok", "ok", "ok", "info"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(op_strategy, min_size=1, max_size=6))
def test_agrees_with_brute_force(raw):
    """On small random histories the search gives the same verdict as trying every order."""
    _cross_check(raw)


unique_op = st.tuples(
    st.integers(0, 12), st.integers(1, 8), st.sampled_from(["read", "read", "write", "write", "cas"]),
    st.integers(0, 4), st.integers(0, 4), st.sampled_from(["ok", "ok", "ok", "info"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(unique_op, min_size=2, max_size=7))
def test_agrees_with_brute_force_unique_writes(raw):
    """With each written value unique (as the scenarios write), the pruned search still agrees."""
    out = []
    for n, (t0, dur, f, a, b, outcome) in enumerate(raw):
        if f == "write":
            a = 10 + n  # a value no other write uses
        elif f == "cas":
            b = 10 + n
            a = a if a == 0 else 10 + (a % len(raw))
        else:
            a = a if a == 0 else 10 + (a % len(raw))
        out.append((t0, dur, f, a, b, outcome))
    _cross_check(out)


def test_write_read_by_a_pending_read_can_precede_a_concurrent_write():
    """w1 and w2 overlap; a read of w1 still open when w2 returns: w1, read, w2 is a valid order."""
    h = (H().op(0, "write", ("k", 1), 0, 63).op(1, "write", ("k", 2), 20, 60)
         .op(2, "read", ("k", None), 15, 75, result=("k", 1)).op(3, "read", ("k", None), 70, 110, result=("k", 2)))
    assert check_kv(h.history()).valid is True


def _cross_check(raw):
    h = H()
    ops = []
    for p, (t0, dur, f, a, b, outcome) in enumerate(raw):
        t1 = t0 + dur
        if f == "read":
            out = None if a == 0 else a
            if outcome == "info":
                continue  # an info read constrains nothing
            h.op(p, "read", ("k", None), t0, t1, result=("k", out))
            ops.append((t0, t1, "read", None, out, True))
        elif f == "write":
            h.op(p, "write", ("k", a), t0, t1, outcome=outcome)
            ops.append((t0, t1 if outcome == "ok" else None, "write", a, None, outcome == "ok"))
        else:
            old = None if a == 0 else a
            h.op(p, "cas", ("k", (old, b)), t0, t1, outcome=outcome)
            ops.append((t0, t1 if outcome == "ok" else None, "cas", (old, b), None, outcome == "ok"))
    expected = _brute(ops)
    got = check_kv(h.history()).valid
    assert got is expected


def _eight_keys(bad: tuple[str, ...]) -> list[dict]:
    """24,000 operations on eight keys, each key's sequential; a stale read on each key in ``bad``."""
    h = H()
    for i in range(3_000):
        for k in range(8):
            key = f"k{k}"
            t = (i * 8 + k) * 10
            h.op(k, "write", (key, i), t, t + 3)
            stale = key in bad and i == 2_000
            h.op(8 + k, "read", (key, None), t + 4, t + 8, result=(key, i - 1 if stale else i))
    return h.history()


def test_two_process_search_gives_the_one_process_verdict_and_message():
    """Split over two processes (24,000 ops is past WORTH_FORKING), the first failing key in key
    order is reported, as one process searching every key in order reports it."""
    for bad in ((), ("k6",), ("k1", "k6"), ("k0", "k7")):
        history = _eight_keys(bad)
        one = check_kv(history, parallel=False)
        two = check_kv(history, parallel=True)
        assert (two.valid, two.message) == (one.valid, one.message)
        assert one.valid is (not bad)
        if bad:
            assert f"key '{bad[0]}'" in one.message
        else:
            assert two.details["ops_searched"] == one.details["ops_searched"] == 48_000


def _sequential(n_pairs: int) -> list[dict]:
    h = H()
    for i in range(n_pairs):
        h.op(i % 4, "write", ("k", i), i * 10, i * 10 + 3)
        h.op(4 + i % 4, "read", ("k", None), i * 10 + 2, i * 10 + 8, result=("k", i))
    return h.history()


def test_the_budget_grows_with_a_keys_operations(monkeypatch):
    """max_steps counts per key and per BUDGET_OPS of its operations: a long but linear search is
    decided when the allowance grows with it, and is unknown when it does not."""
    import simulator.checkers.linearizable as L

    history = _sequential(500)  # 1,000 operations, about 3,000 steps
    monkeypatch.setattr(L, "BUDGET_OPS", 100)  # ten shares of 400 steps
    assert check_kv(history, max_steps=400, parallel=False).valid is True
    monkeypatch.setattr(L, "BUDGET_OPS", 100_000)  # one share of 400 steps
    r = check_kv(history, max_steps=400, parallel=False)
    assert r.valid == "unknown" and "'k'" in r.message


@settings(max_examples=100, deadline=None)
@given(st.lists(op_strategy, min_size=1, max_size=6))
def test_dropping_old_memo_states_changes_no_verdict(raw):
    """With memoized states pruned at every step (behind the oldest choice point), the search still
    agrees with trying every order."""
    import simulator.checkers.linearizable as L

    old = L._SEEN_PRUNE
    L._SEEN_PRUNE = 0
    try:
        _cross_check(raw)
    finally:
        L._SEEN_PRUNE = old
