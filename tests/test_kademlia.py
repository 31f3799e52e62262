"""The Kademlia design: the oracle's k-closest search, routing-table stories with a fake context,
small seeded networks where lookups are exact, the planted bugs, replay, and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import FakeContext, UsageError, build_config, execute, get_scenario
from simulator.cli import main
from scenarios.kademlia.churn import session_sampler
from scenarios.kademlia.ids import ADDR_BITS, contact, k_closest
from scenarios.kademlia.node import Conf, FindNode, Kad, Nodes, Ping, Pong
from scenarios.kademlia.scenario import Kademlia

P = {p.name: p.default for p in Kademlia.params}
BITS = 16
SMALL = {"node_count": 120, "time_limit_s": 16.0, "quiesce_s": 1.0, "final_timeout_s": 5.0, "rate": 20.0}
SMALL_SETS = {"join_window_s": 4.0, "settle_s": 2.0, "id_bits": 32, "keys": 30}


def conf(bug=None, **kw) -> Conf:
    return Conf({**P, "id_bits": BITS, "k": 2, **kw}, bug)


def node_with_id(nid: int, bug=None, **kw) -> tuple[Kad, FakeContext]:
    ctx = FakeContext("n5")
    ctx.storage.put("id", nid)
    node = Kad(conf(bug, **kw), 5)
    node.on_start(ctx)
    ctx.take_sent()
    return node, ctx


def run_small(seed=1, bug=None, **options):
    sets = {**SMALL_SETS, **options.pop("sets", {})}
    cfg = build_config(get_scenario("kademlia"), seed=seed, options={**SMALL, **options}, sets=sets, bug=bug)
    return execute(cfg)


def test_k_closest_agrees_with_sorting_every_id_by_xor():
    """The oracle's subtree search returns the same k ids, in the same order, as sorting all by XOR distance."""
    rng = np.random.default_rng(3)
    ids = sorted({int(x) for x in rng.integers(0, 2**40, 500)})
    for target in (int(x) for x in rng.integers(0, 2**40, 50)):
        for k in (1, 5, 20):
            assert k_closest(ids, target, k, 40) == sorted(ids, key=lambda x: x ^ target)[:k]


def test_a_sender_lands_in_the_bucket_of_its_xor_distance():
    """A message from a contact puts it in bucket floor(log2(own xor its id)); the node never lists itself."""
    node, ctx = node_with_id(0b1000_0000_0000_0000)
    a, b = contact(0b1000_0000_0000_0011, 7), contact(0b0000_0000_0000_0001, 8)
    node.on_message(ctx, "n7", Ping(1, a))
    node.on_message(ctx, "n8", Ping(2, b))
    node.on_message(ctx, "n5", Ping(3, node.me))
    assert node.buckets == {1: [a], 15: [b]}
    assert [type(m) for _, m in ctx.take_sent()] == [Pong, Pong, Pong]


def test_a_full_bucket_pings_its_oldest_contact_and_keeps_it_when_it_answers():
    """With k = 2, a third contact for a full bucket waits in the replacement cache while the least-recently
    seen contact is pinged; its answer keeps it (moved to the tail) and the newcomer stays cached."""
    node, ctx = node_with_id(0)
    old, mid, new = (contact(0x8000 | x, 10 + x) for x in (1, 2, 3))
    for i, c in enumerate((old, mid, new)):
        node.on_message(ctx, f"n{10 + i}", Ping(i, c))
    sent = [(dst, m) for dst, m in ctx.take_sent() if type(m) is Ping]
    assert [dst for dst, _ in sent] == ["n11"]  # the oldest contact, at address n11
    assert node.buckets[15] == [old, mid] and node.repl[15] == [new]
    node.on_message(ctx, "n11", Pong(sent[0][1].rid, old))
    assert node.buckets[15] == [mid, old] and node.repl[15] == [new]


def test_an_oldest_contact_that_does_not_answer_is_replaced_by_the_newest_cached_one():
    """When the ping of the least-recently-seen contact times out, it is evicted (recorded with its reason)
    and the newest contact of the replacement cache takes its place."""
    node, ctx = node_with_id(0, rpc_timeout_ms=100.0)
    old, mid, new = (contact(0x8000 | x, 10 + x) for x in (1, 2, 3))
    for i, c in enumerate((old, mid, new)):
        node.on_message(ctx, f"n{10 + i}", Ping(i, c))
    ctx.advance(101)
    node.on_timer(ctx, "sweep")
    assert node.buckets[15] == [mid, new] and not node.repl[15]
    assert [row[-1] for row in ctx.tables["kad.evict"]] == ["no-answer"]  # ids.EVICT: reason last


