"""The cache tier's nodes: app servers doing cache-aside, the commit-stream tailer, and the ring.

An app server is a kit ``Service`` (a CPU with a queue) whose work after its service time is the
cache-aside protocol rather than a fixed list of downstream calls:

read   ask the key's cache node (consistent hashing over the cache nodes); on a hit answer with the
       cached version; on a miss read the database (the primary; the replica under the planted bug
       ``fill-from-replica``), spend ``recompute_ms`` (the value's computation, delta in the
       stampede formula), fill the cache with ``add`` (store only if absent, so a slow fill never
       replaces what a writer or another fill stored meanwhile; with a lease token, a set) and
       answer. A cache that does not answer within
       ``cache_timeout_ms`` counts as a miss whose value is not filled (fallback). A fill goes
       without a reply (memcached ``noreply``: nothing waits on it), and with ``recompute_ms`` 0 it
       leaves as soon as the database answers.
write  write the database, then, by ``strategy``:
       ``delete``         delete the cache entry (the default; Facebook's "demand-filled look-aside")
       ``write-through``  set the new version, versioned (an older version never replaces a newer
                          one)
       ``lease``          delete the entry, which invalidates outstanding lease tokens; read misses
                          ask for a token and fill with it (Memcache leases, NSDI 2013, 3.2.1)

Stampede protection on a read miss (``protection``):
``none``         every miss fetches
``singleflight`` one fetch per key per app server; the other requests wait for it
``lease``        one fetch per key cluster-wide: the cache gives one token and tells the others to
                 wait, and they ask the cache again every ``lease_retry_ms``
``xfetch``       probabilistic early recomputation (Vattani et al., VLDB 2015): a hit whose TTL
                 left is below ``recompute * beta * -ln(U)`` answers and refreshes in the background

The commit stream (``invalidation_delay_ms``, mcsqueal-style): the primary tells the tailer about
each commit and the tailer deletes the key ``delay`` later, on top of the strategy; deletes sent to
a crashed or unreachable cache node are lost (nobody retries them, as in the paper's design before
mcsqueal's replay). They go without a reply, as do a write's deletes on a hot key's other nodes.

Records: ``app.commit`` (key, version, seq: a write acknowledged by the database); rows of the
table ``app.read`` (key, version, how: the moment a read got its value, from the cache or the
database; requests coalesced onto another's fetch share its row; a row, not a record, since there
is one a read); ``app.fetch.start`` (key, fid) and
``app.fetch`` (key, via: why the database was read, fid; its time is the end), ``cache.*`` from the kit cache.
"""

from __future__ import annotations

import bisect
import heapq
import math
import zlib

from simulator import Dist, Node, message
from simulator.kit.cache import CacheDelete, CacheGet, CacheReply, CacheSet, CountMinSketch
from simulator.kit.database import DbNode
from simulator.kit.service import Service

TAILER = "tailer"


class Ring:
    """Consistent hashing (CRC-32 of ``node#i`` for ``vnodes`` points per node), as the kit's balancer."""

    def __init__(self, nodes: list[str], vnodes: int = 100):
        self.points = sorted((zlib.crc32(f"{n}#{i}".encode()), n) for n in nodes for i in range(vnodes))
        self.hashes = [h for h, _ in self.points]
        self.memo: dict = {}

    def node(self, key) -> str:
        n = self.memo.get(key)
        if n is None:
            i = bisect.bisect_left(self.hashes, zlib.crc32(str(key).encode())) % len(self.points)
            n = self.memo[key] = self.points[i][1]
        return n

    def nodes(self, key, copies: int) -> tuple[str, ...]:
        """The key's home node, then the next distinct nodes clockwise: ``copies`` at most."""
        memo_key = (key, copies)
        out = self.memo.get(memo_key)
        if out is None:
            i = bisect.bisect_left(self.hashes, zlib.crc32(str(key).encode()))
            seen: list[str] = []
            distinct = len({n for _, n in self.points})
            while len(seen) < min(copies, distinct):
                n = self.points[i % len(self.points)][1]
                if n not in seen:
                    seen.append(n)
                i += 1
            out = self.memo[memo_key] = tuple(seen)
        return out


@message
class Committed:
    key: str
    seq: int


class TailedDbNode(DbNode):
    """A kit database node whose primary also tells the commit-stream tailer about each commit."""

    def _replicate(self, ctx, seq: int) -> None:
        super()._replicate(ctx, seq)
        ctx.send(TAILER, Committed(self.log[seq - 1][0], seq))


