"""``Database``: a primary and read replicas behind a router, with replication and failover.

Parameters (:class:`DatabaseSpec`; in TOML, the keys of a ``kind = "database"`` component):

    replicas         read replicas besides the primary (nodes ``<name>-0`` .. ``<name>-R``;
                     ``<name>-0`` starts as primary); the router is the node ``<name>``
    cores            CPUs per database node
    service_ms       service time per operation (``read``, ``write``; ``*`` for any other)
    fsync_ms         the disk's fsync latency (a host parameter; paid by durable writes)
    durable          writes are synced to disk before they are acknowledged
    replication      ``async``: acknowledge at once, ship to replicas ``lag_ms`` later;
                     ``sync``: acknowledge once every replica the router counts live has it
    lag_ms           replication lag distribution (async)
    read_from        ``primary`` | ``replica`` (round-robin over live replicas; reads may be stale)
    failover         promote a replica when the primary stops answering
    detect_ms        silence after which the router declares a node down (the detection delay)
    heartbeat_ms     how often the router sends each node its role
    retry            the router's :class:`~simulator.kit.caller.RetryPolicy` toward the nodes
    dedupe           honour idempotency keys: a retried write already in the log is not stored
                     again (False models a store without them, and the graph's planted bug)

The router heartbeats every node with its role (epoch, primary, live members). When the primary
has been silent for ``detect_ms`` it promotes the live replica with the longest log, in a new
epoch. A node that learns of a new epoch, or restarts, as a replica, copies the primary's whole
log (a full resync), discarding anything the new primary never had: with asynchronous
replication that is how acknowledged writes get lost, as in real failovers.

Each node prices the calls it receives (``cost_ns``: the operation's service time) and its host
queues them on ``cores`` cores, FIFO, as a Service's are (the runtime's core queue): a call finding
``queue_limit`` waiting is refused "overloaded", and a durable write holds its core until its
fsync is done (a worker blocked on its commit). Replication, roles and probes are handled at once.

Writes carry an idempotency key (the request's ``idem``); a retried write already in the log is
acknowledged without a second entry. Records: ``kit.served`` per read and write, ``kit.drop``
("overloaded"), ``kit.failover`` (from, to, epoch, lost = entries the old primary had beyond the
new one's log as far as the router knew).

Simplifications: the router is a single node (a crash of it stops the database until it restarts;
it keeps the roles on disk) and is never wrong about roles (no split brain among routers);
replication messages and resyncs cost no CPU; a resync is one message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.dists import Dist
from ..engine.node import Node, message
from .caller import Caller, RetryPolicy
from .cpu import ServiceTimes
from .messages import Call, Probe, ProbeReply, Reply, answer, refuse, served


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    replicas: int = 2
    cores: int = 4
    service_ms: dict = field(default_factory=lambda: {"read": Dist("exponential", 1.0),
                                                      "write": Dist("exponential", 2.0)})
    fsync_ms: Dist = Dist("constant", 1.0)
    durable: bool = True
    replication: str = "async"
    lag_ms: Dist = Dist("exponential", 20.0)
    read_from: str = "primary"
    failover: bool = True
    detect_ms: float = 1000.0
    heartbeat_ms: float = 200.0
    queue_limit: int = 100_000
    retry: RetryPolicy = RetryPolicy(timeout_ms=1000.0)
    dedupe: bool = True

    def node_ids(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.replicas + 1)]


@message
class Role:
    epoch: int
    primary: str
    live: tuple


@message
class RoleAck:
    epoch: int
    applied: int


@message
class Replicate:
    epoch: int
    first: int  # sequence number of entries[0]
    entries: tuple


@message
class ReplAck:
    epoch: int
    applied: int


@message
class SyncReq:
    epoch: int


@message
class Snapshot:
    epoch: int
    entries: tuple


class DbNode(Node):
    """A database node: primary or replica, as its router says. The log is durable storage
    (``log/<seq>`` -> (key, write id, epoch)); the key-value view is rebuilt from it."""

    def __init__(self, spec: DatabaseSpec, router: str):
        self.spec = spec
        self.comp = spec.name
        self.router = router
        # Calls are priced (cost_ns) and queue on the host's cores, as a Service's do
        self.times = ServiceTimes(spec.service_ms)
        self.cores = spec.cores
        self.queue_limit = spec.queue_limit
        self.role = "unknown"
        self.epoch = 0
        self.primary: str | None = None
        self.live: tuple = ()
        self.log: list[tuple] = []
        self.kv: dict = {}
        self.idem: dict = {}  # idempotency key -> seq
        self.acked: dict[str, int] = {}  # replica -> highest seq it holds (sync replication)
        self.waiting: dict[int, list] = {}  # seq -> [(src, rid)] awaiting replication
        self.shipped = 0
        self.ship_due: list[tuple[int, int]] = []  # (due ns, up to seq), in order
        self.ahead: dict[int, tuple] = {}  # replica: first seq -> entries that came early
        self._lags: list[float] = []  # pre-drawn replication lags, ns

    def on_start(self, ctx):
        st = ctx.storage
        self.epoch = st.get("epoch", 0)
        n = st.get("log.len", 0)
        for seq in range(1, n + 1):
            self._apply(st.get(f"log/{seq}"))

    # ---- log ----------------------------------------------------------------------------------
    def _apply(self, entry: tuple) -> None:
        self.log.append(entry)
        self.kv[entry[0]] = entry[1]
        if entry[1] is not None:
            self.idem[entry[1]] = len(self.log)

    def _append(self, ctx, entries, first: int | None = None, durable: bool = True) -> None:
        """Append ``entries`` (``first``: their first seq, to overwrite from there); with
        ``durable``, sync them if the database is durable."""
        st = ctx.storage
        if first is not None and first <= len(self.log):
            self.log, self.kv, self.idem = [], {}, {}
            old = [st.get(f"log/{s}") for s in range(1, first)]
            for e in old:
                self._apply(e)
        for e in entries:
            self._apply(e)
            st.put(f"log/{len(self.log)}", e, sync=False)
        if durable:
            st.put("log.len", len(self.log), sync=self.spec.durable)

    # ---- handlers -----------------------------------------------------------------------------
    def cost_ns(self, ctx, src, msg):
        """A call's service time; None (handled at once) for everything else, and for a write a
        replica refuses."""
        if type(msg) is Call and (msg.op != "write" or self.role == "primary"):
            return self.times.draw_ns(ctx, msg.op)
        return None

    def on_refused(self, ctx, src, msg):
        refuse(ctx, self.comp, src, msg)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Call:  # a write reaching a replica (cost_ns queues every other call)
            ctx.send(src, Reply(msg.rid, False, "not-primary"))
        elif t is Role:
            self._role(ctx, src, msg)
        elif t is Replicate:
            if msg.epoch == self.epoch and self.role == "replica":
                # The network may reorder: hold entries that arrive early; a gap still open at the
                # next heartbeat (a message lost) is closed by a full resync.
                n = len(self.log)
                if msg.first == n + 1 and not self.ahead:
                    # in order, nothing held: the usual case, without the search for what now fits
                    self._append(ctx, msg.entries, durable=False)
                else:
                    self.ahead[msg.first] = msg.entries
                    while True:
                        first = next((f for f in self.ahead if f <= len(self.log) + 1), None)
                        if first is None:
                            break
                        entries = self.ahead.pop(first)
                        self._append(ctx, entries[len(self.log) + 1 - first:], durable=False)
                if len(self.log) > n:
                    ctx.storage.put("log.len", len(self.log), sync=self.spec.durable)
                    ctx.send(src, ReplAck(self.epoch, len(self.log)))
        elif t is ReplAck:
            if msg.epoch == self.epoch and self.role == "primary":
                self.acked[src] = max(self.acked.get(src, 0), msg.applied)
                self._release(ctx)
        elif t is SyncReq:
            if msg.epoch == self.epoch and self.role == "primary":
                ctx.send(src, Snapshot(self.epoch, tuple(self.log)))
        elif t is Snapshot:
            if msg.epoch == self.epoch and self.role == "replica":
                self._append(ctx, msg.entries, first=1)
                self.ahead: dict[int, tuple] = {}  # replica: first seq -> entries that came early
                ctx.send(src, ReplAck(self.epoch, len(self.log)))
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq, len(self.log)))

    def _role(self, ctx, src, msg: Role) -> None:
        if msg.epoch < self.epoch:
            return
        fresh = msg.epoch > self.epoch or self.role == "unknown"
        if msg.epoch > self.epoch:
            self.epoch = msg.epoch
            ctx.storage.put("epoch", self.epoch, sync=self.spec.durable)
        self.primary, self.live = msg.primary, msg.live
        if msg.primary == ctx.id:
            if self.role != "primary":
                self.role, self.shipped, self.acked, self.ship_due = "primary", len(self.log), {}, []
            self._release(ctx)
        elif fresh or self.role == "primary" or self.ahead:
            self.role = "replica"
            self.waiting, self.ahead = {}, {}
            self._ask_sync(ctx)
        ctx.send(src, RoleAck(self.epoch, len(self.log)))

    def _ask_sync(self, ctx) -> None:
        if self.primary is not None and self.primary != ctx.id:
            ctx.send(self.primary, SyncReq(self.epoch))

    def on_timer(self, ctx, name):
        if name == "kit.db.ship":
            self._ship(ctx)

    def on_job(self, ctx, src, call, arrived, started, queue):
        """A call's service time is over: read, or append and replicate a write."""
        now = ctx.now
        op = call.op
        if op == "write":
            if self.role != "primary":  # demoted while the write waited or ran
                ctx.send(src, Reply(call.rid, False, "not-primary"))
                return
            seq = self.idem.get(call.idem) if call.idem is not None and self.spec.dedupe else None
            if seq is None:
                self._append(ctx, [(call.key, call.idem, self.epoch)])
                seq = len(self.log)
                self._replicate(ctx, seq)
            if self.spec.replication == "sync" and not self._replicated(seq):
                self.waiting.setdefault(seq, []).append((src, call.rid))
            else:
                ctx.send(src, Reply(call.rid, True, seq))
        else:
            ctx.send(src, Reply(call.rid, True, self.kv.get(call.key)))
        served(ctx, self.comp, op, True, queue, started - arrived, now - started, now - arrived)

    # ---- replication (primary) ----------------------------------------------------------------
    def _replicas(self) -> list[str]:
        return [n for n in self.live if n != self.primary]

    def _replicate(self, ctx, seq: int) -> None:
        if self.spec.replication == "sync" or self.spec.lag_ms.is_zero():
            self._ship_to(ctx, seq)
            return
        lags = self._lags
        if not lags:  # drawn 64 at a time: a numpy call per write would cost more than the write
            lags = self._lags = (self.spec.lag_ms.draw_ms(ctx.rng, 64) * 1e6).tolist()
            lags.reverse()
        due = ctx.now + int(lags.pop())
        if self.ship_due:
            due = max(due, self.ship_due[-1][0])  # the log ships in order
        self.ship_due.append((due, seq))
        if len(self.ship_due) == 1:
            ctx.set_timer("kit.db.ship", (due - ctx.now) / 1e6)

    def _ship(self, ctx) -> None:
        while self.ship_due and self.ship_due[0][0] <= ctx.now:
            self._ship_to(ctx, self.ship_due.pop(0)[1])
        if self.ship_due:
            ctx.set_timer("kit.db.ship", (self.ship_due[0][0] - ctx.now) / 1e6)

    def _ship_to(self, ctx, seq: int) -> None:
        if self.role != "primary" or seq <= self.shipped:
            return
        msg = Replicate(self.epoch, self.shipped + 1, tuple(self.log[self.shipped:seq]))
        self.shipped = seq
        for r in self._replicas():
            ctx.send(r, msg)

    def _replicated(self, seq: int) -> bool:
        return all(self.acked.get(r, 0) >= seq for r in self._replicas())

    def _release(self, ctx) -> None:
        for seq in sorted(self.waiting):
            if not self._replicated(seq):
                break
            for src, rid in self.waiting.pop(seq):
                ctx.send(src, Reply(rid, True, seq))


