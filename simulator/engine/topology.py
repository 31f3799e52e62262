"""Topologies: networkx graphs whose shortest paths give a base latency for every pair of hosts.

A topology places hosts on the sites of a graph with ``latency_ms`` on its edges; the base
latency between two hosts is their sites' shortest-path latency, added to each message's draw
from the network's latency model (which then acts as jitter). Specs (the ``topology`` option):

``lan``                   no base latency: the latency model alone (the default)
``regions:N``             N regions in a full mesh; hosts round-robin over them (servers first,
                          then clients); ``inter_region_ms`` between regions (default 40), 0.25 ms
                          within one. ``regions:3:80`` sets 80 ms between regions.
``leaf-spine:R``          R racks (leaves) under two spines; 0.01 ms within a rack, 0.05 ms per
                          leaf-spine hop, so 0.1 ms across racks
``graph:PATH``            a GraphML file whose edges carry ``latency_ms`` and whose nodes may
                          carry ``hosts`` (comma-separated host ids); unplaced hosts go round-robin
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from .errors import UsageError

SPEC_HELP = "lan, regions:N[:INTER_MS], leaf-spine:RACKS or graph:FILE.graphml"


def regions(n: int, inter_ms: float = 40.0, intra_ms: float = 0.25) -> nx.Graph:
    g = nx.Graph()
    for i in range(n):
        g.add_node(f"region{i + 1}", self_ms=intra_ms)
    for i in range(n):
        for j in range(i + 1, n):
            g.add_edge(f"region{i + 1}", f"region{j + 1}", latency_ms=inter_ms)
    return g


def leaf_spine(racks: int, hop_ms: float = 0.05, intra_ms: float = 0.01) -> nx.Graph:
    g = nx.Graph()
    for s in ("spine1", "spine2"):
        g.add_node(s, site=False)
    for r in range(racks):
        leaf = f"rack{r + 1}"
        g.add_node(leaf, self_ms=intra_ms)
        for s in ("spine1", "spine2"):
            g.add_edge(leaf, s, latency_ms=hop_ms)
    return g


def parse(spec: str) -> nx.Graph | None:
    """The graph for ``spec`` (None for ``lan``); a bad spec is a UsageError naming it."""
    spec = str(spec).strip()
    try:
        if spec == "lan":
            return None
        kind, _, rest = spec.partition(":")
        if kind == "regions":
            parts = rest.split(":")
            n = int(parts[0])
            inter = float(parts[1]) if len(parts) > 1 else 40.0
            if n < 1 or inter < 0:
                raise ValueError
            return regions(n, inter)
        if kind == "leaf-spine":
            racks = int(rest)
            if racks < 1:
                raise ValueError
            return leaf_spine(racks)
        if kind == "graph":
            path = Path(rest)
            if not path.is_file():
                raise UsageError(f"bad value {spec!r} for topology: no file {rest!r}")
            return nx.read_graphml(path)
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - any parse failure is the user's spec
        pass
    raise UsageError(f"bad value {spec!r} for topology: expected {SPEC_HELP}")


def sites(g: nx.Graph) -> list[str]:
    """Nodes hosts may sit on (leaf-spine spines are not sites), in a stable order."""
    return sorted(n for n, d in g.nodes(data=True) if d.get("site", True) is not False)


def place(g: nx.Graph, hosts: list[str]) -> dict[str, str]:
    """Host -> site: pinned by a site's ``hosts`` attribute, else round-robin in the given order."""
    pinned: dict[str, str] = {}
    for n, d in g.nodes(data=True):
        for h in str(d.get("hosts", "")).split(","):
            if h.strip():
                pinned[h.strip()] = n
    order = sites(g)
    out, i = {}, 0
    for h in hosts:
        if h in pinned:
            out[h] = pinned[h]
        else:
            out[h] = order[i % len(order)]
            i += 1
    return out


def pair_latency_ns(g: nx.Graph, placement: dict[str, str]) -> dict[tuple[str, str], int]:
    """Base latency for every ordered pair of distinct hosts, in ns."""
    dist = dict(nx.all_pairs_dijkstra_path_length(g, weight=lambda u, v, d: float(d.get("latency_ms", 0.0))))
    out = {}
    hosts = list(placement)
    for a in hosts:
        sa = placement[a]
        for b in hosts:
            if a == b:
                continue
            sb = placement[b]
            ms = float(g.nodes[sa].get("self_ms", 0.0)) if sa == sb else dist[sa][sb]
            out[(a, b)] = int(round(ms * 1e6))
    return out


def apply(sim, spec: str, hosts: list[str]) -> dict[str, str] | None:
    """Give ``sim``'s network the base latencies of topology ``spec`` over ``hosts``."""
    g = parse(spec)
    if g is None:
        return None
    placement = place(g, hosts)
    sim.network.set_pair_latency(pair_latency_ns(g, placement))
    return placement
