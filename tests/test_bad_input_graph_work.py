"""Graph designs whose counts each pass their cap but whose total work would hang the build, and pairs of
keys reverse-proxy refuses: one line naming the component, the value and the limit, exit 2, nothing written."""

from __future__ import annotations

import time

import pytest

from scenarios.graph.scenario import THREE_TIER, THREE_TIER_ROUTES
from simulator import UsageError
from simulator.kit.graph import parse
from tests.test_bad_input import assert_refused, dsim_in

TINY = ["--seed", "1", "--time-limit", "0.2", "--no-plots"]
LB = '{ kind = "load-balancer", to = "app" }'
APP = '{ kind = "service", service_ms = "exponential:1" }'
DB = '{ kind = "database" }'
ROUTE = '[[routes]]\nname = "read"\nshare = 1.0\npath = ["lb", "app", "db:read"]\n'


def design(lb=LB, app=APP, db=DB, extra="", route=ROUTE) -> str:
    return f'scenario = "graph"\n[components]\nlb = {lb}\napp = {app}\ndb = {db}\n{extra}{route}'


BAD = {
    # the prober's files (/tmp/s12/p1/toml): each hung in the build
    "s2-db-replicas": (design(db='{ kind = "database", replicas = 1000000 }'),
                       ("component 'db'", "replicas = 1000000", "1,000,004 hosts", "at most 10,000")),
    "big1-app-replicas": (design(app='{ kind = "service", replicas = 1000000, service_ms = "exponential:1" }'),
                          ("component 'app'", "replicas = 1000000", "at most 10,000")),
    "big2-ring": (design(lb='{ kind = "load-balancer", to = "app", policy = "ring-hash", vnodes = 1000000 }',
                         app='{ kind = "service", replicas = 50, service_ms = "exponential:1" }'),
                  ("component 'lb'", "vnodes = 1000000 x 50 endpoints ('app')", "50,000,000 ring entries",
                   "at most 1,000,000")),
    "big3-db-replicas-app-cores": (design(app='{ kind = "service", cores = 1000000, service_ms = "exponential:1" }',
                                          db='{ kind = "database", replicas = 1000000 }'),
                                   ("component 'db'", "replicas = 1000000", "at most 10,000")),
    "big4-queue": (design(app='{ kind = "service", service_ms = "exponential:1", calls = ["jobs:x"] }',
                          extra='jobs = { kind = "queue", partitions = 1000000, workers = 1000000, '
                                'worker_slots = 1000000, service_ms = "exponential:1", calls = ["db:write"] }\n'),
                   ("component 'jobs'", "partitions = 1000000, workers = 1000000", "at most 10,000")),
    # within the host limit, but every balancer replica holds (and probes) every endpoint
    "balancer-links": (design(lb='{ kind = "load-balancer", to = "app", replicas = 1000 }',
                              app='{ kind = "service", replicas = 1000, service_ms = "exponential:1" }'),
                       ("component 'lb'", "replicas = 1000 x 1000 endpoints ('app')", "1,000,000 links",
                        "at most 50,000")),
    "queue-links": (design(app='{ kind = "service", service_ms = "exponential:1", calls = ["jobs:x"] }',
                           extra='jobs = { kind = "queue", partitions = 100, workers = 1000, worker_slots = 100, '
                                 'service_ms = "exponential:1", calls = ["db:write"] }\n'),
                    ("component 'jobs'", "workers = 1000 x (partitions = 100 + worker_slots = 100)",
                     "at most 50,000")),
    "queue-slots": (design(app='{ kind = "service", service_ms = "exponential:1", calls = ["jobs:x"] }',
                           extra='jobs = { kind = "queue", workers = 1000, worker_slots = 1000000, '
                                 'service_ms = "exponential:1", calls = ["db:write"] }\n'),
                    ("component 'jobs'", "worker_slots = 1000000", "at most 50,000")),
    # pairs reverse-proxy refuses
    "health-timeout-over-interval": (
        design(lb='{ kind = "load-balancer", to = "app", health_interval_ms = 10, health_timeout_ms = 100000 }'),
        ("component 'lb'", "bad value 100000 for health_timeout_ms", "less than health_interval_ms (10)")),
    "health-default-timeout-over-interval": (
        design(lb='{ kind = "load-balancer", to = "app", health_interval_ms = 100 }'),
        ("bad value 250 (the default) for health_timeout_ms", "less than health_interval_ms (100)")),
    "backoff-base-over-max": (
        design(app='{ kind = "service", service_ms = "exponential:1", backoff_base_ms = 100000, backoff_max_ms = 1 }'),
        ("component 'app'", "bad value 1 for backoff_max_ms", "expected >= backoff_base_ms (100000)")),
    "backoff-base-over-default-max": (
        design(lb='{ kind = "load-balancer", to = "app", backoff_base_ms = 1000 }'),
        ("component 'lb'", "bad value 250 (the default) for backoff_max_ms", ">= backoff_base_ms (1000)")),
    "slo-zero": (design(route=ROUTE + "slo_p99_ms = 0\n"),
                 ("route 'read'", "bad value 0.0 for slo_p99_ms", "from 0.001")),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_graph_design_is_refused(capsys, tmp_path, name):
    text, needles = BAD[name]
    cfg = tmp_path / "design.toml"
    cfg.write_text(text)
    out = tmp_path / "run"
    start = time.monotonic()
    code, _, err = dsim_in(capsys, "run", "graph", "--config", cfg, *TINY, "--out", out)
    assert time.monotonic() - start < 5, "refused only after building"
    assert_refused(code, err, "bad design", *needles)
    assert not out.exists()


def comps(**changes) -> dict:
    return {**THREE_TIER, **changes}


def test_designs_at_the_limits_are_accepted():
    """Exactly at each limit parses (a short run of these builds in a few seconds); one more is refused."""
    lb, app, db = THREE_TIER["lb"], THREE_TIER["app"], THREE_TIER["db"]
    # hosts: lb 2 + app 9,994 + db 2 replicas + primary + router = 10,000
    parse(comps(lb={**lb, "policy": "random"}, app={**app, "replicas": 9994}), THREE_TIER_ROUTES)
    with pytest.raises(UsageError, match=r"replicas = 9995 makes 10,001 hosts in the design: accepted: at most 10,000"):
        parse(comps(app={**app, "replicas": 9995}), THREE_TIER_ROUTES)
    # links: 10 balancer replicas x 5,000 endpoints = 50,000
    parse(comps(lb={**lb, "replicas": 10}, app={**app, "replicas": 5000}), THREE_TIER_ROUTES)
    with pytest.raises(UsageError, match=r"50,010 links in the design: accepted: at most 50,000"):
        parse(comps(lb={**lb, "replicas": 10}, app={**app, "replicas": 5001}), THREE_TIER_ROUTES)
    # ring: 1 replica x 50 endpoints x 20,000 vnodes = 1,000,000
    ring = {**lb, "policy": "ring-hash", "replicas": 1, "vnodes": 20000}
    parse(comps(lb=ring, app={**app, "replicas": 50}), THREE_TIER_ROUTES)
    with pytest.raises(UsageError, match=r"vnodes = 20001 x 50 endpoints \('app'\) x replicas = 1 makes 1,000,050"):
        parse(comps(lb={**ring, "vnodes": 20001}, app={**app, "replicas": 50}), THREE_TIER_ROUTES)
    # a design of many components is bounded as a whole
    many = {**THREE_TIER, **{f"s{i}": {"kind": "service", "replicas": 1000, "service_ms": "exponential:1"}
                             for i in range(10)}}
    with pytest.raises(UsageError, match=r"hosts in the design: accepted: at most 10,000"):
        parse(many, THREE_TIER_ROUTES)
    assert db["replicas"] == 2


def test_huge_designs_are_refused_before_listing_nodes():
    """Counts of 10^6 in several components are refused at once, not after making every node id."""
    big = {f"s{i}": {"kind": "service", "replicas": 1_000_000, "service_ms": "exponential:1"} for i in range(50)}
    start = time.monotonic()
    with pytest.raises(UsageError, match=r"50,000,010 hosts"):
        parse({**THREE_TIER, **big}, THREE_TIER_ROUTES)
    assert time.monotonic() - start < 1


def test_valid_pairs_still_parse():
    lb, app = THREE_TIER["lb"], THREE_TIER["app"]
    parse(comps(lb={**lb, "health_interval_ms": 0, "health_timeout_ms": 100000}), THREE_TIER_ROUTES)  # checks off
    parse(comps(lb={**lb, "health_interval_ms": 100, "health_timeout_ms": 99.9}), THREE_TIER_ROUTES)
    parse(comps(app={**app, "backoff_base_ms": 50, "backoff_max_ms": 50}), THREE_TIER_ROUTES)
    parse(comps(app={**app, "backoff_base_ms": 0, "backoff_max_ms": 0}), THREE_TIER_ROUTES)
    routes = [{**r, "slo_p99_ms": 0.001} for r in THREE_TIER_ROUTES]
    parse(THREE_TIER, routes)
    with pytest.raises(UsageError, match=r"bad value 0.0009 for slo_p99_ms"):
        parse(THREE_TIER, [{**r, "slo_p99_ms": 0.0009} for r in THREE_TIER_ROUTES])
