"""Bad distributions, GraphML topologies and graph designs: one line naming the value, exit 2, nothing written."""

from __future__ import annotations

import pytest

from scenarios.graph.scenario import THREE_TIER, THREE_TIER_ROUTES
from simulator import UsageError
from simulator.engine import topology as T
from simulator.engine.dists import Dist
from simulator.kit.graph import parse as parse_design
from tests.test_bad_input import assert_refused, dsim_in

TINY = ["--seed", "1", "--time-limit", "0.2", "--no-plots"]


# ---- distributions ------------------------------------------------------------------------------
@pytest.mark.parametrize("param,text,needle", [
    ("db_ms", "lognormal:3:cv=1e300", "cv must be a number from 0 to 100"),
    ("db_ms", "uniform:3:cv=1e308", "cv must be a number from 0 to 100"),
    ("db_ms", "lognormal:3:cv=nan", "got nan"),
    ("db_ms", "lognormal:3:cv=inf", "got inf"),
    ("db_ms", "normal:3:cv=nan", "got nan"),
    ("db_ms", "lognormal:3:cv=-1", "cv must be"),
    ("psp_ms", "pareto:20:alpha=nan", "alpha must be > 1 and at most 100"),
    ("psp_ms", "pareto:20:alpha=inf", "got inf"),
    ("db_ms", "exponential:3:cv=2", "'cv' does not apply to exponential: accepted: none"),
    ("db_ms", "constant:3:alpha=2", "'alpha' does not apply to constant: accepted: none"),
    ("db_ms", "lognormal:3:alpha=0.5", "'alpha' does not apply to lognormal: accepted: cv"),
    ("psp_ms", "pareto:20:cv=1", "'cv' does not apply to pareto: accepted: alpha"),
    ("db_ms", "lognormal:3:cv=1:cv=2", "'cv' is given twice"),
])
def test_bad_distribution_option_is_refused(capsys, tmp_path, param, text, needle):
    out = tmp_path / "run"
    code, _, err = dsim_in(capsys, "run", "commerce", "--set", f"{param}={text}", *TINY, "--out", out)
    assert_refused(code, err, repr(text), param, needle)
    assert not out.exists()


@pytest.mark.parametrize("text", ["lognormal:3:cv=100", "uniform:3:cv=0", "pareto:3:alpha=100", "normal:3:cv=2",
                                  "exponential:3", "lognormal:3:cv=0.8", "pareto:3:alpha=1.5"])
def test_good_distributions_still_parse(text):
    d = Dist.parse(text)
    assert d.mean_ms == 3.0


def test_constructor_bounds_shapes():
    """Dist() itself refuses a non-finite or overflowing cv or alpha (other code builds Dists directly)."""
    for cv in (float("nan"), float("inf"), 100.5, -0.1):
        with pytest.raises(ValueError, match="cv must be"):
            Dist("lognormal", 3.0, cv=cv)
    for alpha in (float("nan"), float("inf"), 1.0, 101.0):
        with pytest.raises(ValueError, match="alpha must be"):
            Dist("pareto", 3.0, alpha=alpha)
    assert Dist("exponential", 3.0, cv=1.0).cv == 1.0  # the constructor still takes any kind's cv


# ---- GraphML topologies -------------------------------------------------------------------------
KEYS_DOUBLE = [("self_ms", "node", "double"), ("site", "node", "boolean"), ("hosts", "node", "string"),
               ("latency_ms", "edge", "double")]
KEYS_STRING = [("self_ms", "node", "string"), ("site", "node", "string"), ("hosts", "node", "string"),
               ("latency_ms", "edge", "string")]


def graphml(nodes, edges, directed=False, keys=KEYS_DOUBLE) -> str:
    k = "".join(f'<key id="{n}" for="{f}" attr.name="{n}" attr.type="{t}"/>' for n, f, t in keys)
    ns = "".join(f'<node id="{n}">' + "".join(f'<data key="{a}">{v}</data>' for a, v in attrs.items()) + "</node>"
                 for n, attrs in nodes)
    es = "".join(f'<edge source="{u}" target="{v}">' + "".join(f'<data key="{a}">{x}</data>' for a, x in attrs.items())
                 + "</edge>" for u, v, attrs in edges)
    return (f'<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">{k}'
            f'<graph edgedefault="{"directed" if directed else "undirected"}">{ns}{es}</graph></graphml>')


AB = [("a", "b", {"latency_ms": 5})]
BAD_GRAPHS = {
    "disconnected": (graphml([("a", {}), ("b", {})], []), "no path of edges from node 'a' to node 'b'"),
    "directed-one-way": (graphml([("a", {}), ("b", {})], AB, directed=True),
                         "no path of edges from node 'b' to node 'a' (the graph is directed)"),
    "self-ms-text": (graphml([("a", {"self_ms": "abc"}), ("b", {})], AB, keys=KEYS_STRING),
                     "bad value 'abc' for self_ms of node 'a'"),
    "self-ms-nan": (graphml([("a", {"self_ms": "NaN"}), ("b", {})], AB), "bad value nan for self_ms of node 'a'"),
    "self-ms-negative": (graphml([("a", {"self_ms": -50}), ("b", {})], AB), "bad value -50.0 for self_ms"),
    "no-site": (graphml([("a", {"site": "false"}), ("b", {"site": "false"})], AB), "every node has site=false"),
    "site-text": (graphml([("a", {"site": "maybe"}), ("b", {})], AB, keys=KEYS_STRING),
                  "bad value 'maybe' for site of node 'a'"),
    "edge-negative": (graphml([("a", {}), ("b", {})], [("a", "b", {"latency_ms": -5})]),
                      "bad value -5.0 for latency_ms of edge 'a'-'b'"),
    "edge-text": (graphml([("a", {}), ("b", {})], [("a", "b", {"latency_ms": "fast"})], keys=KEYS_STRING),
                  "bad value 'fast' for latency_ms of edge"),
    "host-twice": (graphml([("a", {"hosts": "n1"}), ("b", {"hosts": "n1"})], AB), "host 'n1' is already on node 'a'"),
    "no-nodes": (graphml([], []), "the graph has no nodes"),
    "not-xml": ("hello", "is not a readable GraphML file"),
}


