"""System designs as TOML graphs: validation of bad designs, the shipped examples, and the
checkers' verdicts on whole runs."""

from __future__ import annotations

import json

import subprocess
import sys
from pathlib import Path

import pytest

from simulator import UsageError, build_config, execute, get_scenario
from simulator.kit.graph import parse

ROOT = Path(__file__).resolve().parent.parent
APP = {"kind": "service", "replicas": 2, "cores": 2, "service_ms": "exponential:2"}


def route(path, **kw):
    return [{"name": "r", "path": path, **kw}]


@pytest.mark.parametrize("components, routes, needle", [
    ({"a": {"kind": "cache"}}, route(["a"]), "component 'a': unknown kind 'cache'"),
    ({"a": APP}, route(["a", "db:read"]), "route 'r': hop 'db:read' names no component"),
    ({"a": {**APP, "calls": ["b"]}, "b": {**APP, "calls": ["a"]}}, route(["a"]), "cycle: a -> b -> a"),
    ({"a": {**APP, "service_ms": "gamma:3"}}, route(["a"]), "component 'a': bad distribution 'gamma:3' for service_ms"),
    ({"a": {**APP, "service_ms": {"get": "exponential"}}}, route(["a"]), "bad distribution 'exponential' for service_ms.get"),
    ({"a": {**APP, "colour": "red"}}, route(["a"]), "component 'a': unknown key 'colour'"),
    ({"lb": {"kind": "load-balancer", "to": "a"}, "a": APP, "b": APP}, route(["lb", "b"]),
     "load balancer 'lb' balances over 'a', not 'b'"),
    ({"lb": {"kind": "load-balancer", "to": "x"}, "a": APP}, route(["a"]), "calls 'x', which is not a component"),
    ({"db": {"kind": "database"}, "a": APP}, route(["db:read", "a"]), "'db' is a database and must be the last hop"),
    ({"a": {**APP, "replicas": 0}}, route(["a"]), "bad value 0 for replicas: expected an integer from 1 to 1,000,000"),
    ({"a": {**APP, "timeout_ms": float("nan")}}, route(["a"]), "bad value nan for timeout_ms: expected a number from 1 to 1,000,000,000,000"),
    ({"a": {**APP, "replicas": 10**8}}, route(["a"]), "bad value 100000000 for replicas"),
    ({"a": APP}, [], "no routes"),
    ({"a": APP, "db": {"kind": "database"}}, route(["a", "db"]), "hop 'db': say db:read or db:write"),
    ({"a": {**APP, "service_ms": {"get": "exponential:1"}}}, route(["a:put"]), "a has no service_ms for 'put' (it has get)"),
])
def test_a_bad_design_is_one_line_naming_the_problem(components, routes, needle):
    """Each kind of bad design raises a UsageError of one line that names the bad part."""
    with pytest.raises(UsageError) as exc:
        parse(components, routes)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg and msg.startswith("bad design:")


def test_a_bad_design_file_exits_2_before_any_results_are_written(tmp_path):
    """`dsim run graph --config bad.toml` prints one error line, exits 2 and writes no folder."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[components]\na = { kind = "service", calls = ["a"] }\n[[routes]]\nname = "r"\npath = ["a"]\n')
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "simulator.cli", "run", "graph", "--config", str(bad), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.strip() == "dsim: error: bad design: cycle: a -> a"
    assert not out.exists()


def test_the_design_tables_may_sit_at_the_top_of_the_file_or_under_params():
    """[components] / [[routes]] and [params.components] / [[params.routes]] give the same configuration."""
    comps, routes = {"a": APP}, route(["a"])
    top = build_config(get_scenario("graph"), seed=1, file={"components": comps, "routes": routes})
    under = build_config(get_scenario("graph"), seed=1, file={"params": {"components": comps, "routes": routes}})
    assert top.params == under.params and top.params["components"] == comps


def test_the_three_tier_example_runs_and_exits_0(tmp_path):
    """The shipped three-tier example (shortened) runs through the CLI and every check is valid."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "simulator.cli", "run", "graph", "--config",
                        "examples/graphs/three-tier.toml", "--seed", "1", "--time-limit", "2", "--rate", "500",
                        "--no-plots", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "every-request-answered" in p.stdout and "no-lost-writes" in p.stdout


