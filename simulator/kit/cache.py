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
from itertools import repeat
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

    def replay(self, keys, sizes=None) -> tuple[int, int]:
        """Drive ``request`` over a trace; (misses, bytes missed). ``sizes`` None: every size 1.

        This is the reference loop; each policy overrides it with one tight loop of its own (the
        replay tool runs millions of requests, where a method call per request halves the rate),
        and ``tests/test_kit_cache.py`` holds each override to this one's counts."""
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
    RECENCY = True  # a hit moves the key to the newest end (FIFO: it does not)

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.d: OrderedDict = OrderedDict()  # key -> size, least recent (or oldest) first

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
        """LRU's and FIFO's loop, one for both: they differ only in what a hit does, a test of a
        local flag (a few percent of the rate; a function call per hit would cost a third)."""
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        d, cap, used, recency = self.d, self.capacity, self.used, self.RECENCY
        get, mte, pop, popi = d.get, d.move_to_end, d.pop, d.popitem
        misses = missed = 0
        if sizes is None:  # every size 1: a hit is membership
            for k in keys:
                if k in d:
                    if recency:
                        mte(k)
                    continue
                misses += 1
                used += 1
                while used > cap:
                    used -= popi(False)[1]
                d[k] = 1
            self.used = used
            return misses, misses
        for k, s in zip(keys, sizes):
            c = get(k)
            if c == s:
                if recency:
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
                used -= popi(False)[1]
            d[k] = s
        self.used = used
        return misses, missed


class FIFO(LRU):
    name = "fifo"
    RECENCY = False

    def lookup(self, key):
        return key in self.d


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

    def replay(self, keys, sizes=None):
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        where, klist, cap, used, rng = self.where, self.keys, self.capacity, self.used, self.rng
        get, pop, kpop, append = where.get, where.pop, klist.pop, klist.append
        u = self._u
        upop = u.pop
        misses = missed = 0
        for k, s in zip(keys, repeat(1) if sizes is None else sizes):
            w = get(k)
            if w is not None:
                if w[1] == s:
                    continue
                i = pop(k)[0]
                last = kpop()
                if i < len(klist):
                    klist[i] = last
                    where[last][0] = i
                used -= w[1]
            misses += 1
            missed += s
            if s > cap:
                continue
            used += s
            while used > cap:
                if not u:  # the same blocks of uniforms, in the same order, as _draw
                    u = self._u = rng.random(4096).tolist()
                    upop = u.pop
                i = int(upop() * len(klist))
                victim = klist[i]
                used -= pop(victim)[1]
                last = kpop()
                if i < len(klist):
                    klist[i] = last
                    where[last][0] = i
            where[k] = [len(klist), s]
            append(k)
        self.used = used
        return misses, missed

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

    def replay(self, keys, sizes=None):
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        d, cap, used = self.d, self.capacity, self.used
        get, pop, popi = d.get, d.pop, d.popitem
        misses = missed = 0
        for k, s in zip(keys, repeat(1) if sizes is None else sizes):
            e = get(k)
            if e is not None:
                if e[0] == s:
                    e[1] = True
                    continue
                pop(k)
                used -= e[0]
            misses += 1
            missed += s
            if s > cap:
                continue
            used += s
            while used > cap:
                kk, ee = popi(False)
                if ee[1]:
                    ee[1] = False
                    d[kk] = ee
                else:
                    used -= ee[0]
            d[k] = [s, False]
        self.used = used
        return misses, missed

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
    """O(1) LFU (Shah et al.): frequency -> keys in recency order; ties evict the least recent.

    ``low`` is a lower bound of the smallest frequency present, made exact only when an eviction
    needs it: a bucket emptied by an eviction or a removal used to cost a ``min`` over every
    frequency, which on a long Zipf trace (thousands of distinct counts) was most of the time."""

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

    @staticmethod
    def _lowest(by: dict, low: int) -> int:
        """The smallest frequency present, given a lower bound of it (``by`` is not empty)."""
        if low in by:
            return low
        for f in range(low + 1, low + 64):  # counts cluster low: a short walk usually finds it
            if f in by:
                return f
        return min(by)

    def _admit(self, key, size):
        self.used += size
        by = self.by
        while self.used > self.capacity:
            self.low = low = self._lowest(by, self.low)
            b = by[low]
            k, _ = b.popitem(last=False)
            if not b:
                del by[low]
            self.used -= self.d.pop(k)[0]
            if self.on_evict is not None:
                self.on_evict(k)
        self.d[key] = [size, 1]
        b = by.get(1)
        if b is None:
            b = by[1] = OrderedDict()
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
        if not self.by:
            self.low = 1
        self.used -= e[0]
        return True

    def replay(self, keys, sizes=None):
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        d, by, cap, used, low, lowest = self.d, self.by, self.capacity, self.used, self.low, self._lowest
        get, byget = d.get, by.get
        misses = missed = 0
        for k, s in zip(keys, repeat(1) if sizes is None else sizes):
            e = get(k)
            if e is not None:
                f = e[1]
                b = by[f]
                del b[k]
                if not b:
                    del by[f]
                    if low == f:
                        low = f + 1
                if e[0] == s:
                    f += 1
                    e[1] = f
                    nb = byget(f)
                    if nb is None:
                        nb = by[f] = OrderedDict()
                    nb[k] = None
                    continue
                del d[k]
                used -= e[0]
                if not by:
                    low = 1
            misses += 1
            missed += s
            if s > cap:
                continue
            used += s
            while used > cap:
                low = lowest(by, low)
                b = by[low]
                kk = b.popitem(False)[0]
                if not b:
                    del by[low]
                used -= d.pop(kk)[0]
            d[k] = [s, 1]
            b = byget(1)
            if b is None:
                b = by[1] = OrderedDict()
            b[k] = None
            low = 1
        self.used, self.low = used, low
        return misses, missed

    def __len__(self):
        return len(self.d)