class Tailer(Node):
    """mcsqueal: reads the commit stream and deletes each committed key ``delay`` later (on every
    node that may hold a copy, with hot-key replication)."""

    def __init__(self, ring: Ring, delay: Dist, copies: int = 1):
        self.ring = ring
        self.copies = copies
        self.delay = delay
        self.due: list = []  # heap of (due ns, n, key)
        self.n = 0

    def on_message(self, ctx, src, msg):
        if type(msg) is Committed:
            self.n += 1
            due = ctx.now + int(self.delay.draw_ms(ctx.rng, 1)[0] * 1e6)
            heapq.heappush(self.due, (due, self.n, msg.key))
            ctx.set_timer("tail", (self.due[0][0] - ctx.now) / 1e6)

    def on_timer(self, ctx, name):
        while self.due and self.due[0][0] <= ctx.now:
            _, n, key = heapq.heappop(self.due)
            for node in self.ring.nodes(key, self.copies):
                ctx.send(node, CacheDelete(0, key))  # noreply: nobody would read the answer
        if self.due:
            ctx.set_timer("tail", (self.due[0][0] - ctx.now) / 1e6)


# The service's handlers, called without super()'s lookup: every request passes through both.
_service_message, _service_timer = Service.on_message, Service.on_timer


class _Read:
    __slots__ = ("job", "key", "token", "via", "fetch_start", "version", "hit", "node")

    def __init__(self, job, key):
        self.job, self.key = job, key
        self.node = None  # the cache node asked (None: the key's home), where the fill goes
        self.token = 0
        self.via = ""
        self.fetch_start = 0
        self.version = None
        self.hit = False


