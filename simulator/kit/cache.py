"""``Cache``: a cache node (memcached-like), with eviction policies, TTLs and Memcache leases.

Three layers, each usable alone:

``Policy`` cores  plain data structures over (key, size), with no values, no time and no network,
                  so that a trace replay drives them at millions of requests per second
                  (``scenarios/cache/replay.py``). One class per policy, one small interface
                  (libCacheSim's: find, insert, evict, remove):

                  ``request(key, size) -> hit``  libCacheSim's semantics: a hit when the key is
                      cached with the same size; otherwise a miss that admits the object (an object
                      whose size changed is replaced; one larger than the cache is not admitted)
                  ``lookup(key) -> hit``  a read that updates the policy's metadata on a hit
                  ``insert(key, size) -> admitted``  add or replace, evicting as needed
                  ``remove(key)``  drop it (an invalidation); ``on_evict`` is called per eviction

                  Capacity is in bytes (objects carry sizes) or in objects (every size 1).
``CacheStore``    values, versions and TTLs on top of a policy: ``ttl_mode="fill"`` sets the
                  expiry once when the value is stored (memcached / Redis ``EX``); ``"access"``
                  resets it on each hit (the TTL caches of Fofack et al. call it reset-on-access).
``Cache`` node    the store behind messages (:class:`CacheGet`, :class:`CacheSet`,
                  :class:`CacheDelete`), with Memcache leases (Nishtala et al., NSDI 2013, 3.2.1):
                  a miss hands out a lease token; a delete invalidates the key's outstanding token;
                  a set whose token is not the key's current one is refused; a miss while a token is
                  outstanding (younger than ``lease_ms``) is told to wait and retry (the
                  "hot miss"), which is what stops a stampede cluster-wide.

Policies (``POLICIES``):

``lru``      evict the least recently used
``fifo``     evict the oldest insertion
``random``   evict a uniformly random object
``clock``    FIFO with one reference bit: an object seen since insertion is reinserted once
             (libCacheSim's Clock; the second-chance algorithm)
``lfu``      evict the least frequently used; ties by least recently used
``sieve``    Zhang et al., NSDI 2024: a FIFO queue with visited bits and a hand that moves from
             the oldest toward the newest, clearing bits and evicting the first unvisited object;
             hits move nothing
``s3-fifo``  Yang et al., SOSP 2023: a small FIFO (10% of capacity), a main FIFO and a ghost FIFO
             of keys; a small-queue object seen again moves to main, others leave to the ghost;
             a ghost hit is admitted straight into main; main reinserts objects with frequency > 0
             (2-bit counters)
``tinylfu``  W-TinyLFU (Einziger et al., 2017; Caffeine): an LRU window (1%) in front of a
             segmented LRU (probation 20%, protected 80%); an object leaving the window enters
             main only if a count-min sketch of 4-bit counters (halved every 10 x capacity
             requests) says it is more frequent than main's victim

Simplifications: sizes are whole bytes and the policies count payload only (no per-object
overhead); the random policy draws from the generator it is given (a node's ``ctx.rng`` or a
seed), so replays are reproducible; TinyLFU has no doorkeeper and no hill climbing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..engine.node import Node, message

POLICIES = ("lru", "fifo", "random", "clock", "lfu", "sieve", "s3-fifo", "tinylfu")
TTL_MODES = ("fill", "access")


class Policy:
    """The shared interface; subclasses keep ``used`` (bytes or objects) <= ``capacity``."""

    name = ""

    def __init__(self, capacity: int, seed: int | None = None):
        if capacity < 1:
            raise ValueError(f"bad capacity {capacity!r}: expected a positive integer")
        self.capacity = int(capacity)
        self.used = 0
        self.on_evict: Callable[[Any], None] | None = None

    # Subclasses implement these four.
    def size_of(self, key) -> int | None:
        raise NotImplementedError

    def lookup(self, key) -> bool:
        raise NotImplementedError

    def _admit(self, key, size: int) -> None:
        """Insert a key that is absent and fits within capacity, evicting as needed."""
        raise NotImplementedError

    def remove(self, key) -> bool:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __contains__(self, key) -> bool:
        return self.size_of(key) is not None

    def insert(self, key, size: int) -> bool:
        if self.size_of(key) is not None:
            self.remove(key)
        if size > self.capacity:
            return False
        self._admit(key, size)
        return True

    def request(self, key, size: int = 1) -> bool:
        s = self.size_of(key)
        if s == size:
            self.lookup(key)
            return True
        if s is not None:
            self.remove(key)
        if size <= self.capacity:
            self._admit(key, size)
        return False

    def _hit_fn(self):
        """A function ``hit(key, size) -> bool`` doing a hit's metadata update when it is one, or
        None to use ``request``; subclasses return a closure over their structures (the replay loop
        calls it once per request, so it must be cheap)."""
        return None

    def replay(self, keys, sizes=None) -> tuple[int, int]:
        """Drive ``request`` over a trace; (misses, bytes missed). ``sizes`` None: every size 1."""
        hit = self._hit_fn()
        if hit is not None:
            return self._replay_with(hit, keys, sizes)
        return self._replay_requests(keys, sizes)

    def _replay_with(self, hit, keys, sizes) -> tuple[int, int]:
        size_of, remove, admit, cap = self.size_of, self.remove, self._admit, self.capacity
        misses = missed = 0
        if sizes is None:
            for k in keys:
                if hit(k, 1):
                    continue
                misses += 1
                if size_of(k) is not None:
                    remove(k)
                if cap >= 1:
                    admit(k, 1)
            return misses, misses
        for k, s in zip(keys, sizes):
            if hit(k, s):
                continue
            misses += 1
            missed += s
            if size_of(k) is not None:
                remove(k)
            if s <= cap:
                admit(k, s)
        return misses, missed

    def _replay_requests(self, keys, sizes) -> tuple[int, int]:
        req = self.request
        misses = missed = 0
        if sizes is None:
            for k in keys:
                if not req(k, 1):
                    misses += 1
            return misses, misses
        for k, s in zip(keys, sizes):
            if not req(k, s):
                misses += 1
                missed += s
        return misses, missed


class LRU(Policy):
    name = "lru"

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.d: OrderedDict = OrderedDict()  # key -> size, least recent first

    def size_of(self, key):
        return self.d.get(key)

    def lookup(self, key):
        if key in self.d:
            self.d.move_to_end(key)
            return True
        return False

    def _admit(self, key, size):
        d, cap = self.d, self.capacity
        self.used += size
        while self.used > cap:
            k, s = d.popitem(last=False)
            self.used -= s
            if self.on_evict is not None:
                self.on_evict(k)
        d[key] = size

    def remove(self, key):
        s = self.d.pop(key, None)
        if s is None:
            return False
        self.used -= s
        return True

    def __len__(self):
        return len(self.d)

    def replay(self, keys, sizes=None):
        # The hot loop inlined: replays run millions of requests, and a method call each halves the rate.
        d, cap, used = self.d, self.capacity, self.used
        get, mte, pop, popi, cb = d.get, d.move_to_end, d.pop, d.popitem, self.on_evict
        misses = missed = 0
        if sizes is None:
            for k in keys:
                if k in d:
                    mte(k)
                    continue
                misses += 1
                used += 1
                if used > cap:
                    used -= popi(False)[1] if cb is None else self._evicted(popi(False))
                d[k] = 1
            self.used = used
            return misses, misses
        for k, s in zip(keys, sizes):
            c = get(k)
            if c == s:
                mte(k)
                continue
            misses += 1
            missed += s
            if c is not None:
                pop(k)
                used -= c
            if s > cap:
                continue
            used += s
            while used > cap:
                used -= popi(False)[1] if cb is None else self._evicted(popi(False))
            d[k] = s
        self.used = used
        return misses, missed

    def _evicted(self, item) -> int:
        self.on_evict(item[0])
        return item[1]


class FIFO(LRU):
    name = "fifo"

    def lookup(self, key):
        return key in self.d

    def replay(self, keys, sizes=None):
        d, cap, used = self.d, self.capacity, self.used
        get, pop, popi, cb = d.get, d.pop, d.popitem, self.on_evict
        misses = missed = 0
        if sizes is None:
            for k in keys:
                if k in d:
                    continue
                misses += 1
                used += 1
                if used > cap:
                    used -= popi(False)[1] if cb is None else self._evicted(popi(False))
                d[k] = 1
            self.used = used
            return misses, misses
        for k, s in zip(keys, sizes):
            c = get(k)
            if c == s:
                continue
            misses += 1
            missed += s
            if c is not None:
                pop(k)
                used -= c
            if s > cap:
                continue
            used += s
            while used > cap:
                used -= popi(False)[1] if cb is None else self._evicted(popi(False))
            d[k] = s
        self.used = used
        return misses, missed


class Random(Policy):
    name = "random"

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.rng = np.random.default_rng(seed if seed is not None else 0)
        self.keys: list = []
        self.where: dict = {}  # key -> [index in keys, size]
        self._u: list[float] = []

    def size_of(self, key):
        w = self.where.get(key)
        return None if w is None else w[1]

    def lookup(self, key):
        return key in self.where

    def _hit_fn(self):
        get = self.where.get

        def hit(k, s):
            w = get(k)
            return w is not None and w[1] == s

        return hit

    def _draw(self) -> float:
        if not self._u:  # uniforms drawn in blocks: one numpy call per 4096 evictions
            self._u = self.rng.random(4096).tolist()
        return self._u.pop()

    def _admit(self, key, size):
        self.used += size
        keys, where = self.keys, self.where
        while self.used > self.capacity:
            i = int(self._draw() * len(keys))
            victim = keys[i]
            self._drop(victim)
            if self.on_evict is not None:
                self.on_evict(victim)
        where[key] = [len(keys), size]
        keys.append(key)

    def _drop(self, key) -> int:
        i, s = self.where.pop(key)
        last = self.keys.pop()
        if last != key or i != len(self.keys):
            self.keys[i] = last
            self.where[last][0] = i
        self.used -= s
        return s

    def remove(self, key):
        if key not in self.where:
            return False
        self._drop(key)
        return True

    def __len__(self):
        return len(self.keys)


class Clock(Policy):
    """FIFO with reinsertion: entries are [size, referenced]."""

    name = "clock"

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.d: OrderedDict = OrderedDict()

    def size_of(self, key):
        e = self.d.get(key)
        return None if e is None else e[0]

    def lookup(self, key):
        e = self.d.get(key)
        if e is None:
            return False
        e[1] = True
        return True

    def _hit_fn(self):
        get = self.d.get

        def hit(k, s):
            e = get(k)
            if e is not None and e[0] == s:
                e[1] = True
                return True
            return False

        return hit

    def _admit(self, key, size):
        d = self.d
        self.used += size
        while self.used > self.capacity:
            k, e = d.popitem(last=False)
            if e[1]:
                e[1] = False
                d[k] = e
            else:
                self.used -= e[0]
                if self.on_evict is not None:
                    self.on_evict(k)
        d[key] = [size, False]

    def remove(self, key):
        e = self.d.pop(key, None)
        if e is None:
            return False
        self.used -= e[0]
        return True

    def __len__(self):
        return len(self.d)


class LFU(Policy):
    """O(1) LFU (Shah et al.): frequency -> keys in recency order; ties evict the least recent."""

    name = "lfu"

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.d: dict = {}  # key -> [size, freq]
        self.by: dict[int, OrderedDict] = {}
        self.low = 1

    def size_of(self, key):
        e = self.d.get(key)
        return None if e is None else e[0]

    def lookup(self, key):
        e = self.d.get(key)
        if e is None:
            return False
        f = e[1]
        b = self.by[f]
        del b[key]
        if not b:
            del self.by[f]
            if self.low == f:
                self.low = f + 1
        e[1] = f + 1
        nb = self.by.get(f + 1)
        if nb is None:
            nb = self.by[f + 1] = OrderedDict()
        nb[key] = None
        return True

    def _hit_fn(self):
        get, lookup = self.d.get, self.lookup

        def hit(k, s):
            e = get(k)
            return e is not None and e[0] == s and lookup(k)

        return hit

    def _admit(self, key, size):
        self.used += size
        while self.used > self.capacity:
            b = self.by[self.low]
            k, _ = b.popitem(last=False)
            if not b:
                del self.by[self.low]
                self.low = min(self.by) if self.by else 1
            self.used -= self.d.pop(k)[0]
            if self.on_evict is not None:
                self.on_evict(k)
        self.d[key] = [size, 1]
        b = self.by.get(1)
        if b is None:
            b = self.by[1] = OrderedDict()
        b[key] = None
        self.low = 1

    def remove(self, key):
        e = self.d.pop(key, None)
        if e is None:
            return False
        b = self.by[e[1]]
        del b[key]
        if not b:
            del self.by[e[1]]
            if self.low == e[1]:
                self.low = min(self.by) if self.by else 1
        self.used -= e[0]
        return True

    def __len__(self):
        return len(self.d)


class Sieve(Policy):
    """A doubly linked list in two dicts (newer/older neighbours); the hand walks toward newer."""

    name = "sieve"

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.size: dict = {}
        self.visited: dict = {}
        self.newer: dict = {}  # key -> the next newer key (None at the head)
        self.older: dict = {}  # key -> the next older key (None at the tail)
        self.head = None  # newest
        self.tail = None  # oldest
        self.hand = None

    def size_of(self, key):
        return self.size.get(key)

    def lookup(self, key):
        if key in self.size:
            self.visited[key] = True
            return True
        return False

    def _hit_fn(self):
        get, visited = self.size.get, self.visited

        def hit(k, s):
            if get(k) == s:
                visited[k] = True
                return True
            return False

        return hit

    def _unlink(self, key):
        n, o = self.newer.pop(key), self.older.pop(key)
        if n is None:
            self.head = o
        else:
            self.older[n] = o
        if o is None:
            self.tail = n
        else:
            self.newer[o] = n
        del self.visited[key]
        self.used -= self.size.pop(key)

    def _admit(self, key, size):
        self.used += size
        visited, newer = self.visited, self.newer
        while self.used > self.capacity:
            h = self.hand if self.hand is not None else self.tail
            while visited[h]:
                visited[h] = False
                h = newer[h]
                if h is None:
                    h = self.tail
            self.hand = newer[h]
            self._unlink(h)
            if self.on_evict is not None:
                self.on_evict(h)
        self.size[key] = size
        visited[key] = False
        newer[key] = None
        self.older[key] = self.head
        if self.head is not None:
            newer[self.head] = key
        else:
            self.tail = key
        self.head = key

    def remove(self, key):
        if key not in self.size:
            return False
        if self.hand == key:
            self.hand = self.newer[key]
        self._unlink(key)
        return True

    def __len__(self):
        return len(self.size)


class S3FIFO(Policy):
    """Entries are [size, freq, in_main]; two OrderedDicts as queues, a third holds ghost keys."""

    name = "s3-fifo"
    SMALL_SHARE = 0.1

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.e: dict = {}
        self.small: OrderedDict = OrderedDict()
        self.main: OrderedDict = OrderedDict()
        self.ghost: OrderedDict = OrderedDict()  # key -> size
        self.small_used = self.main_used = self.ghost_used = 0
        self.small_cap = max(1, int(self.capacity * self.SMALL_SHARE))

    def size_of(self, key):
        e = self.e.get(key)
        return None if e is None else e[0]

    def lookup(self, key):
        e = self.e.get(key)
        if e is None:
            return False
        if e[1] < 3:
            e[1] += 1
        return True

    def _hit_fn(self):
        get = self.e.get

        def hit(k, s):
            e = get(k)
            if e is not None and e[0] == s:
                if e[1] < 3:
                    e[1] += 1
                return True
            return False

        return hit

    def _evicted(self, key):
        if self.on_evict is not None:
            self.on_evict(key)

    def _evict_main(self):
        main = self.main
        while True:
            k, e = main.popitem(last=False)
            if e[1] > 0:
                e[1] -= 1
                main[k] = e
                continue
            self.main_used -= e[0]
            self.used -= e[0]
            del self.e[k]
            self._evicted(k)
            return

    def _evict_small(self):
        k, e = self.small.popitem(last=False)
        self.small_used -= e[0]
        if e[1] > 1:
            e[1], e[2] = 0, True
            self.main[k] = e
            self.main_used += e[0]
            return
        self.used -= e[0]
        del self.e[k]
        self.ghost[k] = e[0]
        self.ghost_used += e[0]
        # The ghost remembers as many bytes as main holds.
        while self.ghost_used > self.capacity - self.small_cap and self.ghost:
            self.ghost_used -= self.ghost.popitem(last=False)[1]
        self._evicted(k)

    def _admit(self, key, size):
        while self.used + size > self.capacity:
            if self.small_used >= self.small_cap or not self.main:
                self._evict_small()
            else:
                self._evict_main()
        g = self.ghost.pop(key, None)
        if g is not None:
            self.ghost_used -= g
            e = [size, 0, True]
            self.main[key] = e
            self.main_used += size
        else:
            e = [size, 0, False]
            self.small[key] = e
            self.small_used += size
        self.e[key] = e
        self.used += size

    def remove(self, key):
        e = self.e.pop(key, None)
        if e is None:
            return False
        if e[2]:
            del self.main[key]
            self.main_used -= e[0]
        else:
            del self.small[key]
            self.small_used -= e[0]
        self.used -= e[0]
        return True

    def __len__(self):
        return len(self.e)


class CountMinSketch:
    """Four rows of 4-bit counters (capped at 15), halved every ``sample`` increments (TinyLFU's
    reset, which ages old popularity). Rows are indexed by multiplicative hashes of the key's
    integer form (a CRC-32 for other keys), so the sketch never depends on Python's salted
    ``hash()``. The rows live in one flat list, indexed inline: the sketch is touched on every
    request of a replay."""

    MULTIPLIERS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)

    def __init__(self, width: int, sample: int):
        self.width = 1 << max(4, (max(1, width) - 1).bit_length())
        self.mask = self.width - 1
        self.table = [0] * (4 * self.width)
        self.sample = sample
        self.count = 0

    @staticmethod
    def _int(key) -> int:
        if type(key) is int:
            return key
        import zlib

        return zlib.crc32(str(key).encode())

    def _slots(self, key) -> tuple[int, int, int, int]:
        x = self._int(key) + 1
        m, w = self.mask, self.width
        c0, c1, c2, c3 = self.MULTIPLIERS
        return (((x * c0) >> 13) & m, w + (((x * c1) >> 13) & m), 2 * w + (((x * c2) >> 13) & m),
                3 * w + (((x * c3) >> 13) & m))

    def add(self, key) -> None:
        t = self.table
        for i in self._slots(key):
            if t[i] < 15:
                t[i] += 1
        self.count += 1
        if self.count >= self.sample:
            self.count //= 2
            self.table = [v >> 1 for v in t]

    def estimate(self, key) -> int:
        t = self.table
        return min(t[i] for i in self._slots(key))


class TinyLFU(Policy):
    """W-TinyLFU: window LRU -> (admission by the sketch) -> SLRU probation / protected."""

    name = "tinylfu"
    WINDOW_SHARE = 0.01
    PROTECTED_SHARE = 0.8

    def __init__(self, capacity, seed=None, expected_objects: int | None = None):
        super().__init__(capacity)
        self.window_cap = max(1, int(self.capacity * self.WINDOW_SHARE))
        self.main_cap = self.capacity - self.window_cap
        self.protected_cap = int(self.main_cap * self.PROTECTED_SHARE)
        n = expected_objects or min(self.capacity, 1 << 20)
        self.sketch = CountMinSketch(n, 10 * n)
        self.e: dict = {}  # key -> [size, segment] (0 window, 1 probation, 2 protected)
        self.seg = (OrderedDict(), OrderedDict(), OrderedDict())
        self.seg_used = [0, 0, 0]

    def size_of(self, key):
        e = self.e.get(key)
        return None if e is None else e[0]

    def request(self, key, size=1):
        self.sketch.add(key)
        return Policy.request(self, key, size)

    def _hit_fn(self):
        get, lookup, add = self.e.get, self.lookup, self.sketch.add

        def hit(k, s):
            add(k)
            e = get(k)
            return e is not None and e[0] == s and lookup(k)

        return hit

    def lookup(self, key):
        e = self.e.get(key)
        if e is None:
            return False
        s = e[1]
        if s == 2 or s == 0:
            self.seg[s].move_to_end(key)
            return True
        # A probation hit is promoted; protected overflow is demoted to probation's newest end.
        del self.seg[1][key]
        self.seg_used[1] -= e[0]
        e[1] = 2
        self.seg[2][key] = e
        self.seg_used[2] += e[0]
        while self.seg_used[2] > self.protected_cap and len(self.seg[2]) > 1:
            k, d = self.seg[2].popitem(last=False)
            self.seg_used[2] -= d[0]
            d[1] = 1
            self.seg[1][k] = d
            self.seg_used[1] += d[0]
        return True

    def _drop(self, key, e) -> None:
        del self.seg[e[1]][key]
        self.seg_used[e[1]] -= e[0]
        del self.e[key]
        self.used -= e[0]
        if self.on_evict is not None:
            self.on_evict(key)

    def _victim(self):
        for s in (1, 2):
            if self.seg[s]:
                return next(iter(self.seg[s].items()))
        return None

    def _admit(self, key, size):
        e = [size, 0]
        self.e[key] = e
        self.seg[0][key] = e
        self.seg_used[0] += size
        self.used += size
        # Candidates leave the window (oldest first) and compete with main's victim for a place.
        while self.seg_used[0] > self.window_cap and len(self.seg[0]) > 1:
            k, c = self.seg[0].popitem(last=False)
            self.seg_used[0] -= c[0]
            c[1] = 1
            self.seg[1][k] = c
            self.seg_used[1] += c[0]
            fc = self.sketch.estimate(k)
            while self.seg_used[1] + self.seg_used[2] > self.main_cap:
                v = self._victim()
                if v[0] == k:
                    self._drop(k, c)
                    break
                if fc > self.sketch.estimate(v[0]):
                    self._drop(*v)
                else:
                    self._drop(k, c)
                    break
        while self.used > self.capacity:  # one object bigger than the window: fall back to plain LRU order
            for s in (0, 1, 2):
                if self.seg[s]:
                    self._drop(*next(iter(self.seg[s].items())))
                    break

    def remove(self, key):
        e = self.e.get(key)
        if e is None:
            return False
        cb, self.on_evict = self.on_evict, None
        self._drop(key, e)
        self.on_evict = cb
        return True

    def __len__(self):
        return len(self.e)


CLASSES = {c.name: c for c in (LRU, FIFO, Random, Clock, LFU, Sieve, S3FIFO, TinyLFU)}


def make_policy(name: str, capacity: int, seed: int | None = None) -> Policy:
    """A policy core by name (one of ``POLICIES``); ``capacity`` in bytes or objects."""
    cls = CLASSES.get(name)
    if cls is None:
        raise ValueError(f"bad policy {name!r}: expected one of {', '.join(POLICIES)}")
    return cls(capacity, seed)


# ---- values, versions and TTLs -------------------------------------------------------------------
class CacheStore:
    """Values over a policy, with TTLs. ``ttl_ns`` 0: entries never expire. ``unit``: "bytes"
    (a value occupies its size) or "objects" (every value occupies 1)."""

    def __init__(self, policy: Policy, ttl_ns: int = 0, ttl_mode: str = "fill", unit: str = "bytes"):
        if ttl_mode not in TTL_MODES:
            raise ValueError(f"bad ttl_mode {ttl_mode!r}: expected fill or access")
        self.policy = policy
        self.ttl_ns = int(ttl_ns)
        self.ttl_mode = ttl_mode
        self.by_bytes = unit == "bytes"
        self.values: dict = {}  # key -> [value, expires_ns (0: never), stored_ns, size]
        self.evictions = self.expirations = 0
        self.evicted: list | None = None  # when a list, evicted keys are appended (for persistence)
        policy.on_evict = self._evicted

    def _evicted(self, key) -> None:
        self.values.pop(key, None)
        self.evictions += 1
        if self.evicted is not None:
            self.evicted.append(key)

    def get(self, key, now_ns: int):
        """(hit, value)."""
        v = self.values.get(key)
        if v is None:
            return False, None
        if v[1] and now_ns >= v[1]:
            self.policy.remove(key)
            del self.values[key]
            self.expirations += 1
            return False, None
        self.policy.lookup(key)
        if self.ttl_mode == "access" and self.ttl_ns:
            v[1] = now_ns + self.ttl_ns
        return True, v[0]

    def peek(self, key, now_ns: int):
        """(present and unexpired, value, expires_ns) without touching the policy's metadata."""
        v = self.values.get(key)
        if v is None or (v[1] and now_ns >= v[1]):
            return False, None, 0
        return True, v[0], v[1]

    def set(self, key, value, size: int, now_ns: int, ttl_ns: int | None = None) -> bool:
        ttl = self.ttl_ns if ttl_ns is None else ttl_ns
        if key in self.values:
            del self.values[key]
        ok = self.policy.insert(key, size if self.by_bytes else 1)
        if ok:
            self.values[key] = [value, now_ns + ttl if ttl else 0, now_ns, size]
        return ok

    def delete(self, key) -> bool:
        if self.values.pop(key, None) is None:
            return False
        self.policy.remove(key)
        return True

    def __len__(self) -> int:
        return len(self.values)