def test_a_join_refreshes_the_buckets_from_the_one_its_kth_closest_falls_in_outwards():
    """After the lookup of its own id returns the k closest (here at distances 0x10 and 0x100), a joining node
    refreshes buckets 8 to 15 (the k-th's and every farther one), not the buckets inside that ball."""
    node, ctx = node_with_id(0)
    node.on_start(ctx)  # as a node (re)started: it schedules its join
    node.on_timer(ctx, "join")
    (_, ping), = ctx.take_sent()
    boot, a, b, far = contact(0x8000, 1), contact(0x0010, 7), contact(0x0100, 8), contact(0x4000, 9)
    node.on_message(ctx, "n1", Pong(ping.rid, boot))
    (_, ask), = ctx.take_sent()
    node.on_message(ctx, "n1", Nodes(ask.rid, boot, (a, b, far)))
    asked = ctx.take_sent()
    assert sorted(dst for dst, _ in asked) == ["n7", "n8"]  # the k = 2 closest seen
    for dst, m in asked:
        node.on_message(ctx, dst, Nodes(m.rid, a if dst == "n7" else b, ()))
    refreshed = {m.target.bit_length() - 1 for _, m in ctx.take_sent() if type(m) is FindNode}
    assert node.joined and refreshed == set(range(8, 16))


def test_the_evict_live_contact_bug_replaces_the_oldest_without_asking():
    """Under evict-live-contact a full bucket drops its oldest contact for the newcomer at once, without a ping."""
    node, ctx = node_with_id(0, bug="evict-live-contact")
    old, mid, new = (contact(0x8000 | x, 10 + x) for x in (1, 2, 3))
    for i, c in enumerate((old, mid, new)):
        node.on_message(ctx, f"n{10 + i}", Ping(i, c))
    assert node.buckets[15] == [mid, new]
    assert not [m for _, m in ctx.take_sent() if type(m) is Ping]


def test_find_node_answers_with_the_k_closest_contacts_it_knows():
    """FIND_NODE is answered with the k contacts of the table closest to the target, whatever their buckets,
    leaving out the asker."""
    node, ctx = node_with_id(0, k=3)
    ids = [0x0001, 0x0003, 0x0100, 0x0101, 0x4000, 0x8000, 0x8001, 0xC000]
    for i, x in enumerate(ids):
        node.on_message(ctx, f"n{20 + i}", Ping(i, contact(x, 20 + i)))
    ctx.take_sent()
    for target in (0x0102, 0x8003, 0x0002, 0x7FFF):
        node.on_message(ctx, "n99", FindNode(50, contact(0x7777, 99), target))
        (_, reply), = ctx.take_sent()
        got = sorted(c >> ADDR_BITS for c in reply.contacts)
        known = [c >> ADDR_BITS for c in node.contacts() if c >> ADDR_BITS != 0x7777]  # not the asker
        assert type(reply) is Nodes and got == sorted(sorted(known, key=lambda x: x ^ target)[:3])


def test_closest_returns_the_true_n_closest_of_any_table_leaving_out_the_asker():
    """On random tables (buckets of any fill, in index order), closest() returns exactly the n contacts
    nearest the target by XOR, without the excluded asker, whichever bucket the target and asker fall in."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        nid = int(rng.integers(0, 2**BITS))
        node = Kad(conf(k=8), 5)
        node.nid, node.me = nid, contact(nid, 5)
        ids = {int(x) for x in rng.integers(0, 2**BITS, int(rng.integers(1, 60)))} - {nid}
        buckets: dict[int, list[int]] = {}
        for j, x in enumerate(sorted(ids)):
            b = buckets.setdefault((x ^ nid).bit_length() - 1, [])
            if len(b) < 8:
                b.append(contact(x, 10 + j))
        node.buckets = dict(sorted(buckets.items()))
        table = node.contacts()
        for _ in range(5):
            target = int(rng.integers(0, 2**BITS))
            n = int(rng.integers(1, 12))
            exclude = table[int(rng.integers(len(table)))] if rng.random() < 0.6 else -1
            pool = [c for c in table if c != exclude]
            got = node.closest(target, n, exclude)
            assert sorted(got) == sorted(sorted(pool, key=lambda c: (c >> ADDR_BITS) ^ target)[:n]), trial


def test_weibull_sessions_have_the_configured_mean():
    """The churn's Weibull sampler (shape 0.5) draws sessions whose mean is session_mean_s, within a few percent."""
    draw = session_sampler({**P, "session_mean_s": 100.0}, np.random.default_rng(1))
    mean = sum(draw() for _ in range(40_000)) / 40_000
    assert 93 < mean < 107


