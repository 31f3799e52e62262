"""Durable storage (simulator.engine.storage): get/put/delete/sync, fsync counting, crashes, snapshots."""

from __future__ import annotations

from simulator.engine.storage import Storage


def fsync_counter():
    calls = []
    return calls, Storage(lambda: calls.append(1))


def test_put_then_get_and_default():
    """get returns the latest written value of a key, or the default when absent."""
    s = Storage()
    assert s.get("k") is None and s.get("k", 7) == 7
    s.put("k", 1)
    s.put("k", 2)
    assert s.get("k") == 2 and "k" in s


def test_delete_removes_a_key():
    """delete removes the key: get gives the default and it is not `in` the store."""
    s = Storage()
    s.put("k", 1)
    s.delete("k")
    assert s.get("k", "gone") == "gone" and "k" not in s
    assert s.snapshot() == {}


def test_falsy_values_are_present():
    """A stored None, 0 or empty tuple still counts as present."""
    s = Storage()
    s.put("none", None)
    s.put("zero", 0)
    assert "none" in s and "zero" in s and list(s.keys()) == ["none", "zero"]


def test_synced_put_pays_fsync_and_unsynced_does_not():
    """A put with sync=True calls the fsync hook and counts an fsync; sync=False does neither."""
    calls, s = fsync_counter()
    s.put("a", 1, sync=False)
    assert s.fsyncs == 0 and calls == []
    s.put("b", 2)
    assert s.fsyncs == 1 and calls == [1]
    assert s.writes == 2


def test_unsynced_write_is_readable_before_sync():
    """A write not yet synced is visible to get but not in the durable snapshot."""
    s = Storage()
    s.put("a", 1, sync=False)
    assert s.get("a") == 1
    assert s.snapshot() == {}
    s.sync()
    assert s.snapshot() == {"a": 1}


def test_sync_makes_cached_writes_and_deletes_durable():
    """sync() applies every cached put and delete to durable state, in order, and counts one fsync."""
    calls, s = fsync_counter()
    s.put("a", 1)
    s.put("a", 2, sync=False)
    s.put("b", 3, sync=False)
    s.delete("b", sync=False)
    s.delete("a", sync=False)
    s.put("a", 4, sync=False)
    s.sync()
    assert s.snapshot() == {"a": 4}
    assert s.fsyncs == 2 and len(calls) == 2


def test_crash_without_loss_keeps_unsynced_writes():
    """crash(lose_unsynced=False) keeps cached writes (they reach disk eventually)."""
    s = Storage()
    s.put("d", 1)
    s.put("u", 2, sync=False)
    s.crash(lose_unsynced=False)
    assert s.get("d") == 1 and s.get("u") == 2


def test_crash_with_loss_discards_unsynced_writes_and_deletes():
    """crash(lose_unsynced=True) keeps synced state and loses writes and deletes made since the last sync."""
    s = Storage()
    s.put("d", 1)
    s.put("gone", 9)
    s.put("d", 2, sync=False)
    s.delete("gone", sync=False)
    s.put("new", 3, sync=False)
    s.crash(lose_unsynced=True)
    assert {k: s.get(k) for k in s.keys()} == {"d": 1, "gone": 9}


def test_keys_lists_present_keys_in_insertion_order():
    """keys() lists keys present now, durable first then newly cached, without deleted ones."""
    s = Storage()
    s.put("x", 1)
    s.put("y", 2)
    s.put("z", 3, sync=False)
    s.delete("x", sync=False)
    assert list(s.keys()) == ["y", "z"]


def test_snapshot_is_a_copy():
    """snapshot() returns a copy: changing it or later writes do not alter each other."""
    s = Storage()
    s.put("a", 1)
    snap = s.snapshot()
    snap["a"] = 99
    s.put("b", 2)
    assert s.get("a") == 1 and snap == {"a": 99}


def test_storage_works_without_a_hook():
    """A Storage with no fsync hook still syncs and counts."""
    s = Storage()
    s.put("a", 1)
    s.sync()
    assert s.fsyncs == 2 and s.snapshot() == {"a": 1}
