"""The cache kit component: eviction policy cores, TTLs, and the Cache node's leases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import FakeContext
from simulator.kit.cache import (POLICIES, Cache, CacheDelete, CacheGet, CacheReply, CacheSet, CacheSpec, CacheStore,
                                 make_policy)

MS = 1_000_000


def run(policy, seq, capacity=2):
    """The requests of ``seq`` (keys, size 1) that hit."""
    p = make_policy(policy, capacity)
    return [k for k in seq if p.request(k, 1)]


def test_lru_evicts_the_least_recently_used():
    """LRU with room for 2: after a, b, a, the arrival of c evicts b, not a."""
    assert run("lru", "abaca") == ["a", "a"]
    assert run("fifo", "abaca") == ["a"]


def test_fifo_ignores_hits_when_evicting():
    """FIFO with room for 2: a hit on a does not save it; c evicts a, the oldest insertion."""
    assert run("fifo", "abacba") == ["a", "b"]


def test_clock_gives_a_referenced_object_a_second_chance():
    """CLOCK with room for 2: a was hit, so c evicts b; a's bit is then spent and the next miss (b) evicts it."""
    assert run("clock", "abaca") == ["a", "a"]
    assert run("clock", "abacbca") == ["a", "c"]


def test_sieve_hand_skips_visited_objects():
    """SIEVE with room for 2: a was visited, so the hand clears its bit and evicts b."""
    assert run("sieve", "abaca") == ["a", "a"]


def test_lfu_evicts_the_least_frequent_ties_by_recency():
    """LFU with room for 2: a (twice) outlives b (once); among equals the least recent goes first."""
    assert run("lfu", "aabca") == ["a", "a"]
    assert run("lfu", "abcb") == ["b"]  # a and b tie at 1: a, the less recent, makes room for c


@pytest.mark.parametrize("policy", ["s3-fifo", "tinylfu"])
def test_scan_resistant_policies_keep_a_hot_key_through_a_scan(policy):
    """A key hit often survives a scan of 500 one-hit wonders in S3-FIFO and W-TinyLFU (LRU loses it)."""
    for name, survives in ((policy, True), ("lru", False)):
        p = make_policy(name, 100)
        for _ in range(5):
            for k in range(10):
                p.request(("hot", k), 1)
        for i in range(500):
            p.request(("scan", i), 1)
        assert (("hot", 3) in p) is survives, name


def test_random_is_reproducible_from_its_seed():
    """Two random-policy cores with one seed evict the same objects; another seed differs."""
    seq = [i % 37 for i in range(0, 3000, 7)] + list(range(500))

    def hits(seed):
        p = make_policy("random", 10, seed)
        return [p.request(k, 1) for k in seq]

    assert hits(1) == hits(1)
    assert hits(1) != hits(2)


def test_unknown_policy_names_the_accepted_ones():
    """A bad policy name is refused with the list of policies."""
    with pytest.raises(ValueError, match="bad policy 'arc'.*lru, fifo"):
        make_policy("arc", 10)


@pytest.mark.parametrize("policy", POLICIES)
def test_too_large_objects_are_not_admitted_and_resized_ones_miss(policy):
    """libCacheSim's semantics: an object larger than the cache is not admitted; a cached key asked
    for with another size misses and is replaced."""
    p = make_policy(policy, 100)
    assert not p.request("big", 101)
    assert "big" not in p and p.used == 0
    assert not p.request("a", 10)
    assert p.request("a", 10)
    assert not p.request("a", 20)
    assert p.size_of("a") == 20 and p.used == 20