class DbRouter(Node):
    """The database's front door and failover monitor (one node, named after the component)."""

    def __init__(self, spec: DatabaseSpec):
        self.spec = spec
        self.nodes = spec.node_ids()
        self.epoch = 1
        self.primary = self.nodes[0]
        self.heard: dict[str, int] = {}
        self.applied: dict[str, int] = {}
        self.rr = 0
        self.seq = 0
        self.caller = Caller(spec.name, spec.retry, self._pick, self._done)

    def on_start(self, ctx):
        # The roles are durable (the router plays the consensus store Patroni keeps them in): a
        # router restarting after a failover must not hand the primary back to a stale node.
        self.epoch = ctx.storage.get("epoch", 1)
        self.primary = ctx.storage.get("primary", self.nodes[0])
        self.heard = {n: ctx.now for n in self.nodes}  # everyone gets detect_ms to show up
        self._heartbeat(ctx)

    def live(self, now: int) -> list[str]:
        limit = self.spec.detect_ms * 1e6
        return [n for n in self.nodes if now - self.heard.get(n, now) < limit]

    def _heartbeat(self, ctx) -> None:
        live = self.live(ctx.now)
        if self.primary not in live and self.spec.failover:
            candidates = [n for n in live if n != self.primary]
            if candidates:
                best = max(candidates, key=lambda n: (self.applied.get(n, 0), -self.nodes.index(n)))
                lost = self.applied.get(self.primary, 0) - self.applied.get(best, 0)
                ctx.record("kit.failover", comp=self.spec.name, frm=self.primary, to=best,
                           epoch=self.epoch + 1, lost=max(0, lost))
                self.primary, self.epoch = best, self.epoch + 1
                ctx.storage.put("primary", best, sync=False)
                ctx.storage.put("epoch", self.epoch)
        msg = Role(self.epoch, self.primary, tuple(live))
        for n in self.nodes:
            ctx.send(n, msg)
        ctx.set_timer("kit.db.hb", self.spec.heartbeat_ms)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Call:
            self.caller.call(ctx, self.spec.name, msg.op, (src, msg.rid), msg.key, (), msg.idem, msg.value)
        elif t is Reply:
            self.caller.on_reply(ctx, msg)
        elif t is RoleAck:
            self.heard[src] = ctx.now
            self.applied[src] = msg.applied
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq))

    def on_timer(self, ctx, name):
        if name == "kit.db.hb":
            self._heartbeat(ctx)
        else:
            self.caller.on_timer(ctx, name)

    def _pick(self, ctx, comp, op, key, tried) -> str | None:
        if op == "write" or self.spec.read_from == "primary":
            return self.primary
        replicas = [n for n in self.live(ctx.now) if n != self.primary]
        if not replicas:
            return self.primary
        self.rr += 1
        return replicas[self.rr % len(replicas)]

    def _done(self, ctx, token, ok, value) -> None:
        src, rid = token
        ctx.send(src, answer(rid, ok, value))