def test_on_a_small_network_without_churn_every_lookup_is_exact():
    """120 nodes join by the protocol; every find and put lookup after the joins returns exactly the 20 closest
    live ids the oracle knows, and every check holds."""
    out = run_small()
    lc = out.checks["lookup-correctness"]
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    assert lc.details["held_exact"] > 50 and lc.details["not_exact"] == 0


def test_replay_gives_the_same_digest():
    """Two runs of one seed under churn give one digest; another seed gives another."""
    a = run_small(seed=4, nemesis=["churn"], nemesis_interval_s=4.0)
    assert a.digest == run_small(seed=4, nemesis=["churn"], nemesis_interval_s=4.0).digest
    assert a.digest != run_small(seed=5, nemesis=["churn"], nemesis_interval_s=4.0).digest


def test_the_final_heal_leaves_departed_nodes_to_return_as_drawn():
    """Under churn whose window runs to the end, nodes that left are still away at the final heal. The heal
    restarts none of them (no join storm); the ones whose down time ends later come back one by one, and after
    the heal lookups succeed (liveness). Sessions of 4 s are churn far past the default floor's: the lookup
    floor is not what this test is about."""
    out = run_small(seed=3, nemesis=["churn"], nemesis_interval_s=4.0, final_timeout_s=20.0,
                    sets={"session_mean_s": 4.0, "downtime_mean_s": 6.0})
    heal = out.run.heal_ns
    leaves = sum(1 for f in out.run.faults if f.get("action") == "leave")
    returns_after = [f["time_ns"] for f in out.run.faults if f.get("action") == "return" and f["time_ns"] > heal]
    ups = [t for t, _, event, _ in out.run.table("kad.member") if event == "up" and t >= heal]
    assert leaves > 10 and returns_after  # some were away at the heal, and came back after it
    assert heal not in ups and sorted(ups) == sorted(returns_after)  # each came back at its own drawn time
    assert len(set(returns_after)) == len(returns_after)
    assert out.metrics["figures"]["churn_away_at_heal"] >= len(returns_after)
    assert out.checks["liveness"].valid is True, out.checks["liveness"].message
    assert out.checks["routing-table"].valid is True, out.checks["routing-table"].message


@pytest.mark.parametrize("bug,options,checker", [
    ("stop-early", {}, "lookup-correctness"),
    ("evict-live-contact", {}, "routing-table"),
    ("count-unresponsive", {"nemesis": ["churn"], "nemesis_interval_s": 4.0}, "lookup-correctness"),
])
def test_each_planted_bug_is_caught_on_a_small_network(bug, options, checker):
    """The planted bug makes its checker invalid on a small network (the same run without it is valid)."""
    out = run_small(bug=bug, **options)
    assert out.checks[checker].valid is False
    assert run_small(**options).valid is True


def test_bad_parameters_are_one_line_usage_errors():
    """Shares over 1 and ids too short for the node count are refused with the value and what is accepted."""
    with pytest.raises(UsageError, match="put_share"):
        build_config(get_scenario("kademlia"), seed=1, sets={"put_share": 0.7, "get_share": 0.5})
    with pytest.raises(UsageError, match="id_bits"):
        execute(build_config(get_scenario("kademlia"), seed=1, options={"node_count": 1000}, sets={"id_bits": 16}))
    with pytest.raises(SystemExit) as end:
        main(["run", "kademlia", "--seed", "1", "--set", "churn_dist=gamma"])
    assert end.value.code == 2