class App(Service):
    """An app server; ``p`` is the design's parameters, ``bug`` the planted bug or None."""

    def __init__(self, spec, directory, p: dict, bug: str | None, ring: Ring):
        super().__init__(spec, directory)
        self.p, self.bug, self.ring = p, bug, ring
        self.caller.on_done = self._db_done
        self.home = ring.memo  # key -> its node, filled by ring.node: read inline on the hot paths
        self.strategy = p["strategy"]
        prot = p["protection"]
        self.protection = "none" if bug == "no-stampede-protection" else prot
        self.use_lease = self.strategy == "lease" or self.protection == "lease"
        self.pending: dict[int, tuple] = {}  # rid -> (kind, state)
        self.deadlines: list = []  # heap of (due ns, rid)
        self.rid = 0
        self.flights: dict = {}  # singleflight: key -> [waiting _Read]
        self.retry_due: list = []  # heap of (due ns, n, _Read): lease waits
        self.nretry = 0
        self.cache_timeout_ns = int(p["cache_timeout_ms"] * 1e6)
        self.recompute_ms = float(p["recompute_ms"])
        self.after_fetch: list = []  # heap of (due ns, n, _Read): recompute done
        self.sizes = p["_sizes"]
        self.armed_at: int | None = None
        self.sweeping = False
        # Hot-key replication: a key this server reads often (its count-min estimate at
        # hot_key_threshold) is read from any of its 1 + hot_key_replicas nodes in turn; every
        # write deletes it on all of them, whoever thought it hot.
        self.copies = 1 + int(p.get("hot_key_replicas", 0))
        if self.copies > 1:
            self.sketch = CountMinSketch(4096, 5000)
            self.hot_at = int(p["hot_key_threshold"])
            self.turn = 0

    # ---- the service's work -----------------------------------------------------------------------
    def _after_service(self, ctx, job) -> None:
        key = job.call.key
        if job.call.op == "write":
            if self.bug == "delete-before-write":
                self._replicas_delete(ctx, key)
                self._cache_call(ctx, ("delete-first", job), self.ring.node(key), CacheDelete, key)
            else:
                self._db(ctx, "write", ("write", job), key, job.call.idem)
            return
        r = _Read(job, key)
        if self.copies > 1:
            sk = self.sketch
            sk.add(key)
            if sk.estimate(key) >= self.hot_at:
                nodes = self.ring.nodes(key, self.copies)
                self.turn += 1
                r.node = nodes[self.turn % len(nodes)]
        if self.protection == "singleflight":
            waiting = self.flights.get(key)
            if waiting is not None:
                waiting.append(r)
                return
            self.flights[key] = []
        self._get(ctx, r)

    def _get(self, ctx, r: _Read) -> None:
        # _cache_call inlined: a get is most of the cache calls, one per read.
        key = r.key
        self.rid += 1
        rid = self.rid
        self.pending[rid] = r  # a get's state is its _Read itself (other calls': a (kind, x) tuple)
        ctx.send(r.node or self.home.get(key) or self.ring.node(key), CacheGet(rid, key, self.use_lease))
        heapq.heappush(self.deadlines, (ctx.now + self.cache_timeout_ns, rid))
        if not self.sweeping:
            self.sweeping = True
            ctx.set_timer("app.deadlines", self.cache_timeout_ns / 2e6)

    def _replicas_delete(self, ctx, key) -> None:
        """A write's delete on the key's other nodes (fire and forget, as the commit stream's)."""
        if self.copies > 1:
            for node in self.ring.nodes(key, self.copies)[1:]:
                ctx.send(node, CacheDelete(0, key))  # noreply

    # ---- talking to the cache ---------------------------------------------------------------------
    def _cache_call(self, ctx, state, node, message_class, *fields, **named) -> None:
        """Send ``message_class(rid, *fields, **named)`` to ``node`` and await its reply, ``state`` saying what for."""
        self.rid += 1
        rid = self.rid
        self.pending[rid] = state
        ctx.send(node, message_class(rid, *fields, **named))
        heapq.heappush(self.deadlines, (ctx.now + self.cache_timeout_ns, rid))
        if not self.sweeping:
            # Cache-call deadlines are swept every half timeout rather than timed one by one: a call
            # times out between 1 and 1.5 timeouts after it was sent, at a timer per half timeout.
            self.sweeping = True
            ctx.set_timer("app.deadlines", self.cache_timeout_ns / 2e6)

    def _arm(self, ctx) -> None:
        # One timer for every deadline; moved only when something falls due earlier than it is set for
        # (re-setting it on each call would cost a cancel and a schedule per message).
        due = min([h[0][0] for h in (self.retry_due, self.after_fetch) if h], default=None)
        if due is not None and (self.armed_at is None or due < self.armed_at):
            self.armed_at = due
            ctx.set_timer("app.tick", max(0.0, (due - ctx.now) / 1e6))

    def on_start(self, ctx):
        super().on_start(ctx)
        self.rid = ctx.incarnation << 40  # a late cache answer to a previous life matches no call of this one

    def on_message(self, ctx, src, msg):
        if type(msg) is CacheReply:
            state = self.pending.pop(msg.rid, None)
            if state is not None:
                self._cache_done(ctx, state, msg)
        else:
            _service_message(self, ctx, src, msg)

    def on_timer(self, ctx, name):
        if name != "app.deadlines" and name != "app.tick":  # the service's own timers (its CPU), most of them
            _service_timer(self, ctx, name)
            return
        if name == "app.deadlines":
            now = ctx.now
            while self.deadlines and self.deadlines[0][0] <= now:
                _, rid = heapq.heappop(self.deadlines)
                state = self.pending.pop(rid, None)
                if state is not None:
                    self._cache_done(ctx, state, None)
            self.sweeping = bool(self.deadlines)
            if self.sweeping:
                ctx.set_timer("app.deadlines", self.cache_timeout_ns / 2e6)
            return
        now = ctx.now
        self.armed_at = None
        while self.retry_due and self.retry_due[0][0] <= now:
            self._get(ctx, heapq.heappop(self.retry_due)[2])
        while self.after_fetch and self.after_fetch[0][0] <= now:
            self._fill(ctx, heapq.heappop(self.after_fetch)[2])
        self._arm(ctx)

    def _cache_done(self, ctx, state, reply: CacheReply | None) -> None:
        if type(state) is _Read:  # a get
            r = state
            if reply is None:
                r.via = "fallback"  # the cache did not answer: read the database, fill nothing
                self._fetch(ctx, r)
            elif reply.hit:
                r.version, r.hit = reply.value, True
                ctx.record_row("app.read", (r.key, r.version, "hit"))
                if self.protection == "xfetch" and reply.ttl_left_ms > 0:
                    left_ms = reply.ttl_left_ms
                    if self.recompute_ms * self.p["beta"] * -math.log(max(1e-12, float(ctx.rng.random()))) >= left_ms:
                        bg = _Read(None, r.key)
                        bg.via, bg.node = "xfetch", r.node
                        self._fetch(ctx, bg)
                self._answer_read(ctx, r)
            elif reply.wait:
                self.nretry += 1
                heapq.heappush(self.retry_due, (ctx.now + int(self.p["lease_retry_ms"] * 1e6), self.nretry, r))
                self._arm(ctx)
            else:
                r.token = reply.token
                r.via = "lease" if reply.token else "miss"
                self._fetch(ctx, r)
            return
        kind, x = state
        if kind == "delete-first":
            job = x
            self._db(ctx, "write", ("write", job), job.call.key, job.call.idem)
        elif kind == "invalidate":
            job, value = x
            self._answer(ctx, job, True, value)

    # ---- the database -----------------------------------------------------------------------------
    def _db(self, ctx, op, token, key, idem=None) -> None:
        self.caller.call(ctx, "db", op, token, key=key, idem=idem)

    def _fetch(self, ctx, r: _Read) -> None:
        # The start is a record of its own: its time is true time, where ctx.now is this host's
        # wall clock, which a clock-bump moves (a start in one and an end in the other overlap).
        self.nretry += 1
        r.fetch_start = self.nretry
        ctx.record("app.fetch.start", key=r.key, fid=r.fetch_start)
        self._db(ctx, "read", ("read", r), r.key)

    def _db_done(self, ctx, token, ok, value) -> None:
        if not isinstance(token, tuple):  # a call the Service itself made
            return self._downstream_done(ctx, token, ok, value)
        kind, x = token
        if kind == "read":
            r = x
            if self.copies > 1:  # leases are per cache node: the stampede checker groups by it
                ctx.record("app.fetch", key=r.key, via=r.via, fid=r.fetch_start, ok=ok,
                           cache=r.node or self.ring.node(r.key))
            else:
                ctx.record("app.fetch", key=r.key, via=r.via, fid=r.fetch_start, ok=ok)
            if not ok:
                if r.job is not None:
                    self._fail_read(ctx, r, value)
                return
            r.version = value
            if r.job is not None:
                ctx.record_row("app.read", (r.key, value, r.via))
            if r.via == "fallback":
                self._answer_read(ctx, r)
                return
            if not self.recompute_ms:  # nothing to wait for: a timer at this very instant cost an event per miss
                self._fill(ctx, r)
                return
            self.nretry += 1
            heapq.heappush(self.after_fetch, (ctx.now + int(self.recompute_ms * 1e6), self.nretry, r))
            self._arm(ctx)
        else:
            job = x
            if not ok:
                self._answer(ctx, job, False, value)
                return
            key, version = job.call.key, job.call.idem
            ctx.record("app.commit", key=key, version=version, seq=value)
            if self.bug != "delete-before-write":
                self._replicas_delete(ctx, key)
            if self.strategy == "write-through" or self.bug == "set-on-write":
                seq = value if self.bug != "set-on-write" else 0
                size = self.sizes(key)
                self._cache_call(ctx, ("invalidate", (job, version)), self.ring.node(key), CacheSet, key, version,
                                 size, version=seq)
            elif self.bug == "delete-before-write":
                self._answer(ctx, job, True, version)
            else:
                self._cache_call(ctx, ("invalidate", (job, version)), self.ring.node(key), CacheDelete, key)

    def _fill(self, ctx, r: _Read) -> None:
        add = not r.token  # a fill never replaces a value someone else stored meanwhile (memcached add)
        # noreply: nothing waits on a fill's answer, so it costs no reply, no pending call and no deadline
        key = r.key
        ctx.send(r.node or self.home.get(key) or self.ring.node(key),
                 CacheSet(0, key, r.version, self.sizes(key), token=r.token, add=add))
        if r.job is not None:
            self._answer_read(ctx, r)

    # ---- answers -----------------------------------------------------------------------------------
    def _answer_read(self, ctx, r: _Read) -> None:
        value = [r.version, "hit" if r.hit else ("db" if r.via == "fallback" else "miss")]
        self._answer(ctx, r.job, True, value)
        if self.protection == "singleflight":
            for w in self.flights.pop(r.key, None) or ():
                self._answer(ctx, w.job, True, [r.version, "coalesced"])

    def _fail_read(self, ctx, r: _Read, why) -> None:
        self._answer(ctx, r.job, False, why)
        if self.protection == "singleflight":
            for w in self.flights.pop(r.key, None) or ():
                self._answer(ctx, w.job, False, why)
