"""The rate limiter's nodes: gateways, the central store, the client, and the windows they count in.

Time: every limiter counts in *monotonic* time, ``ticks * tick_ms`` of a timer that fires every
``tick_ms`` (a bump of the wall clock ``ctx.now`` does not move timers), plus the wall clock's
progress since the last tick clamped to one tick (so a bump moves it by less than a tick). A tick-stamped entry is kept
``window + tick`` so that, in true time, it is kept at least a whole window: the limiter errs on
the side of rejecting. The ``clock-skew-window`` bug counts in the wall clock ``ctx.now`` instead.
"""

from __future__ import annotations

import bisect
import math

from simulator import ClientNode, Node, message

STORE = "store"
GLOBAL = "*"  # the key of the global limit


@message
class Req:
    op_id: int
    user: int


@message
class Ans:
    op_id: int
    admitted: bool


@message
class Take:
    """Atomic check-and-increment at the store: admit iff the user and the global count are under
    their limits, and count the request if so. ``stamp``: the gateway's wall clock (bug only)."""

    rid: int
    user: int
    stamp: int | None = None


@message
class Took:
    rid: int
    admitted: bool


@message
class Peek:
    """The read half of the ``read-modify-write-race`` bug: the counts, without counting."""

    rid: int
    user: int


@message
class Counts:
    rid: int
    user_count: int
    global_count: int


@message
class Put:
    """The write half of the ``read-modify-write-race`` bug: count one admitted request."""

    user: int


@message
class Gossip:
    """``sync``: what the sender admitted since its last gossip, (user, count) pairs."""

    counts: tuple


class SlidingLog:
    """Admissions in the last ``window_ns`` (a sorted list of stamps; a stamp may repeat)."""

    def __init__(self, window_ns: int):
        self.window = window_ns
        self.times: list[int] = []

    def count(self, now: int) -> int:
        i = bisect.bisect_right(self.times, now - self.window)
        if i:
            del self.times[:i]
        return len(self.times)

    def add(self, now: int, n: int = 1) -> None:
        if not self.times or now >= self.times[-1]:
            self.times.extend([now] * n)
        else:  # only skewed stamps (the clock-skew bug) arrive out of order
            for _ in range(n):
                bisect.insort(self.times, now)


class FixedWindow:
    """The ``window-boundary`` bug: one counter per aligned window, reset when the window turns."""

    def __init__(self, window_ns: int):
        self.window = window_ns
        self.index, self.n = None, 0

    def count(self, now: int) -> int:
        i = now // self.window
        if i != self.index:
            self.index, self.n = i, 0
        return self.n

    def add(self, now: int, n: int = 1) -> None:
        self.count(now)
        self.n += n


class Windows:
    """One window per key (a user, or GLOBAL), made on first use."""

    def __init__(self, window_ms: float, tick_ms: float, fixed: bool):
        # a tick-stamped entry lives window + tick, so at least a window of true time
        self.window_ns = int((window_ms + (0 if fixed else tick_ms)) * 1e6)
        self.kind = FixedWindow if fixed else SlidingLog
        self.by: dict = {}

    def get(self, key):
        w = self.by.get(key)
        if w is None:
            w = self.by[key] = self.kind(self.window_ns)
        return w

    def count(self, key, now: int) -> int:
        return self.get(key).count(now)

    def add(self, key, now: int, n: int = 1) -> None:
        self.get(key).add(now, n)


class Ticking(Node):
    """A node with a monotonic clock: ``mono(ctx)`` is ticks * tick_ms (the bug reads ``ctx.now``)."""

    def __init__(self, p: dict, bug: str | None):
        self.p, self.bug = p, bug
        self.tick_ns = int(p["tick_ms"] * 1e6)
        self.ticks = 0
        self.wall_at_tick = 0

    def on_start(self, ctx):
        self.wall_at_tick = ctx.now
        ctx.set_timer("tick", self.p["tick_ms"])

    def tick(self, ctx) -> None:
        self.ticks += 1
        self.wall_at_tick = ctx.now
        ctx.set_timer("tick", self.p["tick_ms"])

    def mono(self, ctx) -> int:
        if self.bug == "clock-skew-window":
            return ctx.now
        # between ticks, the wall clock's progress, clamped to one tick: a bump moves it by less
        return self.ticks * self.tick_ns + min(max(ctx.now - self.wall_at_tick, 0), self.tick_ns - 1)

    def windows(self, window_ms: float | None = None) -> Windows:
        return Windows(self.p["window_ms"] if window_ms is None else window_ms, self.p["tick_ms"],
                       self.bug == "window-boundary")


class Store(Ticking):
    """The central store: one node, one sliding log per user and one global, atomic Take."""

    def __init__(self, p: dict, bug: str | None):
        super().__init__(p, bug)
        self.w = self.windows()

    def on_timer(self, ctx, name):
        self.tick(ctx)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Take:
            now = msg.stamp if msg.stamp is not None else self.mono(ctx)
            ok = (self.w.count(msg.user, now) < self.p["limit_per_user"]
                  and self.w.count(GLOBAL, now) < self.p["limit_global"])
            if ok:
                self.w.add(msg.user, now)
                self.w.add(GLOBAL, now)
            ctx.record("rl.store", gw=src, rid=msg.rid, user=msg.user, admitted=ok)
            ctx.send(src, Took(msg.rid, ok))
        elif t is Peek:
            now = self.mono(ctx)
            ctx.send(src, Counts(msg.rid, self.w.count(msg.user, now), self.w.count(GLOBAL, now)))
        elif t is Put:
            now = self.mono(ctx)
            self.w.add(msg.user, now)
            self.w.add(GLOBAL, now)


