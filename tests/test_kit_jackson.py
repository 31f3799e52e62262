"""The kit against queueing theory: a chain of Services is a Jackson network, and a random load
balancer over M/M/1 instances splits a Poisson stream into independent M/M/1 queues.

Loads and lengths are chosen so that 3% holds with margin (measured on seeds 1-5: the chain's
worst station error 2.0%, end to end 1.0%; the split 1-4: see the report of this change). With
the network latency at 0, the client's latency is the sum of the stations' sojourns.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator import build_config, erlang_c, execute, get_scenario
from simulator.workload.history import pairs

# (component, cores, mean service ms); 75 requests/s load them 0.3, 0.3 and 0.15
CHAIN = [("s1", 1, 4.0), ("s2", 2, 8.0), ("s3", 1, 2.0)]
CHAIN_RATE = 75.0
CHAIN_SECONDS = 400.0


def run(components, routes, rate, seconds, seed):
    cfg = build_config(get_scenario("graph"), seed=seed, file={"components": components, "routes": routes},
                       options={"time_limit_s": seconds, "rate": rate, "latency_ms": 0.0, "quiesce_s": 1.0})
    return execute(cfg)


def sojourns_ms(out, comp):
    # kit.served rows: (time_ns, node, comp, op, ok, queue, wait_ns, service_ns, total_ns)
    return np.array([(row[6] + row[7]) / 1e6 for row in out.run.table("kit.served") if row[2] == comp])


def end_to_end_ms(out):
    return np.array([(d["time"] - i["time"]) / 1e6 for i, d in pairs(out.run.history) if d is not None])


def test_the_product_form_sums_the_stations():
    """The theory side: each station of a Jackson network is an M/M/c queue at the external rate."""
    t = [erlang_c(c, CHAIN_RATE, ms / 1000).response_s * 1000 for _, c, ms in CHAIN]
    assert t[0] == pytest.approx(4.0 / 0.7) and t[2] == pytest.approx(2.0 / 0.85)
    assert 8.0 < t[1] < 8.0 / 0.7


@pytest.mark.slow
def test_a_chain_of_services_is_a_jackson_network():
    """Poisson arrivals through three exponential Services: each station's mean sojourn and the
    end-to-end mean are within 3% of the product-form result."""
    comps = {name: {"kind": "service", "cores": c, "service_ms": f"exponential:{ms}", "timeout_ms": 1e6}
             for name, c, ms in CHAIN}
    routes = [{"name": "r", "path": [name for name, _, _ in CHAIN], "timeout_ms": 1e7}]
    out = run(comps, routes, CHAIN_RATE, CHAIN_SECONDS, seed=1)
    total = 0.0
    for name, c, ms in CHAIN:
        theory = erlang_c(c, CHAIN_RATE, ms / 1000).response_s * 1000
        total += theory
        got = sojourns_ms(out, name)
        assert len(got) > 0.95 * CHAIN_RATE * CHAIN_SECONDS
        assert abs(got.mean() - theory) / theory < 0.03, (name, got.mean(), theory)
    e2e = end_to_end_ms(out)
    assert abs(e2e.mean() - total) / total < 0.03, (e2e.mean(), total)


@pytest.mark.slow
def test_a_random_balancer_over_mm1_instances_matches_the_split_queue_formula():
    """Random routing splits Poisson(lambda) into M Poisson(lambda/M) streams: each instance is an
    M/M/1 queue with mean sojourn 1/(mu - lambda/M), and so is the end-to-end mean."""
    m, service_ms, rate, seconds = 4, 8.0, 100.0, 300.0
    comps = {"lb": {"kind": "load-balancer", "policy": "random", "to": "app", "health_interval_ms": 0,
                    "consecutive_errors": 0, "timeout_ms": 1e6},
             "app": {"kind": "service", "replicas": m, "cores": 1, "service_ms": f"exponential:{service_ms}"}}
    out = run(comps, [{"name": "r", "path": ["lb", "app"], "timeout_ms": 1e7}], rate, seconds, seed=1)
    theory = service_ms / (1 - rate / m * service_ms / 1000)
    assert abs(sojourns_ms(out, "app").mean() - theory) / theory < 0.03
    assert abs(end_to_end_ms(out).mean() - theory) / theory < 0.03
