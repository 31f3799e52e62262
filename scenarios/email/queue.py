"""A durable queue partition with at-least-once delivery, visibility timeouts and priority.

The algorithm is Amazon SQS's (and every job queue built like it): a message is written durably
before it is acknowledged to the producer; a consumer *leases* it, which makes it invisible for the
visibility timeout; the consumer deletes it (``Ack``) when done; if the lease expires first the
message becomes visible again and is redelivered. Nothing is lost if consumers crash, and a message
may be delivered more than once: exactly-once effects are the consumer's job (idempotency keys).

Additions for mail:
- priority: transactional messages are served before campaign batches (two ready queues), and a
  consumer may long-poll for transactional mail only (``Pull.bulk_ok`` False), so reserved worker
  slots never fill up with campaign batches;
- long polling: a ``Pull`` with nothing to serve is parked until a message arrives or
  ``long_poll_ms`` passes (then ``Empty``); a worker's newer pull replaces its parked one;
- delayed retries: an ``Ack`` can carry the batch's retry message (invisible for its back-off) and
  dead letters, written atomically with the delete, in one fsync;
- tombstones: every message id ever stored is remembered, so a producer re-sending after a crash,
  or two consumers acking the same lease, never queue a batch twice.

A worker that still works on a lease sends ``Extend`` (SQS's ChangeMessageVisibility) every third
of the timeout, so only leases of crashed or cut-off workers expire.

Simplifications: a partition is one node (no replication: its disk survives crashes); leases and
parked pulls are volatile, so after a restart every stored message is visible again; receipts are
only used to tell a current lease from an expired one.

Planted bug ``fifo-only``: one ready queue for both classes, and ``bulk_ok`` is ignored.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush

from simulator import Node

from .messages import BULK, TX, Ack, DeadLetter, Depth, DepthQuery, Empty, Enqueue, Enqueued, Extend, Leased, Pull, QueueMessage
from .settings import Settings

_VISIBLE, _LEASE_END, _PARK_END = 0, 1, 2


def msg_key(msg_id: tuple[int, int, int]) -> str:
    return "m/%d.%d.%d" % msg_id


def tomb_key(msg_id: tuple[int, int, int]) -> str:
    return "t/%d.%d.%d" % msg_id


class Partition(Node):
    def __init__(self, settings: Settings):
        self.s = settings
        self.fifo = settings.bug == "fifo-only"

    # ---- state ----------------------------------------------------------------------------------
    def on_start(self, ctx) -> None:
        self.msgs: dict[tuple, QueueMessage] = {}
        self.visible_ns: dict[tuple, int] = {}  # when a ready message became visible (for wait times)
        self.ready_tx: deque = deque()
        self.ready_bulk: deque = deque()
        self.leases: dict[tuple, int] = {}  # msg id -> receipt of the current lease
        self.deadline: dict[tuple, int] = {}  # msg id -> when its lease ends (pushed back by Extend)
        self.parked: dict[str, tuple[int, bool]] = {}  # worker -> (pull id, bulk_ok), oldest first
        self.heap: list = []
        self.seq = 0
        self.wake_at: int | None = None
        self.ready_emails = 0
        self.delayed_emails = 0
        self.leased_emails = 0
        self.dead_emails = 0
        storage = ctx.storage
        for key in storage.keys():
            if key.startswith("m/"):
                msg = storage.get(key)
                self.msgs[msg.msg_id] = msg
                self._make_ready(ctx, msg, front=False)
            elif key.startswith("d/"):
                self.dead_emails += len(storage.get(key).items)
        ctx.set_timer("sample", self.s.sample_ms)

    def _push(self, ctx, at_ns: int, kind: int, key, token) -> None:
        self.seq += 1
        heappush(self.heap, (at_ns, self.seq, kind, key, token))
        if self.wake_at is None or at_ns < self.wake_at:
            self.wake_at = at_ns
            ctx.set_timer("wake", max(0, at_ns - ctx.now) / 1e6)

    def _make_ready(self, ctx, msg: QueueMessage, front: bool) -> None:
        q = self.ready_tx if (msg.cls == TX and not self.fifo) else self.ready_bulk
        if front:
            q.appendleft(msg.msg_id)
        else:
            q.append(msg.msg_id)
        self.visible_ns[msg.msg_id] = ctx.now
        self.ready_emails += len(msg.items)

    # ---- handlers -------------------------------------------------------------------------------
    def on_message(self, ctx, src: str, msg) -> None:
        t = type(msg)
        if t is Pull:
            self._on_pull(ctx, src, msg)
        elif t is Ack:
            self._on_ack(ctx, msg)
        elif t is Enqueue:
            self._on_enqueue(ctx, src, msg.msg)
        elif t is Extend:
            if self.leases.get(msg.msg_id) == msg.receipt:
                end = ctx.now + int(self.s.visibility_timeout_ms * 1e6)
                self.deadline[msg.msg_id] = end
                self._push(ctx, end, _LEASE_END, msg.msg_id, msg.receipt)
        elif t is DepthQuery:
            ctx.send(src, Depth(msg.query_id, len(self.msgs)))

    def _store(self, ctx, msg: QueueMessage) -> bool:
        """Write a new message durably (no sync here); False if this id was ever stored."""
        tk = tomb_key(msg.msg_id)
        if tk in ctx.storage:
            return False
        ctx.storage.put(tk, True, sync=False)
        ctx.storage.put(msg_key(msg.msg_id), msg, sync=False)
        self.msgs[msg.msg_id] = msg
        return True

    def _on_enqueue(self, ctx, src: str, msg: QueueMessage) -> None:
        if self._store(ctx, msg):
            ctx.storage.sync()
            self._make_ready(ctx, msg, front=False)
            self._dispatch(ctx)
        ctx.send(src, Enqueued(msg.msg_id))

    def _on_ack(self, ctx, ack: Ack) -> None:
        storage = ctx.storage
        old = self.msgs.pop(ack.msg_id, None)
        if old is not None:
            storage.delete(msg_key(ack.msg_id), sync=False)
            if self.leases.pop(ack.msg_id, None) is not None:
                self.deadline.pop(ack.msg_id, None)
                self.leased_emails -= len(old.items)
            elif ack.msg_id in self.visible_ns:  # acked while visible again (its lease had expired)
                self._unready(old)
        retry = ack.retry
        stored_retry = retry is not None and self._store(ctx, retry)
        for dead in ack.dead:
            key = "d/%d.%d.%d" % dead.msg_id
            if key not in storage:
                storage.put(key, dead, sync=False)
                self.dead_emails += len(dead.items)
        storage.sync()
        if stored_retry:
            self.delayed_emails += len(retry.items)
            self._push(ctx, ctx.now + int(retry.delay_ms * 1e6), _VISIBLE, retry.msg_id, 0)

    def _unready(self, msg: QueueMessage) -> None:
        q = self.ready_tx if (msg.cls == TX and not self.fifo) else self.ready_bulk
        try:
            q.remove(msg.msg_id)
        except ValueError:
            return
        del self.visible_ns[msg.msg_id]
        self.ready_emails -= len(msg.items)

    def _on_pull(self, ctx, worker: str, pull: Pull) -> None:
        self.parked.pop(worker, None)
        bulk_ok = pull.bulk_ok or self.fifo
        q = self.ready_tx if self.ready_tx else (self.ready_bulk if bulk_ok and self.ready_bulk else None)
        if q is not None:
            self._lease(ctx, worker, pull.pull_id, q.popleft())
            return
        self.parked[worker] = (pull.pull_id, bulk_ok)
        self._push(ctx, ctx.now + int(self.s.long_poll_ms * 1e6), _PARK_END, worker, pull.pull_id)

    def _dispatch(self, ctx) -> None:
        """Hand ready messages to parked pulls, oldest pull first, transactional mail first."""
        while self.parked and (self.ready_tx or self.ready_bulk):
            taken = None
            for worker, (pull_id, bulk_ok) in self.parked.items():
                if self.ready_tx:
                    taken = (worker, pull_id, self.ready_tx)
                    break
                if bulk_ok:
                    taken = (worker, pull_id, self.ready_bulk)
                    break
            if taken is None:
                return
            worker, pull_id, q = taken
            del self.parked[worker]
            self._lease(ctx, worker, pull_id, q.popleft())

    def _lease(self, ctx, worker: str, pull_id: int, msg_id: tuple) -> None:
        msg = self.msgs[msg_id]
        n = len(msg.items)
        self.ready_emails -= n
        self.leased_emails += n
        self.seq += 1
        receipt = self.seq
        self.leases[msg_id] = receipt
        self.deadline[msg_id] = ctx.now + int(self.s.visibility_timeout_ms * 1e6)
        wait_ns = ctx.now - self.visible_ns.pop(msg_id)
        ctx.record("lease", cls=msg.cls, n=n, attempt=msg.attempt, wait_ns=wait_ns)
        self._push(ctx, self.deadline[msg_id], _LEASE_END, msg_id, receipt)
        ctx.send(worker, Leased(pull_id, msg, receipt))

    def on_timer(self, ctx, name: str) -> None:
        if name == "sample":
            ctx.record("depth", ready=self.ready_emails, delayed=self.delayed_emails,
                       leased=self.leased_emails, dead=self.dead_emails, messages=len(self.msgs))
            ctx.set_timer("sample", self.s.sample_ms)
            return
        self.wake_at = None
        now = ctx.now
        heap = self.heap
        woke = False
        while heap and heap[0][0] <= now:
            _, _, kind, key, token = heappop(heap)
            if kind == _VISIBLE:
                msg = self.msgs.get(key)
                if msg is not None and key not in self.leases and key not in self.visible_ns:
                    self.delayed_emails -= len(msg.items)
                    self._make_ready(ctx, msg, front=False)
                    woke = True
            elif kind == _LEASE_END:
                if self.leases.get(key) == token and now >= self.deadline[key]:
                    msg = self.msgs[key]
                    del self.leases[key]
                    del self.deadline[key]
                    self.leased_emails -= len(msg.items)
                    ctx.record("redeliver", cls=msg.cls, n=len(msg.items))
                    self._make_ready(ctx, msg, front=True)
                    woke = True
            elif self.parked.get(key, (None,))[0] == token:
                del self.parked[key]
                ctx.send(key, Empty(token))
        if woke:
            self._dispatch(ctx)
        if heap:
            self.wake_at = heap[0][0]
            ctx.set_timer("wake", max(0, heap[0][0] - now) / 1e6)

    # ---- for checkers ---------------------------------------------------------------------------
    @staticmethod
    def pending(snapshot: dict) -> list[QueueMessage]:
        return [v for k, v in snapshot.items() if k.startswith("m/")]

    @staticmethod
    def dead_letters(snapshot: dict) -> list[DeadLetter]:
        return [v for k, v in snapshot.items() if k.startswith("d/")]


__all__ = ["Partition", "BULK", "TX"]
