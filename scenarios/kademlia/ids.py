"""Ids, contacts and the oracle's k-closest search.

A *contact* is one Python int: the node id shifted left by :data:`ADDR_BITS`, or-ed with the
index of the node's address (``n<index>``). A bucket is then a plain list of ints, and the XOR
distance of a contact to a target is ``(c >> ADDR_BITS) ^ target``: no object per contact, which
is what lets a 100,000-node network fit in memory.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left

ADDR_BITS = 21  # addresses n1 .. n2,097,151: above the config's 1,000,000 node cap
ADDR_MASK = (1 << ADDR_BITS) - 1

#: The columns of a ``kad.lookup`` row after its time and node (``RunData.table("kad.lookup")``):
#: ``found`` is the tuple of contacts returned (``id << ADDR_BITS | address``, the very ints the
#: routing tables hold, so a row keeps no id of its own), ``value`` whether a get found its value.
#: A row, not a record: a run of 100,000 nodes makes millions of lookups (every node refreshes its
#: buckets hourly), and a record's dict and new ids were about 1.4 KB each.
LOOKUP = ("purpose", "target", "found", "start_ns", "hops", "msgs", "value", "alive_asked")
#: Every observation of the design is a row, for the same reason (``RunData.table(kind)``, each row
#: ``(time_ns, node, *columns)``). At 10,000 nodes under the 100k preset's hour of churn a run makes
#: 660,000 evictions and 245,000 stores; as records (a dict each, and new ids) they were most of
#: the hour's memory. ``kad.member``: ``event`` "up" (the node started, under ``id``) or "joined"
#: (its join ended), in one table so that an up and a join at one instant keep their order.
MEMBER = ("event", "id")
#: ``kad.evict``: ``victim`` and ``newcomer`` are contacts (as in the tables), ``reason`` "full"
#: (the evict-live-contact bug), "no-answer" (the ping of the oldest timed out) or "stale".
EVICT = ("victim", "newcomer", "reason")
STORED = ("key",)  # ``kad.stored``: the node stored ``key``; ``kad.expired``: its copy expired


def contact(nid: int, index: int) -> int:
    return (nid << ADDR_BITS) | index


def cid(c: int) -> int:
    """The node id of contact ``c``."""
    return c >> ADDR_BITS


def addr(c: int) -> str:
    """The network address (host name) of contact ``c``."""
    return f"n{c & ADDR_MASK}"


def index_of(name: str) -> int:
    return int(name[1:])


def key_id(name: str, id_bits: int) -> int:
    """The id a key name is stored under: the top ``id_bits`` of SHA-256 (stable across processes)."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big")
    return h >> (256 - id_bits) if id_bits <= 256 else h


def bucket_index(own: int, other: int) -> int:
    """Bucket i holds ids at XOR distance [2^i, 2^(i+1)) from ``own``; -1 for ``own`` itself."""
    return (own ^ other).bit_length() - 1


def k_closest(sorted_ids: list[int], target: int, k: int, id_bits: int) -> list[int]:
    """The ``k`` ids of ``sorted_ids`` closest to ``target`` by XOR, closest first.

    Every id sharing a longer prefix with the target is closer than every id sharing a shorter
    one, so the answer lies in the smallest prefix-subtree of the target holding at least ``k``
    ids; that subtree is a contiguous run of the sorted list, found by bisection."""
    n = len(sorted_ids)
    if n <= k:
        return sorted(sorted_ids, key=lambda x: x ^ target)
    lo_len, hi_len = 0, id_bits  # prefix lengths: subtree(lo_len) holds >= k ids
    while lo_len < hi_len:
        mid = (lo_len + hi_len + 1) // 2
        a, b = _subtree(sorted_ids, target, mid, id_bits)
        if b - a >= k:
            lo_len = mid
        else:
            hi_len = mid - 1
    a, b = _subtree(sorted_ids, target, lo_len, id_bits)
    return sorted(sorted_ids[a:b], key=lambda x: x ^ target)[:k]


def _subtree(sorted_ids: list[int], target: int, prefix_len: int, id_bits: int) -> tuple[int, int]:
    shift = id_bits - prefix_len
    base = (target >> shift) << shift
    return bisect_left(sorted_ids, base), bisect_left(sorted_ids, base + (1 << shift))