# ---- the node ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheSpec:
    """capacity        bytes (``unit="bytes"``) or objects (``unit="objects"``)
    policy             one of ``POLICIES``
    ttl_ms             0: no expiry
    ttl_mode           ``fill`` | ``access``
    leases             hand out Memcache lease tokens on misses
    lease_ms           a token older than this no longer makes other misses wait
    persist            restart warm (the contents survive a crash, as a cache on local flash would)
    clock              ``wall``: TTLs and leases read ``ctx.now``; ``monotonic``: they count timer
                       ticks of ``tick_ms`` (plus the wall clock's progress since the last tick,
                       clamped to one tick), so a stepped wall clock does not stretch a TTL
    """

    name: str = "cache"
    capacity: int = 64 * 1024 * 1024
    unit: str = "bytes"
    policy: str = "lru"
    ttl_ms: float = 0.0
    ttl_mode: str = "fill"
    leases: bool = False
    lease_ms: float = 100.0
    persist: bool = False
    clock: str = "wall"
    tick_ms: float = 10.0
    honour_deletes_for_leases: bool = True  # False is the planted bug ``ignore-lease``


@message
class CacheGet:
    rid: int
    key: Any
    lease: bool = False  # ask for a lease token on a miss


@message
class CacheSet:
    """``token``: a lease (0: none); ``version`` > 0: refused if the key holds a higher version
    (a versioned write-through); ``add``: store only if the key is absent (memcached ``add``)."""

    rid: int
    key: Any
    value: Any
    size: int = 1
    token: int = 0
    ttl_ms: float = -1.0  # < 0: the cache's TTL
    version: int = 0
    add: bool = False


