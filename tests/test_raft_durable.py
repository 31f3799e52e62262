"""The Raft log's durable twin (chunks of entries) against a plain model: a dict index -> entry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.raft.durable import DurableLog, entries_after
from simulator.engine.storage import Storage


def test_append_truncate_compact_and_reboot():
    s = Storage()
    d = DurableLog(s)
    d.write(1, ("a", "b", "c"))
    d.write(4, ("d", "e"))
    s.sync()
    assert entries_after(s, 0) == ["a", "b", "c", "d", "e"]
    d.truncate(3)  # a conflict at index 3: c, d, e go
    d.write(3, ("C",))
    s.sync()
    assert entries_after(s, 0) == ["a", "b", "C"] and s.get("last") == 3
    d.compact(2)  # a snapshot through 2: the chunk [a, b] straddles nothing and goes
    s.sync()
    assert [k for k in s.keys() if k.startswith("log/")] == ["log/3"]
    assert entries_after(s, 2) == ["C"]
    again = DurableLog(s)  # a reboot rebuilds the chunk index from the keys
    assert again.starts == [3] and again.last == 3


def test_a_chunk_straddling_the_snapshot_stays_until_wholly_inside():
    s = Storage()
    d = DurableLog(s)
    d.write(1, ("a", "b", "c", "d"))
    d.compact(2)
    assert entries_after(s, 2) == ["c", "d"] and d.starts == [1]
    d.write(5, ("e",))
    d.compact(4)
    assert d.starts == [5] and entries_after(s, 4) == ["e"]


def test_unsynced_writes_vanish_together_on_a_power_loss():
    s = Storage()
    d = DurableLog(s)
    d.write(1, ("a", "b"))
    s.sync()
    d.write(3, ("c",))
    d.truncate(2)
    s.crash(lose_unsynced=True)
    assert entries_after(s, 0) == ["a", "b"] and DurableLog(s).starts == [1]


ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 4)),
    st.tuples(st.just("overwrite"), st.integers(0, 6), st.integers(0, 4)),
    st.tuples(st.just("snapshot"), st.integers(0, 8)),
    st.tuples(st.just("crash"), st.booleans()),
), max_size=30)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_matches_a_model_log_through_appends_overwrites_snapshots_and_crashes(steps):
    s = Storage()
    d = DurableLog(s)
    model: list[str] = []  # entries 1..len(model), durable
    snap = 0
    n = 0
    for step in steps:
        if step[0] == "append":
            new = tuple(f"e{n + k}" for k in range(step[1]))
            n += step[1]
            d.write(len(model) + 1, new)
            model += new
        elif step[0] == "overwrite":  # a follower's conflict: replace from lo (above the snapshot) on
            lo = max(snap + 1, len(model) + 1 - step[1])
            new = tuple(f"e{n + k}" for k in range(step[2]))
            n += step[2]
            d.write(lo, new)
            model = model[: lo - 1] + list(new)
        elif step[0] == "snapshot":
            snap = min(len(model), snap + step[1])
            d.compact(snap)
        s.sync()
        if step[0] == "crash":
            s.crash(lose_unsynced=step[1])
            d = DurableLog(s)
        assert entries_after(s, snap) == model[snap:]
        assert d.last == len(model)