def _run_data(records, faults=(), lookups=()):
    """A hand-made run, its observations written as dicts: ``records`` of kind kad.up, kad.joined (made
    kad.member rows), kad.stored and kad.evict (ids for contacts), and ``lookups`` (kad.lookup rows, ids in ``found``)."""
    from scenarios.kademlia.ids import ADDR_BITS, LOOKUP
    from simulator import RunData

    tables = {"kad.lookup": [(r["time_ns"], r["node"], *({**r, "found": tuple(x << ADDR_BITS for x in r["found"])}
                                                          .get(c) for c in LOOKUP)) for r in lookups],
              "kad.member": [(r["time_ns"], r["node"], r["kind"][4:], r["id"]) for r in records
                             if r["kind"] in ("kad.up", "kad.joined")],
              "kad.stored": [(r["time_ns"], r["node"], r["key"]) for r in records if r["kind"] == "kad.stored"],
              "kad.evict": [(r["time_ns"], r["node"], r["victim"] << ADDR_BITS, r["newcomer"] << ADDR_BITS, r["reason"])
                            for r in records if r["kind"] == "kad.evict"]}
    return RunData(cfg=None, history=[], records=[], faults=list(faults), exposed={}, end_ns=20 * 10**9,
                   heal_ns=20 * 10**9, network={}, tables={k: v for k, v in tables.items() if v})


def test_lookup_correctness_names_the_lookup_that_missed_a_closest_node():
    """On a hand-made network of ids 1, 2, 3, 8 a lookup by n1 for target 2 that returned 3 and 8 (k = 2)
    missed the closest live id, 2: the checker is invalid and names the node and the rank missed."""
    up = [{"time_ns": 0, "node": f"n{i}", "kind": kind, "id": nid}
          for i, nid in enumerate((1, 2, 3, 8), 1) for kind in ("kad.up", "kad.joined")]
    look = {"time_ns": 10 * 10**9, "node": "n1", "purpose": "find", "target": 2, "found": [3, 8],
            "start_ns": 9 * 10**9, "hops": 1, "msgs": 2, "value": False}
    p = {**P, "k": 2, "id_bits": 8, "settle_s": 1.0}
    from scenarios.kademlia.checkers import lookup_correctness

    bad = lookup_correctness(_run_data(up, lookups=[look]), p)
    assert bad.valid is False and "lookup by n1" in bad.message and "rank 1" in bad.message
    good = lookup_correctness(_run_data(up, lookups=[{**look, "found": [2, 3]}]), p)
    assert good.valid is True and good.details["held_exact"] == 1


def test_lookup_correctness_refuses_a_node_that_was_down_throughout_the_lookup():
    """A lookup that returns the id of a node that left before it started is invalid, whatever the churn floor."""
    up = [{"time_ns": 0, "node": f"n{i}", "kind": kind, "id": nid}
          for i, nid in enumerate((1, 2, 3, 8), 1) for kind in ("kad.up", "kad.joined")]
    left = [{"time_ns": 5 * 10**9, "action": "leave", "node": "n2", "nemesis": "churn"}]
    look = {"time_ns": 10 * 10**9, "node": "n1", "purpose": "find", "target": 2, "found": [2, 3],
            "start_ns": 9 * 10**9, "hops": 1, "msgs": 2, "value": False}
    from scenarios.kademlia.checkers import lookup_correctness

    out = lookup_correctness(_run_data(up, left, lookups=[look]), {**P, "k": 2, "id_bits": 8, "settle_s": 1.0,
                                                                   "lookup_floor": 0.0})
    assert out.valid is False and "down throughout" in out.message


def test_no_republish_lets_values_expire_on_holders_that_stay_up_at_the_default_periods():
    """Over a simulated day and a little with every period at its default (republish_s 3600, expire_s 86400) and no
    fault, the no-republish bug lets values put early expire, so gets fail while their holders are up; the same run
    without the bug is valid."""
    options = {"node_count": 20, "time_limit_s": 90_000.0, "rate": 0.01}

    def day(bug):
        return execute(build_config(get_scenario("kademlia"), seed=1, options=options, sets={"sample_s": 0.0}, bug=bug))

    bad = day("no-republish")
    assert bad.checks["value-availability"].valid is False and "while" in bad.checks["value-availability"].message
    assert day(None).valid is True