def sync_cap(limit: int, p: dict) -> int:
    """``sync``: the most a gateway admits per key in any 2 * sync_ms (what the others may not have
    heard of yet)."""
    return max(1, math.ceil(limit * 2 * p["sync_ms"] / p["window_ms"]))


class Gateway(Ticking):
    """Admits or rejects each request by ``strategy``, then answers the client (the API behind an
    admitted request answers at once: only admission is modelled)."""

    def __init__(self, p: dict, bug: str | None, peers: list[str]):
        super().__init__(p, bug)
        self.strategy = p["strategy"]
        self.peers = peers
        n = len(peers) + 1
        if self.strategy == "local":
            self.lu, self.lg = math.ceil(p["limit_per_user"] / n), math.ceil(p["limit_global"] / n)
        else:
            self.lu, self.lg = p["limit_per_user"], p["limit_global"]
        self.w = self.windows()
        if self.strategy == "sync":
            self.cap = self.windows(2 * p["sync_ms"])
            self.cap_u, self.cap_g = sync_cap(self.lu, p), sync_cap(self.lg, p)
            self.unsent: dict[int, int] = {}
        self.pending: dict[int, tuple] = {}  # rid -> (client, op_id, user)
        self.rid = 0

    def on_start(self, ctx):
        super().on_start(ctx)
        self.rid = ctx.incarnation << 40  # a late store answer to a previous life matches nothing here
        if self.strategy == "sync":
            ctx.set_timer("sync", self.p["sync_ms"])

    def on_timer(self, ctx, name):
        if name == "tick":
            self.tick(ctx)
        elif name == "sync":
            if self.unsent:
                g = Gossip(tuple(sorted(self.unsent.items())))
                for peer in self.peers:
                    ctx.send(peer, g)
                self.unsent = {}
            ctx.set_timer("sync", self.p["sync_ms"])
        else:  # "s<rid>": the store did not answer in time
            got = self.pending.pop(int(name[1:]), None)
            if got is not None:
                self.answer(ctx, got, self.p["on_store_unreachable"] == "open", "fallback")

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Req:
            self.request(ctx, src, msg)
        elif t is Took:
            got = self.pending.pop(msg.rid, None)
            if got is not None:
                ctx.cancel_timer(f"s{msg.rid}")
                self.answer(ctx, got, msg.admitted, "store", rid=msg.rid)
        elif t is Counts:
            got = self.pending.pop(msg.rid, None)
            if got is not None:  # the race: another gateway may read the same counts meanwhile
                ctx.cancel_timer(f"s{msg.rid}")
                ok = msg.user_count < self.lu and msg.global_count < self.lg
                if ok:
                    ctx.send(STORE, Put(got[2]))
                self.answer(ctx, got, ok, "store-rmw")
        elif t is Gossip:
            now = self.mono(ctx)
            total = 0
            for user, n in msg.counts:
                self.w.add(user, now, n)
                total += n
            self.w.add(GLOBAL, now, total)

    def request(self, ctx, src, msg) -> None:
        if self.strategy == "central":
            self.rid += 1
            self.pending[self.rid] = (src, msg.op_id, msg.user)
            ctx.set_timer(f"s{self.rid}", self.p["store_timeout_ms"])
            if self.bug == "read-modify-write-race":
                ctx.send(STORE, Peek(self.rid, msg.user))
            else:
                ctx.send(STORE, Take(self.rid, msg.user, ctx.now if self.bug == "clock-skew-window" else None))
            return
        now, u = self.mono(ctx), msg.user
        ok = self.w.count(u, now) < self.lu and self.w.count(GLOBAL, now) < self.lg
        if ok and self.strategy == "sync":
            ok = self.cap.count(u, now) < self.cap_u and self.cap.count(GLOBAL, now) < self.cap_g
        if ok:
            self.w.add(u, now)
            self.w.add(GLOBAL, now)
            if self.strategy == "sync":
                self.cap.add(u, now)
                self.cap.add(GLOBAL, now)
                self.unsent[u] = self.unsent.get(u, 0) + 1
        self.answer(ctx, (src, msg.op_id, u), ok, self.strategy)

    def answer(self, ctx, got, ok: bool, via: str, rid: int | None = None) -> None:
        client, op_id, user = got
        ctx.record("rl.decide", user=user, admitted=ok, via=via, rid=rid)
        ctx.send(client, Ans(op_id, ok))


class Client(ClientNode):
    """Sends each request to a gateway picked at random (a load balancer in front of them)."""

    def __init__(self, gateways: list[str]):
        self.gateways = gateways

    def on_invoke(self, ctx, op):
        ctx.send(self.gateways[int(ctx.rng.integers(len(self.gateways)))], Req(op.id, op.value))

    def on_message(self, ctx, src, msg):
        if type(msg) is Ans:
            ctx.complete(msg.op_id, "ok", msg.admitted)
