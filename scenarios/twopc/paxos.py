"""Paxos Commit's coordinators (Gray and Lamport, Section 4): 2F+1 nodes, each an acceptor for
every transaction's Paxos instances, any of which can lead.

Each resource manager's prepared/aborted choice is one Paxos consensus instance (4.2). Ballot 0
belongs to the RM itself: its vote is a phase 2a message, accepted by an acceptor that has
promised nothing higher. The commit is decided once, for every instance, F+1 acceptors accepted
"prepared" at one ballot; an instance chosen "aborted" aborts the transaction.

Normal case, N participants, leader on the same node as an acceptor (Section 4.3)::

    initiating RM --BeginCommit (+ its 2a for the leader's acceptor)--> leader
    initiating RM --2a--> the other F acceptors
    leader --Prepare--> the other N-1 RMs --2a--> the F+1 acceptors
    each acceptor, once it accepted all N instances: one forced write, one bundled 2b --> leader
    leader --Commit--> all N RMs

(N+1)(F+3)-4 messages, 5 message delays, N+F+1 forced writes; the leader writes nothing (the
decision is already stable at F+1 acceptors). Acceptors send an aborted instance's 2b at once,
unbundled, so a no vote aborts quickly.

Recovery: when the leader's vote timer expires, or any coordinator is asked about a transaction
whose outcome it does not know (its leader crashed, say), that coordinator leads it with a new
ballot (``round * (2F+1) + its index``, above anything its own acceptor has seen): phase 1a to
every acceptor; from F+1 phase 1b replies it takes, per instance, the value accepted at the
highest ballot or "aborted" where none was (the instance is free, 4.2), and runs phase 2 with
those values. A recovery that stalls (lost messages, a duelling leader) retries after a
randomised ``recovery_timeout_ms``. This is what makes Paxos Commit non-blocking: any F+1 live
coordinators finish the transaction.

Simplification: the 2a/2b/1a/1b of one transaction's instances always travel together (the
paper's bundling), so one message carries one ballot for every instance.
"""

from __future__ import annotations

from heapq import heappop, heappush

from simulator import Node

from . import messages as m
from .wiring import arm_timer, sprung

NS_PER_MS = 1_000_000


class AccState:
    """One acceptor's state for one transaction's instances."""

    __slots__ = ("promised", "accepted", "pending", "parts", "leader", "depth", "sent", "writes")

    def __init__(self, promised=0, accepted=None):
        self.promised = promised
        self.accepted: dict[str, tuple] = accepted or {}  # rm -> (vbal, value, total)
        self.pending: dict[str, tuple] = {}                # ballot-0 votes not yet on disk
        self.parts = ()
        self.leader = ""
        self.depth = 0
        self.sent = 0
        self.writes = 0


class LeadTx:
    """A transaction this coordinator leads (volatile)."""

    __slots__ = ("tx", "kind", "parts", "rms", "client", "bal", "phase", "started", "retry_at", "tally",
                 "p1", "cause", "sent")

    def __init__(self, tx, kind, parts, client, started):
        self.tx = tx
        self.kind = kind
        self.parts = parts
        self.rms = tuple(r for r, _ in parts)
        self.client = client
        self.bal = 0
        self.phase = "fast"
        self.started = started
        self.retry_at = 0
        self.tally: dict[str, tuple] = {}  # acceptor -> (votes, depth) at self.bal
        self.p1: dict[str, tuple] = {}     # acceptor -> accepted, phase 1
        self.cause = ""
        self.sent = 0


