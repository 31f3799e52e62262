"""Where a resource manager's votes go and whom it asks when in doubt, per protocol.

Two-phase commit (Section 3.1): votes go to the one TM; an in-doubt RM asks the TM again and
again (and, with ``cooperative=true``, the other participants: the cooperative termination
protocol, which unblocks an RM whenever some participant has decided or has not yet voted, but
not when every participant is prepared and the TM is gone). Commits are acknowledged in batches
after an fsync, so the TM can forget them (presumed abort).

Paxos Commit (Sections 4.2 and 4.3): an RM's vote is the ballot-0 phase 2a message of its own
Paxos instance, sent to F+1 acceptors (the leader's and the next F). The initiating RM bundles
its 2a for the leader's acceptor with BeginCommit. An in-doubt RM asks the transaction's leader,
then each next coordinator in turn; a coordinator that does not know the outcome becomes leader
for that transaction and runs Paxos with a higher ballot (non-blocking while F+1 acceptors live).
An RM that had to ask past a coordinator suspects it for ``suspect_ms`` and picks the next one as
leader for new transactions (a crude leader election, enough for failover).
"""

from __future__ import annotations

from . import messages as m
from .rm import ResourceManager, RmTx

NS_PER_MS = 1_000_000


class RmTwoPhase(ResourceManager):
    def __init__(self, w):
        super().__init__(w)
        self.tm = w.coordinators[0]
        self.to_ack: list[int] = []
        self.ack_ns = int(w.ack_delay_ms * NS_PER_MS)
        self.ack_due = 0

    def send_vote(self, ctx, t: RmTx) -> None:
        t.sent += 1
        ctx.send(self.tm, m.Prepared(t.tx, ctx.id, t.initiator, t.kind, t.parts, t.client, t.total, t.depth + 1))

    def send_no(self, ctx, t: RmTx, cause: str) -> None:
        if t.initiator:
            ctx.send(t.client, m.TxResult(t.tx, False, cause))
        else:
            t.sent += 1
            ctx.send(self.tm, m.Aborted(t.tx, ctx.id, cause, t.depth + 1))

    def query(self, ctx, t: RmTx) -> None:
        ctx.send(self.tm, m.QueryOutcome(t.tx, ctx.id, t.kind, t.parts, t.client))
        if self.w.cooperative:
            for rm, _ in t.parts:
                if rm != ctx.id:
                    ctx.send(rm, m.QueryPeer(t.tx, ctx.id))

    def acknowledge(self, ctx, tx: int) -> None:
        if not self.to_ack:
            self.ack_due = ctx.now + self.ack_ns
            self.arm(ctx, self.ack_due)
        self.to_ack.append(tx)

    def on_tick(self, ctx) -> int | None:
        if self.to_ack:
            if self.ack_due > ctx.now:
                return self.ack_due
            ctx.storage.sync()  # the applied commits are durable before the TM may forget them
            ctx.send(self.tm, m.Ack(ctx.id, tuple(self.to_ack)))
            self.to_ack = []
        return None

    def on_other(self, ctx, src, msg):
        if type(msg) is m.QueryPeer:
            self.answer_peer(ctx, msg)
        elif type(msg) is m.PeerState:
            if msg.state == "committed":
                self.decide(ctx, msg.tx, "C", "", 0)
            elif msg.state == "aborted":
                self.decide(ctx, msg.tx, "A", m.FAILURE, 0)

    def answer_peer(self, ctx, msg: m.QueryPeer) -> None:
        tx = msg.tx
        outcome = self.done.get(tx)
        if outcome is None:
            t = self.txs.get(tx)
            if t is not None and t.state == "prepared":
                ctx.send(msg.rm, m.PeerState(tx, ctx.id, "prepared"))
                return
            # Not voted yet (waiting for locks, or never asked): abort unilaterally, durably, so a
            # Prepare arriving later is refused.
            ctx.storage.put(f"o/{tx}", "A")
            if t is not None:
                self.locks.cancel(tx)
                self.finish_unprepared(ctx, t, m.FAILURE)
            self.done[tx] = outcome = "A"
        ctx.send(msg.rm, m.PeerState(tx, ctx.id, "committed" if outcome == "C" else "aborted"))


class RmPaxos(ResourceManager):
    def __init__(self, w):
        super().__init__(w)
        self.suspect: dict[str, int] = {}
        self.suspect_ns = int(w.suspect_ms * NS_PER_MS)

    def choose_leader(self, ctx) -> str:
        now = ctx.now
        for c in self.w.coordinators:
            if self.suspect.get(c, 0) <= now:
                return c
        return self.w.coordinators[0]

    def send_vote(self, ctx, t: RmTx) -> None:
        vote = ((ctx.id, m.PREPARED, t.total),)
        acceptors = self.w.acceptors_for(t.leader)
        if t.initiator:
            ctx.send(t.leader, m.BeginCommit(t.tx, ctx.id, t.kind, t.parts, t.client, t.total, 1))
            acceptors = acceptors[1:]
        msg = m.Phase2a(t.tx, 0, vote, t.parts, t.leader, t.depth + 1)
        for a in acceptors:
            ctx.send(a, msg)
        t.sent += len(acceptors) + (1 if t.initiator else 0)

    def send_no(self, ctx, t: RmTx, cause: str) -> None:
        if t.initiator:
            ctx.send(t.client, m.TxResult(t.tx, False, cause))
            return
        msg = m.Phase2a(t.tx, 0, ((ctx.id, m.ABORTED, cause),), t.parts, t.leader, t.depth + 1)
        for a in self.w.acceptors_for(t.leader):
            t.sent += 1
            ctx.send(a, msg)

    def query(self, ctx, t: RmTx) -> None:
        coords = self.w.coordinators
        i = coords.index(t.leader)
        if t.attempts:
            self.suspect[coords[(i + t.attempts - 1) % len(coords)]] = ctx.now + self.suspect_ns
        ctx.send(coords[(i + t.attempts) % len(coords)], m.QueryOutcome(t.tx, ctx.id, t.kind, t.parts, t.client))
