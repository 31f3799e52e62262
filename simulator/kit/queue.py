"""``Queue``: a durable queue with partitions, visibility timeouts, redelivery and a dead-letter
queue; ``QueueWorker``: a pool member that drains it.

The algorithm is Amazon SQS's (and every job queue built like it): a message is written durably
before it is acknowledged to the producer; a consumer *leases* it, which makes it invisible for the
visibility timeout; the consumer deletes it (``Ack``) when done; if the lease expires first the
message becomes visible again and is redelivered. Nothing is lost if consumers crash, and a message
may be delivered more than once: exactly-once effects are the consumer's job (idempotency keys).
A message leased ``max_receives`` times without an ack goes to the dead-letter queue instead of
coming back (SQS's redrive policy, ``maxReceiveCount``).

A queue is ``partitions`` nodes, each a :class:`Queue`; producers spread messages over them (the
graph's callers pick a partition at random) and a consumer polls every partition. Beyond SQS:

- priority: messages of the classes in ``priority`` are served before all others (two ready
  queues), and a consumer may long-poll for those classes only (``Pull.bulk_ok`` False), so
  reserved consumer slots never fill up with bulk work (the email design's transactional mail);
- long polling: a ``Pull`` with nothing to serve is parked until a message arrives or
  ``long_poll_ms`` passes (then ``Empty``); a consumer's newer pull replaces its parked one;
- standing pulls: a ``Pull`` with ``credit`` above 1 stays parked after each message it is handed
  (AMQP's prefetch), until its credit is spent or its poll ends; messages handed to a consumer
  that crashed or was cut off meanwhile come back after the visibility timeout, as any lease;
- delayed messages: a message with ``delay_ms`` > 0 stays invisible that long after it is stored;
- atomic settle: an ``Ack`` can carry a successor message (a retry, invisible for its delay) and
  dead letters of the consumer's own, written with the delete in one fsync;
- tombstones: every message id ever stored is remembered, so a producer re-sending after a crash
  (or a retried enqueue with the same idempotency key) never queues a message twice.

A consumer that still works on a lease sends ``Extend`` (SQS's ChangeMessageVisibility) every third
of the timeout, so only leases of crashed or cut-off consumers expire.

What a message is: any object with a hashable ``msg_id`` (ints, strings or tuples of them);
optionally ``cls`` (its class, for priority) and ``delay_ms``. ``QueueSpec.size_of`` counts the
units a message carries (default 1: the email design counts recipients), and ``fields_of`` adds
fields to its lease and redelivery records. The graph designs enqueue :class:`Job` messages.

Parameters (:class:`QueueSpec`; in a TOML design, the keys of a ``kind = "queue"`` component):

    partitions            queue nodes (ids ``<name>-1`` ...); a message lives on one
    visibility_timeout_ms a leased message not acked (or extended) in this time is redelivered
    long_poll_ms          how long a pull waits for a message before it is answered ``Empty``
    max_receives          leases of one message before it is dead-lettered (0: never)
    fsync_ms              the partitions' fsync latency (None: free)
    workers               consumers (``QueueWorker`` nodes, ids ``<name>-w1`` ...) the design adds
    worker_slots          jobs a worker works on at once (each with a core of its own)
    service_ms            a worker's time per job: op -> Dist (``"*"`` for any other op)
    calls                 hops a worker calls for each job after its service time, in order
    retry, breaker        the workers' downstream call policies (as for ``Service``)
    record_each           record kit.enqueue / kit.lease / kit.ack per message (False: a design that
                          reads none of them saves three records a message)
    wake_grid_ms          0: a lease or long poll ends at its exact instant; above 0: up to this much
                          later, on a grid, so that a partition wakes once per grid step rather than
                          once per lease and poll (most of which were settled long before they end)

Records (via ``ctx.record``): ``kit.enqueue`` per stored message (arrival: comp, cls, n),
``kit.lease`` per delivery (comp, cls, n, receives, wait_ns = time visible before it was leased),
``kit.ack`` per deleted message (completion: comp, n, receives) (these three unless ``record_each``
is False), ``kit.redeliver`` per expired lease
(comp, cls, n), ``kit.dead`` per message dead-lettered (comp, n, reason), and every ``sample_ms``
``kit.depth`` (queue length: comp, ready, delayed, leased, dead, messages). Workers record
``kit.served`` per job (comp = the queue's name, op, ok, wait_ns, service_ns, total_ns from
enqueue to done), like a ``Service``.

Simplifications: a partition is one node (no replication: its disk survives crashes); leases and
parked pulls are volatile, so after a restart every stored message is visible again; receipts only
tell a current lease from an expired one; a worker whose job fails lets its lease expire (the
message comes back after the visibility timeout) rather than releasing it early.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, Callable

from ..engine.dists import Dist
from ..engine.node import Node, message
from .caller import BreakerPolicy, Caller, RetryPolicy
from .cpu import Cpu
from .directory import Directory
from .messages import Call, Probe, ProbeReply, Reply, served, split_hop


# ---- the protocol ---------------------------------------------------------------------------------
@message
class Enqueue:
    """Store ``msg``; answered ``Enqueued`` once it is durable (or was stored before)."""

    msg: Any


@message
class Enqueued:
    msg_id: Any


@message
class Pull:
    """A consumer's long poll; ``bulk_ok`` False asks for priority classes only. ``credit`` is how
    many messages the poll may take: 1 (SQS's ReceiveMessage) ends it at the first ``Leased``; more
    keeps it parked after each one (a standing subscription, as AMQP's prefetch count), so a busy
    consumer sends one ``Pull`` per long poll rather than one per message. A poll ends with
    ``Empty`` when its time runs out, whatever it took."""

    pull_id: int
    bulk_ok: bool = True
    credit: int = 1


@message
class Leased:
    """A message handed to a consumer, invisible to others until ``receipt`` expires or is acked;
    ``receives`` counts its deliveries since it was stored (or since the partition restarted)."""

    pull_id: int
    msg: Any
    receipt: int
    receives: int = 1


@message
class Empty:
    """Nothing arrived during the long poll."""

    pull_id: int


@message
class Ack:
    """Done with a message: delete it, and atomically store ``retry`` (a successor message, if any)
    and ``dead`` (the consumer's own dead letters: objects with a ``msg_id``)."""

    msg_id: Any
    retry: Any = None
    dead: tuple = ()


@message
class Extend:
    """The consumer still holds this lease and works on it: push its visibility timeout back."""

    msg_id: Any
    receipt: int


@message
class DepthQuery:
    query_id: int


@message
class Depth:
    """Messages a partition still holds: ready, delayed or leased."""

    query_id: int
    messages: int


@message
class DeadLetter:
    """A message the queue gave up on (``reason`` "max-receives")."""

    msg_id: Any
    msg: Any
    reason: str


@message
class Job:
    """What a graph route enqueues: the request's op, key, idempotency key and value, and when it
    was stored (``enqueued_ns``, for the time from enqueue to done)."""

    msg_id: Any
    op: str
    key: Any
    idem: Any
    value: Any
    enqueued_ns: int


# ---- parameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueSpec:
    name: str
    partitions: int = 1
    visibility_timeout_ms: float = 30_000.0
    long_poll_ms: float = 1000.0
    max_receives: int = 0
    priority: tuple[str, ...] = ()
    sample_ms: float = 1000.0
    fsync_ms: Dist | None = None
    size_of: Callable[[Any], int] | None = None
    fields_of: Callable[[Any], dict] | None = None
    workers: int = 0
    worker_slots: int = 1
    service_ms: dict = field(default_factory=lambda: {"*": Dist("exponential", 10.0)})
    calls: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    record_each: bool = True
    wake_grid_ms: float = 0.0

    def partition_ids(self) -> list[str]:
        return [f"{self.name}-{i + 1}" for i in range(self.partitions)]

    def worker_ids(self) -> list[str]:
        return [f"{self.name}-w{i + 1}" for i in range(self.workers)]

    def instance_ids(self) -> list[str]:
        """What callers reach (the partitions)."""
        return self.partition_ids()

    def node_ids(self) -> list[str]:
        return self.partition_ids() + self.worker_ids()


def key_of(msg_id: Any) -> str:
    """A message id as a storage key suffix: ``(7, 0, 2)`` -> ``"7.0.2"``."""
    if type(msg_id) is tuple:
        return ".".join(map(str, msg_id))
    return str(msg_id)


_VISIBLE, _LEASE_END, _PARK_END = 0, 1, 2


class Queue(Node):
    """One partition of the queue ``spec.name``. Storage: ``m/<id>`` stored messages, ``t/<id>``
    tombstones (every id ever stored), ``d/<id>`` dead letters."""

    def __init__(self, spec: QueueSpec):
        self.spec = spec
        self.comp = spec.name
        self.size_of = spec.size_of
        self.fields_of = spec.fields_of
        self.priority = frozenset(spec.priority)
        self.visibility_ns = int(spec.visibility_timeout_ms * 1e6)
        self.long_poll_ns = int(spec.long_poll_ms * 1e6)
        self.record_each = spec.record_each
        self.grid_ns = int(spec.wake_grid_ms * 1e6)

    # ---- state ----------------------------------------------------------------------------------
    def on_start(self, ctx) -> None:
        self.msgs: dict[Any, Any] = {}
        self.visible_ns: dict[Any, int] = {}  # when a ready message became visible (for wait times)
        self.receives: dict[Any, int] = {}
        self.ready_hi: deque = deque()
        self.ready_lo: deque = deque()
        self.leases: dict[Any, int] = {}  # msg id -> receipt of the current lease
        self.deadline: dict[Any, int] = {}  # msg id -> when its lease ends (pushed back by Extend)
        self.parked: dict[str, tuple[int, bool, int]] = {}  # consumer -> (pull id, bulk_ok, credit left), oldest first
        self.heap: list = []
        # receipts count from the incarnation: an ack of a lease from before a restart, with the
        # same number, must not settle a lease of this life
        self.seq = ctx.incarnation << 40
        self.wake_at: int | None = None
        self.ready_n = self.delayed_n = self.leased_n = self.dead_n = 0
        storage = ctx.storage
        for key in storage.keys():
            if key.startswith("m/"):
                msg = storage.get(key)
                self.msgs[msg.msg_id] = msg
                self._make_ready(ctx, msg, front=False)
            elif key.startswith("d/"):
                self.dead_n += self._dead_size(storage.get(key))
        ctx.set_timer("kit.queue.sample", self.spec.sample_ms)

    def _n(self, msg) -> int:
        return 1 if self.size_of is None else self.size_of(msg)

    def _dead_size(self, dead) -> int:
        return self._n(dead.msg) if type(dead) is DeadLetter else self._n(dead)

    def _extra(self, msg) -> dict:
        return {} if self.fields_of is None else self.fields_of(msg)

    def _queue_of(self, msg) -> deque:
        return self.ready_hi if getattr(msg, "cls", None) in self.priority else self.ready_lo

    def _push(self, ctx, at_ns: int, kind: int, key, token) -> None:
        if self.grid_ns and kind != _VISIBLE:
            # an end rounded up to the grid: lease and poll ends of one step share one wake
            at_ns = -(-at_ns // self.grid_ns) * self.grid_ns
        self.seq += 1
        heappush(self.heap, (at_ns, self.seq, kind, key, token))
        if self.wake_at is None or at_ns < self.wake_at:
            self.wake_at = at_ns
            ctx.set_timer("wake", max(0, at_ns - ctx.now) / 1e6)

    def _make_ready(self, ctx, msg, front: bool) -> None:
        q = self._queue_of(msg)
        if front:
            q.appendleft(msg.msg_id)
        else:
            q.append(msg.msg_id)
        self.visible_ns[msg.msg_id] = ctx.now
        self.ready_n += self._n(msg)

    # ---- handlers -------------------------------------------------------------------------------
    def on_message(self, ctx, src: str, msg) -> None:
        t = type(msg)
        if t is Pull:
            self._on_pull(ctx, src, msg)
        elif t is Ack:
            self._on_ack(ctx, msg)
        elif t is Enqueue:
            self._enqueue(ctx, msg.msg)
            ctx.send(src, Enqueued(msg.msg.msg_id))
        elif t is Call:
            # a graph route's hop: the job is the request; its idempotency key makes a retried
            # enqueue a duplicate the tombstones absorb
            mid = msg.idem if msg.idem is not None else f"{src}:{msg.rid}"
            self._enqueue(ctx, Job(mid, msg.op, msg.key, msg.idem, msg.value, ctx.now))
            ctx.send(src, Reply(msg.rid, True, None))
        elif t is Extend:
            if self.leases.get(msg.msg_id) == msg.receipt:
                end = ctx.now + self.visibility_ns
                self.deadline[msg.msg_id] = end
                self._push(ctx, end, _LEASE_END, msg.msg_id, msg.receipt)
        elif t is DepthQuery:
            ctx.send(src, Depth(msg.query_id, len(self.msgs)))
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq))

    def _store(self, ctx, msg) -> bool:
        """Write a new message durably (no sync here); False if this id was ever stored."""
        k = key_of(msg.msg_id)
        tk = "t/" + k
        storage = ctx.storage
        if tk in storage:
            return False
        storage.put(tk, True, sync=False)
        storage.put("m/" + k, msg, sync=False)
        self.msgs[msg.msg_id] = msg
        if self.record_each:
            ctx.record("kit.enqueue", comp=self.comp, cls=getattr(msg, "cls", None), n=self._n(msg))
        return True

    def _enqueue(self, ctx, msg) -> None:
        if self._store(ctx, msg):
            ctx.storage.sync()
            delay_ms = getattr(msg, "delay_ms", 0.0)
            if delay_ms > 0:
                self.delayed_n += self._n(msg)
                self._push(ctx, ctx.now + int(delay_ms * 1e6), _VISIBLE, msg.msg_id, 0)
            else:
                self._make_ready(ctx, msg, front=False)
                self._dispatch(ctx)

    def _on_ack(self, ctx, ack: Ack) -> None:
        storage = ctx.storage
        old = self.msgs.pop(ack.msg_id, None)
        if old is not None:
            storage.delete("m/" + key_of(ack.msg_id), sync=False)
            n = self._n(old)
            if self.leases.pop(ack.msg_id, None) is not None:
                self.deadline.pop(ack.msg_id, None)
                self.leased_n -= n
            elif ack.msg_id in self.visible_ns:  # acked while visible again (its lease had expired)
                self._unready(old)
            receives = self.receives.pop(ack.msg_id, 0)
            if self.record_each:
                ctx.record("kit.ack", comp=self.comp, n=n, receives=receives)
        retry = ack.retry
        stored_retry = retry is not None and self._store(ctx, retry)
        for dead in ack.dead:
            key = "d/" + key_of(dead.msg_id)
            if key not in storage:
                storage.put(key, dead, sync=False)
                self.dead_n += self._dead_size(dead)
        storage.sync()
        if stored_retry:
            self.delayed_n += self._n(retry)
            self._push(ctx, ctx.now + int(getattr(retry, "delay_ms", 0.0) * 1e6), _VISIBLE, retry.msg_id, 0)

    def _unready(self, msg) -> None:
        try:
            self._queue_of(msg).remove(msg.msg_id)
        except ValueError:
            return
        del self.visible_ns[msg.msg_id]
        self.ready_n -= self._n(msg)

    def _on_pull(self, ctx, consumer: str, pull: Pull) -> None:
        self.parked.pop(consumer, None)
        # with no priority classes there is one ready queue, and every pull may take from it
        bulk_ok = pull.bulk_ok or not self.priority
        credit = pull.credit
        while credit > 0:
            q = self.ready_hi if self.ready_hi else (self.ready_lo if bulk_ok and self.ready_lo else None)
            if q is None:
                break
            self._lease(ctx, consumer, pull.pull_id, q.popleft())
            credit -= 1
        if credit <= 0:
            return
        self.parked[consumer] = (pull.pull_id, bulk_ok, credit)
        self._push(ctx, ctx.now + self.long_poll_ns, _PARK_END, consumer, pull.pull_id)

    def _dispatch(self, ctx) -> None:
        """Hand ready messages to parked pulls, oldest pull first, priority classes first."""
        while self.parked and (self.ready_hi or self.ready_lo):
            taken = None
            for consumer, (pull_id, bulk_ok, credit) in self.parked.items():
                if self.ready_hi:
                    taken = (consumer, pull_id, bulk_ok, credit, self.ready_hi)
                    break
                if bulk_ok:
                    taken = (consumer, pull_id, bulk_ok, credit, self.ready_lo)
                    break
            if taken is None:
                return
            consumer, pull_id, bulk_ok, credit, q = taken
            del self.parked[consumer]
            if credit > 1:  # a standing pull goes to the back of the line: consumers take turns
                self.parked[consumer] = (pull_id, bulk_ok, credit - 1)
            self._lease(ctx, consumer, pull_id, q.popleft())

    def _lease(self, ctx, consumer: str, pull_id: int, msg_id) -> None:
        msg = self.msgs[msg_id]
        n = self._n(msg)
        self.ready_n -= n
        self.leased_n += n
        self.seq += 1
        receipt = self.seq
        receives = self.receives[msg_id] = self.receives.get(msg_id, 0) + 1
        self.leases[msg_id] = receipt
        self.deadline[msg_id] = ctx.now + self.visibility_ns
        wait_ns = ctx.now - self.visible_ns.pop(msg_id)
        if self.record_each:
            ctx.record("kit.lease", comp=self.comp, cls=getattr(msg, "cls", None), n=n, receives=receives,
                       wait_ns=wait_ns, **self._extra(msg))
        self._push(ctx, self.deadline[msg_id], _LEASE_END, msg_id, receipt)
        ctx.send(consumer, Leased(pull_id, msg, receipt, receives))

    def _expire(self, ctx, msg_id) -> None:
        """A lease ran out: the message is visible again, first in line, or dead-lettered."""
        msg = self.msgs[msg_id]
        n = self._n(msg)
        del self.leases[msg_id]
        del self.deadline[msg_id]
        self.leased_n -= n
        ctx.record("kit.redeliver", comp=self.comp, cls=getattr(msg, "cls", None), n=n, **self._extra(msg))
        limit = self.spec.max_receives
        if limit and self.receives.get(msg_id, 0) >= limit:
            k = key_of(msg_id)
            del self.msgs[msg_id]
            self.receives.pop(msg_id, None)
            ctx.storage.delete("m/" + k, sync=False)
            ctx.storage.put("d/" + k, DeadLetter(msg_id, msg, "max-receives"))
            self.dead_n += n
            ctx.record("kit.dead", comp=self.comp, n=n, reason="max-receives")
            return
        self._make_ready(ctx, msg, front=True)

    def on_timer(self, ctx, name: str) -> None:
        if name == "kit.queue.sample":
            ctx.record("kit.depth", comp=self.comp, ready=self.ready_n, delayed=self.delayed_n,
                       leased=self.leased_n, dead=self.dead_n, messages=len(self.msgs))
            ctx.set_timer("kit.queue.sample", self.spec.sample_ms)
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
                    self.delayed_n -= self._n(msg)
                    self._make_ready(ctx, msg, front=False)
                    woke = True
            elif kind == _LEASE_END:
                if self.leases.get(key) == token and now >= self.deadline[key]:
                    self._expire(ctx, key)
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
    def pending(snapshot: dict) -> list:
        """The messages a partition's storage snapshot still holds (ready, delayed or leased)."""
        return [v for k, v in snapshot.items() if k.startswith("m/")]

    @staticmethod
    def dead_letters(snapshot: dict) -> list:
        return [v for k, v in snapshot.items() if k.startswith("d/")]


# ---- the worker pool (graph designs) --------------------------------------------------------------
class _Task:
    __slots__ = ("msg", "partition", "receipt", "leased", "svc_ns", "wait_ns", "hops", "failed")

    def __init__(self, msg, partition, receipt, now_ns):
        self.msg, self.partition, self.receipt, self.leased = msg, partition, receipt, now_ns
        self.svc_ns = self.wait_ns = 0
        self.hops: list = []
        self.failed = None


class QueueWorker(Node):
    """One consumer of the queue ``spec.name``: keeps a long poll at each partition while it has a
    free slot, works a leased job (service time, then ``calls`` in order, each carrying the job's
    key and idempotency key), and acks it when every call succeeded. A failed job is not acked:
    it comes back after the visibility timeout, and goes to the dead-letter queue after
    ``max_receives`` deliveries."""

    def __init__(self, spec: QueueSpec, directory: Directory):
        self.spec = spec
        self.partitions = spec.partition_ids()
        self.pindex = {p: i for i, p in enumerate(self.partitions)}
        self.cpu = Cpu(spec.worker_slots, spec.service_ms)
        self.caller = Caller(spec.name, spec.retry, directory.pick_random, self._called, breaker=spec.breaker)

    def on_start(self, ctx) -> None:
        self.active: dict[Any, _Task] = {}
        self.pulls: list[tuple[int, int] | None] = [None] * len(self.partitions)  # (pull id, sent at)
        self.pull_seq = 0
        self.rr = 0
        ctx.set_timer("kit.queue.pulls", self.spec.long_poll_ms)
        ctx.set_timer("kit.queue.extend", self.spec.visibility_timeout_ms / 3)
        self._refill(ctx)

    def _refill(self, ctx) -> None:
        pulls = self.pulls
        n = len(pulls)
        free = self.spec.worker_slots - len(self.active) - sum(1 for p in pulls if p is not None)
        for k in range(n):
            if free <= 0:
                break
            i = (self.rr + k) % n
            if pulls[i] is None:
                free -= 1
                self.pull_seq += 1
                pulls[i] = (self.pull_seq, ctx.now)
                ctx.send(self.partitions[i], Pull(self.pull_seq, True))
        self.rr = (self.rr + 1) % n

    def _pull_answered(self, src: str, pull_id: int) -> None:
        i = self.pindex.get(src)
        if i is not None and self.pulls[i] is not None and self.pulls[i][0] == pull_id:
            self.pulls[i] = None

    def on_message(self, ctx, src, msg) -> None:
        t = type(msg)
        if t is Reply:
            self.caller.on_reply(ctx, msg)
        elif t is Leased:
            self._pull_answered(src, msg.pull_id)
            job = msg.msg
            task = self.active.get(job.msg_id)
            if task is not None:  # redelivered to us while we still work on it: our ack settles both
                task.partition, task.receipt = src, msg.receipt
            else:
                task = self.active[job.msg_id] = _Task(job, src, msg.receipt, ctx.now)
                self.cpu.submit(ctx, task, job.op)
            self._refill(ctx)
        elif t is Empty:
            self._pull_answered(src, msg.pull_id)
            self._refill(ctx)
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq))

    def on_timer(self, ctx, name) -> None:
        done = self.cpu.on_timer(ctx, name)
        if done is not None:
            task, _op, task.wait_ns, task.svc_ns = done
            task.hops = list(self.spec.calls)
            self._next(ctx, task)
        elif name == "kit.queue.extend":
            ctx.set_timer("kit.queue.extend", self.spec.visibility_timeout_ms / 3)
            for mid, task in self.active.items():
                ctx.send(task.partition, Extend(mid, task.receipt))
        elif name == "kit.queue.pulls":
            ctx.set_timer("kit.queue.pulls", self.spec.long_poll_ms)
            stale_ns = int((2 * self.spec.long_poll_ms + 1000) * 1e6)
            for i, cur in enumerate(self.pulls):
                if cur is not None and ctx.now - cur[1] > stale_ns:
                    self.pulls[i] = None  # lost on the way, or its partition is down
            self._refill(ctx)
        else:
            self.caller.on_timer(ctx, name)

    def _next(self, ctx, task: _Task) -> None:
        if task.failed is not None or not task.hops:
            self._finish(ctx, task)
            return
        comp, op = split_hop(task.hops.pop(0))
        job = task.msg
        self.caller.call(ctx, comp, op, task, key=job.key, idem=job.idem, value=job.value)

    def _called(self, ctx, task: _Task, ok: bool, value) -> None:
        if not ok:
            task.failed = value
        self._next(ctx, task)

    def _finish(self, ctx, task: _Task) -> None:
        job = task.msg
        ok = task.failed is None
        if self.active.get(job.msg_id) is task:
            del self.active[job.msg_id]
        if ok:
            ctx.send(task.partition, Ack(job.msg_id))
        served(ctx, self.spec.name, job.op, ok, 0, task.wait_ns, task.svc_ns, ctx.now - job.enqueued_ns)
        self._refill(ctx)


__all__ = ["Ack", "DeadLetter", "Depth", "DepthQuery", "Empty", "Enqueue", "Enqueued", "Extend", "Job",
           "Leased", "Pull", "Queue", "QueueSpec", "QueueWorker", "key_of"]