@message
class CacheDelete:
    rid: int
    key: Any


@message
class CacheReply:
    """``hit`` with ``value``; on a miss ``token`` (a lease, 0: none) or ``wait`` (another holder
    has the lease: retry shortly); for a set, ``hit`` says whether it was stored."""

    rid: int
    hit: bool
    value: Any = None
    token: int = 0
    wait: bool = False
    ttl_left_ms: float = 0.0  # a hit's time to expiry (0: none), for early recomputation


class Cache(Node):
    """A cache node. Records: ``cache.set`` (key, value, token, stored, why), ``cache.delete`` (key,
    had), ``cache.lease`` (key, token). Gets are counted per second of true time in ``counts``
    (second -> [hits, misses]) rather than recorded one by one."""

    def __init__(self, spec: CacheSpec, seed: int = 0):
        self.spec = spec
        self.store = CacheStore(make_policy(spec.policy, spec.capacity, seed), int(spec.ttl_ms * 1e6), spec.ttl_mode,
                                spec.unit)
        self.tokens: dict = {}  # key -> (token, issued_ns)
        self.next_token = 0
        self.versions: dict = {}  # key -> the version a versioned set stored
        self.ticks = 0
        self.tick_ns = int(spec.tick_ms * 1e6)
        self.last_tick_wall = 0
        self.counts: dict[int, list[int]] = {}  # second -> [hits, misses]

    def now(self, ctx) -> int:
        """The cache's clock: the wall clock, or the monotonic tick count (see ``CacheSpec.clock``)."""
        if self.spec.clock == "wall":
            return ctx.now
        return self.ticks * self.tick_ns + min(max(0, ctx.now - self.last_tick_wall), self.tick_ns)

    def on_timer(self, ctx, name):
        if name == "cache.tick":
            self.ticks += 1
            self.last_tick_wall = ctx.now
            ctx.set_timer("cache.tick", self.spec.tick_ms)

    def on_start(self, ctx):
        if self.spec.clock == "monotonic":
            self.last_tick_wall = ctx.now
            ctx.set_timer("cache.tick", self.spec.tick_ms)
        if self.spec.persist:
            self.store.evicted = []
            st = ctx.storage
            for name in list(st.keys()):
                if name.startswith("c/"):
                    key, value, size, ttl_left, _ = st.get(name)
                    if ttl_left >= 0:  # a monotonic clock restarts at 0: keep the TTL left, at worst
                        self.store.set(key, value, size, self.now(ctx), ttl_ns=ttl_left)
            # Tokens handed out before the crash must not be valid after it.
            self.next_token = st.get("cache.tokens", 0) + 1_000_000

    def _persist(self, ctx, key) -> None:
        # A warm restart needs the contents on disk: written unsynced (a page-cache write), which a
        # crash keeps unless the fault loses unsynced writes.
        st = ctx.storage
        v = self.store.values.get(key)
        if v is None:
            st.delete(f"c/{key}", sync=False)
        else:
            st.put(f"c/{key}", (key, v[0], v[3], self.store.ttl_ns if v[1] else 0, v[2]), sync=False)
        for k in self.store.evicted:
            st.delete(f"c/{k}", sync=False)
        self.store.evicted.clear()
        st.put("cache.tokens", self.next_token, sync=False)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        now = self.now(ctx)
        if t is CacheGet:
            hit, value = self.store.get(msg.key, now)
            c = self.counts.get(ctx.now // 1_000_000_000)
            if c is None:
                c = self.counts[ctx.now // 1_000_000_000] = [0, 0]
            c[0 if hit else 1] += 1
            if hit:
                exp = self.store.values[msg.key][1]
                ctx.send(src, CacheReply(msg.rid, True, value, ttl_left_ms=(exp - now) / 1e6 if exp else 0.0))
                return
            if not msg.lease or not self.spec.leases:
                ctx.send(src, CacheReply(msg.rid, False))
                return
            held = self.tokens.get(msg.key)
            if held is not None and now - held[1] < self.spec.lease_ms * 1e6:
                ctx.send(src, CacheReply(msg.rid, False, wait=True))
                return
            self.next_token += 1
            self.tokens[msg.key] = (self.next_token, now)
            ctx.record("cache.lease", key=msg.key, token=self.next_token)
            ctx.send(src, CacheReply(msg.rid, False, token=self.next_token))
        elif t is CacheSet:
            why = ""
            if msg.token:
                held = self.tokens.get(msg.key)
                if held is None or held[0] != msg.token:
                    why = "stale-token"
                else:
                    del self.tokens[msg.key]
            stored = False
            if not why and msg.add and self.store.peek(msg.key, now)[0]:
                why = "present"
            if not why and msg.version and self.versions.get(msg.key, 0) > msg.version:
                why = "older-version"
            if not why:
                ttl = None if msg.ttl_ms < 0 else int(msg.ttl_ms * 1e6)
                stored = self.store.set(msg.key, msg.value, msg.size, now, ttl)
                why = "" if stored else "too-large"
                if stored and msg.version:
                    self.versions[msg.key] = msg.version
            ctx.record("cache.set", key=msg.key, value=msg.value, token=msg.token, stored=stored, why=why)
            if self.spec.persist:
                self._persist(ctx, msg.key)
            ctx.send(src, CacheReply(msg.rid, stored))
        elif t is CacheDelete:
            had = self.store.delete(msg.key)
            self.versions.pop(msg.key, None)
            if self.spec.leases and self.spec.honour_deletes_for_leases:
                self.tokens.pop(msg.key, None)
            ctx.record("cache.delete", key=msg.key, had=had)
            if self.spec.persist:
                self._persist(ctx, msg.key)
            ctx.send(src, CacheReply(msg.rid, had))