def test_table_violations_names_an_overfull_bucket_a_stray_contact_the_node_itself_and_a_duplicate():
    """The routing-table checker's structural test names each kind of fault, and none in a sound table."""
    from scenarios.kademlia.checkers import table_violations

    nid = 0b1000
    sound = {0: [contact(0b1001, 2)], 2: [contact(0b1100, 3), contact(0b1110, 4)]}
    assert table_violations("n1", nid, sound, k=2) == []
    bad = {0: [contact(0b1001, 2), contact(0b1000, 1)], 2: [contact(0b1100, 3), contact(0b0001, 5),
                                                              contact(0b1100, 3)]}
    found = " | ".join(table_violations("n1", nid, bad, k=2))
    for part in ("bucket 2 holds 3 contacts", "its own id is in bucket 0", "n5 is in bucket 2, outside its range",
                 "n3 appears twice"):
        assert part in found


def test_liveness_counts_a_get_of_a_key_whose_every_holder_left_as_lost_not_failed():
    """A final get that fails for a key stored only on a node that left before the heal is a lost key, not a
    liveness failure; the same get while that holder is up and among the key's k closest fails the check; when
    closer live nodes hold no copy, the key is out of reach and excused."""
    from types import SimpleNamespace

    from scenarios.kademlia.checkers import liveness
    from scenarios.kademlia.ids import key_id

    s = 10**9
    up = [{"time_ns": 0, "node": "n2", "kind": "kad.up", "id": 2}, {"time_ns": 0, "node": "n2", "kind": "kad.joined", "id": 2}]
    stored = [{"time_ns": 5 * s, "node": "n2", "kind": "kad.stored", "key": key_id("k1", 8)}]
    history = [{"time": 21 * s, "type": "invoke", "process": 7, "f": "get", "value": "k1"},
               {"time": 22 * s, "type": "fail", "process": 7, "f": "get", "value": ["k1", None]}]
    left = [{"time_ns": 8 * s, "action": "leave", "node": "n2", "nemesis": "churn"}]
    p = {**P, "id_bits": 8}

    def run(faults):
        data = _run_data(up + stored, faults)
        data.history, data.cfg = history, SimpleNamespace(quiesce_s=1.0)
        return liveness(data, p)

    lost = run(left)
    assert lost.valid is True and lost.details["lost_keys"] == 1
    held = run([])
    assert held.valid is False and "get" in held.message
    # With k = 1, a node up whose id is the key itself is the key's only closest: n2's copy is out of reach.
    up += [{"time_ns": 0, "node": "n3", "kind": kind, "id": key_id("k1", 8)} for kind in ("kad.up", "kad.joined")]
    p["k"] = 1
    far = run([])
    assert far.valid is True and far.details["out_of_reach"] == 1


@pytest.mark.parametrize("recheck_s,pings", [(60.0, ["n11"]), (0.0, ["n11", "n12"])])
def test_a_bucket_whose_oldest_contact_answered_does_not_ping_again_within_recheck_s(recheck_s, pings):
    """After the oldest contact of a full bucket answers its ping, the next newcomer waits in the replacement
    cache without a second ping until the recheck_s period ends (recheck_s = 0: the paper's ping every time)."""
    node, ctx = node_with_id(0, recheck_s=recheck_s)
    old, mid, new, newer = (contact(0x8000 | x, 10 + x) for x in (1, 2, 3, 4))
    for i, c in enumerate((old, mid, new)):
        node.on_message(ctx, f"n{10 + i}", Ping(i, c))
    first = [m for dst, m in ctx.take_sent() if type(m) is Ping]
    node.on_message(ctx, "n11", Pong(first[0].rid, old))  # the oldest answers: it stays, moved to the tail
    node.on_message(ctx, "n14", Ping(9, newer))
    second = [dst for dst, m in ctx.take_sent() if type(m) is Ping]
    assert ["n11"] + second == pings
    assert node.buckets[15] == [mid, old] and node.repl[15] == [new, newer]
    if recheck_s:
        ctx.advance(recheck_s * 1000)  # a new period: the next newcomer pings the oldest again
        node.on_message(ctx, "n14", Ping(10, newer))
        assert [dst for dst, m in ctx.take_sent() if type(m) is Ping] == ["n12"]