ops = st.lists(st.tuples(st.sampled_from(["req", "req", "req", "rm"]), st.integers(0, 25), st.integers(1, 12)),
               max_size=300)


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=60, deadline=None)
@given(seq=ops, capacity=st.integers(1, 40))
def test_capacity_is_never_exceeded_and_accounting_holds(policy, seq, capacity):
    """Under any mix of requests and removals: used <= capacity, used is the sum of the cached sizes,
    evictions name cached keys, and a fitting object just requested is cached (tinylfu aside: its
    window may pass a newcomer straight to admission)."""
    p = make_policy(policy, capacity, seed=3)
    cached: dict = {}
    evicted = []
    p.on_evict = evicted.append
    for op, k, s in seq:
        evicted.clear()
        if op == "rm":
            assert p.remove(k) == (k in cached)
            cached.pop(k, None)
        else:
            hit = p.request(k, s)
            assert hit == (cached.get(k) == s)
            for e in evicted:
                if e == k:  # a newcomer turned away at admission (tinylfu)
                    continue
                assert e in cached and e not in p
                del cached[e]
            if s <= capacity:
                if k in p:
                    cached[k] = s
                else:
                    assert policy == "tinylfu"
                    cached.pop(k, None)
                if policy != "tinylfu":
                    assert k in p
            else:
                cached.pop(k, None)
                assert k not in p
        assert p.used <= capacity
        assert p.used == sum(cached.values())
        assert len(p) == len(cached)
        assert all(p.size_of(x) == cached[x] for x in cached)


def lru_model(seq, capacity):
    """A naive byte-capacity LRU on a list: (misses, bytes missed)."""
    order: list = []  # (key, size), least recent first
    misses = missed = 0
    for k, s in seq:
        found = next((i for i, (kk, _) in enumerate(order) if kk == k), None)
        if found is not None and order[found][1] == s:
            order.append(order.pop(found))
            continue
        misses += 1
        missed += s
        if found is not None:
            order.pop(found)
        if s > capacity:
            continue
        while sum(x for _, x in order) + s > capacity:
            order.pop(0)
        order.append((k, s))
    return misses, missed


def one_by_one(p, keys, sizes=None):
    """The node-level core driven one request at a time: (misses, bytes missed)."""
    misses = missed = 0
    for i, k in enumerate(keys):
        s = 1 if sizes is None else sizes[i]
        if not p.request(k, s):
            misses += 1
            missed += s
    return misses, missed


@settings(max_examples=60, deadline=None)
@given(seq=st.lists(st.tuples(st.integers(0, 15), st.integers(1, 9)), max_size=200), capacity=st.integers(1, 30))
def test_lru_fast_replay_matches_a_naive_model_and_request(seq, capacity):
    """LRU's inlined replay loop gives the miss counts of a naive list model and of request() one by one."""
    expect = lru_model(seq, capacity)
    keys, sizes = [k for k, _ in seq], [s for _, s in seq]
    assert make_policy("lru", capacity).replay(keys, sizes) == expect
    assert one_by_one(make_policy("lru", capacity), keys, sizes) == expect


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=40, deadline=None)
@given(seq=st.lists(st.tuples(st.integers(0, 15), st.integers(1, 9)), max_size=300), capacity=st.integers(1, 30),
       then=st.lists(st.tuples(st.integers(0, 15), st.integers(1, 9)), max_size=30))
def test_every_replay_loop_equals_request_one_by_one(policy, seq, capacity, then):
    """A policy's tight replay loop counts the misses and bytes that request() one at a time would (with
    or without sizes), and leaves the core in the same state: the requests after it agree too."""
    keys, sizes = [k for k, _ in seq], [s for _, s in seq]
    more_keys, more_sizes = [k for k, _ in then], [s for _, s in then]
    for sz, more in ((sizes, more_sizes), (None, None)):
        fast, slow = make_policy(policy, capacity, 5), make_policy(policy, capacity, 5)
        assert fast.replay(keys, sz) == one_by_one(slow, keys, sz)
        assert fast.used == slow.used and len(fast) == len(slow)
        assert one_by_one(fast, more_keys, more) == one_by_one(slow, more_keys, more)


