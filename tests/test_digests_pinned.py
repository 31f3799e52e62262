"""Pinned trace digests: seeded runs of every shipped design give the digests recorded before the house move.

Recorded on 2026-11-30 at commit 8650038 (before simulator/ was split into layers) with the options
below. A change that alters the order or content of events changes these on purpose: record the new
values in the same commit and say why in its message.
"""

from __future__ import annotations

import pytest

from simulator import build_config, execute, get_scenario

SHORT = {"time_limit_s": 3.0, "quiesce_s": 1.0, "final_timeout_s": 2.0}
NEMESIS = {**SHORT, "nemesis": "crash,partition-random-halves", "nemesis_interval_s": 1.0}

PINNED = {
    # designs added after the move, recorded when they landed (2026-11-30). graph and cache
    # re-pinned when kit services let their host queue their calls (no CPU timer events in the
    # trace, service times drawn at arrival) and kit.served became one row: same verdicts; and
    # again when kit.served moved from the records to a table of rows (ctx.record_row): the same
    # events, verdicts and figures, only the observations' encoding in the digest changed; cache
    # once more when its app.read observations became rows too (same events, verdicts, figures).
    # graph, reverse-proxy and cache once more when the kit client's operation value became the
    # tuple (key, idem, result) with the operation's id as idempotency key, instead of a dict and
    # "<client>:<id>": the same events, verdicts and figures, only the history's values changed.
    # graph and cache once more when the kit database's nodes priced their calls onto the host's
    # cores like a Service, instead of a CPU timer per call (no kit.cpu timer events; a durable
    # write holds its core through its fsync)
    "graph-s1-short": "560eaddeee7a46f0ae885149c09f17c59fb9b78929bbe80c5fe4bae39e78a387",
    "graph-s2-short": "0d99ff5cc5132efc21daa8f97499bdfc954fe23a473c78605ea0df3942e65a2e",
    "rate-limiter-s1-short": "ff9cdd3c26de4c753f9c022296efe42a48e3d8689df4b8bafeed170d9f6acf3c",
    "rate-limiter-s2-short": "84dbc5a2a5d45e34e15fc4a2ad220c3e4b0dba45a5c9f0a7223d5b426d0e3be7",
    # kademlia re-pinned when a full bucket stopped re-pinging its oldest contact within recheck_s
    # of an answered ping (about 220 pings a node fewer in the default run), and again when a join
    # stopped refreshing the buckets wholly inside its own-id lookup's k closest (3 of 9 lookups),
    # and when kad.lookup became a table of rows (the found contacts as the tables' own ints):
    # the same events, verdicts and figures, only the observations' encoding changed; and again
    # (2026-12-01) when the other observations became rows too (kad.member, kad.evict, kad.stored,
    # kad.expired): the same events, verdicts, details and figures (seeds 1-3, churn, partitions, crash)
    "kademlia-s1-short": "e6128f8a081fd453491010b8db6ca15184fe1799656527ab2404916df162217c",
    "reverse-proxy-s1-short": "58f5ddc409423dba7bfe5b2fee116ffa6869b9a71a6b6205ddcfe57f8c71976c",  # 2026-11-30
    "reverse-proxy-s2-short": "0f4b9926783733f9e6abff0f122921556c4c50adaf78ad65a25549161c4ca2b8",
    # email re-pinned when its partitions became the kit's Queue: same events and outcomes, but the
    # queue's records are named kit.lease / kit.redeliver / kit.depth (with comp and receives
    # fields), it records kit.enqueue and kit.ack, and its depth timer is named kit.queue.sample
    "email-s1-short": "d0e064e28c978459b9c1f413569e611f74632dbfc66e659e1e00c60704a5e857",
    "email-s2-short": "1bd5c6f5b8b9ffd0af8a55880321a455c2fafe5e68ff9f2c9701d1ada1c7e173",
    "email-s3-nemesis": "31cd386ca9aaaeeaf9fe552dc7d615f69692f422fa18c5298ac7f20d23ce09af",
    "cache-s1-short": "ac3f6a5ed9e26c72ac7c3343046409dbceb4891c797131b6bcd5a25be26e4041",
    "cache-s2-short": "a387290fa8f28cfdd128665ca0381115d203ca8e1ae3d1275a7f4ea8b3cf0ac5",
    "queue-s1-short": "c8459b3960ab6072db70874edaf1856d2a1867baf78a46b5ecb05cb754becd8b",
    "queue-s2-short": "dfab88732e666589d3286810963efc10480be576ec0d0e413d31ce5dc9337e93",
    "queue-s3-nemesis": "3a21da6e6606d0907f6444dd5f0e19a4fe00f972749e25311b83b2ac7e21783e",
    "raft-s1-short": "de338518bfc8cf70a668f221b3e9defb09823404e8401d9a472fc321e737a343",
    "raft-s2-short": "115417ac386addf1d8025b7dc89d243827ad11afcb1042a1f668acd9ee1649c3",
    "raft-s3-nemesis": "331b3b2447289b9f2d46ebab3ffd028e24ea70818176b1a7ec7f3582a35e875a",
    "twopc-s1-short": "1897203d772a86a88e2bfbeb146e547e45084634710cb74ff5a41ffe0996f5a5",
    "twopc-s2-short": "58a5adcbdd07d8a7b9483c598302ddaa7d0d21d3f16b2f5deb306f40237ddca7",
    "twopc-s3-nemesis": "951b943b5f6be033f9a88dc4c271a0214c7a3022477f56f2ee07a8f2b73865c4",
    "commerce-s1-short": "990c6625a0f7b4ef98e891057e6abef09181d787c2d1f433c9505d0b41d0ecb4",
    "commerce-s2-short": "fcb65c7081495849cc704ca02c187a1ebee81bba5a8259d53f2547c893466a88",
    "commerce-s3-nemesis": "92cacf7919e1891745992fe005a5317d9db08def844996d4c269943863069ac9",
}


def _options(key: str) -> tuple[str, int, dict]:
    name, seed, kind = key.rsplit("-", 2)
    return name, int(seed[1:]), NEMESIS if kind == "nemesis" else SHORT


@pytest.mark.parametrize("key", sorted(PINNED))
def test_digest_is_the_pinned_one(key):
    """A seeded run's trace digest equals the one recorded before the layout move."""
    name, seed, options = _options(key)
    assert execute(build_config(get_scenario(name), seed=seed, options=options)).digest == PINNED[key]