def test_the_three_tier_example_under_faults_reports_recovery_per_fault(tmp_path):
    """The issue's command: `--nemesis crash,partition-isolate-one` on the three-tier example
    reports, for each healed fault, how soon requests succeeded again."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "simulator.cli", "run", "graph", "--config",
                        "examples/graphs/three-tier.toml", "--nemesis", "crash,partition-isolate-one", "--seed", "1",
                        "--no-plots", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "recovery" in p.stdout and "healed faults" in p.stdout
    recovered = [r for r in json.loads((out / "metrics.json").read_text())["recovery"] if r["recovery_s"] is not None]
    assert len(recovered) >= 2 and all(0 <= r["recovery_s"] < 5 for r in recovered)


def failover_run(replication: str, seed: int = 1):
    comps = {"app": APP, "db": {"kind": "database", "replicas": 2, "replication": replication,
                                "lag_ms": "exponential:30", "detect_ms": 500}}
    faults = [{"at_s": 1.0, "action": "crash", "node": "db-0"}, {"at_s": 2.5, "action": "restart", "node": "db-0"}]
    cfg = build_config(get_scenario("graph"), seed=seed, options={"time_limit_s": 3.0, "rate": 300.0},
                       file={"components": comps, "routes": route(["app", "db:write"], retries=1), "faults": faults})
    return execute(cfg)


def test_async_failover_after_a_primary_crash_loses_acknowledged_writes_and_the_checker_says_so():
    """With async replication, promoting a replica after the primary crashes drops writes it had
    acknowledged but not yet shipped: no-lost-writes fails, naming them."""
    out = failover_run("async")
    assert out.metrics["figures"]["events"]["failover"] == 1
    nlw = out.checks["no-lost-writes"]
    assert nlw.valid is False and nlw.details["lost"] > 0 and "acknowledged writes are not in the database" in nlw.message


def test_sync_failover_after_a_primary_crash_keeps_every_acknowledged_write():
    """With sync replication the same crash and failover lose no acknowledged write."""
    out = failover_run("sync")
    assert out.metrics["figures"]["events"]["failover"] == 1
    assert out.checks["no-lost-writes"].valid is True and out.checks["no-lost-writes"].details["acknowledged"] > 500


def test_a_run_with_plots_draws_the_design_as_graph_png(tmp_path):
    """A run with plots leaves graph.png (the components with their utilisation and p99) besides the standard plots."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "simulator.cli", "run", "graph", "--seed", "1", "--time-limit", "2",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert {"graph.png", "latency-raw.png"} <= {q.name for q in out.glob("*.png")}


def test_the_design_knows_its_calls_and_the_depth_of_each_component():
    """Edges carry the routes that use them, static calls included; depth counts calls from the entry points."""
    d = parse({"lb": {"kind": "load-balancer", "to": "app"}, "app": {**APP, "calls": ["auth"]}, "auth": APP,
               "db": {"kind": "database"}},
              [{"name": "read", "path": ["lb", "app", "db:read"]}, {"name": "write", "path": ["lb", "app", "db:write"]}])
    assert d.edges() == [("lb", "app", "read, write"), ("app", "db", "read, write"), ("app", "auth", "")]
    assert d.layers() == {"lb": 0, "app": 1, "auth": 2, "db": 2}
    assert d.terminal_writes() == ["write"]


@pytest.mark.slow
def test_the_failover_examples_under_crash_async_loses_writes_on_some_seed_and_sync_never_on_it():
    """Under --nemesis crash, failover-async.toml exits 1 from no-lost-writes alone on some seed of
    the first 20, and failover-sync.toml on that seed is valid."""
    from simulator.pipeline.config import load_toml

    def run_file(name, seed):
        cfg = build_config(get_scenario("graph"), seed=seed, file=load_toml(ROOT / "examples/graphs" / name),
                           options={"nemesis": ("crash",), "time_limit_s": 10.0})
        return execute(cfg)

    for seed in range(1, 21):
        out = run_file("failover-async.toml", seed)
        if out.valid is False:
            break
    else:
        pytest.fail("no seed of the first 20 lost a write")
    assert [k for k, c in out.checks.items() if c.valid is not True] == ["no-lost-writes"]
    assert run_file("failover-sync.toml", seed).valid is True


