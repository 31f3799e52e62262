"""The resource manager: one per shard. It owns its accounts, locks them (strict 2PL), persists a
prepare record before voting yes, applies or drops the transaction's deltas on the decision, and
after a crash recovers every prepared transaction from its log, in doubt and holding its locks,
until it learns the outcome (Gray and Lamport, Section 2; the RM's part of Sections 3.1 and 4.2).

Life of a transaction at an RM::

    Begin (client, initiating RM) or Prepare (coordinator)
        -> waiting for locks (lock_wait_timeout_ms, then a no vote: "lock-timeout")
        -> funds checked (an overdraft is a no vote: "vote-no")
        -> prepare record forced to disk, then the yes vote          [prepared: in doubt]
        -> Commit: deltas applied, outcome recorded (lazily), locks released
           Abort: prepare record dropped, locks released

Writes after the decision are not forced: a crash that loses them leaves the prepare record, so
the RM is in doubt again and asks; under 2PC it acknowledges a commit only after a later fsync,
so the TM never forgets a commit an RM could still lose (presumed abort, Section 3.1).

Simplifications: deltas are applied at commit (deferred update), so an abort needs no undo;
transactions are one-shot (their operations arrive with Prepare); an audit reads the shard's
committed balances under its S lock when it prepares. One timer serves every time-out: it is set for the
earliest deadline (a lock wait, a question to ask), not once per transaction, and deadlines round
up to a 5 ms grid so that clustered time-outs share one firing (each fires up to 5 ms late). An
in-doubt RM asks after ``doubt_timeout_ms``, then again after ``doubt_retry_ms``, doubling the
wait up to eight times that (a long outage is not a query storm; recovery after it is at most
that much late).

The two protocols differ only in where votes go and whom an in-doubt RM asks; the subclasses
in :mod:`.rm_protocols` fill in :meth:`send_vote`, :meth:`send_no` and :meth:`query`.
"""

from __future__ import annotations

from heapq import heappop, heappush

from simulator import Node

from . import messages as m
from .locks import AUDIT, LockTable
from .wiring import arm_timer

NS_PER_MS = 1_000_000


class RmTx:
    """A transaction this RM is working on (volatile)."""

    __slots__ = ("tx", "kind", "parts", "client", "leader", "initiator", "deltas", "accounts", "state",
                 "deadline", "locked_at", "prepared_at", "next_query", "attempts", "total", "depth", "sent")

    def __init__(self, tx, kind, parts, client, leader, initiator, deltas, depth):
        self.tx = tx
        self.kind = kind
        self.parts = parts
        self.client = client
        self.leader = leader
        self.initiator = initiator
        self.deltas = deltas
        self.accounts = tuple(a for a, _ in deltas)
        self.state = "waiting"
        self.deadline = 0
        self.locked_at = 0
        self.prepared_at = 0
        self.next_query = 0
        self.attempts = 0
        self.total = 0
        self.depth = depth
        self.sent = 0


def own_deltas(parts: tuple, rm: str) -> tuple:
    for r, deltas in parts:
        if r == rm:
            return deltas
    return ()


