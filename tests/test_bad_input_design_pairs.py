"""Bad input to the commerce, reverse-proxy, rate-limiter, email and kademlia designs: pairs of
parameters each valid alone that make no sense together, and values whose run would not finish
(sampling or gossip too dense). One line on stderr naming the value, exit 2, no traceback, no
results folder, for `run` and for a `sweep` grid alike; the edges and the defaults still run."""

from __future__ import annotations

import pytest

from simulator import UsageError, build_config, get_scenario
from tests.test_bad_input import assert_refused, dsim_in
from tests.test_bad_input_designs_params import TINY, refused


def sets(*pairs: str) -> list[str]:
    return [x for p in pairs for x in ("--set", p)]


BAD = [
    # reverse-proxy: a per-try timeout as long as the client's whole timeout: the proxy's answer
    # (a retry or a 504) can never reach the client before it gives up
    ("reverse-proxy", ["per_try_timeout_ms=5000", "client_timeout_ms=1"],
     ("5000 for per_try_timeout_ms", "client_timeout_ms (1)")),
    ("reverse-proxy", ["per_try_timeout_ms=1000"], ("1000 for per_try_timeout_ms", "client_timeout_ms (1000)")),
    # rate-limiter: a clock tick longer than the window rejects requests under the limit
    ("rate-limiter", ["tick_ms=5000", "window_ms=1"], ("5000.0 for tick_ms", "window_ms (1.0)")),
    # rate-limiter: all-to-all gossip every ms among 1,000 gateways (30 wall s for 3 simulated s)
    ("rate-limiter", ["gateways=1000", "strategy=sync", "sync_ms=1"],
     ("gateways=1000", "sync_ms=1", "1e+09", "1,000,000")),
    ("rate-limiter", ["gateways=1000", "strategy=sync"], ("gateways=1000", "sync_ms=50", "2.1e+07")),
    ("rate-limiter", ["gateways=1000", "tick_ms=0.01"], ("gateways=1000", "tick_ms=0.01", "1e+08")),
    # email: reserved slots the code silently cut to worker_slots - 1; a back-off base above its cap
    ("email", ["tx_reserved_slots=100", "worker_slots=8"], ("100 for tx_reserved_slots", "worker_slots (8)")),
    ("email", ["worker_slots=2"], ("2 for tx_reserved_slots", "worker_slots (2)")),
    ("email", ["retry_base_ms=100000", "retry_cap_ms=1"], ("100000 for retry_base_ms", "retry_cap_ms (1)")),
    # kademlia: sampling every 0.1 ms hung a 1 s run; values expiring before they are republished
    ("kademlia", ["sample_s=0.0001"], ("0.0001 for sample_s", "at least 1 s", "1000 routing tables")),
    ("kademlia", ["sample_s=1e-300"], ("1e-300 for sample_s",)),
    ("kademlia", ["expire_s=1", "republish_s=3600"], ("1.0 for expire_s", "(7200)")),
    ("kademlia", ["expire_s=7199", "republish_s=3600"], ("7199.0 for expire_s",)),
]


@pytest.mark.parametrize("name, pairs, needles", BAD, ids=[f"{n}-{'-'.join(p)}" for n, p, _ in BAD])
def test_run_refuses(capsys, tmp_path, name, pairs, needles):
    refused(capsys, tmp_path, "run", name, *sets(*pairs), needles=needles)


def test_kademlia_sample_bound_scales_with_the_tables_a_sample_checks(capsys, tmp_path):
    """30 nodes: a sample checks 30 tables, so 0.03 s is the shortest period (0.029 is refused)."""
    refused(capsys, tmp_path, "run", "kademlia", "--node-count", "30", *sets("sample_s=0.029"),
            needles=("0.029 for sample_s", "at least 0.03 s", "30 routing tables"))


