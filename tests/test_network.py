"""The network (simulator.engine.network): latency, loss, duplication, partitions, FIFO, bandwidth, slowness."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Msg:
    n: int
    size_bytes: int = 0


class Sink(Node):
    """Remembers (arrival time, src, n) of everything delivered to it."""

    def __init__(self):
        self.got = []

    def on_message(self, ctx, src, msg):
        self.got.append((ctx.now, src, msg.n))


def world(latency="constant:2", nodes=("a", "b", "c")) -> Simulation:
    sim = Simulation(1, latency=Dist.parse(latency))
    for nid in nodes:
        sim.add_node(nid, Sink)
    sim.run(0)
    return sim


def send_at(sim, t_ns, src, dst, n, size=0):
    sim.at(t_ns, lambda a, b: sim.network.send(src, dst, Msg(n, size)))


def got(sim, nid):
    return sim.hosts[nid].node.got


def test_constant_latency_delivers_at_exactly_now_plus_latency():
    """With constant latency L a message sent at t arrives at exactly t + L."""
    sim = world("constant:2")
    send_at(sim, 5 * MS, "a", "b", 1)
    sim.run(100 * MS)
    assert got(sim, "b") == [(7 * MS, "a", 1)]
    assert sim.network.stats()["delivered"] == 1 and sim.network.stats()["sent"] == 1


def test_loss_one_drops_everything_and_counts_it():
    """With loss p=1 no message arrives and every one is counted in dropped_loss."""
    sim = world()
    sim.network.set_loss(1.0)
    for i in range(50):
        send_at(sim, i * MS, "a", "b", i)
    sim.run(100 * MS)
    assert got(sim, "b") == []
    assert sim.network.dropped_loss == 50 and sim.network.delivered == 0


def test_loss_zero_drops_nothing():
    """With loss p=0 every message arrives."""
    sim = world()
    sim.network.set_loss(0.0)
    for i in range(50):
        send_at(sim, i * MS, "a", "b", i)
    sim.run(100 * MS)
    assert [n for _, _, n in got(sim, "b")] == list(range(50))
    assert sim.network.dropped_loss == 0


def test_partial_loss_drops_about_p():
    """With loss p=0.3 about 30% of many messages are dropped."""
    sim = world()
    sim.network.set_loss(0.3)
    for i in range(2000):
        send_at(sim, i * 1000, "a", "b", i)
    sim.run(100 * MS)
    assert 0.25 < sim.network.dropped_loss / 2000 < 0.35
    assert sim.network.dropped_loss + sim.network.delivered == 2000


def test_bad_probabilities_are_rejected():
    """Loss and duplication probabilities outside [0, 1] raise ValueError."""
    sim = world()
    with pytest.raises(ValueError):
        sim.network.set_loss(1.5)
    with pytest.raises(ValueError):
        sim.network.set_duplicate(-0.1)


def test_duplicate_one_delivers_each_message_twice():
    """With duplicate p=1 each message is delivered twice and counted once in duplicated."""
    sim = world()
    sim.network.set_duplicate(1.0)
    for i in range(5):
        send_at(sim, i * MS, "a", "b", i)
    sim.run(100 * MS)
    assert sorted(n for _, _, n in got(sim, "b")) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert sim.network.duplicated == 5


def test_partition_is_checked_at_delivery():
    """A message in flight when a partition starts is lost; one sent after the heal arrives."""
    sim = world("constant:10")
    send_at(sim, 0, "a", "b", 1)
    sim.at(5 * MS, lambda a, b: sim.network.partition([["a"], ["b", "c"]]))
    sim.at(20 * MS, lambda a, b: sim.network.heal())
    send_at(sim, 25 * MS, "a", "b", 2)
    sim.run(100 * MS)
    assert got(sim, "b") == [(35 * MS, "a", 2)]
    assert sim.network.dropped_partition == 1


def test_message_sent_during_partition_arrives_if_healed_before_delivery():
    """A message sent across a partition that heals before it lands is delivered (the check is at delivery)."""
    sim = world("constant:10")
    sim.network.partition([["a"], ["b"]])
    send_at(sim, 0, "a", "b", 1)
    sim.at(5 * MS, lambda a, b: sim.network.heal())
    sim.run(100 * MS)
    assert got(sim, "b") == [(10 * MS, "a", 1)]


def test_partition_blocks_both_directions_between_groups_only():
    """partition(groups) cuts both directions across groups and leaves links inside a group open."""
    sim = world(nodes=("a", "b", "c", "d"))
    sim.network.partition([["a", "b"], ["c", "d"]])
    for i, (s, d) in enumerate([("a", "c"), ("c", "a"), ("b", "d"), ("a", "b"), ("d", "c")]):
        send_at(sim, 0, s, d, i)
    sim.run(100 * MS)
    assert [n for _, _, n in got(sim, "b")] == [3]
    assert [n for _, _, n in got(sim, "c")] == [4]
    assert got(sim, "a") == [] and got(sim, "d") == []
    assert sim.network.dropped_partition == 3


def test_partition_oneway_blocks_one_direction_only():
    """partition_oneway(a, b) loses a -> b and delivers b -> a."""
    sim = world()
    sim.network.partition_oneway(["a"], ["b"])
    send_at(sim, 0, "a", "b", 1)
    send_at(sim, 0, "b", "a", 2)
    sim.run(100 * MS)
    assert got(sim, "b") == []
    assert [n for _, _, n in got(sim, "a")] == [2]


def test_nodes_not_named_in_a_partition_are_unaffected():
    """A node outside every group (a client) still talks to both sides."""
    sim = world(nodes=("a", "b", "client"))
    sim.network.partition([["a"], ["b"]])
    send_at(sim, 0, "client", "a", 1)
    send_at(sim, 0, "client", "b", 2)
    send_at(sim, 0, "a", "client", 3)
    send_at(sim, 0, "b", "client", 4)
    sim.run(100 * MS)
    assert [n for _, _, n in got(sim, "a")] == [1]
    assert [n for _, _, n in got(sim, "b")] == [2]
    assert sorted(n for _, _, n in got(sim, "client")) == [3, 4]


def test_isolate_cuts_one_node_from_the_others():
    """isolate(node, others) cuts node from each other node, both ways, and keeps the rest connected."""
    sim = world()
    sim.network.isolate("a", ["a", "b", "c"])
    send_at(sim, 0, "a", "b", 1)
    send_at(sim, 0, "c", "a", 2)
    send_at(sim, 0, "b", "c", 3)
    sim.run(100 * MS)
    assert got(sim, "a") == [] and got(sim, "b") == []
    assert [n for _, _, n in got(sim, "c")] == [3]


def test_block_cuts_exactly_the_given_directed_pairs():
    """block(pairs) cuts only the listed directed pairs; a new block replaces the old one."""
    sim = world()
    sim.network.block([("a", "b")])
    sim.network.block([("b", "c")])
    send_at(sim, 0, "a", "b", 1)
    send_at(sim, 0, "b", "c", 2)
    send_at(sim, 0, "c", "b", 3)
    sim.run(100 * MS)
    assert sorted(n for _, _, n in got(sim, "b")) == [1, 3]
    assert got(sim, "c") == []


def _link_order(fifo: bool) -> list[int]:
    sim = world("exponential:5")
    sim.network.configure(fifo=fifo)
    for i in range(200):
        send_at(sim, i * 100_000, "a", "b", i)
    sim.run(10_000 * MS)
    return [n for _, _, n in got(sim, "b")]


def test_fifo_links_keep_send_order_despite_jitter():
    """With fifo=True and jittery latency a link delivers in send order."""
    order = _link_order(True)
    assert order == list(range(200))


def test_non_fifo_links_reorder_with_jitter():
    """With fifo=False and jittery latency some messages on one link overtake others."""
    order = _link_order(False)
    assert sorted(order) == list(range(200))
    assert order != list(range(200))


def test_fifo_is_per_link():
    """FIFO orders each directed link separately: a slow message on a->b does not hold back c->b."""
    sim = world("exponential:5")
    sim.network.configure(fifo=True)
    for i in range(50):
        send_at(sim, i * 100_000, "a", "b", i)
        send_at(sim, i * 100_000, "c", "b", 100 + i)
    sim.run(10_000 * MS)
    seq = got(sim, "b")
    assert [n for _, s, n in seq if s == "a"] == list(range(50))
    assert [n for _, s, n in seq if s == "c"] == list(range(100, 150))
    interleaved = [s for _, s, _ in seq]
    assert interleaved != sorted(interleaved)  # the two links interleave


def test_bandwidth_adds_serialisation_delay_and_queues():
    """With bandwidth B a message of S bytes takes S*8/B seconds more, and back-to-back ones queue."""
    sim = world("constant:2")
    sim.network.configure(bandwidth_bps=8e6)  # 1000 bytes = 1 ms on the wire
    send_at(sim, 0, "a", "b", 1, size=1000)
    send_at(sim, 0, "a", "b", 2, size=1000)
    send_at(sim, 0, "a", "c", 3, size=1000)  # another link: no queueing behind a->b
    send_at(sim, 50 * MS, "a", "b", 4, size=500)  # the link is idle again
    sim.run(100 * MS)
    assert got(sim, "b") == [(3 * MS, "a", 1), (4 * MS, "a", 2), (52 * MS + 500_000, "a", 4)]
    assert got(sim, "c") == [(3 * MS, "a", 3)]


def test_bandwidth_ignores_messages_without_size():
    """A message without size_bytes (or size 0) adds no serialisation delay."""
    sim = world("constant:2")
    sim.network.configure(bandwidth_bps=1000)
    send_at(sim, 0, "a", "b", 1)
    sim.run(100 * MS)
    assert got(sim, "b") == [(2 * MS, "a", 1)]


def test_bad_bandwidth_is_rejected():
    """A bandwidth <= 0 raises ValueError."""
    with pytest.raises(ValueError, match="bandwidth"):
        world().network.configure(bandwidth_bps=0)


def test_slow_multiplies_latency_and_reset_restores_it():
    """slow(f) multiplies latency by f; reset_links() brings it back."""
    sim = world("constant:2")
    sim.network.slow(3)
    send_at(sim, 0, "a", "b", 1)
    sim.at(10 * MS, lambda a, b: sim.network.reset_links())
    send_at(sim, 20 * MS, "a", "b", 2)
    sim.run(100 * MS)
    assert got(sim, "b") == [(6 * MS, "a", 1), (22 * MS, "a", 2)]
    with pytest.raises(ValueError):
        sim.network.slow(0)


def test_flaky_loses_only_on_chosen_links():
    """flaky(pairs, 1) drops every message on those links and none elsewhere; reset_links ends it."""
    sim = world()
    sim.network.flaky([("a", "b")], 1.0)
    send_at(sim, 0, "a", "b", 1)
    send_at(sim, 0, "b", "a", 2)
    send_at(sim, 0, "a", "c", 3)
    sim.at(10 * MS, lambda a, b: sim.network.reset_links())
    send_at(sim, 20 * MS, "a", "b", 4)
    sim.run(100 * MS)
    assert [n for _, _, n in got(sim, "b")] == [4]
    assert [n for _, _, n in got(sim, "a")] == [2]
    assert [n for _, _, n in got(sim, "c")] == [3]
    assert sim.network.dropped_loss == 1


def test_reset_links_keeps_configured_base_loss():
    """reset_links() undoes flaky links but keeps the base loss set with configure_base."""
    sim = world()
    sim.network.configure_base(loss=1.0)
    sim.network.flaky([("a", "b")], 0.5)
    sim.network.reset_links()
    send_at(sim, 0, "b", "c", 1)
    sim.run(100 * MS)
    assert got(sim, "c") == [] and sim.network.dropped_loss == 1


def test_pair_latency_adds_a_base_per_directed_pair():
    """set_pair_latency adds the pair's base latency to the model's draw, per direction."""
    sim = world("constant:1")
    sim.network.set_pair_latency({("a", "b"): 10 * MS})
    send_at(sim, 0, "a", "b", 1)
    send_at(sim, 0, "b", "a", 2)
    sim.run(100 * MS)
    assert got(sim, "b") == [(11 * MS, "a", 1)]
    assert got(sim, "a") == [(1 * MS, "b", 2)]


def test_messages_to_unknown_nodes_are_dropped_and_counted():
    """A message to a node id that does not exist is dropped and counted in dropped_unknown."""
    sim = world()
    send_at(sim, 0, "a", "nobody", 1)
    sim.run(100 * MS)
    assert sim.network.dropped_unknown == 1 and sim.network.delivered == 0


def test_same_seed_same_jittered_arrivals():
    """Two networks with one seed draw the same latencies (stream net.latency)."""
    runs = []
    for _ in range(2):
        sim = world("lognormal:3:cv=1")
        for i in range(30):
            send_at(sim, i * MS, "a", "b", i)
        sim.run(1000 * MS)
        runs.append(got(sim, "b"))
    assert runs[0] == runs[1]


def test_a_partition_into_groups_cuts_the_same_pairs_as_the_pair_set_without_building_it():
    """partition(groups) keeps one group label per node, yet answers, counts and compares as the set of cut pairs;
    a node named in two groups falls back to that set."""
    from itertools import permutations

    sim = world(nodes=("a", "b", "c", "d", "e"))
    groups = [["a", "b"], ["c"], ["d"]]
    sim.network.partition(groups)
    cut = sim.network.blocked
    pairs = {(x, y) for i, gx in enumerate(groups) for j, gy in enumerate(groups) if i != j for x in gx for y in gy}
    assert not isinstance(cut, set) and cut == pairs and len(cut) == len(pairs) == 10
    assert {p for p in permutations("abcde", 2) if p in cut} == pairs  # "e", in no group, is never cut
    sim.network.partition([["a"], ["a", "b"]])
    assert sim.network.blocked == {("a", "a"), ("a", "b"), ("b", "a")}
    sim.network.partition([["a", "b"]])
    assert not sim.network.blocked
