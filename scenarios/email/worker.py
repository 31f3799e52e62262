"""Send workers: lease a batch, split it by provider, rate-limit, send, then settle the lease.

A worker holds at most ``worker_slots`` leased messages (in progress or being pulled for), of which
``tx_reserved_slots`` never take campaign batches: it long-polls every partition once, asking for
campaign mail only while it has a free non-reserved slot. For each leased batch it

1. drops recipients on its copy of the suppression list (recorded as suppressed);
2. splits the rest by provider into per-provider send queues, transactional chunks first;
3. drains each queue through a token bucket (the provider's limit x headroom / workers, refilled
   from the local clock) and at most ``connections`` concurrent provider calls: one bulk API call
   per chunk of at most ``call_recipients``, as many as there are tokens (a campaign chunk waits
   for a full call's tokens, a transactional one leaves with the first token), with an idempotency
   key per recipient (job, index) and a send timeout;
4. settles each recipient: delivered (or recognised as a duplicate by its key), bounced (the
   address goes to the suppression list), or failed transiently (deferred, throttled, outage,
   timeout);
5. when every chunk is settled, acks the lease with, atomically, a retry message for the failed
   recipients, invisible for an exponential back-off with full jitter (Brooker, "Exponential
   Backoff And Jitter", AWS Architecture Blog, 2015), or dead letters past ``max_attempts`` or
   ``max_age_ms``.

While a batch is in progress its lease is extended every third of the visibility timeout. The ack
comes last, so a crash anywhere before it leaves the message leased; it comes back after the
visibility timeout and is sent again, and the providers' idempotency keys turn the repeats
into "duplicate" answers instead of second deliveries. Retries go through the queue and the
bucket like first attempts, so a failing provider never sees more than its limit.

Planted bugs: ``ack-before-send`` acks on lease (retries and dead letters follow in a second ack);
``no-idempotency`` sends no keys; ``no-backoff`` retries failed recipients at once, from the worker,
outside the bucket; ``fifo-only`` keeps one send queue per provider and reserves no slots.
"""

from __future__ import annotations

from collections import deque

from simulator import Node

from .messages import (
    BULK,
    TX,
    Ack,
    DeadLetter,
    Empty,
    Extend,
    Leased,
    ProviderReply,
    ProviderSend,
    Pull,
    QueueMessage,
    Suppress,
    Suppressed,
    SuppressionSync,
)
from .model import BOUNCED, DUPLICATE, TIMEOUT, AddressBook, backoff_ms, provider_node
from .settings import Settings


class _Work:
    """A leased message in progress."""

    __slots__ = ("msg", "partition", "receipt", "extended_ns", "pending", "failed", "bulk")

    def __init__(self, msg: QueueMessage, partition: str, receipt: int, now_ns: int, bulk: bool):
        self.msg = msg
        self.partition = partition
        self.receipt = receipt
        self.extended_ns = now_ns
        self.pending = 0  # chunks queued or in a call
        self.failed: list[int] = []
        self.bulk = bulk


