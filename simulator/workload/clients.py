"""Clients and the history: open-loop (Poisson) and closed-loop (concurrency) workloads.

Clients are nodes on the network (``c1``, ``c2``...). Logical *processes*, in Jepsen's sense, carry
operations: process ``p`` invokes through client ``c{p % clients + 1}``. A process has at most one
operation outstanding; when an operation times out it is recorded ``info`` and the process is
retired for good (a fresh process id takes its place), since whether it happened is unknown.

Open loop
    Arrivals are a Poisson process at ``rate`` operations per second (stream ``workload.arrivals``),
    or, with a profile ``rate_at(t_s)`` and its maximum, a non-homogeneous Poisson process by
    thinning (ramps, bursts, daily curves). Each arrival takes the lowest free process id, or a new
    one, so load does not wait for replies.
Closed loop
    ``concurrency`` processes each invoke again as soon as their previous operation ends.

Operations come from the scenario's ``generate(rng)`` (stream ``workload.ops``). After ``stop_ns``
no new main-phase operations start; :meth:`Workload.run_final` then runs the final operations,
each on a fresh process, and stops the simulation when all have ended.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..engine.node import Operation
from ..engine.rng import Batch
from .history import BUFFERED_EVENTS, TYPE_CODE, History, vouch

# Operation(...) without the namedtuple's Python-level __new__: one call less per operation.
_new_operation = functools.partial(tuple.__new__, Operation)

if TYPE_CHECKING:
    from ..engine.kernel import Simulation

ENDINGS = ("ok", "fail", "info")
PROFILE_HELP = "constant, ramp:FROM-TO (ops/s, linear over the run) or burst:EVERY_S:FOR_S:FACTOR"


def rate_profile(spec: str, rate: float, duration_s: float) -> Callable[[float], float] | None:
    """The open-loop rate over time for a profile spec (None for ``constant``).

    ``ramp:10-200`` rises linearly from 10 to 200 ops/s over the run; ``burst:10:2:5`` multiplies
    ``rate`` by 5 for 2 s out of every 10 s. Raises ValueError naming the spec when it is malformed.
    """
    spec = str(spec).strip()
    try:
        if spec == "constant":
            return None
        kind, _, rest = spec.partition(":")
        if kind == "ramp":
            lo, hi = (float(x) for x in rest.split("-"))
            if lo < 0 or hi < 0 or lo + hi == 0:
                raise ValueError
            return lambda t: lo + (hi - lo) * min(1.0, max(0.0, t / duration_s))
        if kind == "burst":
            every, length, factor = (float(x) for x in rest.split(":"))
            if every <= 0 or not 0 < length <= every or factor < 0:
                raise ValueError
            return lambda t: rate * (factor if (t % every) < length else 1.0)
    except ValueError:
        pass
    raise ValueError(f"bad value {spec!r} for rate_profile: expected {PROFILE_HELP}")


_LEAVES = frozenset({type(None), int, str, bool})
_CODE = TYPE_CODE
_typeof = type  # complete() and _record() take an argument named type


def _immutable_plain(value: Any) -> bool:
    """None, an int, a bool, a str, or tuples of these at any depth: a value that orjson writes as
    json does (strings' characters apart, which the writer checks on its output) and that nothing
    can change after it is recorded. Lists and dicts could be mutated later, so they do not qualify."""
    t = type(value)
    if t in _LEAVES:
        return True
    if t is not tuple:
        return False
    # a loop, not set(map(type, value)) <= _LEAVES: half the time for the short flat tuples that
    # end most operations (a kit client's (key, idem, result)), checked once an operation
    for v in value:
        if type(v) not in _LEAVES:
            return all(map(_immutable_plain, value))
    return True


class Workload:
    def __init__(self, sim: "Simulation", clients: list[str], generate: Callable, *, op_timeout_ns: int,
                 rate: float | None = None, concurrency: int | None = None,
                 rate_at: Callable[[float], float] | None = None):
        if not clients:
            raise ValueError("a workload needs at least one client")
        if concurrency is None and not (rate and rate > 0) and rate_at is None:
            raise ValueError("an open-loop workload needs a rate > 0")
        self.sim = sim
        sim.workload = self
        self.clients = clients
        self.generate = generate
        self.op_timeout_ns = int(op_timeout_ns)
        self.rate = rate
        self.rate_at = rate_at
        self.concurrency = concurrency
        # Columns, not a dict an event (simulator.workload.history.History): it reads as the list of
        # dicts it replaces, in a tenth of the memory.
        self.history = History()
        # the history's buffer, appended to directly (one C call an event); History.flush moves it
        # into the columns when the history is read, and _invoke once it holds BUFFERED_EVENTS, the
        # bound History.add keeps too
        self._buffered = self.history.buffered
        self._add = self._buffered.append
        # True while every history entry is an int time, a str f and an immutable plain value (see
        # _immutable_plain): the history writer then skips its own scan of the values (history.vouch).
        self.values_plain = True
        vouch(self)
        self._ops_rng = sim.streams.get("workload.ops")
        self._gap = None
        self._accept = None
        self._pending: dict[int, Operation] = {}  # op id -> the operation, until it ends
        self._free: list[int] = []
        # (deadline ns, op id) in deadline order: a deque while every operation has the same
        # timeout (deadlines then come in order, and an append and a popleft are cheaper than a
        # heap's push and pop, a million times over), a heap once one comes earlier than the last
        # (the final operations' shorter timeout); both give the same order, ties by op id.
        self._deadlines: deque | list = deque()
        self._deadlines_ordered = True
        self._check_at: int | None = None
        self._next_process = 0
        self._next_op = 0
        self._stop_ns: int | None = None
        self._final_left: int | None = None
        self._final_first: int | None = None
        self.on_final_done: Callable[[], None] | None = None
        self.started = 0
        self._arrival_call = self._arrival  # one bound method for every arrival's heap entry

    # ---- phases -------------------------------------------------------------------------------
    def start(self, stop_ns: int) -> None:
        """Begin the main phase now; no new main operations at or after ``stop_ns``."""
        self._stop_ns = stop_ns
        if self.concurrency:
            for _ in range(self.concurrency):
                self.sim.schedule(0, self._closed_next, self._new_process())
        else:
            max_rate = self.rate
            if self.rate_at is not None:
                grid = np.linspace(0.0, stop_ns / 1e9, 2001)
                max_rate = max(max(float(self.rate_at(t)) for t in grid), 1e-9)
                self._accept = Batch(self.sim.streams.get("workload.thinning"), lambda g, n: g.random(n))
            self._max_rate = max_rate
            # an invoke and a completion per operation: a long run's history keeps no dicts from the start
            self.history.expect(int(2 * max_rate * max(0, stop_ns - self.sim.now) / 1e9))
            mean_gap_ns = 1e9 / max_rate
            self._gap = Batch(self.sim.streams.get("workload.arrivals"),
                              lambda g, n: np.rint(g.exponential(mean_gap_ns, n)).astype(np.int64))
            self.sim.schedule(self._gap(), self._arrival)

    def run_final(self, ops: list[tuple[str, Any]], on_done: Callable[[], None], timeout_ns: int | None = None) -> None:
        """Invoke each final operation on a fresh process now; call ``on_done`` when all have ended.

        Final operations (a read of every key, waiting for a drain) time out after ``timeout_ns``
        (the run's ``final_timeout_s``) rather than the per-operation timeout of the main phase."""
        self._stop_ns = self.sim.now  # nothing more from the main phase
        if timeout_ns is not None:
            self.op_timeout_ns = int(timeout_ns)
        self.on_final_done = on_done
        self._final_left = len(ops)
        self._final_first = self._next_op
        if not ops:
            on_done()
            return
        for f, value in ops:
            p = self._next_process
            self._next_process += 1
            self._invoke(p, f, value)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ---- arrivals -----------------------------------------------------------------------------
    def _new_process(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        p = self._next_process
        self._next_process += 1
        return p

    def _arrival(self, _a=None, _b=None) -> None:
        sim = self.sim
        now = sim.env._now
        if now >= self._stop_ns:
            return
        gap = self._gap  # Batch.__call__ and Simulation.schedule, inlined: the same draw, the same heap entry
        buf = gap._buf
        heappush(sim._queue, (now + (buf.pop() if buf else gap()), 1, next(sim._eid), self._arrival_call, None, None))
        if self._accept is not None and self._accept() * self._max_rate > self.rate_at(now / 1e9):
            return
        f, value = self.generate(self._ops_rng)
        free = self._free
        if free:
            process = heapq.heappop(free)
        else:
            process = self._next_process
            self._next_process += 1
        self._invoke(process, f, value)

    def _closed_next(self, process: int, _b=None) -> None:
        if self.sim.env._now >= self._stop_ns:
            return
        f, value = self.generate(self._ops_rng)
        self._invoke(process, f, value)

    def _invoke(self, process: int, f: str, value: Any) -> None:
        # Runs once per operation: attributes are read once into locals.
        sim = self.sim
        now = sim.env._now
        op_id = self._next_op
        op = _new_operation((op_id, process, f, value))
        self._next_op = op_id + 1
        self.started += 1
        self._add((now, 0, process, f, value))
        if len(self._buffered) >= BUFFERED_EVENTS:
            self.history.flush()
        if self.values_plain and (_typeof(value) not in _LEAVES and not _immutable_plain(value)
                                  or _typeof(f) is not str or _typeof(now) is not int):
            self.values_plain = False
        self._pending[op_id] = op
        deadline = now + self.op_timeout_ns
        deadlines = self._deadlines
        if self._deadlines_ordered and (not deadlines or deadlines[-1][0] <= deadline):
            deadlines.append((deadline, op_id))
        else:
            if self._deadlines_ordered:
                self._deadlines = deadlines = list(deadlines)  # already a heap: sorted
                self._deadlines_ordered = False
            heappush(deadlines, (deadline, op_id))
        check_at = self._check_at
        if check_at is None or deadline < check_at:
            self._check_at = deadline
            sim.schedule(self.op_timeout_ns, self._check_timeouts, deadline)
        clients = self.clients
        host = sim.hosts[clients[process % len(clients)]]
        if not host.up or host.paused or host.node is None:
            self.complete(op_id, "fail", value)  # the client could not even send it
            return
        host._hold = 0
        host.node.on_invoke(host, op)

    # ---- completions --------------------------------------------------------------------------
    def complete(self, op_id: int, type: str, value: Any = None) -> bool:
        """End operation ``op_id``; False if it had already ended (a late reply)."""
        if type not in ENDINGS:
            raise ValueError(f"an operation ends ok, fail or info, not {type!r}")
        op = self._pending.pop(op_id, None)
        if op is None:
            return False
        now = self.sim.env._now
        self._add((now, _CODE[type], op.process, op.f, value))
        if self.values_plain and (_typeof(value) not in _LEAVES and not _immutable_plain(value)
                                  or _typeof(now) is not int):
            self.values_plain = False
        if self._final_first is None and not self.concurrency and type != "info":
            heapq.heappush(self._free, op.process)  # _after's open-loop case, inlined
        else:
            self._after(op, retired=type == "info")
        return True

    def _check_timeouts(self, at: int, _b=None) -> None:
        """Time out every operation past its deadline, then sleep until the next deadline.

        Deadlines wait in one queue (see __init__) and a single pending event watches its head,
        instead of an event per operation that almost always finds its operation long finished."""
        if at != self._check_at:
            return  # superseded by an earlier check
        self._check_at = None
        now = self.sim.now
        heap, pending = self._deadlines, self._pending
        pop = heap.popleft if self._deadlines_ordered else functools.partial(heapq.heappop, heap)
        while heap and (heap[0][0] <= now or heap[0][1] not in pending):
            deadline, op_id = pop()
            if deadline <= now and op_id in pending:
                self._timeout(op_id)  # invokes nothing (a closed loop's next operation is scheduled)
        if heap:
            self._check_at = heap[0][0]
            self.sim.schedule(heap[0][0] - now, self._check_timeouts, self._check_at)

    def _timeout(self, op_id: int, _b=None) -> None:
        op = self._pending.pop(op_id, None)
        if op is None:
            return
        self._record(op, "info", op.value)
        self._after(op, retired=True)

    def _record(self, op: Operation, type: str, value: Any) -> None:
        now = self.sim.now
        self._add((now, _CODE[type], op.process, op.f, value))
        if self.values_plain and (_typeof(value) not in _LEAVES and not _immutable_plain(value)
                                  or _typeof(now) is not int):
            self.values_plain = False

    def _after(self, op: Operation, retired: bool) -> None:
        if self._final_first is not None and op.id >= self._final_first:
            self._final_left -= 1
            if self._final_left == 0 and self.on_final_done is not None:
                self.on_final_done()
            return
        if self.concurrency:
            process = self._new_process() if retired else op.process
            self.sim.schedule(0, self._closed_next, process)
        elif not retired:
            heapq.heappush(self._free, op.process)