class Sieve(Policy):
    """The queue split at the hand into two ordered dicts: ``ahead`` runs from the hand to the
    newest object, ``behind`` from the oldest to just before the hand. The hand takes ``ahead``'s
    first object: a visited one has its bit cleared and moves to ``behind``'s end (it keeps its
    place in the queue), an unvisited one is evicted. When ``ahead`` runs out the hand wraps to the
    oldest object: ``behind`` becomes ``ahead``. ``ahead`` is empty only when ``behind`` is too, so
    a newcomer (appended to ``ahead``, the newest end) never lands in front of the hand."""

    name = "sieve"

    def __init__(self, capacity, seed=None):
        super().__init__(capacity)
        self.e: dict = {}  # key -> [size, visited]
        self.ahead: OrderedDict = OrderedDict()
        self.behind: OrderedDict = OrderedDict()

    def size_of(self, key):
        e = self.e.get(key)
        return None if e is None else e[0]

    def lookup(self, key):
        e = self.e.get(key)
        if e is None:
            return False
        e[1] = True
        return True

    def _admit(self, key, size):
        self.used += size
        while self.used > self.capacity:
            k, e = self.ahead.popitem(last=False)
            if e[1]:
                e[1] = False
                self.behind[k] = e
            else:
                self.used -= e[0]
                del self.e[k]
                if self.on_evict is not None:
                    self.on_evict(k)
            if not self.ahead:
                self.ahead, self.behind = self.behind, self.ahead
        e = self.e[key] = [size, False]
        self.ahead[key] = e

    def remove(self, key):
        e = self.e.pop(key, None)
        if e is None:
            return False
        if self.behind.pop(key, None) is None:
            del self.ahead[key]
            if not self.ahead:
                self.ahead, self.behind = self.behind, self.ahead
        self.used -= e[0]
        return True

    def replay(self, keys, sizes=None):
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        E, ahead, behind, cap, used = self.e, self.ahead, self.behind, self.capacity, self.used
        get = E.get
        misses = missed = 0
        for k, s in zip(keys, repeat(1) if sizes is None else sizes):
            e = get(k)
            if e is not None:
                if e[0] == s:
                    e[1] = True
                    continue
                del E[k]
                if behind.pop(k, None) is None:
                    del ahead[k]
                    if not ahead:
                        ahead, behind = behind, ahead
                used -= e[0]
            misses += 1
            missed += s
            if s > cap:
                continue
            used += s
            while used > cap:
                kk, ee = ahead.popitem(False)
                if ee[1]:
                    ee[1] = False
                    behind[kk] = ee
                else:
                    used -= ee[0]
                    del E[kk]
                if not ahead:
                    ahead, behind = behind, ahead
            e = E[k] = [s, False]
            ahead[k] = e
        self.used, self.ahead, self.behind = used, ahead, behind
        return misses, missed

    def __len__(self):
        return len(self.e)


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

    def replay(self, keys, sizes=None):
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        E, small, main, ghost, cap, used = self.e, self.small, self.main, self.ghost, self.capacity, self.used
        small_used, main_used, ghost_used, small_cap = self.small_used, self.main_used, self.ghost_used, self.small_cap
        ghost_cap = cap - small_cap
        get, spop, mpop, gpopi, gpop = E.get, small.popitem, main.popitem, ghost.popitem, ghost.pop
        misses = missed = 0
        for k, s in zip(keys, repeat(1) if sizes is None else sizes):
            e = get(k)
            if e is not None:
                if e[0] == s:
                    if e[1] < 3:
                        e[1] += 1
                    continue
                del E[k]
                if e[2]:
                    del main[k]
                    main_used -= e[0]
                else:
                    del small[k]
                    small_used -= e[0]
                used -= e[0]
            misses += 1
            missed += s
            if s > cap:
                continue
            while used + s > cap:
                if small_used >= small_cap or not main:
                    kk, ee = spop(False)
                    z = ee[0]
                    small_used -= z
                    if ee[1] > 1:
                        ee[1] = 0
                        ee[2] = True
                        main[kk] = ee
                        main_used += z
                        continue
                    used -= z
                    del E[kk]
                    ghost[kk] = z
                    ghost_used += z
                    while ghost_used > ghost_cap and ghost:
                        ghost_used -= gpopi(False)[1]
                else:
                    while True:
                        kk, ee = mpop(False)
                        if ee[1] > 0:
                            ee[1] -= 1
                            main[kk] = ee
                            continue
                        main_used -= ee[0]
                        used -= ee[0]
                        del E[kk]
                        break
            g = gpop(k, None)
            if g is not None:
                ghost_used -= g
                e = E[k] = [s, 0, True]
                main[k] = e
                main_used += s
            else:
                e = E[k] = [s, 0, False]
                small[k] = e
                small_used += s
            used += s
        self.used, self.small_used, self.main_used, self.ghost_used = used, small_used, main_used, ghost_used
        return misses, missed

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

    def slots_of(self, keys: list):
        """key -> its four slots (a tuple), for every key of a stream, hashed once per distinct key:
        a list indexed by the key when the keys are small non-negative integers (a trace's dense
        ids), else a dict. Integer keys are hashed with numpy: a uint64 product keeps the low 64
        bits of Python's exact one, and a slot reads only bits 13 to 13 + log2(width) < 64 of it,
        so the slots are ``_slots``'s."""
        arr = None
        if keys and type(keys[0]) is int:
            try:
                arr = np.asarray(keys)
            except OverflowError:
                arr = None
        if arr is None or arr.dtype.kind not in "iu":
            return {k: self._slots(k) for k in dict.fromkeys(keys)}
        lo, hi = int(arr.min()), int(arr.max())
        dense = lo >= 0 and hi < max(1 << 20, 2 * len(keys))
        ids = np.arange(hi + 1) if dense else np.unique(arr)
        x = ids.astype(np.uint64) + np.uint64(1)
        m, w = np.uint64(self.mask), self.width
        rows = [((((x * np.uint64(c)) >> np.uint64(13)) & m).astype(np.int64) + r * w).tolist()
                for r, c in enumerate(self.MULTIPLIERS)]
        return list(zip(*rows)) if dense else dict(zip(ids.tolist(), zip(*rows)))

    def add(self, key) -> None:
        """Count ``key`` (each of its four counters, capped at 15). The sketch ages (TinyLFU's reset:
        every counter and the count halved) as the increment after the ``sample``-th arrives, not
        straight after it: the replay loops then run in chunks between agings, with no test a request."""
        if self.count >= self.sample:
            self.count //= 2
            self.table = [v >> 1 for v in self.table]
        t = self.table
        for i in self._slots(key):
            if t[i] < 15:
                t[i] += 1
        self.count += 1

    def estimate(self, key) -> int:
        t = self.table
        return min(t[i] for i in self._slots(key))