def test_a_bucket_holding_a_contact_beyond_its_range_is_named_though_its_size_is_sound():
    """A bucket within k whose contact belongs to the next bucket up (the min/max bound, not the walk, catches it)
    is named; a duplicate within k is named too."""
    from scenarios.kademlia.checkers import table_violations

    nid = 0b1000
    found = " | ".join(table_violations("n1", nid, {0: [contact(0b1001, 2), contact(0b1010, 6)]}, k=2))
    assert "n6 is in bucket 0, outside its range" in found
    assert "n2 appears twice" in " | ".join(table_violations("n1", nid, {0: [contact(0b1001, 2)] * 2}, k=3))


def test_a_node_gives_its_drained_rpc_and_ping_maps_back_to_the_shared_empty_one():
    """While a full bucket's oldest contact is pinged the node holds its own RPC and ping maps; once the pong
    arrives both are the shared read-only empty mapping again, which nothing has written to."""
    from scenarios.kademlia.node import _EMPTY

    node, ctx = node_with_id(0)
    assert node.rpcs is _EMPTY and node.pinging is _EMPTY and node.fails is _EMPTY
    old, mid, new = (contact(0x8000 | x, 10 + x) for x in (1, 2, 3))
    for i, c in enumerate((old, mid, new)):
        node.on_message(ctx, f"n{10 + i}", Ping(i, c))
    ping = next(m for _, m in ctx.take_sent() if type(m) is Ping)
    assert len(node.rpcs) == 1 and node.pinging == {15: old}
    node.on_message(ctx, "n11", Pong(ping.rid, old))
    assert node.rpcs is _EMPTY and node.pinging is _EMPTY and len(_EMPTY) == 0
    with pytest.raises(TypeError):
        _EMPTY[1] = 2  # read-only: a write that skipped making the node its own dict fails loudly


