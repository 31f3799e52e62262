"""Links between nodes: latency, loss, duplication, reordering, FIFO, bandwidth, partitions.

Every message crosses :meth:`Network.send`. The default model applies to all links; a topology
adds a per-pair base latency; fault verbs change the state that sends and deliveries consult:

``partition(groups)``        nodes in different groups cannot talk (both directions)
``partition_oneway(a, b)``   messages from any node in ``a`` to any node in ``b`` are lost
``isolate(node)``            ``node`` against every other named node
``block(pairs)``             any set of directed pairs (majorities ring, bridge)
``heal()``                   remove every partition
``slow(factor)``             multiply latencies (1 restores)
``set_loss(p)`` / ``set_duplicate(p)``  drop / duplicate each message with probability ``p``
``flaky(pairs, p)``          loss on chosen links only

Partitions are checked at *delivery*, so messages in flight across a new partition are lost, as on
a real cut. Reordering comes from latency jitter; ``fifo=True`` makes each directed link deliver in
send order (TCP-like). With ``bandwidth_bps`` set, a message's ``size_bytes`` attribute (0 if it
has none) adds serialisation delay and queues behind earlier messages on the same link.

Nodes not named in a partition (clients, usually) are not cut off by it.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any, Iterable

import numpy as np

from .dists import Dist
from .rng import Batch


class _Sender:
    """A stand-in sender for ``Network.send`` from a name that is not a host (tests, tools)."""

    __slots__ = ("id", "code", "epoch", "crash_times")

    def __init__(self, node_id: str, code: int):
        self.id = node_id
        self.code = code
        self.epoch = 0
        self.crash_times: list[int] = []


class GroupCut:
    """A partition into disjoint groups, held as one group label per named node rather than as the
    set of cut pairs (which is N²/2 pairs: 5 billion for two halves of 100,000 nodes). It answers
    ``(a, b) in cut`` as the pair set would: cut when both are named and their groups differ. It
    compares equal to, and iterates as, that pair set (for tests and tools, on small partitions)."""

    __slots__ = ("label", "cuts")

    def __init__(self, label: dict[str, int]):
        self.label = label
        self.cuts = len(set(label.values())) > 1  # every delivery asks, so answered once here

    def __contains__(self, pair) -> bool:
        ga = self.label.get(pair[0])
        if ga is None:
            return False
        gb = self.label.get(pair[1])
        return gb is not None and ga != gb

    def __bool__(self) -> bool:
        return self.cuts

    def __iter__(self):
        label = self.label
        return iter([(a, b) for a in label for b in label if label[a] != label[b]])

    def __len__(self) -> int:
        sizes: dict[int, int] = {}
        for g in self.label.values():
            sizes[g] = sizes.get(g, 0) + 1
        n = len(self.label)
        return sum(c * (n - c) for c in sizes.values())

    def __eq__(self, other) -> bool:
        if isinstance(other, GroupCut):
            return set(self) == set(other)
        if isinstance(other, (set, frozenset)):
            return len(self) == len(other) and all(p in self for p in other)
        return NotImplemented

    __hash__ = None


class Network:
    def __init__(self, sim, latency: Dist):  # sim: the engine.kernel.Simulation that owns it
        self.sim = sim
        self._env = sim.env
        self._queue = sim.env._queue
        self._eid = sim._eid
        self._hosts = sim.hosts
        self._trace = sim._trace
        self._type_codes: dict[type, int] = {}
        self._deliver_code = sim.code("deliver")
        self._tracing = sim._trace_file is not None
        self._lat_buf: list[int] = []
        self.set_latency(latency)
        self._chance = Batch(sim.streams.get("net.chance"), lambda g, n: g.random(n))
        self.loss = 0.0
        self.duplicate = 0.0
        self.base_loss = 0.0  # configured (not fault) loss and duplication: what reset_links restores
        self.base_duplicate = 0.0
        self.slow_factor = 1.0
        self.fifo = False
        self.bandwidth_bps: float | None = None
        self.blocked: set[tuple[str, str]] | GroupCut = set()  # cut directed pairs (see partition)
        self.link_loss: dict[tuple[str, str], float] = {}
        self.pair_base_ns: dict[tuple[str, str], int] | None = None
        self._last_arrival: dict[tuple[str, str], int] = {}
        self._link_free: dict[tuple[str, str], int] = {}
        self._lossy = False
        self._plain = True  # no topology, slowness, bandwidth or FIFO: latency is one draw
        self.simple = True  # plain, and no loss or duplication: Host.send may push the delivery itself
        self.sent = 0
        self.delivered = 0
        self.dropped_loss = 0
        self.dropped_partition = 0
        self.dropped_unknown = 0
        self.duplicated = 0
        self._arrive_call = self._make_arrive()  # what every delivery's heap entry calls
        # one bound method for every held delivery, so that the kernel's loop knows it by identity
        self._arrive_held_call = self._arrive_held

    # ---- the hot path -------------------------------------------------------------------------
    def send(self, src: str, dst: str, msg: Any, hold_ns: int = 0) -> None:
        """Put ``msg`` on the link src -> dst, leaving ``hold_ns`` from now (``src`` by id)."""
        sender = self._hosts.get(src)
        self.transmit(sender if sender is not None else _Sender(src, self.sim.name_code(src)), dst, msg, hold_ns)

    def transmit(self, sender, dst: str, msg: Any, hold_ns: int = 0) -> None:
        """``send`` from a Host object (what ``ctx.send`` calls): the event carries the sender
        itself, so the delivery needs no lookup for its id or its trace code."""
        self.sent += 1
        if self._lossy:
            src = sender.id
            p = self.loss
            if self.link_loss:
                p = max(p, self.link_loss.get((src, dst), 0.0))
            if p and self._chance() < p:
                self.dropped_loss += 1
                self.sim.trace_event("drop-loss", src, dst, type(msg).__name__)
                return
        if self._plain:
            buf = self._lat_buf
            delay = buf.pop() if buf else self._refill()
        else:
            delay = self._delay(sender.id, dst, msg)
        if hold_ns:  # it leaves after the sender's fsync: it dies if the sender crashes first
            a = (sender, sender.epoch, self._env._now + hold_ns)
            arrive = self._arrive_held_call
        else:
            a = sender
            arrive = self._arrive_call
        # The kernel's schedule3, inlined: this line runs once per message.
        heappush(self._queue, (self._env._now + hold_ns + delay, 1, next(self._eid), arrive, a, dst, msg))
        if self.duplicate and self._chance() < self.duplicate:
            self.duplicated += 1
            self.sim.schedule3(hold_ns + self._delay(sender.id, dst, msg), arrive, a, dst, msg)

    def _arrive_held(self, held: tuple, dst: str, msg: Any) -> None:
        sender, epoch, depart_ns = held
        if sender.epoch != epoch and sender.crash_times[epoch] < depart_ns:
            self.sim.trace_event("drop-unsent", sender.id, dst, type(msg).__name__)
            return
        self._arrive(sender, dst, msg)

    def _type_code(self, t: type) -> int:
        c = self._type_codes[t] = self.sim.name_code(t.__name__)
        return c

    def _refill(self) -> int:
        values = self._lat_draw(self._lat_gen, 4096).tolist()
        values.reverse()
        self._lat_buf = values
        return values.pop()

    def _delay(self, src: str, dst: str, msg: Any) -> int:
        buf = self._lat_buf
        delay = buf.pop() if buf else self._refill()
        if self.pair_base_ns is not None:
            delay += self.pair_base_ns.get((src, dst), 0)
        if self.slow_factor != 1.0:
            delay = int(delay * self.slow_factor)
        if self.bandwidth_bps:
            now = self.sim.env._now
            ser = int(getattr(msg, "size_bytes", 0) * 8e9 / self.bandwidth_bps)
            start = max(now, self._link_free.get((src, dst), 0))
            self._link_free[(src, dst)] = start + ser
            delay += start + ser - now
        if self.fifo:
            now = self.sim.env._now
            key = (src, dst)
            arrival = now + delay
            last = self._last_arrival.get(key, -1)
            if arrival <= last:
                arrival = last + 1
            self._last_arrival[key] = arrival
            delay = arrival - now
        return delay

    def _arrive(self, sender, dst: str, msg: Any) -> None:
        """A message reaches ``dst``: cut by a partition, unknown host, or delivered (traced, then
        the handler runs now, or the host's inbox and CPU take it)."""
        self._arrive_call(sender, dst, msg)

    def _cut_or_unknown(self, sender, dst: str, msg: Any) -> bool:
        """Drop (counted, traced) a message cut by a partition or sent to an unknown host."""
        if (sender.id, dst) in self.blocked:
            self.dropped_partition += 1
            self.sim.trace_event("drop-cut", sender.id, dst, type(msg).__name__)
            return True
        if dst not in self._hosts:
            self.dropped_unknown += 1
            self.sim.trace_event("drop-unknown", sender.id, dst, type(msg).__name__)
            return True
        return False

    def _make_arrive(self):
        """The delivery call every message's heap entry names. ``Simulation._loop`` recognises it and
        makes an untraced delivery inline (the hot path); this closure runs it when the run is traced
        to a file, or when it is called directly. ``tests/test_kernel.py`` holds the two to one
        digest (a traced run and an untraced one agree)."""
        net = self
        hosts = self._hosts
        sim = self.sim
        cut_or_unknown = self._cut_or_unknown

        def arrive(sender, dst: str, msg: Any) -> None:
            host = hosts.get(dst)
            if (net.blocked or host is None) and cut_or_unknown(sender, dst, msg):
                return
            net.delivered += 1  # arrived at a host (a crashed host then drops it: Host.dropped_down)
            sim.trace_event("deliver", sender.id, dst, type(msg).__name__)
            if host.fast:  # up, not paused, no CPU model: run the handler now
                host._hold = 0
                host.node.on_message(host, sender.id, msg)
            else:  # receive, or a ready priced node's pricing
                host.deliver(sender.id, msg)

        return arrive

    # ---- configuration and fault verbs --------------------------------------------------------
    def set_latency(self, latency: Dist) -> None:
        """Use ``latency`` for every link from now on (drawn from stream ``net.latency``)."""
        self.latency = latency
        self._lat_gen = self.sim.streams.get("net.latency")
        self._lat_draw = lambda g, n: np.rint(latency.draw_ms(g, n) * 1e6).astype(np.int64)
        self._lat_buf = []

    def _update_plain(self) -> None:
        self._plain = (self.pair_base_ns is None and self.slow_factor == 1.0
                       and not self.bandwidth_bps and not self.fifo)
        self.simple = self._plain and not self._lossy and not self.duplicate

    def configure(self, *, fifo: bool | None = None, bandwidth_bps: float | None = None) -> None:
        """TCP-like FIFO links; link bandwidth in bits per second (None: unlimited)."""
        if fifo is not None:
            self.fifo = bool(fifo)
        if bandwidth_bps is not None:
            if bandwidth_bps <= 0:
                raise ValueError(f"bandwidth must be > 0 bits/s, got {bandwidth_bps}")
            self.bandwidth_bps = float(bandwidth_bps)
        self._update_plain()

    def set_pair_latency(self, base_ns: dict[tuple[str, str], int]) -> None:
        """Per directed pair base latency (from a topology), added to the model's draw."""
        self.pair_base_ns = dict(base_ns)
        self._update_plain()

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        groups = [list(g) for g in groups]
        label: dict[str, int] = {}
        for i, g in enumerate(groups):
            for a in g:
                if label.setdefault(a, i) != i:
                    break  # a node named in two groups: only the pair set says what that cuts
            else:
                continue
            break
        else:
            self.blocked = GroupCut(label) if len(groups) > 1 else set()
            return
        pairs = set()
        for i, gi in enumerate(groups):
            for j, gj in enumerate(groups):
                if i != j:
                    pairs.update((a, b) for a in gi for b in gj)
        self.blocked = pairs

    def partition_oneway(self, srcs: Iterable[str], dsts: Iterable[str]) -> None:
        dsts = list(dsts)
        self.blocked = {(a, b) for a in srcs for b in dsts if a != b}

    def isolate(self, node: str, others: Iterable[str]) -> None:
        self.partition([[node], [o for o in others if o != node]])

    def block(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.blocked = {tuple(p) for p in pairs}

    def heal(self) -> None:
        self.blocked = set()

    def slow(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError(f"slow factor must be > 0, got {factor}")
        self.slow_factor = float(factor)
        self._update_plain()

    def set_loss(self, p: float) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"loss probability must be in [0, 1], got {p}")
        self.loss = float(p)
        self._lossy = bool(self.loss or self.link_loss)
        self._update_plain()

    def flaky(self, pairs: Iterable[tuple[str, str]], p: float) -> None:
        self.link_loss = {tuple(k): float(p) for k in pairs} if p else {}
        self._lossy = bool(self.loss or self.link_loss)
        self._update_plain()

    def set_duplicate(self, p: float) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"duplicate probability must be in [0, 1], got {p}")
        self.duplicate = float(p)
        self._update_plain()

    def configure_base(self, loss: float = 0.0, duplicate: float = 0.0) -> None:
        """The network's own loss and duplication, which faults change and ``reset_links`` restores."""
        self.set_loss(loss)
        self.set_duplicate(duplicate)
        self.base_loss, self.base_duplicate = self.loss, self.duplicate

    def reset_links(self) -> None:
        """Undo slow, flaky, loss and duplication faults: back to the configured base."""
        self.slow_factor = 1.0
        self._update_plain()
        self.link_loss = {}
        self.loss = self.base_loss
        self.duplicate = self.base_duplicate
        self._lossy = bool(self.loss)
        self._update_plain()

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "delivered": self.delivered, "dropped_loss": self.dropped_loss,
                "dropped_partition": self.dropped_partition, "dropped_unknown": self.dropped_unknown,
                "duplicated": self.duplicated}