@pytest.mark.parametrize("name, grid, needle", [
    ("kademlia", "sample_s=30,0.0001", "0.0001 for sample_s"),
    ("rate-limiter", "tick_ms=1,5000", "5000.0 for tick_ms"),
    ("email", "worker_slots=8,1", "2 for tx_reserved_slots"),
    ("reverse-proxy", "client_timeout_ms=1000,50", "100 for per_try_timeout_ms"),
])
def test_sweep_refuses_a_bad_grid_point_before_any_folder(capsys, tmp_path, name, grid, needle):
    out = tmp_path / "sweep"
    code, _, err = dsim_in(capsys, "sweep", name, "--seeds", "1", "--time-limit", "0.2", "--grid", grid,
                           "--out", out)
    assert_refused(code, err, needle)
    assert not out.exists()


# ---- library level: the same checks through build_config ------------------------------------------

def test_build_config_raises_for_a_pair():
    with pytest.raises(UsageError, match="for tick_ms: expected at most window_ms"):
        build_config(get_scenario("rate-limiter"), seed=1, sets={"tick_ms": 5000.0, "window_ms": 1.0})
    with pytest.raises(UsageError, match="for expire_s: expected at least 2 x republish_s"):
        build_config(get_scenario("kademlia"), seed=1, sets={"expire_s": 1.0})


# ---- what stays accepted ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, pairs", [
    # commerce's decline and cancel flags are drawn independently per order: any two shares make sense
    ("commerce", ["decline_share=0.8", "cancel_share=0.8"]),
    ("reverse-proxy", ["per_try_timeout_ms=999"]),
    ("rate-limiter", ["tick_ms=1000"]),  # a tick as long as the window (1000 ms)
    ("rate-limiter", ["gateways=1000"]),  # a million ticks a simulated second: the bound itself
    ("rate-limiter", ["gateways=100", "strategy=sync", "sync_ms=12"]),
    ("email", ["tx_reserved_slots=7"]),  # worker_slots 8
    ("email", ["worker_slots=1", "tx_reserved_slots=0"]),
    ("email", ["retry_base_ms=30000"]),  # as the cap
    ("kademlia", ["expire_s=7200", "republish_s=3600"]),
    ("kademlia", ["sample_s=1"]),  # 1,000 tables a sample, once a second
    ("kademlia", ["sample_s=0"]),
])
def test_edges_still_run(capsys, tmp_path, name, pairs):
    out = tmp_path / "out"
    extra = ["--node-count", "30"] if name == "kademlia" and "sample_s=1" not in pairs else []
    if name == "rate-limiter" and "gateways=1000" in pairs:
        extra = ["--time-limit", "0.05"]
    code, _, err = dsim_in(capsys, "run", name, *sets(*pairs), *TINY, *extra, "--out", out)
    assert code in (0, 1), err  # a verdict, not a refusal
    assert "error" not in err and (out / "manifest.json").exists()


@pytest.mark.parametrize("name", ["commerce", "reverse-proxy", "rate-limiter", "email", "kademlia"])
def test_defaults_and_benchmarks_pass_the_checks(name):
    """The defaults and each benchmark preset build a config."""
    scen = get_scenario(name)
    build_config(scen, seed=1)
    for preset in getattr(scen, "benchmarks", {}).values():
        build_config(scen, seed=1, options=preset["options"], sets=preset["params"])


def test_kademlia_sample_bound_holds_for_the_presets():
    """The benchmark presets sample at most 1,000 tables a simulated second (the check is in build,
    where node_count is known)."""
    from scenarios.kademlia.scenario import MAX_TABLE_CHECKS_PER_S

    scen = get_scenario("kademlia")
    for preset in scen.benchmarks.values():
        p = {**{q.name: q.default for q in scen.params}, **preset["params"]}
        n = preset["options"]["node_count"]
        assert p["sample_s"] == 0 or min(n, p["sample_nodes"]) / p["sample_s"] <= MAX_TABLE_CHECKS_PER_S
    assert min(scen.defaults["node_count"], 1000) / 30.0 <= MAX_TABLE_CHECKS_PER_S


def test_rate_limiter_defaults_and_readme_runs_are_far_under_the_gossip_bound():
    from scenarios.rate_limiter.scenario import MAX_BACKGROUND_PER_S, background_per_s

    scen = get_scenario("rate-limiter")
    base = {q.name: q.default for q in scen.params}
    for strategy in ("central", "local", "sync"):
        assert background_per_s({**base, "strategy": strategy}) < MAX_BACKGROUND_PER_S / 100
