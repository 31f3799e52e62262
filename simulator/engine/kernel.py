"""The Simulation: a simpy Environment with integer-nanosecond time, named random streams, hosts,
a network and the trace digest.

Event order
    All kernel events sit on simpy's heap, ordered by (time, priority, event id). Every dsim
    event has NORMAL priority, so events at the same instant run in the order they were
    scheduled. That is the documented tie rule: a delivery scheduled before a timer at the same
    nanosecond runs first. Code that changes how an event travels (an extra hop through another
    callback) changes tie order, and therefore digests.
Callbacks, not processes
    ``schedule(delay_ns, fn, a, b)`` pushes ``(time, priority, event id, fn, a, b)`` straight onto
    simpy's heap, and :meth:`Simulation.run` pops and calls it itself instead of going through
    ``Environment.step`` and an event object (see events.py): a delivery costs less than a bare
    simpy Timeout. No node owns a process; an idle node owns no event.
Trace digest
    Deliveries, drops, timer firings and faults are appended to an
    ``array('q')`` of integers, hashed with SHA-256 in blocks. Names (node ids, message types, event
    kinds) become small codes from an intern table filled in order of first appearance, which is
    itself deterministic; other values enter as the CRC-32 of their ``repr``. Encoding to integers
    costs a fraction of ``repr`` per event. The client history and the observations (``ctx.record``)
    are kept in memory anyway; the digest folds in their ``repr`` once, at the end, rather than
    paying per operation. Rows (``ctx.record_row``) follow the records, table by table. The
    digest is the run's fingerprint: the same seed, parameters and versions give the same digest
    in any process.
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring_ascii as _json_str
import marshal
import zlib
from array import array
from heapq import heapify, heappop, heappush
from typing import Any, Callable

import simpy
from simpy.core import StopSimulation

from .clock import Clock
from .dists import Dist
from .events import FLUSH_AT
from .network import Network
from .rng import Streams
from .runtime import Host

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_URGENT = 0
_NORMAL = 1
_FOREVER = 1 << 62  # ns, about 146 years: later than any event


# The kernel's loop checks the clock every CHECK_EVERY events; SAME_INSTANT_LIMIT events at one
# simulated nanosecond (far above any real burst: a million nodes booting at time 0 is a million)
# mean the clock can never move again, and the run fails with SimulationStuck rather than hang.
CHECK_EVERY = 1 << 16
SAME_INSTANT_LIMIT = 20_000_000


class SimulationStuck(RuntimeError):
    """Too many events at one simulated instant: simulated time no longer advances."""

    def __init__(self, now_ns: int, events: int):
        self.now_ns, self.events = now_ns, events
        super().__init__(f"simulated time stuck at t={now_ns} ns ({now_ns / NS_PER_S:g} s): {events:,} events ran at "
                         "that one instant (a timer or message with 0 delay that re-arms itself?)")


def _stop(_a, _b):
    raise StopSimulation(None)


class Simulation:
    """One simulated world. Time is ``env.now`` in integer nanoseconds."""

    def __init__(self, seed: int, *, latency: Dist | None = None, trace_file=None):
        self.env = simpy.Environment()
        self._queue = self.env._queue
        self._eid = self.env._eid
        self.seed = seed
        self.streams = Streams(seed)
        self.hosts: dict[str, Host] = {}
        self._to_start: list[Host] = []
        self.records: list[dict] = []
        # kind -> rows of ctx.record_row (Host.record_row), each (time_ns, node, *fields): an
        # observation made once a request or more, one tuple rather than a dict; in the digest
        self.tables: dict[str, list[tuple]] = {}
        self._stopped = False
        # The trace integers, cleared in place on flush (the network and hosts hold it too). A list,
        # not an array('q'): list.extend of a small tuple costs a fraction of array.extend, and one
        # conversion of the block at flush gives the same bytes.
        self._trace: list[int] = []
        self._codes: dict[str, int] = {}
        # name_code's answers for short names (timer names enter the trace at every firing, so the
        # hot path looks them up here before it calls name_code)
        self._encoded: dict[str, int] = {}
        self._timer_code = self.code("timer")
        self._hash = hashlib.sha256()
        self._trace_file = trace_file
        self.workload = None  # set by simulator.workload.clients.Workload
        self.faults = None  # set by simulator.faults.Injector
        self.network = Network(self, latency if latency is not None else Dist("exponential", 1.0))

    # ---- time and scheduling ------------------------------------------------------------------
    @property
    def now(self) -> int:
        """True simulated time in ns (kernel, workload and checkers only; nodes use ctx.now)."""
        return self.env._now

    def schedule(self, delay_ns: int, fn: Callable[[Any, Any], None], a: Any = None, b: Any = None) -> None:
        """Call ``fn(a, b)`` after ``delay_ns`` (an int >= 0)."""
        heappush(self._queue, (self.env._now + delay_ns, _NORMAL, next(self._eid), fn, a, b))

    def schedule3(self, delay_ns: int, fn, a, b, c) -> None:
        """Call ``fn(a, b, c)`` after ``delay_ns``."""
        heappush(self._queue, (self.env._now + delay_ns, _NORMAL, next(self._eid), fn, a, b, c))

    def at(self, time_ns: int, fn, a=None, b=None) -> None:
        """Call ``fn(a, b)`` at absolute time ``time_ns`` (not in the past)."""
        self.schedule(max(0, int(time_ns) - self.env._now), fn, a, b)

    def stop(self) -> None:
        """End the current ``run`` once the events of this instant scheduled so far have run."""
        self.schedule(0, _stop)

    def run(self, until_ns: int | None = None) -> None:
        """Run until ``until_ns`` (exclusive of events at that instant; ``now`` is then ``until_ns``)
        or, without it, until nothing is left. Running in several chunks gives the same event order
        as one call: ties are broken by scheduling order whatever the chunks."""
        if self._to_start:
            pending, self._to_start = self._to_start, []
            self.schedule(0, self._start_hosts, pending)
        if until_ns is not None and until_ns <= self.env._now:
            return
        self._loop(_FOREVER if until_ns is None else until_ns)
        if until_ns is not None and not self._stopped:
            self.env._now = until_ns

    def _loop(self, until_ns: int) -> None:
        """SimPy's ``Environment.run`` for the engine's scheduled calls (events.py): the same heap
        in the same (time, priority, event id) order, but each call is popped and made here rather
        than through ``Environment.step`` and an event object. A SimPy event on the heap (a
        4-tuple) still goes through ``step``. Like SimPy's ``run(until=...)``, a marker at
        ``until_ns`` with urgent priority ends the loop before the events of that instant."""
        queue = self._queue
        env = self.env
        pop = heappop
        marker = None
        if until_ns < _FOREVER:
            marker = (until_ns, _URGENT, next(self._eid), None, None)
            heappush(queue, marker)
        self._stopped = False
        # A delivery (the network's arrive call) is made here inline, when the run is not traced to
        # a file: the same steps as Network._make_arrive's arrive, without a call per message.
        net = self.network
        arrive = net._arrive_call if not net._tracing else None
        held = net._arrive_held_call if not net._tracing else None  # sent after its sender's fsync
        hosts = net._hosts
        buf = self._trace
        deliver_code = net._deliver_code
        type_codes = net._type_codes
        flush_at = FLUSH_AT
        # Deliveries made here are counted in a local and added to Network.delivered when the loop
        # ends (the network's counters are read after a run, by its stats), not once a message.
        delivered = 0
        # Same-instant guard: the loop runs in chunks of CHECK_EVERY events (a for over a range costs
        # less per event than a counter); after a whole chunk, if the clock has not moved since the
        # last chunk's end, every event in between ran at one instant. Past SAME_INSTANT_LIMIT such
        # events the run is stuck (a 0-delay timer or message re-arming itself) and fails.
        chunk = range(CHECK_EVERY)
        limit = SAME_INSTANT_LIMIT
        last_now = -1
        same = 0
        try:
            while True:
                for _ in chunk:
                    try:
                        item = pop(queue)
                    except IndexError:  # nothing left (an empty heap costs nothing to test this way)
                        break
                    n = len(item)
                    if n == 7:
                        # one unpacking is fewer steps than four subscripts (3.11 specialises both)
                        now, _p, _e, fn, sender, dst, msg = item
                        env._now = now
                        if fn is arrive or fn is held:
                            if fn is held:  # Network._arrive_held's test: lost if the sender crashed before it left
                                sender, epoch, depart_ns = sender
                                if sender.epoch != epoch and sender.crash_times[epoch] < depart_ns:
                                    fn(item[4], dst, msg)
                                    continue
                            host = hosts.get(dst)
                            if (net.blocked or host is None) and net._cut_or_unknown(sender, dst, msg):
                                continue
                            delivered += 1
                            t = type(msg)
                            buf.extend((now, deliver_code, 3, sender.code, host.code,
                                        type_codes.get(t) or net._type_code(t)))
                            if len(buf) >= flush_at:
                                self._flush()
                            if host.fast:
                                host._hold = 0
                                host.node.on_message(host, sender.id, msg)
                            else:  # receive, or a ready priced node's pricing
                                host.deliver(sender.id, msg)
                        else:
                            fn(sender, dst, msg)
                    elif n == 6:
                        env._now = item[0]
                        item[3](item[4], item[5])
                    elif item is marker:
                        env._now = item[0]
                        marker = None
                        break
                    else:  # a plain simpy event or process: SimPy's own step, from the same heap position
                        env._now = item[0]
                        heappush(queue, item)
                        env.step()
                else:  # a whole chunk ran: the checkpoint
                    if env._now != last_now:
                        last_now, same = env._now, 0
                        continue
                    same += CHECK_EVERY
                    if same >= limit:
                        raise SimulationStuck(env._now, same)
                    continue
                break  # the heap ran dry, or the marker came up
        except StopSimulation:
            self._stopped = True
        finally:
            net.delivered += delivered
            if marker is not None:  # stopped early (or a handler raised): take the marker back out
                queue.remove(marker)
                heapify(queue)

    def _start_hosts(self, hosts: list[Host], _unused=None) -> None:
        for host in hosts:
            if host.up and not host.started:
                host.start()

    # ---- nodes --------------------------------------------------------------------------------
    def add_node(self, node_id: str, factory, *, cores: int = 1, service=None, fsync: Dist | None = None,
                 inbox_limit: int = 10_000, clock: Clock | None = None, is_client: bool = False) -> Host:
        """Host a node built by ``factory()`` (called again on every restart). Started at next ``run``."""
        if node_id in self.hosts:
            raise ValueError(f"node id {node_id!r} is used twice")
        host = Host(self, node_id, factory, cores=cores, service=service, fsync=fsync,
                    inbox_limit=inbox_limit, clock=clock, is_client=is_client)
        self.hosts[node_id] = host
        self._to_start.append(host)
        return host

    def host(self, node_id: str) -> Host:
        return self.hosts[node_id]

    def clock_of(self, node_id: str) -> Clock:
        """The host's clock, created (perfect) on first use by a clock fault."""
        host = self.hosts[node_id]
        if host.clock is None:
            host.clock = Clock(now_true=self.env._now)
        return host.clock

    # ---- observations and the trace -----------------------------------------------------------
    def record(self, node_id: str, kind: str, fields: dict) -> None:
        rec = {"time_ns": self.env._now, "node": node_id, "kind": kind}
        rec.update(fields)
        self.records.append(rec)  # part of the digest (see digest())

    def code(self, name: str) -> int:
        """The intern code of ``name`` (assigned on first use, so deterministic)."""
        c = self._codes.get(name)
        if c is None:
            c = self._codes[name] = len(self._codes) + 1
        return c

    def name_code(self, name: str) -> int:
        """How a string field enters the digest: minus its intern code, or (past 40 characters,
        e.g. log text) a CRC, so the intern table stays small. The network's inlined delivery
        record uses this too, so tracing to a file never changes the digest."""
        code = self._encoded.get(name)
        if code is not None:
            return code
        if len(name) <= 40:  # kept: a short name's code never changes once assigned
            code = self._encoded[name] = -(self._codes.get(name) or self.code(name))
            return code
        return -(1 << 40) - zlib.crc32(name.encode())  # not kept: log texts are many and seldom repeat

    def trace_event(self, kind: str, *fields: Any) -> None:
        """Append one event to the trace (and the digest). Fields: ints, names, or any repr-able."""
        codes = self._codes
        rec = [self.env._now, codes.get(kind) or self.code(kind), len(fields)]
        for f in fields:
            if type(f) is int:
                rec.append(f & 0x7FFFFFFFFFFFFFFF)
            elif type(f) is str:
                rec.append(self.name_code(f))
            else:
                rec.append(-(1 << 40) - zlib.crc32(repr(f).encode()))
        self._trace.extend(rec)
        if self._trace_file is not None:
            # What json.dumps({"time_ns": ..., "event": kind, "args": [...]}) writes, built directly
            # (the same separators and ASCII escapes) at a fraction of its cost per event.
            args = ", ".join([int.__repr__(f) if type(f) is int else _json_str(str(f)) for f in fields])
            self._trace_file.write(f'{{"time_ns": {self.env._now}, "event": {_json_str(kind)}, "args": [{args}]}}\n')
        if len(self._trace) >= FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        buf = self._trace
        if buf:
            self._hash.update(array("q", buf).tobytes())
            del buf[:]

    def digest(self) -> str:
        """Hex SHA-256 of the trace so far, then the observations (records, then each table of
        rows by kind in sorted order) and the client history. A run that keeps no rows hashes
        exactly what it did before tables existed."""
        self._flush()
        h = self._hash.copy()
        h = _encode_into(h, self.records)
        for kind in sorted(self.tables):
            h.update(marshal.dumps(kind, 2))
            h = _encode_into(h, self.tables[kind])
        if self.workload is not None:
            history = self.workload.history
            # a columnar History (simulator.workload.history) hashes itself chunk by chunk, the same bytes
            h = history.digest_into(h) if hasattr(history, "digest_into") else _encode_into(h, history)
        return h.hexdigest()


