"""Two-phase commit's transaction manager (Gray and Lamport, Section 3.1; presumed abort as in
Mohan, Lindsay and Obermarck's R* protocols).

Normal case, N participants, the TM on its own node (Section 3.2)::

    initiating RM --Prepared--> TM --Prepare--> the other N-1 RMs --Prepared--> TM
    TM forces the commit record, then --Commit--> all N RMs

3N-1 messages, 4 message delays, N+1 forced writes (N prepare records, one commit record).

* The TM learns of a transaction from the initiating RM's yes vote and keeps it in volatile
  memory only: presumed abort means no log record before the decision, and none for an abort.
* The commit record is forced *before* any Commit leaves (the decision is logged before it is
  sent); it is dropped once every participant has acknowledged the commit.
* A vote that does not come within ``vote_timeout_ms`` aborts the transaction.
* After a restart the TM re-sends Commit for every commit record in its log; anything else it
  is asked about it never decided, so it answers Abort (presumed abort).
* An in-doubt RM's QueryOutcome is answered from the log; a transaction still collecting votes is
  not answered yet.

Simplification: the TM remembers which unknown transactions it presumed aborted only in memory.
A delayed initiating vote for such a transaction arriving after a TM restart (longer in flight
than the RMs' doubt timeout and the TM's downtime together) would restart its protocol; the
network models here never hold a message that long.
"""

from __future__ import annotations

from simulator import Node

from . import messages as m
from .wiring import arm_timer, sprung

NS_PER_MS = 1_000_000


class TmTx:
    __slots__ = ("tx", "kind", "parts", "rms", "client", "votes", "total", "started", "depth", "sent")

    def __init__(self, tx, kind, parts, client, started):
        self.tx = tx
        self.kind = kind
        self.parts = parts
        self.rms = tuple(r for r, _ in parts)
        self.client = client
        self.votes: set[str] = set()
        self.total = 0
        self.started = started
        self.depth = 0
        self.sent = 0