@pytest.mark.parametrize("name", list(BAD_GRAPHS))
def test_bad_graphml_is_refused_before_running(capsys, tmp_path, name):
    text, needle = BAD_GRAPHS[name]
    path = tmp_path / f"{name}.graphml"
    path.write_text(text)
    out = tmp_path / "run"
    code, _, err = dsim_in(capsys, "run", "queue", "--topology", f"graph:{path}", *TINY, "--out", out)
    assert_refused(code, err, needle, str(path))
    assert not out.exists()


def test_graphml_library_level_and_good_files(tmp_path):
    """parse() raises the UsageError itself; directed graphs keep their directions; parallel edges: the fastest."""
    bad = tmp_path / "bad.graphml"
    bad.write_text(BAD_GRAPHS["self-ms-negative"][0])
    with pytest.raises(UsageError, match="self_ms"):
        T.parse(f"graph:{bad}")
    both = tmp_path / "both.graphml"
    both.write_text(graphml([("a", {}), ("b", {})], [("a", "b", {"latency_ms": 5}), ("b", "a", {"latency_ms": 9})],
                            directed=True))
    g = T.parse(f"graph:{both}")
    assert T.pair_latency_ns(g, {"x": "a", "y": "b"}) == {("x", "y"): 5_000_000, ("y", "x"): 9_000_000}
    multi = tmp_path / "multi.graphml"
    multi.write_text(graphml([("a", {"self_ms": 0.5}), ("b", {}), ("s", {"site": "false"})],
                             [("a", "b", {"latency_ms": 7}), ("a", "b", {"latency_ms": 3}), ("a", "s", {})]))
    g = T.parse(f"graph:{multi}")
    assert T.sites(g) == ["a", "b"]
    assert T.pair_latency_ns(g, {"x": "a", "y": "b", "z": "a"}) == {
        ("x", "y"): 3_000_000, ("x", "z"): 500_000, ("y", "x"): 3_000_000, ("y", "z"): 3_000_000,
        ("z", "x"): 500_000, ("z", "y"): 3_000_000}


# ---- graph designs ------------------------------------------------------------------------------
DESIGN = """scenario = "graph"
[components]
lb  = {{ kind = "load-balancer", to = "{to}"{lb} }}
app = {{ kind = "service", replicas = 2, service_ms = "{svc}"{calls} }}
db  = {{ kind = "database", replicas = 1 }}
[[routes]]
name = "read"
path = {path}
"""
GOOD = {"to": "app", "lb": "", "svc": "exponential:2", "calls": "", "path": '["lb", "app", "db:read"]'}
BAD_DESIGNS = {
    "ejection-share": ({"lb": ", max_ejection_share = 50"}, "bad value 50 for max_ejection_share: expected a share"),
    "ejection-share-float": ({"lb": ", max_ejection_share = 1.5"}, "bad value 1.5 for max_ejection_share"),
    "hop-empty-op": ({"path": '["lb", "app:", "db:read"]'}, "bad hop 'app:'"),
    "hop-two-ops": ({"path": '["lb", "app:a:b", "db:read"]'}, "bad hop 'app:a:b'"),
    "call-hop": ({"path": '["lb", "app"]', "calls": ', calls = ["db:read:x"]'}, "bad hop 'db:read:x'"),
    "lb-to-database": ({"to": "db", "path": '["lb", "db:read"]'}, "bad value 'db' for to: 'db' is a database"),
    "cv-huge": ({"svc": "lognormal:2:cv=1e200"}, "cv must be a number from 0 to 100"),
    "cv-nan": ({"svc": "lognormal:2:cv=nan"}, "got nan"),
}


@pytest.mark.parametrize("name", list(BAD_DESIGNS))
def test_bad_design_is_refused(capsys, tmp_path, name):
    change, needle = BAD_DESIGNS[name]
    cfg = tmp_path / "design.toml"
    cfg.write_text(DESIGN.format(**{**GOOD, **change}))
    out = tmp_path / "run"
    code, _, err = dsim_in(capsys, "run", "graph", "--config", cfg, *TINY, "--out", out)
    assert_refused(code, err, "bad design", needle)
    assert not out.exists()


def test_design_checks_at_library_level():
    for share in (0, 0.5, 1):
        parse_design({**THREE_TIER, "lb": {**THREE_TIER["lb"], "max_ejection_share": share}}, THREE_TIER_ROUTES)
    with pytest.raises(UsageError, match="max_ejection_share"):
        parse_design({**THREE_TIER, "lb": {**THREE_TIER["lb"], "max_ejection_share": 1.01}}, THREE_TIER_ROUTES)
    with pytest.raises(UsageError, match="bad hop ':read'|names no component"):
        parse_design(THREE_TIER, [{"name": "r", "path": ["lb", "app", ":read"]}])