def test_component_figures_count_service_drops_and_limiter_decisions():
    """Per component: requests served (or decided, for a rate limiter), mean queue, utilisation and drops by reason."""
    from simulator.kit.checks import component_figures

    served = [(5_000_000 * q, "app-1", "app", "*", True, q, 0, 5_000_000, 5_000_000) for q in (0, 2)]
    recs = [{"kind": "kit.drop", "comp": "app", "reason": "overloaded"},
             {"kind": "kit.admit", "comp": "edge", "admitted": True},
             {"kind": "kit.admit", "comp": "edge", "admitted": False},
             {"kind": "kit.drop", "comp": "edge", "reason": "rate-limited"}]
    f = component_figures(recs, served, {"app": 2}, 10_000_000)
    assert f["app"]["requests"] == 2 and f["app"]["mean_queue"] == 1.0 and f["app"]["utilisation"] == 0.5
    assert f["app"]["drops"] == {"overloaded": 1}
    assert f["edge"]["requests"] == 2 and f["edge"]["drops"] == {"rate-limited": 1}


@pytest.mark.parametrize("name", ["three-tier.toml", "read-heavy.toml", "failover-async.toml", "failover-sync.toml",
                                  "queue-workers.toml"])
def test_every_example_design_is_valid_and_runs_short(name):
    """Each shipped example design parses and a short run of it is valid."""
    from simulator.pipeline.config import load_toml

    cfg = build_config(get_scenario("graph"), seed=1, file=load_toml(ROOT / "examples/graphs" / name),
                       options={"time_limit_s": 1.0, "rate": 200.0})
    assert execute(cfg).valid is True


def test_the_default_design_is_the_three_tier_example():
    """`dsim run graph` without a file runs the design of examples/graphs/three-tier.toml."""
    from scenarios.graph.scenario import THREE_TIER, THREE_TIER_ROUTES
    from simulator.pipeline.config import load_toml

    f = load_toml(ROOT / "examples/graphs/three-tier.toml")
    assert parse(THREE_TIER, THREE_TIER_ROUTES) == parse(f["components"], f["routes"])


def test_the_planted_bug_ignore_idempotency_keys_is_caught_by_exactly_once():
    """With databases that ignore idempotency keys, a write retried while its first attempt sat in a
    paused node is stored twice: exactly-once fails on some seed of the first 20 under --nemesis
    pause, and on that seed it holds without the bug."""
    def run_seed(seed, bug):
        cfg = build_config(get_scenario("graph"), seed=seed, bug=bug,
                           options={"nemesis": ("pause",), "nemesis_interval_s": 2.0, "time_limit_s": 10.0})
        return execute(cfg)

    for seed in range(1, 21):
        out = run_seed(seed, "ignore-idempotency-keys")
        if out.checks["exactly-once"].valid is False:
            break
    else:
        pytest.fail("the bug went unnoticed on seeds 1-20")
    assert "writes stored more than once" in out.checks["exactly-once"].message
    assert run_seed(seed, None).checks["exactly-once"].valid is True


def test_exactly_once_counts_only_duplicates_of_the_routes_writes():
    """A write id stored twice fails exactly-once; ids of other routes, and a single copy, pass."""
    from simulator.kit.checks import exactly_once

    hist = [{"index": 0, "time": 0, "type": "invoke", "process": 0, "f": "w", "value": "k"},
            {"index": 1, "time": 5, "type": "ok", "process": 0, "f": "w", "value": ("k", 0, None)}]
    assert exactly_once(hist, ["w"], {"db": [0, "other", "other"]}).valid is True
    bad = exactly_once(hist, ["w"], {"db": [0, 0]})
    assert bad.valid is False and "request 0 x2" in bad.message


def test_route_figures_of_a_columnar_history_equal_those_of_its_dicts():
    """route_figures reads a columnar History's arrays and gives what the pair-by-pair loop gives,
    an operation that never ended counting as info."""
    from simulator.kit.checks import route_figures
    from simulator.workload.history import History

    events = [(0, 0, 1, "read"), (5, 0, 2, "write"), (7, 1, 1, "read"), (9, 0, 1, "read"), (12, 3, 1, "read"),
              (20, 0, 3, "read"), (31, 2, 2, "write"), (40, 0, 2, "write"), (46, 1, 2, "write")]
    h = History(dicts_up_to=0)
    for t, code, process, f in events:
        h.add(t * 1_000_000, code, process, f, None)
    dicts = [{"index": i, "time": t * 1_000_000, "type": ("invoke", "ok", "fail", "info")[c], "process": p,
              "f": f, "value": None} for i, (t, c, p, f) in enumerate(events)]
    columns = route_figures(h)
    assert columns == route_figures(dicts)
    assert columns["read"] == {"ok": 1, "fail": 0, "info": 2, "p50_ms": 7.0, "p99_ms": 7.0}
