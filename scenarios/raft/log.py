"""The replicated log with a snapshot prefix, and the key-value state machine it feeds.

``RaftLog`` holds entries ``snap_index + 1 .. last_index`` in memory; everything up to
``snap_index`` lives only in the snapshot (§7). Its durable twin is written by the node
(``log/<index>`` keys, ``last`` and ``snap`` in ``ctx.storage``); this class never touches storage.

``KV`` applies committed commands in index order. It keeps a session table (§8): the last op id
and result per client process, so a request that a client retried on another server runs at most
once. ``chain`` is a running CRC-32 over (term, op id) of every applied entry: two nodes with the
same ``chain`` at an index applied the same entries up to it, which is what the state-machine
safety checker compares.
"""

from __future__ import annotations

import zlib
from typing import Any

from .messages import Command, Entry


class RaftLog:
    __slots__ = ("entries", "snap_index", "snap_term")

    def __init__(self, snap_index: int = 0, snap_term: int = 0, entries: list[Entry] | None = None):
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.entries: list[Entry] = entries or []

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snap_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index`` (the snapshot's at its last index); None if unknown."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index:
            return None
        return self.entries[index - self.snap_index - 1].term

    def at(self, index: int) -> Entry:
        return self.entries[index - self.snap_index - 1]

    def slice(self, lo: int, hi: int) -> tuple:
        """Entries ``lo .. hi - 1`` (``lo`` > snap_index)."""
        base = self.snap_index + 1
        return tuple(self.entries[lo - base: hi - base])

    def append(self, entry: Entry) -> int:
        self.entries.append(entry)
        return self.last_index

    def truncate_from(self, index: int) -> None:
        """Drop entries ``index ..`` (a conflict with the leader's log)."""
        del self.entries[index - self.snap_index - 1:]

    def first_index_of_term(self, term: int, upto: int) -> int:
        i = upto
        while i - 1 > self.snap_index and self.term_at(i - 1) == term:
            i -= 1
        return i

    def last_index_of_term(self, term: int) -> int | None:
        for i in range(self.last_index, self.snap_index, -1):
            t = self.term_at(i)
            if t == term:
                return i
            if t < term:
                return None
        return None

    def compact(self, index: int, term: int) -> None:
        """Forget entries up to ``index`` (now in a snapshot whose last entry has ``term``)."""
        if index >= self.last_index:
            self.entries = []
        else:
            self.entries = self.entries[index - self.snap_index:]
        self.snap_index = index
        self.snap_term = term


def chain_step(chain: int, entry: Entry) -> int:
    op = entry.command.op_id if entry.command is not None else -1
    return zlib.crc32(b"%d,%d" % (entry.term, op), chain)


class KV:
    """Registers by key, with a session table for at-most-once writes."""

    __slots__ = ("state", "sessions", "chain")

    def __init__(self):
        self.state: dict[Any, Any] = {}
        self.sessions: dict[int, tuple[int, tuple]] = {}
        self.chain = 0

    def apply(self, entry: Entry) -> tuple[str, Any]:
        """Run one committed entry; returns (status, value) for the client that asked."""
        self.chain = chain_step(self.chain, entry)
        cmd: Command | None = entry.command
        if cmd is None:
            return ("ok", None)
        if cmd.f == "read":
            return ("ok", (cmd.key, self.state.get(cmd.key)))
        seen = self.sessions.get(cmd.process)
        if seen is not None and seen[0] >= cmd.op_id:
            # a retried copy: answer as the first copy was answered (nothing if that is forgotten)
            return seen[1] if seen[0] == cmd.op_id else ("ok", None)
        if cmd.f == "write":
            self.state[cmd.key] = cmd.arg
            result = ("ok", (cmd.key, cmd.arg))
        else:
            old, new = cmd.arg
            if self.state.get(cmd.key) == old:
                self.state[cmd.key] = new
                result = ("ok", (cmd.key, cmd.arg))
            else:
                result = ("fail", (cmd.key, cmd.arg))
        self.sessions[cmd.process] = (cmd.op_id, result)
        return result

    def snapshot(self) -> tuple[tuple, tuple, int]:
        return (tuple(sorted(self.state.items(), key=repr)), tuple(sorted(self.sessions.items())), self.chain)

    @classmethod
    def restore(cls, state: tuple, sessions: tuple, chain: int) -> "KV":
        kv = cls()
        kv.state = dict(state)
        kv.sessions = dict(sessions)
        kv.chain = chain
        return kv
