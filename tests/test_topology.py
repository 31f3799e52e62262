"""Topologies: networkx graphs -> per-pair base latency."""

import pytest

from simulator.engine import topology as T
from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node
from simulator.pipeline.scenario import UsageError


def test_regions_put_inter_region_latency_between_regions():
    """Hosts in different regions are inter_ms apart; hosts in one region are 0.25 ms apart."""
    g = T.parse("regions:2:30")
    placement = T.place(g, ["n1", "n2", "n3"])
    assert placement == {"n1": "region1", "n2": "region2", "n3": "region1"}
    lat = T.pair_latency_ns(g, placement)
    assert lat[("n1", "n2")] == 30_000_000 and lat[("n1", "n3")] == 250_000


def test_leaf_spine_crosses_two_hops():
    """Across racks a message crosses leaf-spine-leaf (0.1 ms); within a rack 0.01 ms."""
    g = T.parse("leaf-spine:2")
    lat = T.pair_latency_ns(g, T.place(g, ["a", "b", "c"]))
    assert lat[("a", "b")] == 100_000 and lat[("a", "c")] == 10_000


def test_graphml_with_pinned_hosts(tmp_path):
    """A GraphML file's latency_ms edges and pinned hosts are honoured."""
    import networkx as nx

    g = nx.Graph()
    g.add_node("x", hosts="n2")
    g.add_node("y")
    g.add_node("z")
    g.add_edge("x", "y", latency_ms=5.0)
    g.add_edge("y", "z", latency_ms=7.0)
    path = tmp_path / "g.graphml"
    nx.write_graphml(g, path)
    g2 = T.parse(f"graph:{path}")
    placement = T.place(g2, ["n1", "n2"])
    assert placement["n2"] == "x"
    lat = T.pair_latency_ns(g2, {"n1": "z", "n2": "x"})
    assert lat[("n1", "n2")] == 12_000_000


@pytest.mark.parametrize("spec", ["mesh", "regions:0", "regions:x", "leaf-spine:", "graph:/no/such/file"])
def test_bad_specs_are_usage_errors(spec):
    """A bad topology spec is a UsageError naming it."""
    with pytest.raises(UsageError, match="topology"):
        T.parse(spec)


def test_applied_topology_adds_base_latency_to_deliveries():
    """With a topology applied, a message takes base latency plus the model's draw."""
    sim = Simulation(1, latency=Dist("constant", 1.0))
    arrivals = []

    class Recv(Node):
        def on_message(self, ctx, src, msg):
            arrivals.append(ctx.now)

    class Send(Node):
        def on_start(self, ctx):
            ctx.send("b", "hello")

    sim.add_node("a", Send)
    sim.add_node("b", Recv)
    T.apply(sim, "regions:2:20", ["a", "b"])
    sim.run()
    assert arrivals == [21_000_000]