@pytest.mark.parametrize("policy", POLICIES)
def test_replay_loops_equal_request_on_a_long_zipf_trace_with_text_keys(policy):
    """On a 20,000-request Zipf trace with sizes that sometimes change, each replay loop equals
    request() one by one, with integer keys and with text keys (TinyLFU hashes text another way)."""
    import numpy as np

    rng = np.random.default_rng(11)
    ids = np.minimum(rng.zipf(1.2, 20_000), 3000).tolist()
    sizes = [(k * 7919) % 50 + 1 if rng.random() < 0.98 else 60 for k in ids]
    for keys in (ids, [f"k{k}" for k in ids]):
        for cap in (40, 2000):
            assert make_policy(policy, cap, 9).replay(keys, sizes) == one_by_one(make_policy(policy, cap, 9), keys, sizes)


def test_ttl_fill_expires_at_a_fixed_time_and_access_resets_it():
    """ttl_mode=fill: a value stored at 0 with TTL 100 ms is gone at 100 ms however often it is read;
    ttl_mode=access: each hit pushes the expiry another 100 ms out."""
    for mode, alive_at_150 in (("fill", False), ("access", True)):
        s = CacheStore(make_policy("lru", 10), ttl_ns=100 * MS, ttl_mode=mode, unit="objects")
        s.set("k", "v", 1, 0)
        assert s.get("k", 60 * MS) == (True, "v")
        assert s.get("k", 150 * MS)[0] is alive_at_150
    s = CacheStore(make_policy("lru", 10), ttl_ns=100 * MS, ttl_mode="access")
    s.set("k", "v", 1, 0)
    assert s.get("k", 100 * MS) == (False, None) and s.expirations == 1 and "k" not in s.policy


def test_store_drops_values_of_evicted_keys():
    """When the policy evicts a key, its value leaves the store too (bytes capacity)."""
    s = CacheStore(make_policy("fifo", 10), unit="bytes")
    s.set("a", 1, 6, 0)
    s.set("b", 2, 6, 0)
    assert s.get("a", 0) == (False, None) and s.get("b", 0) == (True, 2) and s.evictions == 1


def reply(ctx) -> CacheReply:
    (_, msg), = ctx.take_sent()
    return msg


def test_the_node_expires_fill_ttls_and_resets_access_ttls_on_its_hits():
    """Through the node's messages: a fill-TTL value is a miss once its TTL is over (counted as an
    expiration), an access-TTL value read every 60 ms of a 100 ms TTL stays, and each hit says
    how long its value has left."""
    for mode in ("fill", "access"):
        node, ctx = Cache(CacheSpec(ttl_ms=100.0, ttl_mode=mode, unit="objects")), FakeContext("c1")
        node.on_start(ctx)
        node.on_message(ctx, "app", CacheSet(0, "k", "v1"))
        hits = []
        for _ in range(3):
            ctx.advance(60)
            node.on_message(ctx, "app", CacheGet(1, "k"))
            r = reply(ctx)
            hits.append((r.hit, r.ttl_left_ms))
        if mode == "fill":
            assert hits == [(True, 40.0), (False, 0.0), (False, 0.0)] and node.store.expirations == 1
        else:
            assert hits == [(True, 100.0)] * 3 and node.store.expirations == 0
        assert sum(node.counts[0]) == 3


def test_lease_miss_gets_a_token_and_concurrent_misses_wait():
    """With leases, the first miss gets a token, a second miss within lease_ms is told to wait, and
    the holder's set is stored and then hits."""
    node, ctx = Cache(CacheSpec(leases=True, lease_ms=50.0, unit="objects")), FakeContext("c1")
    node.on_message(ctx, "app-1", CacheGet(1, "k", lease=True))
    tok = reply(ctx).token
    assert tok > 0
    node.on_message(ctx, "app-2", CacheGet(2, "k", lease=True))
    assert reply(ctx).wait
    node.on_message(ctx, "app-1", CacheSet(3, "k", "v1", 1, token=tok))
    assert reply(ctx).hit
    node.on_message(ctx, "app-2", CacheGet(4, "k", lease=True))
    assert reply(ctx).value == "v1"


