"""The ingest API (accept, then fan out into queue batches) and the client that calls it.

Accepting a job is one durable write: ``SubmitSend`` or ``SubmitCampaign`` is answered
``Accepted`` once the job record is on the API's disk, keyed by the client's idempotency key (a
repeated submission is answered again, never queued twice). A transactional send is a job of one
recipient.

Fan-out (the transactional outbox pattern): the API expands each accepted job into queue messages
of ``batch_size`` recipients, a recipient *range* per message, keeping at most ``fanout_window``
messages unconfirmed, transactional jobs first. Batch ``b`` of job ``j`` goes to partition
``(j + b + tries) mod P``; a batch not confirmed within ``enqueue_timeout_ms`` is sent again to the
next partition (the partition may be unreachable). Confirmed progress (a prefix of batches per job)
is checkpointed every ``sample_ms`` without its own fsync: after a crash the API re-sends a few
batches, and the partitions' tombstones (or the providers' idempotency keys, if a batch went to two
partitions) absorb the repeats.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from simulator import ClientNode, Node

from .messages import BULK, TX, Accepted, Depth, DepthQuery, Enqueue, Enqueued, QueueMessage, SubmitCampaign, SubmitSend
from .settings import Settings


@dataclass(frozen=True, slots=True)
class JobRecord:
    job: int
    cls: str
    first_address: int
    recipients: int
    accepted_ns: int


class _Fanout:
    __slots__ = ("rec", "batches", "next", "done", "confirmed")

    def __init__(self, rec: JobRecord, batch_size: int, done: int):
        self.rec = rec
        self.batches = -(-rec.recipients // batch_size)
        self.next = done
        self.done = done  # batches below this are confirmed (durable prefix)
        self.confirmed: set[int] = set()


class Api(Node):
    def __init__(self, settings: Settings):
        self.s = settings

    def on_start(self, ctx) -> None:
        self.jobs: dict[int, _Fanout] = {}
        self.todo_tx: deque[_Fanout] = deque()
        self.todo_bulk: deque[_Fanout] = deque()
        self.inflight: dict[tuple, tuple[_Fanout, int, int, int]] = {}  # msg id -> (job, batch, tries, sent ns)
        self.dirty: dict[int, _Fanout] = {}
        storage = ctx.storage
        for key in storage.keys():
            if key.startswith("j/"):
                rec = storage.get(key)
                fan = _Fanout(rec, self.s.batch_size, storage.get("c/%d" % rec.job, 0))
                if fan.done < fan.batches:
                    self.jobs[rec.job] = fan
                    (self.todo_tx if rec.cls == TX else self.todo_bulk).append(fan)
        self._pump(ctx)
        ctx.set_timer("tick", self.s.sample_ms)

    def on_message(self, ctx, src: str, msg) -> None:
        t = type(msg)
        if t is Enqueued:
            self._on_enqueued(ctx, msg.msg_id)
        elif t is SubmitSend:
            self._accept(ctx, src, msg.op_id, JobRecord(msg.job, TX, msg.address, 1, ctx.now))
        elif t is SubmitCampaign:
            self._accept(ctx, src, msg.op_id, JobRecord(msg.job, BULK, msg.first_address, msg.recipients, ctx.now))
        elif t is DepthQuery:
            ctx.send(src, Depth(msg.query_id, sum(f.batches - f.done for f in self.jobs.values())))

    def _accept(self, ctx, client: str, op_id: int, rec: JobRecord) -> None:
        key = "j/%d" % rec.job
        if key not in ctx.storage:
            ctx.storage.put(key, rec)
            fan = _Fanout(rec, self.s.batch_size, 0)
            self.jobs[rec.job] = fan
            (self.todo_tx if rec.cls == TX else self.todo_bulk).append(fan)
            self._pump(ctx)
        ctx.send(client, Accepted(op_id, rec.job))

    def _send_batch(self, ctx, fan: _Fanout, b: int, tries: int) -> None:
        rec, size = fan.rec, self.s.batch_size
        items = range(b * size, min(rec.recipients, (b + 1) * size))
        msg = QueueMessage((rec.job, b, 0), rec.job, rec.cls, rec.first_address, rec.recipients,
                           items, 0, rec.accepted_ns)
        parts = self.s.partitions
        ctx.send(parts[(rec.job + b + tries) % len(parts)], Enqueue(msg))
        self.inflight[msg.msg_id] = (fan, b, tries, ctx.now)

    def _pump(self, ctx) -> None:
        window = self.s.fanout_window
        while len(self.inflight) < window:
            q = self.todo_tx or self.todo_bulk
            if not q:
                return
            fan = q[0]
            b = fan.next
            fan.next += 1
            if fan.next >= fan.batches:
                q.popleft()
            if b not in fan.confirmed:
                self._send_batch(ctx, fan, b, 0)

    def _on_enqueued(self, ctx, msg_id: tuple) -> None:
        entry = self.inflight.pop(msg_id, None)
        if entry is None:
            return
        fan, b = entry[0], entry[1]
        fan.confirmed.add(b)
        while fan.done in fan.confirmed:
            fan.confirmed.discard(fan.done)
            fan.done += 1
        if fan.done >= fan.batches:  # finished: checkpoint now, so the disk says so when the queue drains
            self.jobs.pop(fan.rec.job, None)
            self.dirty.pop(fan.rec.job, None)
            ctx.storage.put("c/%d" % fan.rec.job, fan.done)
        else:
            self.dirty[fan.rec.job] = fan
        self._pump(ctx)

    def on_timer(self, ctx, name: str) -> None:
        ctx.set_timer("tick", self.s.sample_ms)
        if self.dirty:
            for job in sorted(self.dirty):
                ctx.storage.put("c/%d" % job, self.dirty[job].done, sync=False)
            ctx.storage.sync()
            self.dirty = {}
        timeout_ns = int(self.s.enqueue_timeout_ms * 1e6)
        late = [(k, v) for k, v in self.inflight.items() if ctx.now - v[3] >= timeout_ns]
        for msg_id, (fan, b, tries, _) in late:
            self._send_batch(ctx, fan, b, tries + 1)


class Client(ClientNode):
    """Submits sends and campaigns; ``drain`` waits until every queue and API is empty.

    A submission not yet accepted is sent again every ``retry_ms`` to the next API: the job id is
    the idempotency key, so an API that had accepted it only answers again.
    """

    def __init__(self, settings: Settings, poll_ms: float = 250.0, retry_ms: float = 500.0):
        self.s = settings
        self.poll_ms = poll_ms
        self.retry_ms = retry_ms
        self.outstanding: dict[int, tuple[int, object]] = {}  # op id -> (tries, message)
        self.drain_op: int | None = None
        self.round = 0
        self.replies: dict[str, int] = {}
        self.zero_rounds = 0

    def on_invoke(self, ctx, op) -> None:
        if op.f == "send":
            msg = SubmitSend(op.id, op.id, op.value)
        elif op.f == "campaign":
            first, n = op.value
            msg = SubmitCampaign(op.id, op.id, first, n)
        elif op.f == "drain":
            self.drain_op = op.id
            self._poll(ctx)
            return
        else:
            ctx.complete(op.id, "fail", f"unknown operation {op.f!r}")
            return
        self.outstanding[op.id] = (0, msg)
        ctx.send(self.s.apis[op.id % len(self.s.apis)], msg)
        if not ctx.timer_set("resubmit"):
            ctx.set_timer("resubmit", self.retry_ms)

    def _poll(self, ctx) -> None:
        self.round += 1
        self.replies = {}
        for dst in self.s.partitions + self.s.apis:
            ctx.send(dst, DepthQuery(self.round))
        ctx.set_timer("poll", self.poll_ms)

    def on_timer(self, ctx, name: str) -> None:
        if name == "resubmit":
            apis = self.s.apis
            for op_id in sorted(self.outstanding):
                tries, msg = self.outstanding[op_id]
                self.outstanding[op_id] = (tries + 1, msg)
                ctx.send(apis[(op_id + tries + 1) % len(apis)], msg)
            if self.outstanding:
                ctx.set_timer("resubmit", self.retry_ms)
            return
        if self.drain_op is None:
            return
        expected = len(self.s.partitions) + len(self.s.apis)
        if len(self.replies) == expected and not any(self.replies.values()):
            self.zero_rounds += 1
            if self.zero_rounds >= 2:
                ctx.complete(self.drain_op, "ok", {"polls": self.round})
                self.drain_op = None
                return
        else:
            self.zero_rounds = 0
        self._poll(ctx)

    def on_message(self, ctx, src: str, msg) -> None:
        if type(msg) is Accepted:
            if self.outstanding.pop(msg.op_id, None) is not None:
                ctx.complete(msg.op_id, "ok", msg.job)
        elif type(msg) is Depth and msg.query_id == self.round:
            self.replies[src] = msg.messages