class TinyLFU(Policy):
    """W-TinyLFU: window LRU -> (admission by the sketch) -> SLRU probation / protected.

    An entry is ``[size, segment, slots]`` (segment 0 window, 1 probation, 2 protected; ``slots``
    the key's four sketch slots, so a duel reads the counters without hashing), shared by ``e``
    and the segment's ordered dict (oldest first)."""

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
        self.e: dict = {}
        self.seg = (OrderedDict(), OrderedDict(), OrderedDict())
        self.seg_used = [0, 0, 0]

    def size_of(self, key):
        e = self.e.get(key)
        return None if e is None else e[0]

    def request(self, key, size=1):
        if self.size_of(key) == size:
            return self.lookup(key)  # counted there
        self.sketch.add(key)
        return Policy.request(self, key, size)  # a miss: a changed size is dropped, then admitted

    def lookup(self, key):
        """A hit through a ``CacheStore`` (a node's get): counted in the sketch, as a request is."""
        e = self.e.get(key)
        if e is None:
            return False
        self.sketch.add(key)
        self._hit(key, e)
        return True

    def insert(self, key, size):
        """A fill through a ``CacheStore``: counted in the sketch, since the miss before it never
        reaches the policy (Caffeine counts its writes too); without the count, a node's sketch
        stayed at zero and, main once full, turned every newcomer away."""
        self.sketch.add(key)
        return Policy.insert(self, key, size)

    # A counter's next value (capped at 15): one table read instead of a compare and an add, on
    # the four counters each request touches.
    INC = tuple(range(1, 16)) + (15,)

    def replay(self, keys, sizes=None):
        if self.on_evict is not None:
            return Policy.replay(self, keys, sizes)
        if not isinstance(keys, list):
            keys = list(keys)
        slots = self.sketch.slots_of(keys)
        if sizes is None and all(e[0] == 1 for e in self.e.values()):
            return self._replay_units(keys, slots)
        sk, inc = self.sketch, self.INC
        t, count, sample = sk.table, sk.count, sk.sample
        E, (W, P, R) = self.e, self.seg
        wu, pu, ru = self.seg_used
        cap, used, window_cap, main_cap, protected_cap = (self.capacity, self.used, self.window_cap, self.main_cap,
                                                          self.protected_cap)
        get = E.get
        misses = missed = 0
        for k, s in zip(keys, repeat(1) if sizes is None else sizes):
            if count >= sample:
                count //= 2
                t = [v >> 1 for v in t]
            sl = slots[k]
            a, b, c, d = sl
            t[a] = inc[t[a]]
            t[b] = inc[t[b]]
            t[c] = inc[t[c]]
            t[d] = inc[t[d]]
            count += 1
            e = get(k)
            if e is not None:
                g, z = e[1], e[0]
                if z == s:
                    if g == 2:
                        R.move_to_end(k)
                    elif g == 0:
                        W.move_to_end(k)
                    else:  # a probation hit is promoted; protected overflow goes back to probation
                        del P[k]
                        pu -= z
                        e[1] = 2
                        R[k] = e
                        ru += z
                        while ru > protected_cap and len(R) > 1:
                            kk, ee = R.popitem(False)
                            ru -= ee[0]
                            ee[1] = 1
                            P[kk] = ee
                            pu += ee[0]
                    continue
                del E[k]
                used -= z
                if g == 0:
                    del W[k]
                    wu -= z
                elif g == 1:
                    del P[k]
                    pu -= z
                else:
                    del R[k]
                    ru -= z
            misses += 1
            missed += s
            if s > cap:
                continue
            e = E[k] = [s, 0, sl]
            W[k] = e
            wu += s
            used += s
            while wu > window_cap and len(W) > 1:
                kk, cc = W.popitem(False)
                z = cc[0]
                wu -= z
                cc[1] = 1
                # The candidate joins probation's newest end and duels probation's oldest while main
                # overflows; it is its own victim once it is probation's only object. Joining only
                # if it wins is the same and spares an insert and a delete when it loses.
                if pu + ru + z > main_cap:
                    a, b, c, d = cc[2]
                    fc = min(t[a], t[b], t[c], t[d])
                    while P:
                        vk = next(iter(P))
                        ve = P[vk]
                        a, b, c, d = ve[2]
                        if fc <= min(t[a], t[b], t[c], t[d]):
                            break
                        del P[vk]
                        pu -= ve[0]
                        del E[vk]
                        used -= ve[0]
                        if pu + ru + z <= main_cap:
                            break
                    if pu + ru + z > main_cap:
                        del E[kk]
                        used -= z
                        continue
                P[kk] = cc
                pu += z
            while used > cap:  # one object bigger than the window: plain LRU order
                vseg = W if W else (P if P else R)
                vk, ve = vseg.popitem(False)
                if vseg is W:
                    wu -= ve[0]
                elif vseg is P:
                    pu -= ve[0]
                else:
                    ru -= ve[0]
                del E[vk]
                used -= ve[0]
        sk.table, sk.count = t, count
        self.seg_used[:] = [wu, pu, ru]
        self.used = used
        return misses, missed

    def _replay_units(self, keys, slots):
        """The loop for a stream of unit sizes over a cache holding only unit sizes (capacity in
        objects): a segment's use is its length, so each segment is an ordered dict of key ->
        slots and the entries are rebuilt once at the end. Each step of ``replay``'s loop shrinks
        to one: a hit promotes at most one object out of protected; a miss pushes at most one
        candidate out of the window, which duels at most one victim (probation's oldest; none when
        probation is empty, as the candidate would be its own victim). Main, once full, stays full
        (only a duel takes an object out, and only to let the winner in)."""
        sk, inc = self.sketch, self.INC
        t, count, sample = sk.table, sk.count, sk.sample
        W, P, R = (OrderedDict((k, e[2]) for k, e in seg.items()) for seg in self.seg)
        wcap, mcap, pcap = max(1, self.window_cap), self.main_cap, max(1, self.protected_cap)
        mte_r, mte_w, pop_p, popi_r, popi_w = R.move_to_end, W.move_to_end, P.pop, R.popitem, W.popitem
        full = len(P) + len(R) >= mcap
        misses = 0
        n, i = len(keys), 0
        while i < n:
            if count >= sample:
                count //= 2
                t = [v >> 1 for v in t]
            j = min(n, i + sample - count)
            for k in keys[i:j]:
                sl = slots[k]
                a, b, c, d = sl
                t[a] = inc[t[a]]
                t[b] = inc[t[b]]
                t[c] = inc[t[c]]
                t[d] = inc[t[d]]
                if k in R:
                    mte_r(k)
                    continue
                if k in W:
                    mte_w(k)
                    continue
                if k in P:
                    R[k] = pop_p(k)
                    if len(R) > pcap:
                        kk, v = popi_r(False)
                        P[kk] = v
                    continue
                misses += 1
                W[k] = sl
                if len(W) > wcap:
                    kk, cs = popi_w(False)
                    if not full:
                        if len(P) + len(R) < mcap:
                            P[kk] = cs
                            continue
                        full = True
                    if P:
                        vk = next(iter(P))
                        a, b, c, d = cs
                        fc = t[a]
                        x = t[b]
                        if x < fc:
                            fc = x
                        x = t[c]
                        if x < fc:
                            fc = x
                        x = t[d]
                        if x < fc:
                            fc = x
                        a, b, c, d = P[vk]
                        if t[a] < fc or t[b] < fc or t[c] < fc or t[d] < fc:  # the candidate is more frequent
                            del P[vk]
                            P[kk] = cs
            count += j - i
            i = j
        sk.table, sk.count = t, count
        self.seg = tuple(OrderedDict((k, [1, g, v]) for k, v in seg.items()) for g, seg in enumerate((W, P, R)))
        self.e = {k: e for seg in self.seg for k, e in seg.items()}
        self.seg_used = [len(W), len(P), len(R)]
        self.used = len(self.e)
        return misses, misses

    def _hit(self, key, e) -> None:
        s = e[1]
        if s == 2 or s == 0:
            self.seg[s].move_to_end(key)
            return
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
        e = [size, 0, self.sketch._slots(key)]  # the slots ride along for replay's estimates
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
    (a versioned write-through); ``add``: store only if the key is absent (memcached ``add``).
    ``rid`` 0: the sender wants no reply (memcached's ``noreply``), as for a demand fill nobody
    waits on."""

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
    """``rid`` 0: no reply (memcached's ``noreply``), as for a commit stream's invalidation."""

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
        self.wall = spec.clock == "wall"

    def now(self, ctx) -> int:
        """The cache's clock: the wall clock, or the monotonic tick count (see ``CacheSpec.clock``)."""
        return self._clock(ctx.now)

    def _clock(self, wall: int) -> int:
        """The cache's clock at wall time ``wall``: the ticks counted, plus the time since the last
        tick clamped to one tick (a wall clock stepped back or far ahead moves it by no more)."""
        if self.wall:
            return wall
        since, tick = wall - self.last_tick_wall, self.tick_ns
        return self.ticks * tick + (since if 0 <= since <= tick else (0 if since < 0 else tick))

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
        wall = ctx.now
        now = self._clock(wall)
        if t is CacheGet:
            store = self.store
            v = store.values.get(msg.key)
            hit, value = (False, None) if v is None else store.get(msg.key, now)
            sec = wall // 1_000_000_000
            c = self.counts.get(sec)
            if c is None:
                c = self.counts[sec] = [0, 0]
            if hit:
                c[0] += 1
                exp = v[1]  # as the store's get left it (an access TTL starts again)
                ctx.send(src, CacheReply(msg.rid, True, value, ttl_left_ms=(exp - now) / 1e6 if exp else 0.0))
                return
            c[1] += 1
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
            if msg.rid:
                ctx.send(src, CacheReply(msg.rid, stored))
        elif t is CacheDelete:
            had = self.store.delete(msg.key)
            self.versions.pop(msg.key, None)
            if self.spec.leases and self.spec.honour_deletes_for_leases:
                self.tokens.pop(msg.key, None)
            ctx.record("cache.delete", key=msg.key, had=had)
            if self.spec.persist:
                self._persist(ctx, msg.key)
            if msg.rid:
                ctx.send(src, CacheReply(msg.rid, had))