def test_the_memory_script_reports_bytes_per_node_and_what_the_joins_cost(capsys):
    """`python -m scenarios.kademlia.memory` prints a progress line per --every-s and ends with one JSON line of
    bytes per node (engine and protocol parts), deliveries and joins per CPU second; a bad --nodes is refused."""
    import json

    from scenarios.kademlia import memory

    assert memory.main(["--nodes", "40", "--every-s", "2", "--settle-s", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("t=2s joined=") and len(lines) == 1 + 6 // 2
    out = json.loads(lines[-1])
    assert out["nodes"] == 40 and out["deliveries"] > 40 and out["joins_per_cpu_second"] > 0
    assert out["bytes_per_node"] == sum(out["parts"].values()) and out["contacts_per_node"] > 0
    assert memory.main(["--nodes", "1"]) == 2
    assert "bad value 1 for --nodes" in capsys.readouterr().err


def test_the_memory_scripts_oracle_tables_hold_what_joins_build(capsys):
    """`--tables oracle` (to measure a million nodes without hours of joins) fills each bucket with the min(k,
    population) nodes of its range, in range and without self, and comes within 1% of the contacts that real joins
    leave in the tables of the same 300 nodes (95.9 by joins, 96.0 by the oracle), and within 10% of their bytes."""
    import json

    from scenarios.kademlia import memory
    from scenarios.kademlia.checkers import table_violations
    from simulator import Dist, Simulation

    out = {}
    for tables in ("joins", "oracle"):
        assert memory.main(["--nodes", "300", "--tables", tables]) == 0
        out[tables] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    joins, oracle = out["joins"], out["oracle"]
    assert oracle["tables"] == "oracle" and oracle["nodes"] == 300
    assert abs(oracle["contacts_per_node"] - joins["contacts_per_node"]) <= 0.01 * joins["contacts_per_node"]
    assert abs(oracle["parts"]["table"] - joins["parts"]["table"]) <= 0.1 * joins["parts"]["table"]
    assert oracle["cached_per_node"] >= joins["cached_per_node"]  # full caches: the upper bound

    sim = Simulation(5, latency=Dist("constant", 1.0))
    conf = Conf(dict(P), None)
    servers = [f"n{i}" for i in range(1, 201)]
    for i, name in enumerate(servers, 1):
        sim.add_node(name, (lambda i=i: Kad(conf, i)))
    sim.run(1)
    memory.fill_from_oracle(sim, servers, conf.k, conf.id_bits)
    nodes = [sim.hosts[s].node for s in servers]
    for node in nodes:
        assert table_violations(f"n{node.index}", node.nid, node.buckets, conf.k) == []
        for i, b in node.buckets.items():
            population = sum(1 for o in nodes if ((o.nid ^ node.nid).bit_length() - 1) == i)
            assert len(b) == min(conf.k, population)
            assert len(node.repl.get(i, ())) == min(conf.k, max(0, population - conf.k))


def test_replicas_over_time_counts_each_up_holder_of_a_key_once_until_it_leaves():
    """Two stores of key 1 on n2 count one replica; n3's copy counts until n3 leaves at 17 s; key 2 enters the mean
    only once put (at 11 s): 2 replicas at 5 and 10 s, then (2 + 1) / 2 at 15 s, (1 + 1) / 2 from 20 s on."""
    from scenarios.kademlia.figures import replicas_over_time

    s = 10**9
    up = [{"time_ns": 0, "node": n, "kind": "kad.up", "id": i} for i, n in ((2, "n2"), (3, "n3"))]
    stored = [{"time_ns": t * s, "node": n, "kind": "kad.stored", "key": key}
              for t, n, key in ((1, "n2", 1), (2, "n3", 1), (4, "n2", 1), (11, "n2", 2))]
    left = [{"time_ns": 17 * s, "action": "leave", "node": "n3", "nemesis": "churn"}]
    run = _run_data(up + stored, left)
    run.end_ns = 25 * s
    assert replicas_over_time(run) == ([5.0, 10.0, 15.0, 20.0, 25.0], [2.0, 2.0, 1.5, 1.0, 1.0])



def test_two_nodes_serve_their_values_and_one_node_is_refused():
    """With two nodes a get from the value's only holder finds it in its own store (a lookup never
    asks its own node); a single node, which can store nowhere, is refused as bad input."""
    out = run_small(node_count=2)
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    assert out.metrics["ops"]["ok"] == out.metrics["ops"]["invoked"] > 0
    with pytest.raises(UsageError, match="node_count: expected at least 2"):
        run_small(node_count=1)


@pytest.mark.parametrize("nemesis, action", [("slow-link", "slow"), ("pause", "pause"), ("flaky-link", "flaky")])
def test_an_eviction_while_links_are_slow_lossy_or_paused_is_excused_and_one_outside_is_named(nemesis, action):
    """A live contact evicted inside a slow-link, pause or flaky-link window timed out honestly (its
    pong could not arrive within the timeout), so routing-table excuses it; the same eviction after the
    window's end is named, as the evict-live-contact bug's evictions are."""
    from scenarios.kademlia.checkers import routing_table

    up = [{"time_ns": 0, "node": f"n{i}", "kind": kind, "id": nid}
          for i, nid in enumerate((1, 2, 3, 8), 1) for kind in ("kad.up", "kad.joined")]
    window = [{"time_ns": 5 * 10**9, "action": action, "nemesis": nemesis, "phase": "start"},
              {"time_ns": 8 * 10**9, "action": "reset_links", "nemesis": nemesis, "phase": "stop"}]

    def evict(at_s):
        return {"time_ns": int(at_s * 10**9), "node": "n1", "kind": "kad.evict", "victim": 2, "newcomer": 3,
                "reason": "no-answer"}

    inside = routing_table(_run_data(up + [evict(7)], window), P)
    assert inside.valid is True and inside.details["evictions"] == 1
    outside = routing_table(_run_data(up + [evict(15)], window), P)
    assert outside.valid is False and "n1 evicted n2" in outside.message


def test_the_scaling_script_writes_its_figure_and_the_fit(tmp_path, capsys):
    """``python -m scenarios.kademlia.scaling`` runs each size, prints a JSON line per size and one with the fitted
    a and b, and writes the figure; mean hops grow with N. Bad sizes are one line and exit 2."""
    import json

    from scenarios.kademlia import scaling

    out = tmp_path / "scaling.png"
    assert scaling.main(["--sizes", "40,160", "--lookup-s", "4", "--out", str(out)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    rows, last = lines[:-1], lines[-1]
    assert [r["nodes"] for r in rows] == [40, 160] and all(r["valid"] for r in rows)
    assert rows[0]["mean_hops"] < rows[1]["mean_hops"] and last["a"] > 0
    assert last["sizes"] == [40, 160] and out.stat().st_size > 10_000
    assert scaling.main(["--sizes", "1000,x"]) == 2
    assert "--sizes" in capsys.readouterr().err