def test_sets_and_deletes_with_rid_zero_get_no_reply_but_take_effect():
    """A set or delete sent with rid 0 (noreply) changes the cache and the records as any other, and
    sends nothing back."""
    node, ctx = Cache(CacheSpec(unit="objects")), FakeContext("c1")
    node.on_message(ctx, "app-1", CacheSet(0, "k", "v1", 1))
    assert ctx.take_sent() == []
    node.on_message(ctx, "app-1", CacheGet(1, "k"))
    assert reply(ctx).value == "v1"
    node.on_message(ctx, "tailer", CacheDelete(0, "k"))
    assert ctx.take_sent() == []
    node.on_message(ctx, "app-1", CacheGet(2, "k"))
    assert not reply(ctx).hit
    assert [r["kind"] for r in ctx.records] == ["cache.set", "cache.delete"]


def test_a_delete_invalidates_the_outstanding_token():
    """A delete between a lease miss and its set makes the set fail (stale token), so the old value
    read before the write is not cached; a token older than lease_ms no longer blocks others."""
    node, ctx = Cache(CacheSpec(leases=True, lease_ms=50.0)), FakeContext("c1")
    node.on_message(ctx, "app-1", CacheGet(1, "k", lease=True))
    tok = reply(ctx).token
    node.on_message(ctx, "app-2", CacheDelete(2, "k"))
    reply(ctx)
    node.on_message(ctx, "app-1", CacheSet(3, "k", "old", 1, token=tok))
    assert not reply(ctx).hit
    assert ctx.records[-1]["why"] == "stale-token"
    node.on_message(ctx, "app-1", CacheGet(4, "k", lease=True))
    t2 = reply(ctx).token
    ctx.advance(60)
    node.on_message(ctx, "app-2", CacheGet(5, "k", lease=True))
    assert reply(ctx).token > t2


def test_ignoring_deletes_for_leases_lets_a_stale_set_in():
    """With honour_deletes_for_leases=False (the planted bug ignore-lease) the stale set is stored."""
    node, ctx = Cache(CacheSpec(leases=True, honour_deletes_for_leases=False)), FakeContext("c1")
    node.on_message(ctx, "app-1", CacheGet(1, "k", lease=True))
    tok = reply(ctx).token
    node.on_message(ctx, "app-2", CacheDelete(2, "k"))
    reply(ctx)
    node.on_message(ctx, "app-1", CacheSet(3, "k", "old", 1, token=tok))
    assert reply(ctx).hit


def test_persistent_cache_restarts_warm_and_volatile_restarts_empty():
    """persist=True reloads the contents from storage after a restart; otherwise the new node is empty."""
    for persist in (True, False):
        ctx = FakeContext("c1")
        node = Cache(CacheSpec(persist=persist, capacity=2, unit="objects"))
        node.on_start(ctx)
        for i, k in enumerate("abc"):
            node.on_message(ctx, "app", CacheSet(i, k, k.upper(), 1))
        ctx.take_sent()
        fresh = Cache(CacheSpec(persist=persist, capacity=2, unit="objects"))
        fresh.on_start(ctx)
        assert sorted(fresh.store.values) == (["b", "c"] if persist else [])


def test_tinylfu_behind_a_store_counts_gets_and_fills_and_resists_a_scan():
    """Through a CacheStore (a node's gets, and fills after misses), W-TinyLFU's sketch counts each
    access, so a hot key survives a scan of one-hit wonders once main is full (LRU loses it)."""
    for name, survives in (("tinylfu", True), ("lru", False)):
        store = CacheStore(make_policy(name, 100), unit="objects")

        def access(key):
            if not store.get(key, 0)[0]:
                store.set(key, "v", 1, 0)

        for i in range(200):
            access(("cold", i))
        for _ in range(5):
            for k in range(10):
                access(("hot", k))
        for i in range(500):
            access(("scan", i))
        assert store.get(("hot", 3), 0)[0] is survives, name