class PaxosCoordinator(Node):
    def __init__(self, node_id: str, w, traps):
        self.id = node_id
        self.w = w
        self.bug = w.bug
        self.traps = traps
        self.coords = w.coordinators
        self.k = len(w.coordinators)
        self.idx = w.coordinators.index(node_id)
        self.quorum = w.f + 1
        self.acc: dict[int, AccState] = {}
        self.lead: dict[int, LeadTx] = {}
        self.decided: dict[int, str] = {}
        self.vote_ns = int(w.vote_timeout_ms * NS_PER_MS)
        self.recovery_ns = int(w.recovery_timeout_ms * NS_PER_MS)
        self.dead = False
        self.fast: dict[int, LeadTx] = {}     # led, still on ballot 0, in start order (vote deadlines)
        self.due: list[tuple[int, int]] = []  # heap of (local ns, tx): recovery retry deadlines
        self.tick_due: int | None = None

    def arm(self, ctx, due: int, tx: int | None = None) -> None:
        if tx is not None:
            heappush(self.due, (due, tx))
        arm_timer(self, ctx, due)

    def _trap(self, ctx, phase: str) -> bool:
        return sprung(self, ctx, phase)

    # ---- acceptor -----------------------------------------------------------------------------
    def _state(self, ctx, tx: int) -> AccState:
        s = self.acc.get(tx)
        if s is None:
            rec = ctx.storage.get(f"x/{tx}")
            s = AccState() if rec is None else AccState(rec[0], {r: (b, v, t) for r, b, v, t in rec[1]})
            self.acc[tx] = s
        return s

    def _write(self, ctx, tx: int, s: AccState) -> None:
        ctx.storage.put(f"x/{tx}", (s.promised, tuple((r, b, v, t) for r, (b, v, t) in s.accepted.items())))
        s.writes += 1

    def accept0(self, ctx, tx: int, votes: tuple, parts: tuple, leader: str, depth: int) -> None:
        """An RM's own ballot-0 vote; bundled until every instance of ``tx`` is in."""
        s = self._state(ctx, tx)
        if s.promised > 0:
            return  # a recovery leader owns this transaction now
        s.parts = parts
        s.leader = leader
        if depth > s.depth:
            s.depth = depth
        flush = False
        for rm, value, total in votes:
            if rm in s.accepted or rm in s.pending:
                continue
            s.pending[rm] = (0, value, total)
            if value == m.ABORTED:
                flush = True
        if s.pending and (flush or len(s.accepted) + len(s.pending) == len(parts)):
            s.accepted.update(s.pending)
            s.pending.clear()
            self._write(ctx, tx, s)
            votes = tuple((r, v, t) for r, (b, v, t) in s.accepted.items() if b == 0)
            if leader == ctx.id:
                self.on_2b(ctx, ctx.id, tx, 0, votes, s.depth)
            else:
                s.sent += 1
                ctx.send(leader, m.Phase2b(tx, ctx.id, 0, votes, s.depth + 1))
            ctx.record("accepted", tx=tx, sent=s.sent, writes=s.writes)
            if len(s.accepted) == len(parts):
                del self.acc[tx]  # complete: the disk has it all; reloaded if a recovery asks

    def on_1a(self, ctx, msg: m.Phase1a) -> None:
        s = self._state(ctx, msg.tx)
        if msg.bal <= s.promised:
            return
        s.promised = msg.bal
        s.accepted.update(s.pending)  # received before this promise: accepted at ballot 0
        s.pending.clear()
        self._write(ctx, msg.tx, s)
        accepted = tuple((r, b, v, t) for r, (b, v, t) in s.accepted.items())
        if msg.leader == ctx.id:
            self.on_1b(ctx, ctx.id, msg.tx, msg.bal, accepted)
        else:
            ctx.send(msg.leader, m.Phase1b(msg.tx, ctx.id, msg.bal, accepted))

    def on_2a_ballot(self, ctx, msg: m.Phase2a) -> None:
        s = self._state(ctx, msg.tx)
        if msg.bal < s.promised:
            return
        s.promised = msg.bal
        s.pending.clear()
        s.accepted = {r: (msg.bal, v, t) for r, v, t in msg.votes}
        self._write(ctx, msg.tx, s)
        if msg.leader == ctx.id:
            self.on_2b(ctx, ctx.id, msg.tx, msg.bal, msg.votes, 0)
        else:
            ctx.send(msg.leader, m.Phase2b(msg.tx, ctx.id, msg.bal, msg.votes, 0))

    # ---- messages -----------------------------------------------------------------------------
    def on_message(self, ctx, src, msg):
        if self.dead:
            return
        t = type(msg)
        if t is m.Phase2a:
            if msg.bal == 0:
                self.accept0(ctx, msg.tx, msg.votes, msg.parts, msg.leader, msg.depth)
            else:
                self.on_2a_ballot(ctx, msg)
        elif t is m.Phase2b:
            self.on_2b(ctx, msg.acceptor, msg.tx, msg.bal, msg.votes, msg.depth)
        elif t is m.BeginCommit:
            self.on_begin(ctx, msg)
        elif t is m.Phase1a:
            self.on_1a(ctx, msg)
        elif t is m.Phase1b:
            self.on_1b(ctx, msg.acceptor, msg.tx, msg.bal, msg.accepted)
        elif t is m.QueryOutcome:
            self.on_query(ctx, msg)

    # ---- leader -------------------------------------------------------------------------------
    def on_begin(self, ctx, msg: m.BeginCommit) -> None:
        tx = msg.tx
        if tx in self.lead or tx in self.decided:
            return
        lt = self.lead[tx] = LeadTx(tx, msg.kind, msg.parts, msg.client, ctx.now)
        self.fast[tx] = lt
        self.arm(ctx, lt.started + self.vote_ns)
        if self._trap(ctx, "before-prepare"):
            return
        prep = m.Prepare(tx, msg.kind, msg.parts, msg.client, ctx.id, msg.depth + 1)
        for rm in lt.rms:
            if rm != msg.rm:
                lt.sent += 1
                ctx.send(rm, prep)
        self.accept0(ctx, tx, ((msg.rm, m.PREPARED, msg.total),), msg.parts, ctx.id, msg.depth)
        if tx in self.lead:
            self._trap(ctx, "after-some-votes")

    def on_2b(self, ctx, acceptor: str, tx: int, bal: int, votes: tuple, depth: int) -> None:
        lt = self.lead.get(tx)
        if lt is None or bal != lt.bal or (bal and lt.phase != "p2"):
            return
        lt.tally[acceptor] = (votes, depth)
        if len(lt.tally) < self.quorum and not any(v == m.ABORTED for _, v, _ in votes):
            return
        count: dict[tuple, int] = {}
        aborted_cause = None
        deepest = 0
        for vs, d in lt.tally.values():
            if d > deepest:
                deepest = d
            for rm, v, t in vs:
                key = (rm, v)
                n = count[key] = count.get(key, 0) + 1
                if v == m.ABORTED and n >= self.quorum and aborted_cause is None:
                    aborted_cause = t if isinstance(t, str) and t else (lt.cause or m.VOTE_NO)
        if aborted_cause is not None:
            self.decide(ctx, lt, "A", aborted_cause, deepest)
            return
        for rm in lt.rms:
            if count.get((rm, m.PREPARED), 0) < self.quorum:
                return
        self.decide(ctx, lt, "C", "", deepest)

    def decide(self, ctx, lt: LeadTx, outcome: str, cause: str, depth: int) -> None:
        tx = lt.tx
        del self.lead[tx]
        self.fast.pop(tx, None)
        self.decided[tx] = outcome
        fast = lt.bal == 0 and lt.phase == "fast"
        if self._trap(ctx, "after-decision-logged"):
            self._record(ctx, lt, outcome, cause, fast)
            return
        msg = m.Commit(tx, depth + 1) if outcome == "C" else m.Abort(tx, cause, depth + 1)
        for i, rm in enumerate(lt.rms):
            lt.sent += 1
            ctx.send(rm, msg)
            if i == 0 and self._trap(ctx, "mid-decision"):
                self._record(ctx, lt, outcome, cause, fast)
                return
        self._record(ctx, lt, outcome, cause, fast)
        total = None
        if outcome == "C" and lt.kind == "audit":
            total = 0
            for vs, _ in lt.tally.values():
                total = sum(t for _, _, t in vs)
                break
        ctx.send(lt.client, m.TxResult(tx, outcome == "C", cause, total))

    def _record(self, ctx, lt: LeadTx, outcome: str, cause: str, fast: bool) -> None:
        ctx.record("decided", tx=lt.tx, outcome=outcome, cause=cause, parts=lt.parts, sent=lt.sent, writes=0,
                   fast=fast)

    def on_query(self, ctx, msg: m.QueryOutcome) -> None:
        tx = msg.tx
        outcome = self.decided.get(tx)
        if outcome is not None:
            ctx.send(msg.rm, m.Commit(tx, 0) if outcome == "C" else m.Abort(tx, m.FAILURE, 0))
            return
        if tx in self.lead:
            return  # in progress; its own timers finish it
        lt = self.lead[tx] = LeadTx(tx, msg.kind, msg.parts, msg.client, ctx.now)
        self.recover(ctx, lt, m.FAILURE)

    def recover(self, ctx, lt: LeadTx, cause: str) -> None:
        """Lead ``lt`` with a fresh ballot: phase 1 on every acceptor (Section 4.2)."""
        lt.cause = cause
        self.fast.pop(lt.tx, None)
        seen = max(lt.bal, self._state(ctx, lt.tx).promised)
        lt.bal = (seen // self.k + 1) * self.k + self.idx
        lt.phase = "p1"
        lt.p1 = {}
        lt.tally = {}
        lt.retry_at = ctx.now + int(self.recovery_ns * (1.0 + ctx.rng.random()))
        self.arm(ctx, lt.retry_at, lt.tx)
        msg = m.Phase1a(lt.tx, lt.bal, ctx.id)
        for c in self.coords:
            if c != ctx.id:
                ctx.send(c, msg)
        self.on_1a(ctx, msg)

    def on_1b(self, ctx, acceptor: str, tx: int, bal: int, accepted: tuple) -> None:
        lt = self.lead.get(tx)
        if lt is None or lt.phase != "p1" or bal != lt.bal:
            return
        lt.p1[acceptor] = accepted
        if len(lt.p1) < self.quorum:
            return
        best: dict[str, tuple] = {}
        for acc in lt.p1.values():
            for r, b, v, t in acc:
                if r not in best or b > best[r][0]:
                    best[r] = (b, v, t)
        votes = tuple((r, best[r][1], best[r][2]) if r in best else (r, m.ABORTED, lt.cause) for r in lt.rms)
        lt.phase = "p2"
        lt.tally = {}
        msg = m.Phase2a(tx, lt.bal, votes, lt.parts, ctx.id, 0)
        for c in self.coords:
            if c != ctx.id:
                ctx.send(c, msg)
        self.on_2a_ballot(ctx, msg)

    def on_timer(self, ctx, name):
        self.tick_due = None
        if self.dead:
            return
        now = ctx.now
        while self.fast:
            lt = next(iter(self.fast.values()))
            if lt.started + self.vote_ns > now:
                break
            if self.bug == "commit-on-timeout":
                self.decide(ctx, lt, "C", "", 0)
            else:
                self.recover(ctx, lt, m.VOTE_TIMEOUT)
            if self.dead:
                return
        due = self.due
        while due and due[0][0] <= now:
            _, tx = heappop(due)
            lt = self.lead.get(tx)
            if lt is None or lt.phase == "fast" or lt.retry_at > now:
                continue
            self.recover(ctx, lt, lt.cause)
            if self.dead:
                return
        if self.fast:
            self.arm(ctx, next(iter(self.fast.values())).started + self.vote_ns)
        if due:
            arm_timer(self, ctx, due[0][0])