class Worker(Node):
    def __init__(self, settings: Settings):
        s = self.s = settings
        self.book = AddressBook(s.shares, s.bounce_rate)
        self.bug = s.bug
        self.fifo = s.bug == "fifo-only"
        self.pnodes = tuple(provider_node(p) for p in s.providers)
        self.pindex = {p: i for i, p in enumerate(s.partitions)}

    def on_start(self, ctx) -> None:
        s = self.s
        self.active: dict[tuple, _Work] = {}
        self.bulk_active = 0
        self.sendq = [(deque(), deque()) for _ in s.providers]  # (transactional, campaign) chunks
        self.tokens = list(s.bucket_burst)
        self.token_ns = [ctx.now] * len(s.providers)
        self.calls: dict[int, tuple[_Work, int, tuple, int]] = {}
        self.call_seq = 0
        self.pulls: list[tuple[int, bool, int] | None] = [None] * len(s.partitions)
        self.pull_seq = 0
        self.rr = 0
        self.suppressed: set[int] = set()
        ctx.send(s.suppression, SuppressionSync())
        ctx.set_timer("pulls", s.long_poll_ms)
        ctx.set_timer("extend", s.visibility_timeout_ms / 3)
        self._refill(ctx)

    # ---- pulling --------------------------------------------------------------------------------
    def _refill(self, ctx) -> None:
        s = self.s
        pulls = self.pulls
        n = len(pulls)
        outstanding = sum(1 for p in pulls if p is not None)
        bulk_pulls = sum(1 for p in pulls if p is not None and p[1])
        free = s.worker_slots - len(self.active) - outstanding
        bulk_cap = s.worker_slots - (0 if self.fifo else s.tx_reserved_slots)
        for k in range(n):
            i = (self.rr + k) % n
            cur = pulls[i]
            bulk_ok = self.fifo or self.bulk_active + bulk_pulls < bulk_cap
            if cur is None:
                if free <= 0:
                    continue
                free -= 1
            elif cur[1] or not bulk_ok:
                continue  # parked already, and no better pull to make
            self.pull_seq += 1
            pulls[i] = (self.pull_seq, bulk_ok, ctx.now)
            if bulk_ok:
                bulk_pulls += 1
            ctx.send(s.partitions[i], Pull(self.pull_seq, bulk_ok))
        self.rr = (self.rr + 1) % n

    def _pull_answered(self, src: str, pull_id: int) -> None:
        i = self.pindex[src]
        cur = self.pulls[i]
        if cur is not None and cur[0] == pull_id:
            self.pulls[i] = None

    # ---- handlers -------------------------------------------------------------------------------
    def on_message(self, ctx, src: str, msg) -> None:
        t = type(msg)
        if t is ProviderReply:
            call = self.calls.pop(msg.call_id, None)
            if call is not None:
                ctx.cancel_timer("c%d" % msg.call_id)
                self._settle(ctx, call, msg.outcomes)
                self._pump_all(ctx)
        elif t is Leased:
            self._pull_answered(src, msg.pull_id)
            self._on_leased(ctx, src, msg.msg, msg.receipt)
            self._refill(ctx)
        elif t is Empty:
            self._pull_answered(src, msg.pull_id)
            self._refill(ctx)
        elif t is Suppressed:
            self.suppressed.update(msg.addresses)

    def _on_leased(self, ctx, partition: str, msg: QueueMessage, receipt: int) -> None:
        if msg.msg_id in self.active:
            return  # redelivered to us while we still work on it: our ack settles both
        if self.bug == "ack-before-send":
            ctx.send(partition, Ack(msg.msg_id, None, ()))
        bulk = msg.cls == BULK and not self.fifo
        work = _Work(msg, partition, receipt, ctx.now, bulk)
        self.active[msg.msg_id] = work
        if bulk:
            self.bulk_active += 1
        book, supp, pop = self.book, self.suppressed, self.s.population
        first = msg.first_address
        groups: list[list[int]] = [[] for _ in self.pnodes]
        dropped = []
        for i in msg.items:
            a = (first + i) % pop
            if a in supp:
                dropped.append(i)
            else:
                groups[book.provider(a)].append(i)
        if dropped:
            ctx.record("suppressed", job=msg.job, items=tuple(dropped))
        lane = 1 if (msg.cls == BULK or self.fifo) else 0
        for p, items in enumerate(groups):
            if items:
                work.pending += 1
                self.sendq[p][lane].append((work, tuple(items)))
                self._pump(ctx, p)
        if work.pending == 0:
            self._finish(ctx, work)

    # ---- rate-limited sending -------------------------------------------------------------------
    def _pump_all(self, ctx) -> None:
        """A connection came free: transactional chunks of every provider first, then campaigns."""
        for p in range(len(self.pnodes)):
            if self.sendq[p][0]:
                self._pump(ctx, p, tx_only=True)
        for p in range(len(self.pnodes)):
            self._pump(ctx, p)

    def _pump(self, ctx, p: int, tx_only: bool = False) -> None:
        tx_q, bulk_q = self.sendq[p]
        connections = self.s.connections
        rate = self.s.bucket_rate_s[p]
        cap = self.s.call_recipients
        if rate <= 0:  # unlimited
            for q in ((tx_q,) if tx_only else (tx_q, bulk_q)):
                while q and len(self.calls) < connections:
                    work, items = q[0]
                    if len(items) > cap:
                        q[0] = (work, items[cap:])
                        work.pending += 1
                        items = items[:cap]
                    else:
                        q.popleft()
                    self._call(ctx, work, p, items, 0)
            return
        now = ctx.now
        burst = self.s.bucket_burst[p]
        tokens = min(burst, self.tokens[p] + (now - self.token_ns[p]) * rate / 1e9)
        self.token_ns[p] = now
        need = 1.0
        while (tx_q or (bulk_q and not tx_only)) and len(self.calls) < connections:
            # transactional chunks leave with the first token; campaign chunks wait for a full call
            q = tx_q if tx_q else bulk_q
            work, items = q[0]
            need = 1.0 if q is tx_q else float(min(len(items), cap, max(1, int(burst))))
            if tokens < need:
                break
            k = min(int(tokens), cap)
            if k < len(items):
                q[0] = (work, items[k:])
                work.pending += 1
                items = items[:k]
            else:
                q.popleft()
            tokens -= len(items)
            self._call(ctx, work, p, items, 0)
        self.tokens[p] = tokens
        if (tx_q or bulk_q) and tokens < need:
            ctx.set_timer("b%d" % p, (need - tokens) / rate * 1e3 + 1e-3)

    def _call(self, ctx, work: _Work, p: int, items: tuple, tries: int) -> None:
        self.call_seq += 1
        cid = self.call_seq
        msg = work.msg
        self.calls[cid] = (work, p, items, tries)
        ctx.send(self.pnodes[p], ProviderSend(cid, msg.job, msg.cls, msg.first_address, msg.job_size, items,
                                              self.bug != "no-idempotency"))
        ctx.set_timer("c%d" % cid, self.s.send_timeout_ms)

    def _settle(self, ctx, call: tuple, outcomes) -> None:
        work, p, items, tries = call
        msg = work.msg
        failed = []
        first, pop = msg.first_address, self.s.population
        for i, code in zip(items, outcomes):
            if code <= DUPLICATE:
                continue
            if code == BOUNCED:
                a = (first + i) % pop
                if a not in self.suppressed:
                    self.suppressed.add(a)
                    ctx.send(self.s.suppression, Suppress(a))
            else:
                failed.append(i)
        if failed:
            ctx.record("retry", provider=self.s.providers[p], n=len(failed), cls=msg.cls, attempt=msg.attempt)
            if self.bug == "no-backoff" and tries + 1 < self.s.max_attempts:
                self._call(ctx, work, p, tuple(failed), tries + 1)  # at once, outside the bucket
                return
            work.failed.extend(failed)
        work.pending -= 1
        if work.pending == 0:
            self._finish(ctx, work)

    def _finish(self, ctx, work: _Work) -> None:
        s, msg = self.s, work.msg
        del self.active[msg.msg_id]
        if work.bulk:
            self.bulk_active -= 1
        retry, dead = None, ()
        if work.failed:
            items = tuple(sorted(work.failed))
            attempt = msg.attempt + 1
            delay = backoff_ms(attempt, s.retry_base_ms, s.retry_cap_ms, float(ctx.rng.random()))
            reason = None
            if attempt >= s.max_attempts or self.bug == "no-backoff":
                reason = "attempts"
            elif ctx.now + delay * 1e6 - msg.first_ns > s.max_age_ms * 1e6:
                reason = "age"
            if reason is not None:
                dead = (DeadLetter(msg.msg_id, msg.job, items, reason),)
                ctx.record("dead", n=len(items), cls=msg.cls, reason=reason)
            else:
                retry = QueueMessage((msg.job, msg.msg_id[1], attempt), msg.job, msg.cls, msg.first_address,
                                     msg.job_size, items, attempt, msg.first_ns, delay)
        ctx.send(work.partition, Ack(msg.msg_id, retry, dead))
        self._refill(ctx)

    def on_timer(self, ctx, name: str) -> None:
        kind = name[0]
        if kind == "c":  # a provider call timed out
            call = self.calls.pop(int(name[1:]), None)
            if call is not None:
                self._settle(ctx, call, bytes([TIMEOUT]) * len(call[2]))
                self._pump_all(ctx)
        elif kind == "b":
            self._pump(ctx, int(name[1:]))
        elif name == "extend":
            third_ns = int(self.s.visibility_timeout_ms / 3 * 1e6)
            ctx.set_timer("extend", self.s.visibility_timeout_ms / 3)
            for work in self.active.values():
                if ctx.now - work.extended_ns >= third_ns:
                    work.extended_ns = ctx.now
                    ctx.send(work.partition, Extend(work.msg.msg_id, work.receipt))
        elif name == "pulls":
            ctx.set_timer("pulls", self.s.long_poll_ms)
            stale_ns = int((2 * self.s.long_poll_ms + 1000) * 1e6)
            for i, cur in enumerate(self.pulls):
                if cur is not None and ctx.now - cur[2] > stale_ns:
                    self.pulls[i] = None  # lost on the way, or its partition is down
            self._refill(ctx)


__all__ = ["Worker", "TX", "BULK"]