_ENCODE_CHUNK = 65_536


def _encode_into(h: Any, values: list) -> Any:
    """``h`` updated with ``_encode(values)``, a chunk at a time for a long list, so a long run's
    observations are never one marshal blob of hundreds of MiB (format 2 has no back-references:
    a list's encoding is its header then its items', and chunks concatenate). Returns the hash."""
    if len(values) <= _ENCODE_CHUNK:
        h.update(_encode(values))
        return h
    trial = h.copy()
    trial.update(b"[" + len(values).to_bytes(4, "little", signed=True))
    try:
        for lo in range(0, len(values), _ENCODE_CHUNK):
            trial.update(marshal.dumps(values[lo:lo + _ENCODE_CHUNK], 2)[5:])
        return trial
    except ValueError:  # _encode's fallback: every item alone, no list header
        for v in values:
            try:
                h.update(marshal.dumps(v, 2))
            except ValueError:
                h.update(repr(v).encode())
        return h


def _encode(values: list) -> bytes:
    """Bytes that identify ``values``: marshal format 2, which (unlike 3 and 4) does not depend on
    object identity, interning or reference counts, and is several times faster than ``repr``.
    Values marshal cannot encode (dataclasses, numpy scalars) fall back to ``repr``, per item."""
    try:
        return marshal.dumps(values, 2)
    except ValueError:
        out = []
        for v in values:
            try:
                out.append(marshal.dumps(v, 2))
            except ValueError:
                out.append(repr(v).encode())
        return b"".join(out)
