"""Hosting one node: its inbox and CPU, timers, storage, clock, and crash / restart / pause.

The :class:`Host` *is* the node's :class:`~simulator.engine.node.Context`: handlers call its methods.
A host holds no simpy process and no per-node event objects while idle: deliveries, service
completions and timers are kernel callbacks (``Simulation.schedule``), so a million idle nodes cost
a few hundred bytes each.

Cost model
    With no ``service`` configured a delivered message runs its handler at once (the fast path).
    Otherwise the host has ``cores`` CPUs; each message takes a service time drawn for its type
    (``service={"AppendEntries": Dist(...), "*": Dist(...)}``). While every core is busy, arrivals
    wait in the inbox, FIFO; past ``inbox_limit`` they are dropped and counted. The handler runs at
    the end of the message's service time, so a reply leaves when the work is done. Timers run their
    handler when they fire, without queueing for a core.
Priced nodes
    A node may price its messages itself instead (``cost_ns(ctx, src, msg)``, see
    :mod:`simulator.engine.node`): ``None`` runs ``on_message`` at once (replies, health probes),
    a number of ns queues the message on the same cores and inbox as above, and ``on_job`` runs
    when that work is done, told when the job arrived and started. The node says how many
    ``cores`` it has and its ``queue_limit`` (waiting jobs); past it the message goes to
    ``on_refused`` at once. Same FIFO, the same crash and pause semantics as the cost model.
Durable writes
    Each handler that syncs storage pays ``fsync`` latency once: sends made after the sync leave
    that much later, and the core stays busy until the fsync is done.
Crash / restart / pause
    A crash drops the node object, its timers, its inbox and work in progress (scheduled callbacks
    carry the host's epoch and are ignored once it changes). Storage survives (less unsynced writes
    when asked). A restart builds a fresh node from the factory and runs ``on_start``. A pause
    queues arrivals, timer firings and completions, and replays them in order on resume.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING, Any, Callable

from .clock import Clock
from .dists import Dist
from .events import FLUSH_AT
from .rng import Batch
from .storage import Storage

if TYPE_CHECKING:
    from .node import Node


class Host:
    """One node's machine inside a Simulation (``sim``): CPU, inbox, timers, storage, crash and pause."""

    # Slots are laid out in this order: what every delivery and send touches comes first, so with
    # thousands of hosts it shares one or two cache lines rather than three or four.
    __slots__ = (
        "_hold", "fast", "node", "code", "id", "_net", "_queue", "_env", "_eid", "sim",
        "factory", "up", "paused", "epoch", "started",
        "cores", "busy", "inbox", "inbox_limit", "_service", "_fsync",
        "timers", "_storage", "_rng", "clock", "_paused_q", "is_client",
        "dropped_inbox", "dropped_down", "crash_times", "_price", "deliver",
    )

    def __init__(self, sim, node_id: str, factory: Callable[[], "Node"], *,
                 cores: int = 1, service: dict[str, Dist] | Dist | None = None,
                 fsync: Dist | None = None, inbox_limit: int = 10_000, clock: Clock | None = None,
                 is_client: bool = False):
        self.sim = sim
        self._net = sim.network
        self._env = sim.env
        self._queue = sim.env._queue
        self._eid = sim.env._eid
        self.id = node_id
        self.code = sim.name_code(node_id)  # as it enters the digest
        self.factory = factory
        self.node: Node | None = None
        self.up = True
        self.paused = False
        self.epoch = 0
        self.started = False
        if cores < 1:
            raise ValueError(f"cores must be >= 1, got {cores}")
        self.cores = cores
        self.busy = 0
        self.inbox: deque | None = None
        self.inbox_limit = inbox_limit
        self._service = None
        if service is not None:
            if isinstance(service, Dist):
                service = {"*": service}
            samplers = {k: d.sampler(sim.streams, f"cpu.{node_id}.{k}") for k, d in sorted(service.items())}
            if any(not d.is_zero() for d in service.values()):
                self._service = samplers
                self.inbox = deque()
        self._fsync = fsync.sampler(sim.streams, f"disk.{node_id}") if fsync is not None and not fsync.is_zero() else None
        self._hold = 0
        self._price = None  # the node's cost_ns, bound, when it prices its own messages
        self.timers: dict[str, int] | None = None
        self._storage: Storage | None = None
        self._rng = None
        self.clock = clock
        self._paused_q: list | None = None
        self.is_client = is_client
        self.fast = False  # set by _update_fast: up, not paused, no CPU model
        self.deliver = self.receive  # set by _update_fast: where an arrival goes when not fast
        self._update_fast()
        self.dropped_inbox = 0
        self.dropped_down = 0
        self.crash_times: list[int] = []  # crash_times[e]: when epoch e ended

    # ---- the Context API ----------------------------------------------------------------------
    @property
    def now(self) -> int:
        t = self._env._now
        return t if self.clock is None else self.clock.local(t)

    @property
    def now_ms(self) -> float:
        return self.now / 1e6

    @property
    def rng(self):
        if self._rng is None:
            self._rng = self.sim.streams.get(f"node.{self.id}")
        return self._rng

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = Storage(self._on_fsync)
        return self._storage

    def send(self, dst: str, msg: Any) -> None:
        net = self._net
        if net.simple and not self._hold:
            # Network.transmit for a plain, loss-free network and no fsync to wait for, inlined
            # (the same counter, the same latency draw, the same heap entry): one call less a message.
            net.sent += 1
            buf = net._lat_buf
            delay = buf.pop() if buf else net._refill()
            heappush(self._queue, (self._env._now + delay, 1, next(self._eid), net._arrive_call, self, dst, msg))
        else:
            net.transmit(self, dst, msg, self._hold)

    def set_timer(self, name: str, after_ms) -> None:
        if type(after_ms) is tuple:
            lo, hi = after_ms
            after_ms = lo + (hi - lo) * self.rng.random()
        if after_ms < 0:
            raise ValueError(f"timer {name!r}: delay must be >= 0 ms, got {after_ms}")
        delay = round(after_ms * 1_000_000)  # int() would turn 4.1 ms into 4.099999 ms
        if self.clock is not None:
            delay = self.clock.true_delay(delay)
        timers = self.timers
        if timers is None:
            timers = self.timers = {}
        deadline = self._env._now + delay
        t = timers.get(name)
        if t is not None and t[1] <= deadline:
            # Pushed back (a heartbeat resetting an election timeout): the pending event, due
            # no later than the new deadline, moves itself on when it fires. One event per timer.
            t[0] = deadline
            return
        # [deadline, when its event fires]; the event carries this very list, so an event whose
        # timer was set again earlier, cancelled, or lost in a crash finds another list (or none).
        # Simulation.schedule inlined (the same heap entry): this runs once per timer set.
        t = timers[name] = [deadline, deadline]
        heappush(self._queue, (deadline, 1, next(self._eid), self._fire_timer, name, t))

    def cancel_timer(self, name: str) -> None:
        if self.timers:
            self.timers.pop(name, None)

    def timer_set(self, name: str) -> bool:
        return bool(self.timers) and name in self.timers

    def record(self, kind: str, **fields: Any) -> None:
        # Simulation.record, inlined (the same dict, keys in the same order)
        self.sim.records.append({"time_ns": self._env._now, "node": self.id, "kind": kind, **fields})

    def record_row(self, kind: str, row: tuple) -> None:
        tables = self.sim.tables
        rows = tables.get(kind)
        if rows is None:
            rows = tables[kind] = []
        rows.append((self._env._now, self.id) + row)

    def log(self, text: str) -> None:
        self.sim.trace_event("log", self.id, str(text))

    def complete(self, op_id: int, type: str, value: Any = None) -> bool:
        return self.sim.workload.complete(op_id, type, value)

    # ---- the runtime --------------------------------------------------------------------------
    def _update_fast(self) -> None:
        ready = self.up and not self.paused and self.node is not None
        self.fast = ready and self._service is None and self._price is None
        # A priced node that is up and not paused has its arrivals priced at once: the kernel's loop
        # calls deliver, which skips receive's tests (all passed in that state) and one call a message.
        self.deliver = self._arrive_priced if ready and self._price is not None else self.receive

    def _on_fsync(self) -> None:
        # Group commit: _hold becomes non-zero only here, so a second sync in the same handler
        # finds it paid (every handler starts with _hold = 0).
        if self._fsync is not None and self._hold == 0:
            self._hold = self._fsync()

    @property
    def incarnation(self) -> int:
        """How many times this node has crashed: 0 until its first crash. A request id drawn from a
        counter the node keeps in memory starts over after a restart, and a reply to the node's
        previous life would match a new request; ids that carry the incarnation cannot."""
        return self.epoch

    def start(self) -> None:
        """Boot (or reboot) the node: a fresh object from the factory, then ``on_start``."""
        self.started = True
        self.node = node = self.factory()
        price = getattr(node, "cost_ns", None)
        if price is not None:
            if self._service is not None:
                raise ValueError(f"node {self.id!r} prices its messages (cost_ns) on a host with a cost model (service=)")
            self._price = price
            self.cores = node.cores
            self.inbox_limit = node.queue_limit
            if self.inbox is None:
                self.inbox = deque()
        else:
            self._price = None
        self._update_fast()
        self._hold = 0
        self.node.on_start(self)

    def receive(self, src: str, msg: Any) -> None:
        """A message arrived over the network (already past partitions and loss)."""
        if not self.up or self.node is None:  # crashed, or added mid-run and not booted yet
            self.dropped_down += 1
            self.sim.trace_event("drop-down", src, self.id, type(msg).__name__)
            return
        if self.paused:
            self._paused_q.append((self._arrive_cpu if self._service else
                                   self._arrive_priced if self._price else self._handle, src, msg))
            return
        service = self._service
        if service is None:
            if self._price is None:
                self._handle(src, msg)
            else:
                self._arrive_priced(src, msg)
        elif self.busy < self.cores:  # _arrive_cpu and _serve, inlined: this runs once per message
            self.busy += 1
            sampler = service.get(type(msg).__name__) or service.get("*")
            if type(sampler) is Batch:  # Batch.__call__, inlined
                buf = sampler._buf
                delay = buf.pop() if buf else sampler()
            else:
                delay = sampler() if sampler is not None else 0
            heappush(self._queue, (self._env._now + delay, 1, next(self._eid), self._done, self.epoch, (src, msg)))
        else:
            self._arrive_cpu(src, msg)

    def _handle(self, src: str, msg: Any) -> int:
        self._hold = 0
        self.node.on_message(self, src, msg)
        return self._hold

    def _arrive_cpu(self, src: str, msg: Any) -> None:
        if self.busy < self.cores:
            self.busy += 1
            self._serve(src, msg)
        elif len(self.inbox) < self.inbox_limit:
            self.inbox.append((src, msg))
        else:
            self.dropped_inbox += 1
            self.sim.trace_event("drop-inbox", src, self.id, type(msg).__name__)

    def _arrive_priced(self, src: str, msg: Any) -> None:
        cost = self._price(self, src, msg)
        if cost is None:
            self._handle(src, msg)
            return
        clock = self.clock
        t = self._env._now
        now = t if clock is None else clock.local(t)  # the node's own clock, as ctx.now
        if self.busy < self.cores:
            self.busy += 1
            heappush(self._queue, (t + cost, 1, next(self._eid), self._done, self.epoch, (src, msg, now, now, 0)))
            return
        inbox = self.inbox
        if len(inbox) < self.inbox_limit:
            inbox.append((src, msg, now, len(inbox), cost))
        else:
            self.dropped_inbox += 1
            self._hold = 0
            self.node.on_refused(self, src, msg)

    def _serve(self, src: str, msg: Any) -> None:
        sampler = self._service.get(type(msg).__name__) or self._service.get("*")
        delay = sampler() if sampler is not None else 0
        self.sim.schedule(delay, self._done, self.epoch, (src, msg))

    def _done(self, epoch: int, job) -> None:
        """A message's service time is over: its handler runs (``on_job`` for a priced node)."""
        if epoch != self.epoch:
            return  # the host crashed while this message was in service
        if self.paused:
            self._paused_q.append((self._done, epoch, job))
            return
        self._hold = 0
        if self._price is None:
            self.node.on_message(self, job[0], job[1])
        else:
            # unpacked here rather than on_job(self, *job): a call with a star is not inlined
            # into the interpreter's loop, and this runs once a priced job
            src, msg, arrived, started, queued = job
            self.node.on_job(self, src, msg, arrived, started, queued)
        hold = self._hold
        if hold:
            self.sim.schedule(hold, self._free_core, self.epoch, None)
        elif self.inbox:
            self._next_job()
        else:
            self.busy -= 1

    def _free_core(self, epoch: int, _unused) -> None:
        if epoch != self.epoch:
            return
        if self.inbox:
            self._next_job()
        else:
            self.busy -= 1

    def _next_job(self) -> None:
        """A core is free and the inbox is not empty: the first message in it starts."""
        if self._price is None:
            src, msg = self.inbox.popleft()
            self._serve(src, msg)
            return
        src, msg, arrived, queued, cost = self.inbox.popleft()
        t = self._env._now
        started = t if self.clock is None else self.clock.local(t)
        heappush(self._queue, (t + cost, 1, next(self._eid), self._done, self.epoch,
                               (src, msg, arrived, started, queued)))

    def _fire_timer(self, name: str, entry: list) -> None:
        timers = self.timers
        if timers is None or timers.get(name) is not entry:
            return  # set earlier again, cancelled, or the host crashed since
        now = self._env._now
        if entry[0] > now:  # pushed back since this event was scheduled
            entry[1] = entry[0]
            heappush(self._queue, (entry[0], 1, next(self._eid), self._fire_timer, name, entry))
            return
        if self.paused:
            self._paused_q.append((self._fire_timer, name, entry))
            return
        del timers[name]
        sim = self.sim
        if sim._trace_file is None:  # Simulation.trace_event("timer", id, name), inlined
            buf = sim._trace
            code = sim._encoded.get(name) or sim.name_code(name)
            buf.extend((now, sim._timer_code, 2, self.code, code))
            if len(buf) >= FLUSH_AT:
                sim._flush()
        else:
            sim.trace_event("timer", self.id, name)
        self._hold = 0
        self.node.on_timer(self, name)

    # ---- faults -------------------------------------------------------------------------------
    def crash(self, lose_unsynced: bool = False) -> bool:
        """Stop the node now; returns False if it was already down."""
        if not self.up:
            return False
        self.up = False
        self.paused = False
        self._paused_q = None
        self.crash_times.append(self.sim.env._now)
        self.epoch += 1
        self.node = None
        self._price = None
        self._update_fast()
        self.timers = None
        self.busy = 0
        if self.inbox is not None:
            self.inbox.clear()
        if self._storage is not None:
            self._storage.crash(lose_unsynced)
        return True

    def restart(self) -> bool:
        """Boot a crashed node again; returns False if it was up."""
        if self.up:
            return False
        self.up = True
        self.start()
        return True

    def pause(self) -> bool:
        if not self.up or self.paused:
            return False
        self.paused = True
        self._paused_q = []
        self._update_fast()
        return True

    def resume(self) -> bool:
        """End a pause: everything that queued meanwhile runs now, in arrival order."""
        if not self.paused:
            return False
        self.paused = False
        self._update_fast()
        queued, self._paused_q = self._paused_q, None
        for fn, a, b in queued:
            if not self.up or self.paused:
                break
            fn(a, b)
        return True