class TransactionManager(Node):
    def __init__(self, w, traps):
        self.w = w
        self.bug = w.bug
        self.traps = traps
        self.active: dict[int, TmTx] = {}       # collecting votes, in start order
        self.unacked: dict[int, set[str]] = {}  # committed, logged, awaiting acks
        self.presumed: set[int] = set()         # answered "abort" without knowing the transaction
        self.outcomes: dict[int, str] = {}      # decided since the last restart (a duplicate vote restarts nothing)
        self.vote_ns = int(w.vote_timeout_ms * NS_PER_MS)
        self.dead = False
        self.tick_due: int | None = None

    def on_start(self, ctx):
        st = ctx.storage
        for key in list(st.keys()):
            if key.startswith("c/"):
                tx = int(key[2:])
                rms = st.get(key)
                self.unacked[tx] = set(rms)
                for rm in rms:  # re-send the decision after a restart
                    ctx.send(rm, m.Commit(tx, 0))

    def arm(self, ctx, due: int) -> None:
        arm_timer(self, ctx, due)

    def _trap(self, ctx, phase: str) -> bool:
        return sprung(self, ctx, phase)

    # ---- messages -----------------------------------------------------------------------------
    def on_message(self, ctx, src, msg):
        if self.dead:
            return
        t = type(msg)
        if t is m.Prepared:
            self.on_prepared(ctx, src, msg)
        elif t is m.Aborted:
            tt = self.active.get(msg.tx)
            if tt is not None:
                self.abort(ctx, tt, msg.cause, exclude=msg.rm)
        elif t is m.Ack:
            for tx in msg.txs:
                waiting = self.unacked.get(tx)
                if waiting is not None:
                    waiting.discard(msg.rm)
                    if not waiting:
                        del self.unacked[tx]
                        ctx.storage.delete(f"c/{tx}", sync=False)
        elif t is m.QueryOutcome:
            self.on_query(ctx, msg)

    def on_prepared(self, ctx, src, msg: m.Prepared) -> None:
        tx = msg.tx
        tt = self.active.get(tx)
        if tt is None:
            if f"c/{tx}" in ctx.storage or self.outcomes.get(tx) == "C":
                ctx.send(msg.rm, m.Commit(tx, 0))
            elif msg.initiator and tx not in self.presumed and tx not in self.outcomes:
                self.begin(ctx, msg)
            else:
                self.presume_abort(ctx, tx, msg.rm, msg.parts)
            return
        if msg.rm in tt.votes:
            return
        tt.votes.add(msg.rm)
        tt.total += msg.total
        if msg.depth > tt.depth:
            tt.depth = msg.depth
        if len(tt.votes) == len(tt.rms):
            self.commit(ctx, tt)
        else:
            self._trap(ctx, "after-some-votes")

    def begin(self, ctx, msg: m.Prepared) -> None:
        tt = TmTx(msg.tx, msg.kind, msg.parts, msg.client, ctx.now)
        tt.votes.add(msg.rm)
        tt.total = msg.total
        tt.depth = msg.depth
        self.active[msg.tx] = tt
        self.arm(ctx, tt.started + self.vote_ns)
        if self._trap(ctx, "before-prepare"):
            return
        prep = m.Prepare(msg.tx, msg.kind, msg.parts, msg.client, ctx.id, msg.depth + 1)
        for rm in tt.rms:
            if rm != msg.rm:
                tt.sent += 1
                ctx.send(rm, prep)
        if len(tt.votes) == len(tt.rms):
            self.commit(ctx, tt)
        else:
            self._trap(ctx, "after-some-votes")

    def on_query(self, ctx, msg: m.QueryOutcome) -> None:
        tx = msg.tx
        if f"c/{tx}" in ctx.storage or self.outcomes.get(tx) == "C":
            ctx.send(msg.rm, m.Commit(tx, 0))
        elif tx not in self.active:
            self.presume_abort(ctx, tx, msg.rm, msg.parts)

    def presume_abort(self, ctx, tx: int, rm: str, parts: tuple) -> None:
        if tx not in self.presumed:
            self.presumed.add(tx)
            ctx.record("decided", tx=tx, outcome="A", cause=m.FAILURE, parts=parts, sent=0, writes=0, fast=False)
        ctx.send(rm, m.Abort(tx, m.FAILURE, 0))

    # ---- decisions ----------------------------------------------------------------------------
    def commit(self, ctx, tt: TmTx) -> None:
        tx = tt.tx
        del self.active[tx]
        self.outcomes[tx] = "C"
        fast = len(tt.votes) == len(tt.rms)
        msg = m.Commit(tx, tt.depth + 1)
        logged = self.bug != "decide-before-log"
        if logged:
            ctx.storage.put(f"c/{tx}", tt.rms)  # forced: the decision is on disk before it is sent
            if self._trap(ctx, "after-decision-logged"):
                self._record(ctx, tt, "C", "", fast, writes=1)
                return
        for i, rm in enumerate(tt.rms):
            tt.sent += 1
            ctx.send(rm, msg)
            if i == 0 and self._trap(ctx, "mid-decision"):
                self._record(ctx, tt, "C", "", fast, writes=int(logged))
                return
        self._record(ctx, tt, "C", "", fast, writes=1)
        if not logged:  # the planted bug: the decision is out before it is on disk
            ctx.storage.put(f"c/{tx}", tt.rms)
        self.unacked[tx] = set(tt.rms)
        ctx.send(tt.client, m.TxResult(tx, True, "", tt.total if tt.kind == "audit" else None))

    def abort(self, ctx, tt: TmTx, cause: str, exclude: str = "") -> None:
        del self.active[tt.tx]
        self.outcomes[tt.tx] = "A"
        msg = m.Abort(tt.tx, cause, tt.depth + 1)
        for rm in tt.rms:
            if rm != exclude:
                tt.sent += 1
                ctx.send(rm, msg)
        self._record(ctx, tt, "A", cause, False, writes=0)
        ctx.send(tt.client, m.TxResult(tt.tx, False, cause))

    def _record(self, ctx, tt: TmTx, outcome: str, cause: str, fast: bool, writes: int) -> None:
        ctx.record("decided", tx=tt.tx, outcome=outcome, cause=cause, parts=tt.parts, sent=tt.sent,
                   writes=writes, fast=fast)

    def on_timer(self, ctx, name):
        self.tick_due = None
        if self.dead:
            return
        now = ctx.now
        if self.active:
            late = []
            for tt in self.active.values():
                if tt.started + self.vote_ns > now:
                    break
                late.append(tt)
            for tt in late:
                if self.bug == "commit-on-timeout":
                    self.commit(ctx, tt)
                else:
                    self.abort(ctx, tt, m.VOTE_TIMEOUT)
                if self.dead:
                    return
        if self.active:
            self.arm(ctx, next(iter(self.active.values())).started + self.vote_ns)
