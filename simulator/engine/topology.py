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
                          carry ``hosts`` (comma-separated host ids), ``self_ms`` (between two hosts
                          on the node) and ``site`` (false: no host goes there); unplaced hosts go
                          round-robin over the sites

An undirected GraphML graph's edge is a link usable both ways; a directed graph's edge only
from source to target (base latencies may then differ each way). Where two edges join the same
nodes in the same direction, the lower latency counts. Latencies are numbers of ms from 0 to 1e7;
at least one node must be a site, and every site (and every node with ``hosts``) must reach every
other by a path of edges. A file breaking these is a UsageError naming the file, the node or edge
and the value.
"""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx

from .errors import UsageError

SPEC_HELP = "lan, regions:N[:INTER_MS], leaf-spine:RACKS or graph:FILE.graphml"
MAX_LATENCY_MS = 1e7  # as the run option latency_ms


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
            return _load_graphml(spec, path)
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - any parse failure is the user's spec
        pass
    raise UsageError(f"bad value {spec!r} for topology: expected {SPEC_HELP}")


MAX_GRAPH_NODES = 2000  # a GraphML topology's nodes: 3,000 in a ring took 9 s to route before a 0.3 s run


def _load_graphml(spec: str, path: Path) -> nx.Graph:
    """The graph of a GraphML file (directed if the file is), its attributes checked; a bad file is a UsageError."""
    try:
        raw = nx.read_graphml(path)
    except Exception as exc:  # noqa: BLE001 - not XML, not GraphML, a bad attribute type: the user's file
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise UsageError(f"bad value {spec!r} for topology: {str(path)!r} is not a readable GraphML file ({why})") \
            from None
    if raw.number_of_nodes() > MAX_GRAPH_NODES:  # routes are computed between every pair of sites
        raise UsageError(f"bad value {spec!r} for topology: {str(path)!r} has {raw.number_of_nodes():,} nodes: expected "
                         f"at most {MAX_GRAPH_NODES:,} (the Internet Topology Zoo's largest has under 800)")
    where = f"in {str(path)!r}"

    def ms(raw_ms, what: str) -> float:
        try:
            value = math.nan if isinstance(raw_ms, bool) else float(raw_ms)
        except (TypeError, ValueError):
            value = math.nan
        if not 0 <= value <= MAX_LATENCY_MS:  # NaN fails too
            raise UsageError(f"bad value {raw_ms!r} for {what} {where}: expected a number of ms from 0 to "
                             f"{MAX_LATENCY_MS:g}")
        return value

    g = nx.DiGraph() if raw.is_directed() else nx.Graph()
    pinned: dict[str, str] = {}
    for n, d in raw.nodes(data=True):
        d = dict(d)
        if "self_ms" in d:
            d["self_ms"] = ms(d["self_ms"], f"self_ms of node {n!r}")
        if "site" in d:
            flag = d["site"]
            if isinstance(flag, str) and flag.strip().lower() in ("true", "false"):
                flag = flag.strip().lower() == "true"
            if not isinstance(flag, bool):
                raise UsageError(f"bad value {d['site']!r} for site of node {n!r} {where}: expected true or false")
            d["site"] = flag
        for h in str(d.get("hosts", "")).split(","):
            h = h.strip()
            if h and pinned.setdefault(h, n) != n:
                raise UsageError(f"bad value {d['hosts']!r} for hosts of node {n!r} {where}: host {h!r} is "
                                 f"already on node {pinned[h]!r}: expected each host on one node")
        g.add_node(n, **d)
    for u, v, d in raw.edges(data=True):  # a multigraph's parallel edges one by one
        lat = ms(d.get("latency_ms", 0.0), f"latency_ms of edge {u!r}-{v!r}")
        if g.has_edge(u, v) and g[u][v]["latency_ms"] <= lat:
            continue
        g.add_edge(u, v, **{**d, "latency_ms": lat})
    if g.number_of_nodes() == 0:
        raise UsageError(f"bad value {spec!r} for topology: the graph has no nodes: expected at least one site")
    used = sites(g)
    if not used:
        raise UsageError(f"bad value {spec!r} for topology: every node has site=false: expected at least one site")
    used += [n for n in dict.fromkeys(pinned.values()) if n not in used]
    first = used[0]
    reach = nx.descendants(g, first)
    back = nx.ancestors(g, first) if g.is_directed() else reach
    for n in used[1:]:
        if n not in reach or n not in back:
            a, b = (first, n) if n not in reach else (n, first)
            raise UsageError(f"bad value {spec!r} for topology: no path of edges from node {a!r} to node {b!r}"
                             f"{' (the graph is directed)' if g.is_directed() else ''}: expected every site to "
                             f"reach every other")
    return g


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