class ResourceManager(Node):
    """Protocol-independent RM; see the module docstring."""

    def __init__(self, w):
        self.w = w
        self.bug = w.bug
        self.locks = LockTable()
        self.txs: dict[int, RmTx] = {}        # waiting or prepared, in arrival order
        self.waiting: dict[int, RmTx] = {}    # waiting for locks, in arrival order (= deadline order)
        self.prepared: dict[int, RmTx] = {}   # in doubt, in prepare order
        self.done: dict[int, str] = {}        # tx -> "C" / "A" decided here (volatile mirror of o/ keys)
        self.unasked: dict[int, RmTx] = {}    # prepared, not asked about yet, in prepare order
        self.asks: list[tuple[int, int]] = []  # heap of (when to ask again, tx) for those asked already
        self.tick_due: int | None = None       # when the "tick" timer fires (local ns), if set
        self.lock_wait_ns = int(w.lock_wait_timeout_ms * NS_PER_MS)
        self.doubt_ns = int(w.doubt_timeout_ms * NS_PER_MS)
        self.retry_ns = int(w.doubt_retry_ms * NS_PER_MS)

    # ---- boot and recovery --------------------------------------------------------------------
    def on_start(self, ctx):
        st = ctx.storage
        if st.get("init") is None:
            for a in self.w.accounts_of(ctx.id):
                st.put(f"a/{a}", self.w.initial_balance, sync=False)
            st.put("init", True)
        now = ctx.now
        for key in list(st.keys()):
            if key.startswith("p/"):
                tx, kind, parts, client, leader, initiator, total = st.get(key)
                t = RmTx(tx, kind, parts, client, leader, initiator, own_deltas(parts, ctx.id), 0)
                t.state = "prepared"
                t.total = total
                t.prepared_at = t.locked_at = now
                t.next_query = now  # ask at the next tick: the outcome may be long decided
                heappush(self.asks, (now, tx))
                self.arm(ctx, now)
                self.txs[tx] = t
                self.prepared[tx] = t
                if self.bug != "early-unlock":
                    self.locks.force(tx, kind, t.accounts)
            elif key.startswith("o/"):
                self.done[int(key[2:])] = st.get(key)

    def arm(self, ctx, due: int) -> None:
        """Make the one timer fire by local time ``due`` (ns): deadlines, not a periodic tick."""
        arm_timer(self, ctx, due)

    # ---- messages -----------------------------------------------------------------------------
    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is m.Prepare:
            self.start(ctx, msg.tx, msg.kind, msg.parts, msg.client, msg.leader, False, msg.depth)
        elif t is m.Commit:
            self.decide(ctx, msg.tx, "C", "", msg.depth)
        elif t is m.Abort:
            self.decide(ctx, msg.tx, "A", msg.cause, msg.depth)
        elif t is m.Begin:
            self.start(ctx, msg.tx, msg.kind, msg.parts, msg.client, self.choose_leader(ctx), True, 0)
        else:
            self.on_other(ctx, src, msg)

    def on_other(self, ctx, src, msg):
        """Protocol-specific messages (cooperative termination)."""

    def choose_leader(self, ctx) -> str:
        return self.w.coordinators[0]

    def start(self, ctx, tx, kind, parts, client, leader, initiator, depth):
        t = self.txs.get(tx)
        if t is not None:
            if t.state == "prepared":
                self.send_vote(ctx, t)  # a repeated Prepare: say it again
            return
        outcome = self.done.get(tx)
        if outcome is not None:
            if outcome == "A":
                t = RmTx(tx, kind, parts, client, leader, initiator, own_deltas(parts, ctx.id), depth)
                self.send_no(ctx, t, m.FAILURE)
            return
        t = RmTx(tx, kind, parts, client, leader, initiator, own_deltas(parts, ctx.id), depth)
        self.txs[tx] = t
        if self.locks.acquire(tx, kind, t.accounts):
            t.locked_at = ctx.now
            self.prepare(ctx, t)
        else:
            t.deadline = ctx.now + self.lock_wait_ns
            self.waiting[tx] = t
            self.arm(ctx, t.deadline)

    def prepare(self, ctx, t: RmTx) -> None:
        st = ctx.storage
        if t.kind == AUDIT:
            t.total = sum(st.get(f"a/{a}") for a in self.w.accounts_of(ctx.id))
        else:
            for a, d in t.deltas:
                if d < 0 and st.get(f"a/{a}") + d < 0:
                    self.finish_unprepared(ctx, t, m.VOTE_NO)
                    return
        if self.bug != "forget-prepared":
            st.put(f"p/{t.tx}", (t.tx, t.kind, t.parts, t.client, t.leader, t.initiator, t.total))
        t.state = "prepared"
        t.prepared_at = ctx.now
        t.next_query = t.prepared_at + self.doubt_ns
        self.prepared[t.tx] = t
        self.unasked[t.tx] = t
        self.arm(ctx, t.next_query)
        self.send_vote(ctx, t)
        ctx.record("prepared", tx=t.tx, sent=t.sent, writes=0 if self.bug == "forget-prepared" else 1)
        if self.bug == "early-unlock":
            self.grant(ctx, self.locks.release(t.tx))

    def finish_unprepared(self, ctx, t: RmTx, cause: str) -> None:
        """A no vote: this RM never prepared, so it may abort on its own (Section 2)."""
        tx = t.tx
        self.txs.pop(tx, None)
        self.waiting.pop(tx, None)
        self.done[tx] = "A"
        held_ms = (ctx.now - t.locked_at) / 1e6 if t.locked_at else 0.0
        self.send_no(ctx, t, cause)
        ctx.record("applied", tx=tx, outcome="A", cause=cause, depth=0, held_ms=held_ms, low=0)
        self.grant(ctx, self.locks.release(tx))

    def decide(self, ctx, tx: int, outcome: str, cause: str, depth: int) -> None:
        """The outcome arrived (from a coordinator, a peer, or a recovery leader)."""
        t = self.txs.get(tx)
        if t is None or t.state != "prepared":
            if t is None and tx not in self.done:
                # Unknown here: never prepared, or (with a bug) forgotten. An abort must stop a late
                # Prepare from voting yes; a commit we never voted for cannot be applied.
                if outcome == "A":
                    self.done[tx] = "A"
            if outcome == "C" and (t is None):
                self.acknowledge(ctx, tx)
            elif outcome == "A" and t is not None:  # still waiting for locks: give up
                self.finish_unprepared(ctx, t, cause or m.FAILURE)
            return
        st = ctx.storage
        low = 0
        if outcome == "C":
            for a, d in t.deltas:
                bal = st.get(f"a/{a}") + d
                st.put(f"a/{a}", bal, sync=False)
                if bal < low:
                    low = bal
        st.put(f"o/{tx}", outcome, sync=False)
        st.delete(f"p/{tx}", sync=False)
        del self.txs[tx]
        del self.prepared[tx]
        self.unasked.pop(tx, None)
        self.done[tx] = outcome
        held_ms = (ctx.now - t.locked_at) / 1e6
        ctx.record("applied", tx=tx, outcome=outcome, cause=cause, depth=depth, held_ms=held_ms, low=low)
        if outcome == "C":
            self.acknowledge(ctx, tx)
        if self.bug != "early-unlock":
            self.grant(ctx, self.locks.release(tx))

    def grant(self, ctx, granted: list[int]) -> None:
        now = ctx.now
        for tx in granted:
            t = self.waiting.pop(tx, None)
            if t is None:
                continue
            t.locked_at = now
            self.prepare(ctx, t)

    # ---- time-outs ----------------------------------------------------------------------------
    def on_timer(self, ctx, name):
        self.tick_due = None
        now = ctx.now
        if self.waiting:
            expired = []
            for t in self.waiting.values():
                if t.deadline > now:
                    break
                expired.append(t)
            for t in expired:
                self.locks.cancel(t.tx)
                self.finish_unprepared(ctx, t, m.LOCK_TIMEOUT)
        asks = self.asks
        unasked = self.unasked
        while unasked:
            t = next(iter(unasked.values()))
            if t.next_query > now:
                break
            del unasked[t.tx]
            heappush(asks, (now, t.tx))
        while asks and asks[0][0] <= now:
            _, tx = heappop(asks)
            t = self.prepared.get(tx)
            if t is None or t.next_query > now:
                continue  # decided since, or a stale entry
            self.query(ctx, t)
            t.attempts += 1
            # back off (doubling, up to 8 retries' worth) so a long outage is not a query storm
            t.next_query = now + self.retry_ns * (1 << min(t.attempts - 1, 3))
            heappush(asks, (t.next_query, tx))
        due = self.on_tick(ctx)
        if self.waiting:
            d = next(iter(self.waiting.values())).deadline
            due = d if due is None or d < due else due
        if asks and (due is None or asks[0][0] < due):
            due = asks[0][0]
        if unasked:
            d = next(iter(unasked.values())).next_query
            due = d if due is None or d < due else due
        if due is not None:
            self.arm(ctx, due)

    # ---- protocol hooks -----------------------------------------------------------------------
    def send_vote(self, ctx, t: RmTx) -> None:
        raise NotImplementedError

    def send_no(self, ctx, t: RmTx, cause: str) -> None:
        raise NotImplementedError

    def query(self, ctx, t: RmTx) -> None:
        raise NotImplementedError

    def acknowledge(self, ctx, tx: int) -> None:
        """A commit is applied here (2PC acknowledges it once durable)."""

    def on_tick(self, ctx) -> int | None:
        """Protocol work when the timer fires; returns when it next needs the timer (or None)."""
        return None

    # ---- for checkers -------------------------------------------------------------------------
    def state(self) -> dict:
        return {"locks": self.locks.summary(), "in_doubt": list(self.prepared)}
