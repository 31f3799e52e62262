"""Messages of the transaction manager, in Gray and Lamport's vocabulary ("Consensus on Transaction
Commit", 2006).

Client-facing messages (:class:`Begin`, :class:`TxResult`) are kept apart from the commit
protocols' own. Every protocol message carries ``depth``: the number of message delays on the
causal chain that produced it, counted from the initiating resource manager's first send. Nodes
set it as ``depth of the message that caused this one + 1``, so the depth of the decision a
resource manager receives is the message-delay length of the commit's critical path (Section 3.2
and 4.3 count exactly this). Local hand-offs inside one node add nothing.

A transaction's ``parts`` is a tuple ``((rm, ((account, delta), ...)), ...)`` with the
initiating resource manager first; an audit's parts carry no deltas.
"""

from __future__ import annotations

from simulator import message

PREPARED = "prepared"
ABORTED = "aborted"

# Abort causes, as the metrics count them.
VOTE_NO = "vote-no"            # a resource manager refused (insufficient funds)
LOCK_TIMEOUT = "lock-timeout"  # a resource manager could not take its locks in time
VOTE_TIMEOUT = "vote-timeout"  # the coordinator did not hear every vote in time
FAILURE = "failure"            # decided by recovery: presumed abort, Paxos recovery, cooperative termination


# ---- client-facing ------------------------------------------------------------------------------
@message
class Begin:
    """Client -> the initiating RM: run transaction ``tx`` (the client's operation id)."""

    tx: int
    kind: str  # "transfer" or "audit"
    parts: tuple
    client: str


@message
class TxResult:
    """Coordinator (or an initiating RM that voted no) -> client: the outcome."""

    tx: int
    committed: bool
    cause: str = ""
    total: int | None = None  # an audit's sum of balances


# ---- shared by both protocols -------------------------------------------------------------------
@message
class Prepare:
    """TM / leader -> the other RMs: take your locks, persist a prepare record, vote."""

    tx: int
    kind: str
    parts: tuple
    client: str
    leader: str
    depth: int


@message
class Commit:
    tx: int
    depth: int


@message
class Abort:
    tx: int
    cause: str
    depth: int


@message
class QueryOutcome:
    """An in-doubt RM asks a coordinator for the outcome (it carries what a new leader needs)."""

    tx: int
    rm: str
    kind: str
    parts: tuple
    client: str


# ---- two-phase commit (Section 3) ---------------------------------------------------------------
@message
class Prepared:
    """RM -> TM: a yes vote. The initiating RM's vote also starts the protocol at the TM."""

    tx: int
    rm: str
    initiator: bool
    kind: str
    parts: tuple
    client: str
    total: int
    depth: int


@message
class Aborted:
    """RM -> TM: a no vote."""

    tx: int
    rm: str
    cause: str
    depth: int


@message
class Ack:
    """RM -> TM, batched: these commits are durable here; the TM may forget them (presumed abort)."""

    rm: str
    txs: tuple


@message
class QueryPeer:
    """Cooperative termination: an in-doubt RM asks another participant what it knows."""

    tx: int
    rm: str


@message
class PeerState:
    tx: int
    rm: str
    state: str  # "committed", "aborted" or "prepared" (no help)


# ---- Paxos Commit (Section 4) -------------------------------------------------------------------
@message
class BeginCommit:
    """Initiating RM -> leader, bundled with its own ballot-0 phase 2a message for the leader's acceptor."""

    tx: int
    rm: str
    kind: str
    parts: tuple
    client: str
    total: int
    depth: int


@message
class Phase2a:
    """Ballot 0: an RM's own vote (one instance). Ballot > 0: a leader's values for every instance.

    ``votes`` is ``((rm, value, total), ...)``; ``total`` is an audit's partial sum for a
    prepared instance and the abort cause for an aborted one."""

    tx: int
    bal: int
    votes: tuple
    parts: tuple
    leader: str
    depth: int


@message
class Phase2b:
    """Acceptor -> leader: the instances it accepted at ``bal``, bundled into one message."""

    tx: int
    acceptor: str
    bal: int
    votes: tuple
    depth: int


@message
class Phase1a:
    tx: int
    bal: int
    leader: str


@message
class Phase1b:
    """Acceptor -> leader: a promise for ``bal``, with ``((rm, vbal, value, total), ...)`` accepted so far."""

    tx: int
    acceptor: str
    bal: int
    accepted: tuple
