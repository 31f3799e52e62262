"""A Kademlia node (Maymounkov and Mazières, 2002), with compact state.

Routing table (paper §2.2). Bucket ``i`` holds contacts at XOR distance [2^i, 2^(i+1)) from the
node's id, at most ``k`` of them, least-recently seen first. A contact is one int (see ids.py), a
bucket a list of ints, the table a dict from bucket index to list: only non-empty buckets exist.
Every message received updates the sender's place: a known sender moves to the tail; a new one
is appended while the bucket has room; into a full bucket it goes to the bucket's replacement
cache (at most ``k``, newest last) and the least-recently-seen contact is pinged. If that ping
times out, the old contact is evicted and the newest cached one takes its place; if it answers,
it moves to the tail and the newcomer waits in the cache (§2.2: live contacts are never evicted,
which is what makes Kademlia resist flooding by newcomers). One departure: once a bucket's oldest
contact has answered a ping, newcomers for that bucket wait in the cache without a new ping until
the current ``recheck_s`` period ends (BEP 5's "good node": heard from lately, not pinged again).
The paper pings on every such arrival; during joins that was nearly half of all messages, each
answered, each keeping the contact it was sent to. ``recheck_s=0`` restores it.

Any RPC that times out counts a failure against its contact; after ``stale_after`` failures in a row the contact is dropped, but
only when the cache has a replacement (§4.1: with no replacement, a stale contact is kept, which
keeps tables whole through a partition).

Lookup (§2.3). The node takes the ``k`` contacts it knows closest to the target and keeps
``alpha`` FIND_NODE (or FIND_VALUE) RPCs in flight to the closest not yet asked; each answer adds
contacts; a timed-out contact is struck off. The lookup ends only when the ``k`` closest contacts
not struck off have all answered; FIND_VALUE ends early at the first value (and, with ``cache``,
stores it at the closest contact on the path that lacked it, §2.3).

Join (§2.3). A new node pings the bootstrap contact ``n1``, looks up its own id, then refreshes
every bucket farther than its closest neighbour (a lookup of a random id in each), except the
buckets lying wholly nearer than the k-th closest that lookup returned: it met every node there
already, and they met it (§4.2's tree table holds them all in the node's own leaf). At 1,000
nodes that is 6 refreshes rather than 9, a third of the default run's messages. Refresh (§2.3):
every ``refresh_s`` a bucket with no lookup in that time is refreshed the same way.

Storage (§2.5). STORE goes to the ``k`` closest found by a lookup of the key. A stored value
expires ``expire_s`` after it was stored; every ``republish_s`` a holder re-stores it to the ``k``
closest (skipped if it was itself stored in that time). When a holder learns of a new contact that
is among the ``k`` closest it knows to one of its keys, while the holder is too, it stores the key
there (§2.5: a joining node receives the keys it should hold).

Simplifications: one address per node (its host name ``n<i>``); the original publisher does not
re-publish every 24 h (holders republish); no accelerated lookups (§4.2) and no bucket splitting
of the §4.2 tree; a crashed node loses its values and table and keeps only its id (in storage).
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import islice
from types import MappingProxyType
from typing import Any

from simulator import Node, message

from .ids import ADDR_BITS, ADDR_MASK

BOOTSTRAP = "n1"
_TOP = ADDR_BITS + 1  # (c ^ me).bit_length() - _TOP: the bucket of contact c


class _Addrs(dict):
    """Address index -> host name, each name formatted once per process rather than per RPC."""

    def __missing__(self, index: int) -> str:
        name = self[index] = f"n{index}"
        return name


_ADDRS = _Addrs()

# What a node's seldom-used dicts hold while empty, shared by every node: an empty dict costs 64 B
# and one emptied after use keeps its table (232 B and up). Read-only, so a write that forgot to
# make the node its own dict first fails loudly instead of reaching every node.
_EMPTY: Any = MappingProxyType({})
UNASKED, ASKED, ANSWERED, FAILED = 0, 1, 2, 3


# ---- messages (RPCs carry the sender's contact, so the receiver learns its id and address) ----
@message
class Ping:
    rid: int
    src: int


@message
class Pong:
    rid: int
    src: int


@message
class Store:
    rid: int
    src: int
    key: int
    value: Any


@message
class Stored:
    rid: int
    src: int


@message
class FindNode:
    rid: int
    src: int
    target: int


@message
class FindValue:
    rid: int
    src: int
    key: int


@message
class Nodes:
    """The answer to FIND_NODE, or to FIND_VALUE when the value is not held: the k closest known."""

    rid: int
    src: int
    contacts: tuple


@message
class Found:
    rid: int
    src: int
    value: Any


# ---- client requests: a client asks one node to run the operation for it ----
@message
class ClientFind:
    op: int
    target: int


@message
class ClientPut:
    op: int
    key: int
    value: Any


@message
class ClientGet:
    op: int
    key: int


@message
class ClientDone:
    """The outcome of a client request; ``ok`` None: this node has not joined yet, ask another."""

    op: int
    ok: bool | None
    value: Any = None


CLIENT_REQUESTS = (ClientFind, ClientPut, ClientGet)


class Conf:
    """The parameters every node shares (one object per run), and the planted bug as flags."""

    def __init__(self, p: dict, bug: str | None):
        self.k = int(p["k"])
        self.alpha = int(p["alpha"])
        self.id_bits = int(p["id_bits"])
        self.rpc_timeout_ms = float(p["rpc_timeout_ms"])
        self.rpc_timeout_ns = round(self.rpc_timeout_ms * 1e6)
        self.stale_after = int(p["stale_after"])
        self.recheck_ns = int(float(p["recheck_s"]) * 1e9)
        self.refresh_ms = float(p["refresh_s"]) * 1e3
        self.republish_ms = float(p["republish_s"]) * 1e3
        self.expire_ns = int(float(p["expire_s"]) * 1e9)
        self.cache = bool(p["cache"])
        self.join_window_ms = float(p["join_window_s"]) * 1e3
        self.record_from_ns = int(float(p["join_window_s"]) * 1e9)  # maintenance lookups recorded after joins
        self.evict_live = bug == "evict-live-contact"
        self.no_refresh = bug == "no-refresh"
        self.no_republish = bug == "no-republish"
        self.stop_early = bug == "stop-early"
        self.count_unresponsive = bug == "count-unresponsive"


class Lookup:
    """One iterative lookup in progress (transient: it lives only while RPCs are out).

    Every contact seen is kept under its key ``d = contact ^ (target << ADDR_BITS)``: the id bits of
    ``d`` are the XOR distance to the target, so sorting keys sorts contacts by distance (the
    address bits below only matter between two contacts of one id), and ``d ^ tkey`` gives the
    contact back. ``state`` maps a key to ``hop << 2 | status``: one dict serves both."""

    __slots__ = ("target", "tkey", "find_value", "purpose", "op", "client", "value", "state", "inflight",
                 "start_ns", "msgs", "done", "order", "seen", "front", "front_seen")

    def __init__(self, target: int, find_value: bool, purpose: str, start_ns: int):
        self.target = target
        self.tkey = target << ADDR_BITS
        self.find_value = find_value
        self.purpose = purpose
        self.op = None
        self.client = None
        self.value = None
        self.state: dict[int, int] = {}
        self.inflight = 0
        self.start_ns = start_ns
        self.msgs = 0
        self.done = False
        self.order: list[int] = []  # the keys of every contact seen, sorted (closest first)
        # Every contact heard of, as sent: most contacts in an answer are known already, and a set
        # lookup of the contact skips them without computing their key.
        self.seen: set[int] = set()
        # order[:front] is settled (answered or struck off: no RPC to send or wait for there), and
        # front_seen of those count towards the k closest. Settled stays settled, so each answer
        # resumes the walk at front instead of rescanning the closest contacts from the start.
        self.front = 0
        self.front_seen = 0

    def add(self, c: int, hop: int) -> bool:
        """Note contact ``c`` (first heard of ``hop`` hops out); False if already seen."""
        self.seen.add(c)
        d = c ^ self.tkey
        state = self.state
        if d in state:
            return False
        order = self.order
        i = bisect_left(order, d)
        # The same id at another address sorts next to it: the first one seen stands.
        if (i < len(order) and order[i] >> ADDR_BITS == d >> ADDR_BITS) or \
                (i > 0 and order[i - 1] >> ADDR_BITS == d >> ADDR_BITS):
            return False
        state[d] = hop << 2
        order.insert(i, d)
        return True

    def start(self, cs: list[int]) -> None:
        """Note the lookup's first contacts, ``cs`` (one hop out), into an empty lookup: what
        :meth:`add` does for each, by one sort and two C-level fills instead of a bisection and an
        insertion per contact."""
        order = sorted([c ^ self.tkey for c in cs])
        if self.state or len({d >> ADDR_BITS for d in order}) != len(order):
            # one id at two addresses (few id bits): the first one seen stands, as add() decides
            for c in cs:
                self.add(c, 1)
            return
        self.seen.update(cs)
        self.order = order
        self.state = dict.fromkeys(order, 1 << 2)  # hop 1, UNASKED

    def hop(self, c: int) -> int:
        v = self.state.get(c ^ self.tkey)
        return 1 if v is None else v >> 2

    def mark(self, c: int, status: int) -> int | None:
        """Set the status of ``c`` (a contact this lookup asked); returns the one it had."""
        d = c ^ self.tkey
        v = self.state.get(d)
        if v is None:
            return None
        self.state[d] = (v & ~3) | status
        return v & 3

    def ordered(self, status: int | None = None) -> list[int]:
        """The contacts seen, closest first (only those of ``status`` if given)."""
        t, st = self.tkey, self.state
        return [d ^ t for d in self.order if status is None or st[d] & 3 == status]


class Kad(Node):
    """One Kademlia node; ``index`` is its address number (host ``n<index>``)."""

    __slots__ = ("c", "index", "nid", "me", "buckets", "repl", "fails", "rpcs", "rid", "lookups", "data",
                 "touched", "pinging", "joined", "puts", "quiet_period", "quiet_mask")

    def __init__(self, conf: Conf, index: int):
        self.c = conf
        self.index = index
        self.nid = -1
        self.me = -1
        self.buckets: dict[int, list[int]] = {}
        self.repl: dict[int, list[int]] = {}
        # fails, rpcs, lookups, data, pinging and puts are _EMPTY whenever they hold nothing
        # (most nodes, most of the time): a write makes the node its own dict first.
        self.fails: dict[int, int] = _EMPTY
        self.rpcs: dict[int, tuple] = _EMPTY  # rid -> (contact, purpose, extra, deadline ns), oldest first
        self.rid = 0
        self.lookups: dict[int, Lookup] = _EMPTY
        self.data: dict[int, list] = _EMPTY  # key -> [value, expires_ns, stored_ns]
        self.touched: dict[int, int] = {}  # bucket -> last lookup in it, ns
        self.pinging: dict[int, int] = _EMPTY  # bucket -> the least-recently-seen contact being pinged
        self.joined = False
        self.puts: dict[int, list] = _EMPTY  # op -> [stores outstanding, answered?, client]
        # Bit i of quiet_mask is set when bucket i's oldest contact answered a ping in recheck
        # period quiet_period: two ints a node rather than a time per bucket or per contact.
        self.quiet_period = -1
        self.quiet_mask = 0

    # ---- life cycle -------------------------------------------------------------------------
    def on_start(self, ctx) -> None:
        nid = ctx.storage.get("id")
        if nid is None:  # a new node (or one returning under a new id): a fresh id from its own stream
            nbytes = (self.c.id_bits + 7) // 8
            nid = int.from_bytes(ctx.rng.bytes(nbytes), "big") >> (8 * nbytes - self.c.id_bits)
            ctx.storage.put("id", nid, sync=False)
        self.rid = ctx.incarnation << 40  # a late answer to an RPC of a previous life matches none of this one
        self.nid = nid
        self.me = (nid << ADDR_BITS) | self.index
        ctx.record_row("kad.member", ("up", nid))  # ids.MEMBER
        if ctx.id == BOOTSTRAP:
            self._joined(ctx)
        elif ctx.now == 0:  # the initial network: arrivals spread over the join window
            ctx.set_timer("join", (0.0, self.c.join_window_ms))
        else:
            ctx.set_timer("join", (0.0, 100.0))

    def _joined(self, ctx) -> None:
        self.joined = True
        ctx.record_row("kad.member", ("joined", self.nid))
        ctx.set_timer("refresh", self.c.refresh_ms)
        ctx.set_timer("republish", self.c.republish_ms)

    def on_timer(self, ctx, name: str) -> None:
        if name == "sweep":
            self._sweep(ctx)
        elif name == "join":
            self._rpc(ctx, None, Ping, "boot", None)
        elif name == "refresh":
            self._refresh(ctx)
        elif name == "republish":
            self._republish(ctx)

    # ---- the routing table ------------------------------------------------------------------
    def bucket_of(self, c: int) -> int:
        return ((c >> ADDR_BITS) ^ self.nid).bit_length() - 1

    def saw(self, ctx, c: int) -> None:
        """Contact ``c`` sent us something: place it in its bucket (see the module docstring). Every
        message received runs this; a known sender (the usual case) is handled first."""
        if self.fails:
            self.fails.pop(c, None)
            if not self.fails:
                self.fails = _EMPTY
        # XOR with our own contact int: the address bits differ below ADDR_BITS only, so the top
        # differing bit is the ids' (a shift less per message); the same id gives i < 0.
        i = (c ^ self.me).bit_length() - _TOP
        b = self.buckets.get(i)
        if b is not None and (b[-1] == c or c in b):
            if b[-1] != c:
                b.remove(c)
                b.append(c)
            elif not self.pinging:  # already the most recently seen, and no ping out: nothing to do
                return
            if self.pinging and self.pinging.get(i) == c:  # the oldest contact answered its ping: it stays
                del self.pinging[i]
                if not self.pinging:
                    self.pinging = _EMPTY
                if self.c.recheck_ns:
                    period = ctx.now // self.c.recheck_ns
                    if self.quiet_period != period:
                        self.quiet_period, self.quiet_mask = period, 0
                    self.quiet_mask |= 1 << i
            return
        if i < 0:
            return  # ourselves, or a node claiming our id: ignore it
        if b is None:
            buckets = self.buckets
            out_of_order = bool(buckets) and i < next(reversed(buckets))
            buckets[i] = [c]
            if out_of_order:  # closest() reads the indices in order
                self.buckets = dict(sorted(buckets.items()))
            if self.data:  # most nodes hold nothing to hand on: no call
                self._hand_off(ctx, c)
            return
        if len(b) < self.c.k:
            b.append(c)
            if len(b) == self.c.k:
                # Full, and it stays full (a contact leaves only as another comes): an exact-size
                # copy drops the slack appends left (four slots, 32 B, for k = 20).
                self.buckets[i] = b[:]
            if self.data:
                self._hand_off(ctx, c)
            return
        if self.c.evict_live:  # the bug: the oldest contact goes without being asked
            old = b.pop(0)
            b.append(c)
            ctx.record_row("kad.evict", (old, c, "full"))  # ids.EVICT
            if self.data:
                self._hand_off(ctx, c)
            return
        r = self.repl.get(i)
        if r is None:
            r = self.repl[i] = []
        # Newest last, at most k: c moves to the tail, or the oldest makes room for it.
        if c in r:
            r.remove(c)
            r.append(c)
        elif len(r) < self.c.k:
            r.append(c)
            if len(r) == self.c.k:
                self.repl[i] = r[:]  # exact size, as for a full bucket
        else:
            del r[0]
            r.append(c)
        if i in self.pinging:
            return
        # Quiet: the oldest contact answered a ping in this recheck period. (A third of all
        # messages come this far: a newcomer for a full far bucket.)
        every = self.c.recheck_ns
        if (self.quiet_mask >> i) & 1 and every and self.quiet_period == ctx.now // every:
            return
        if self.pinging is _EMPTY:
            self.pinging = {}
        self.pinging[i] = b[0]
        self._rpc(ctx, b[0], Ping, "evict-ping", i)

    def _failed(self, ctx, c: int, evict_ping: bool) -> None:
        """An RPC to ``c`` timed out."""
        i = ((c >> ADDR_BITS) ^ self.nid).bit_length() - 1
        b = self.buckets.get(i)
        if b is None or c not in b:
            return
        if self.fails is _EMPTY:
            self.fails = {}
        n = self.fails.get(c, 0) + 1
        self.fails[c] = n
        r = self.repl.get(i)
        if evict_ping and self.pinging:
            self.pinging.pop(i, None)
            if not self.pinging:
                self.pinging = _EMPTY
        if (evict_ping or n >= self.c.stale_after) and r:
            b.remove(c)
            del self.fails[c]
            if not self.fails:
                self.fails = _EMPTY
            new = r.pop()
            b.append(new)
            ctx.record_row("kad.evict", (c, new, "no-answer" if evict_ping else "stale"))
            if self.data:
                self._hand_off(ctx, new)

    def closest(self, target: int, n: int, exclude: int = -1) -> list[int]:
        """The ``n`` known contacts closest to ``target`` (in no particular order; possibly a bucket
        itself, to be read and not kept or changed), without walking the whole table. With
        ``x = target ^ id`` and ``j`` its top bit, whole buckets fall in distance order: bucket
        ``j`` first (all closer than 2^j), then every bucket below ``j`` (all at distance
        [2^j, 2^(j+1)): they hold the few ids nearest our own, so they are taken whole and sorted
        only if together they pass ``n``), then the buckets above ``j``, nearest first. Only the
        one bucket that does not fit whole needs sorting. One pass over the table's items, in index
        order; every FIND_NODE answered runs this."""
        nid = self.nid
        x = target ^ nid
        j = x.bit_length() - 1
        buckets = self.buckets
        skip = ((exclude >> ADDR_BITS) ^ nid).bit_length() - 1 if exclude >= 0 else -2
        b = buckets.get(j)
        if b is None:
            out = []
        elif j == skip and exclude in b:
            out = [c for c in b if c != exclude]
        elif len(b) == n:
            return b  # a far target's whole bucket (the callers only read what they get)
        else:
            out = b[:]
        if len(out) >= n:
            return sorted(out, key=(target << ADDR_BITS).__xor__)[:n] if len(out) > n else out
        near = len(out)  # bucket j's contacts, nearer than all the others
        room = -1  # set at the first bucket above j, once every nearer one is in out
        for i, b in buckets.items():  # the key orders contacts by id distance (address bits only below the id)
            if i <= j:
                if i < j:
                    if i == skip and exclude in b:
                        b = [c for c in b if c != exclude]
                    out += b
                continue
            if room < 0:
                room = n - len(out)
                if room <= 0:
                    break
            if i == skip and exclude in b:
                b = [c for c in b if c != exclude]
            if len(b) < room:
                out += b
                room -= len(b)
            else:
                if len(b) == room:
                    out += b
                elif room == 1:
                    out.append(min(b, key=(target << ADDR_BITS).__xor__))
                else:
                    out += sorted(b, key=(target << ADDR_BITS).__xor__)[:room]
                return out
        if len(out) > n:  # the buckets below j passed n: the nearest of them after bucket j's
            out[near:] = sorted(out[near:], key=(target << ADDR_BITS).__xor__)[:n - near]
        return out

    def contacts(self) -> list[int]:
        return [c for b in self.buckets.values() for c in b]

    # ---- RPCs ---------------------------------------------------------------------------------
    def _rpc(self, ctx, c: int | None, kind, purpose: str, extra: Any, *args) -> None:
        self.rid += 1
        rid = self.rid
        # Every RPC has the same timeout, so deadlines grow with rid and the dict (insertion
        # order) is a queue: one sweep timer per node serves them all, instead of one event each.
        if self.rpcs is _EMPTY:
            self.rpcs = {}
        self.rpcs[rid] = (c, purpose, extra, ctx.now + self.c.rpc_timeout_ns)
        ctx.send(BOOTSTRAP if c is None else _ADDRS[c & ADDR_MASK], kind(rid, self.me, *args))
        if len(self.rpcs) == 1:
            ctx.set_timer("sweep", self.c.rpc_timeout_ms)

    def _reply(self, ctx, msg):
        """The RPC that ``msg`` answers, taken off the outstanding ones; None if it had timed out
        already. An address that answers under another id than the contact asked (the node there
        came back as someone new) is not that contact: the RPC counts as failed."""
        rpcs = self.rpcs
        if not rpcs:
            entry = None
        else:
            entry = rpcs.pop(msg.rid, None)
            if not rpcs:
                self.rpcs = _EMPTY  # a dict keeps its largest table once emptied: ~900 B a node after its join
        if entry is not None and entry[0] is not None and entry[0] != msg.src:
            self._timeout(ctx, entry)
            return None
        return entry

    def _sweep(self, ctx) -> None:
        now = ctx.now
        rpcs = self.rpcs
        while rpcs:
            rid = next(iter(rpcs))
            entry = rpcs[rid]
            if entry[3] > now:
                ctx.set_timer("sweep", (entry[3] - now) / 1e6)
                return
            del rpcs[rid]
            self._timeout(ctx, entry)
        if rpcs is self.rpcs and not rpcs:
            self.rpcs = _EMPTY

    def _timeout(self, ctx, entry) -> None:
        c, purpose, extra, _ = entry
        if purpose == "boot":
            ctx.set_timer("join", (500.0, 1500.0))  # the bootstrap did not answer: try again
            return
        self._failed(ctx, c, purpose == "evict-ping")
        if purpose == "lookup":
            lk = self.lookups.get(extra)
            if lk is not None and not lk.done:
                lk.mark(c, FAILED)
                lk.inflight -= 1
                self._advance(ctx, extra, lk)
        elif purpose == "store":
            self._store_settled(ctx, extra, False)

    def on_message(self, ctx, src: str, msg) -> None:
        t = type(msg)
        if t is FindNode:
            self.saw(ctx, msg.src)
            ctx.send(src, Nodes(msg.rid, self.me, tuple(self.closest(msg.target, self.c.k, msg.src))))
        elif t is Nodes:
            self.saw(ctx, msg.src)
            entry = self._reply(ctx, msg)
            if entry is not None and entry[1] == "lookup":
                self._on_nodes(ctx, entry[2], msg.src, msg.contacts)
        elif t is Ping:
            self.saw(ctx, msg.src)
            ctx.send(src, Pong(msg.rid, self.me))
        elif t is Pong:
            self.saw(ctx, msg.src)
            entry = self._reply(ctx, msg)
            if entry is not None and entry[1] == "boot":
                self._lookup(ctx, self.nid, False, "join")
        elif t is FindValue:
            self.saw(ctx, msg.src)
            held = self.data.get(msg.key)
            if held is not None and held[1] > ctx.now:
                ctx.send(src, Found(msg.rid, self.me, held[0]))
            else:
                ctx.send(src, Nodes(msg.rid, self.me, tuple(self.closest(msg.key, self.c.k, msg.src))))
        elif t is Found:
            self.saw(ctx, msg.src)
            entry = self._reply(ctx, msg)
            if entry is not None and entry[1] == "lookup":
                self._on_found(ctx, entry[2], msg.src, msg.value)
        elif t is Store:
            self.saw(ctx, msg.src)
            if self.data is _EMPTY:
                self.data = {}
            self.data[msg.key] = [msg.value, ctx.now + self.c.expire_ns, ctx.now]
            ctx.record_row("kad.stored", (msg.key,))  # ids.STORED
            ctx.send(src, Stored(msg.rid, self.me))
        elif t is Stored:
            self.saw(ctx, msg.src)
            entry = self._reply(ctx, msg)
            if entry is not None and entry[1] == "store":
                self._store_settled(ctx, entry[2], True)
        elif not self.joined and t in CLIENT_REQUESTS:
            ctx.send(src, ClientDone(msg.op, None))  # not joined yet: the client asks another node
        elif t is ClientFind:
            self._client(ctx, self._lookup_new(ctx, msg.target, False, "find"), msg.op, src)
        elif t is ClientGet:
            self._client(ctx, self._lookup_new(ctx, msg.key, True, "get"), msg.op, src)
        elif t is ClientPut:
            lk = self._lookup_new(ctx, msg.key, False, "put")
            lk.value = msg.value
            self._client(ctx, lk, msg.op, src)

    # ---- lookups ------------------------------------------------------------------------------
    def _lookup_new(self, ctx, target: int, find_value: bool, purpose: str) -> Lookup:
        return Lookup(target, find_value, purpose, ctx.now)

    def _client(self, ctx, lk: Lookup, op: int, client: str) -> None:
        lk.op = op
        lk.client = client
        self._start(ctx, lk)

    def _lookup(self, ctx, target: int, find_value: bool, purpose: str, value: Any = None) -> None:
        lk = Lookup(target, find_value, purpose, ctx.now)
        lk.value = value
        self._start(ctx, lk)

    def _start(self, ctx, lk: Lookup) -> None:
        self.rid += 1
        lid = self.rid
        if self.lookups is _EMPTY:
            self.lookups = {}
        self.lookups[lid] = lk
        if lk.target != self.nid:
            self.touched[(lk.target ^ self.nid).bit_length() - 1] = ctx.now
        lk.start(self.closest(lk.target, self.c.k))
        self._advance(ctx, lid, lk)

    def _advance(self, ctx, lid: int, lk: Lookup) -> None:
        """Keep ``alpha`` RPCs out to the closest unasked of the k closest not struck off; finish
        when those k have all answered."""
        k = self.c.k
        state = lk.state
        order = lk.order
        keep_failed = self.c.count_unresponsive
        n = len(order)
        i = lk.front
        seen = lk.front_seen
        while i < n:  # first move the front past contacts settled since the last answer
            s = state[order[i]] & 3
            if s == ANSWERED or (s == FAILED and keep_failed):
                seen += 1
                if seen == k:  # the k closest have all answered
                    self._finish(ctx, lid, lk, self._result(lk))
                    return
            elif s != FAILED:
                break
            i += 1
        lk.front = i
        lk.front_seen = seen
        room = self.c.alpha - lk.inflight
        pending = False
        for d in islice(order, i, None):  # nothing below changes order
            s = state[d] & 3
            if s == FAILED and not keep_failed:
                continue
            seen += 1
            if s == UNASKED:
                pending = True
                if room > 0:
                    room -= 1
                    state[d] += ASKED - UNASKED
                    lk.inflight += 1
                    lk.msgs += 1
                    self._rpc(ctx, d ^ lk.tkey, FindValue if lk.find_value else FindNode, "lookup", lid, lk.target)
            elif s == ASKED:
                pending = True
            if seen == k or (pending and room == 0):
                break  # past the window, or nothing more to learn from it
        if not pending:
            self._finish(ctx, lid, lk, self._result(lk))

    def _result(self, lk: Lookup) -> list[int]:
        """The k closest that answered (or, under count-unresponsive, the k closest not asked in
        vain, answered or not)."""
        t, k, state = lk.tkey, self.c.k, lk.state
        out = []
        for d in lk.order:
            s = state[d] & 3
            if s == ANSWERED or (self.c.count_unresponsive and s != ASKED):
                out.append(d ^ t)
                if len(out) == k:
                    break
        return out

    def _on_nodes(self, ctx, lid: int, sender: int, contacts: tuple) -> None:
        lk = self.lookups.get(lid)
        if lk is None or lk.done:
            return
        state = lk.state
        t = lk.tkey
        ds = sender ^ t
        v = state[ds]  # lk.mark(sender, ANSWERED), inlined: this runs once per answer
        if v & 3 == ASKED:
            lk.inflight -= 1
        state[ds] = (v & ~3) | ANSWERED
        order = lk.order
        hop4 = (v >> 2) + 1 << 2
        best = order[0]
        me = self.me
        seen = lk.seen
        # Late in a lookup most answers name only contacts seen already: one C-level test says so.
        if seen.issuperset(contacts):
            fresh = ()
        else:
            fresh = [c for c in contacts if c not in seen]
            seen.update(fresh)
        low = front = lk.front
        for c in fresh:
            if c == me:
                continue
            d = c ^ t
            i = bisect_left(order, d)
            top = d >> ADDR_BITS
            # The same id at another address sorts next to it: the first one seen stands.
            if (i < len(order) and order[i] >> ADDR_BITS == top) or (i > 0 and order[i - 1] >> ADDR_BITS == top):
                continue
            state[d] = hop4
            order.insert(i, d)
            if i < low:
                low = i
        if low < front:  # a new contact among the settled ones: the front comes back to it
            keep_failed = self.c.count_unresponsive
            lk.front = low
            lk.front_seen = sum(1 for d in order[:low] if keep_failed or state[d] & 3 == ANSWERED)
        if self.c.stop_early and order[0] == best:  # the bug: one round with nothing nearer ends the lookup
            self._finish(ctx, lid, lk, lk.ordered(ANSWERED)[: self.c.k])
            return
        self._advance(ctx, lid, lk)

    def _on_found(self, ctx, lid: int, sender: int, value: Any) -> None:
        lk = self.lookups.get(lid)
        if lk is None or lk.done:
            return
        if lk.mark(sender, ANSWERED) == ASKED:
            lk.inflight -= 1
        if self.c.cache:  # §2.3: cache at the closest node seen that did not have it
            lacking = [c for c in lk.ordered(ANSWERED) if c != sender]
            if lacking:
                self._rpc(ctx, lacking[0], Store, "store", None, lk.target, value)
        lk.value = value
        self._finish(ctx, lid, lk, [sender], found=True)

    def _finish(self, ctx, lid: int, lk: Lookup, result: list[int], found: bool = False) -> None:
        lk.done = True
        del self.lookups[lid]
        if not self.lookups:
            self.lookups = _EMPTY  # as for rpcs: drop the table the join's parallel lookups grew
        purpose = lk.purpose
        if purpose == "get" and not found:  # a lookup never asks its own node, which may hold a copy
            held = self.data.get(lk.target)
            if held is not None and held[1] > ctx.now:
                found, lk.value = True, held[0]
        hops = lk.hop(result[0]) if result else 0
        if lk.client is not None or ctx.now >= self.c.record_from_ns:
            ctx.record_row("kad.lookup", (purpose, lk.target, tuple(result), lk.start_ns, hops, lk.msgs, found,
                                          sum(1 for s in lk.state.values() if s & 3 == ANSWERED)))  # ids.LOOKUP
        if purpose == "join":
            self._joined(ctx)
            if not self.c.no_refresh:
                near = self.bucket_of(result[0]) if result else self.c.id_bits - 1
                # The lookup of our own id returned the k closest nodes, so it has met every node
                # nearer than the k-th (and each of them met us): a bucket lying wholly inside that
                # ball has nothing left to learn or to tell. Refresh from the bucket the k-th falls
                # in outwards, as §4.2's tree table does (there those buckets are one leaf, ours).
                if len(result) == self.c.k:
                    near = max(near, self.bucket_of(result[-1]) - 1)
                for i in range(near + 1, self.c.id_bits):
                    self._lookup(ctx, self._random_in(ctx, i), False, "refresh")
        elif purpose == "find":
            ctx.send(lk.client, ClientDone(lk.op, bool(result), len(result)))
        elif purpose == "get":
            ctx.send(lk.client, ClientDone(lk.op, found, lk.value if found else None))
        elif purpose in ("put", "republish"):
            if not result:
                if lk.client is not None:
                    ctx.send(lk.client, ClientDone(lk.op, False))
                return
            token = None
            if lk.client is not None:
                token = lk.op
                if self.puts is _EMPTY:
                    self.puts = {}
                self.puts[token] = [len(result), False, lk.client]
            for c in result:
                self._rpc(ctx, c, Store, "store", token, lk.target, lk.value)

    def _store_settled(self, ctx, op, ok: bool) -> None:
        put = self.puts.get(op) if op is not None else None
        if put is None:
            return
        put[0] -= 1
        if ok and not put[1]:
            put[1] = True
            ctx.send(put[2], ClientDone(op, True))
        if put[0] == 0:
            del self.puts[op]
            if not self.puts:
                self.puts = _EMPTY
            if not put[1]:
                ctx.send(put[2], ClientDone(op, False))

    # ---- maintenance --------------------------------------------------------------------------
    def _random_in(self, ctx, i: int) -> int:
        """A random id at XOR distance [2^i, 2^(i+1)) from ours: bucket i's range."""
        nbytes = i // 8 + 1
        low = int.from_bytes(ctx.rng.bytes(nbytes), "big") & ((1 << i) - 1)
        return self.nid ^ ((1 << i) | low)

    def _refresh(self, ctx) -> None:
        ctx.set_timer("refresh", self.c.refresh_ms)
        if self.c.no_refresh:
            return
        stale = ctx.now - int(self.c.refresh_ms * 1e6)
        for i in sorted(self.buckets):
            if self.touched.get(i, -1) <= stale:
                self._lookup(ctx, self._random_in(ctx, i), False, "refresh")

    def _republish(self, ctx) -> None:
        ctx.set_timer("republish", self.c.republish_ms)
        now = ctx.now
        for key in [k for k, v in self.data.items() if v[1] <= now]:
            del self.data[key]
            ctx.record_row("kad.expired", (key,))
        if not self.data:
            self.data = _EMPTY
        if self.c.no_republish:
            return
        recent = now - int(self.c.republish_ms * 1e6)
        for key in sorted(self.data):
            held = self.data[key]
            if held[2] <= recent:  # §2.5: a value stored here within the period is not republished
                held[2] = now
                held[1] = now + self.c.expire_ns
                self._lookup(ctx, key, False, "republish", held[0])

    def _hand_off(self, ctx, c: int) -> None:
        """§2.5: a new contact among the k closest to a key this node holds (and should hold) gets it."""
        if not self.data or self.c.no_republish:
            return
        cid_ = c >> ADDR_BITS
        now = ctx.now
        nid = self.nid
        buckets = self.buckets
        k = self.c.k
        for key in sorted(self.data):
            held = self.data[key]
            if held[1] <= now:
                continue
            # Only the holder closest to the key (as far as it knows) hands it on, so a newcomer
            # gets one copy rather than k. Any contact in the key's own bucket is closer than us.
            j = (key ^ nid).bit_length() - 1
            if j in buckets and any(x != c for x in buckets[j]):
                continue
            d_new = cid_ ^ key
            near = self.closest(key, k, c)
            if any((x >> ADDR_BITS) ^ key < (nid ^ key) for x in near):
                continue
            if len(near) < k or max((x >> ADDR_BITS) ^ key for x in near) > d_new:
                self._rpc(ctx, c, Store, "store", None, key, held[0])
