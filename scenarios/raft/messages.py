"""Raft's messages (Ongaro and Ousterhout 2014, Figure 2) and the client protocol, as frozen
dataclasses (``@message``).

Internal RPCs carry the sender's term; replies are their own classes. ``seq`` and ``sent_at`` on
AppendEntries are echoed by the reply: the leader uses them to confirm it still leads for
read-index reads (a majority answered a round sent after the read arrived) and to time leases
(a majority answered a round sent at local time ``sent_at``). Client messages are kept apart.
"""

from __future__ import annotations

from typing import Any

from simulator import message


@message
class Command:
    """A client operation as it travels in a log entry (``f`` is read, write or cas)."""

    op_id: int
    process: int
    f: str
    key: Any
    arg: Any
    client: str


@message
class Entry:
    """One log entry: the term it was created in and its command (None: the leader's no-op, §8)."""

    term: int
    command: Command | None


# ---- internal RPCs ------------------------------------------------------------------------------

@message
class RequestVote:
    term: int
    candidate: str
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False


@message
class RequestVoteReply:
    term: int
    voter: str
    granted: bool
    pre_vote: bool = False


@message
class AppendEntries:
    term: int
    leader: str
    prev_index: int
    prev_term: int
    entries: tuple
    leader_commit: int
    seq: int
    sent_at: int


@message
class AppendEntriesReply:
    term: int
    follower: str
    success: bool
    match_index: int
    conflict_index: int
    conflict_term: int | None
    seq: int
    sent_at: int


@message
class InstallSnapshot:
    term: int
    leader: str
    last_index: int
    last_term: int
    state: tuple
    sessions: tuple
    chain: int
    seq: int
    sent_at: int


@message
class InstallSnapshotReply:
    term: int
    follower: str
    last_index: int
    seq: int
    sent_at: int


# ---- client protocol ----------------------------------------------------------------------------

@message
class ClientRequest:
    op_id: int
    process: int
    f: str
    key: Any
    arg: Any


@message
class ClientReply:
    """``status``: ok, fail (a cas found another value), redirect (not the leader; ``leader`` is a
    hint or None), dropped (the entry holding the request was overwritten: that copy never runs)."""

    op_id: int
    status: str
    value: Any = None
    leader: str | None = None
