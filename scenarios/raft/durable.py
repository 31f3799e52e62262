"""The log's durable twin: entries in ``ctx.storage`` by chunk, one key per appended batch.

Keys: ``log/<start>`` holds a tuple of consecutive entries from index ``start`` on (one
AppendEntries batch, or one leader fsync batch); ``last`` is the index of the last durable entry.
Chunks tile ``.. last`` without gaps; the snapshot (``snap``, written by the node) covers a prefix,
and a chunk that straddles the snapshot's last index keeps its older entries until it is wholly
inside. Writing a batch is one ``put`` instead of one per entry, and compaction deletes a key per
chunk instead of one per entry (a third of a follower's storage work before).

The chunk starts are kept in memory (``starts``) and rebuilt from the storage keys when a node
boots, so a crash loses nothing that the storage keeps. Nothing here syncs: the node does, once per
handler, before it answers.
"""

from __future__ import annotations

from typing import Any


def _key(start: int) -> str:
    return f"log/{start}"


class DurableLog:
    __slots__ = ("st", "starts", "last")

    def __init__(self, storage: Any):
        self.st = storage
        self.starts = sorted(int(k[4:]) for k in storage.keys() if k.startswith("log/"))
        self.last: int = storage.get("last", 0)

    def entries(self, snap_index: int) -> list:
        """The durable entries ``snap_index + 1 .. last`` (what a booting node reads back)."""
        if self.last <= snap_index:
            return []
        out: list = []
        for start in self.starts:
            chunk = self.st.get(_key(start))
            if start + len(chunk) <= snap_index + 1:
                continue
            if start > snap_index + 1 + len(out):
                raise AssertionError(f"durable log has a gap before index {start}")
            out.extend(chunk[snap_index + 1 + len(out) - start:])
        if len(out) < self.last - snap_index:
            raise AssertionError(f"durable log ends at {snap_index + len(out)}, short of last {self.last}")
        return out[: self.last - snap_index]

    def write(self, lo: int, entries: tuple) -> None:
        """Entries ``lo ..`` replace whatever is durable from ``lo`` on (nothing, on the usual append)."""
        if self.last >= lo:
            self.truncate(lo)
        if entries:
            self.st.put(_key(lo), entries, sync=False)
            self.starts.append(lo)
        self.last = lo - 1 + len(entries)
        self.st.put("last", self.last, sync=False)

    def truncate(self, lo: int) -> None:
        """Drop the durable entries from ``lo`` on."""
        st, starts = self.st, self.starts
        while starts and starts[-1] >= lo:
            st.delete(_key(starts.pop()), sync=False)
        if starts and self.last >= lo:  # the last chunk straddles lo: keep its head
            s = starts[-1]
            st.put(_key(s), st.get(_key(s))[: lo - s], sync=False)
        if self.last >= lo:
            self.last = lo - 1
            st.put("last", self.last, sync=False)

    def compact(self, snap_index: int) -> None:
        """Drop the chunks that lie wholly inside a snapshot ending at ``snap_index``."""
        st, starts = self.st, self.starts
        n = 0
        while n < len(starts):
            end = starts[n + 1] - 1 if n + 1 < len(starts) else self.last
            if end > snap_index:
                break
            st.delete(_key(starts[n]), sync=False)
            n += 1
        if n:
            del starts[:n]


def entries_after(storage: Any, snap_index: int) -> list:
    """The durable entries ``snap_index + 1 .. last`` of a node's storage (for checkers and tests)."""
    return DurableLog(storage).entries(snap_index)
