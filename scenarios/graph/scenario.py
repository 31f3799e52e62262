"""A system design as a graph of kit components, from TOML: load balancers, services, databases,
rate limiters and queues with worker pools, and the routes requests take through them.

    dsim run graph --config examples/graphs/three-tier.toml --seed 1

The design is the config file's ``[components]`` table and ``[[routes]]`` array (or the same
under ``[params]``); ``simulator.kit.graph`` documents every key. Without a file the design is a
three-tier web app of examples/graphs/three-tier.toml: 2 p2c load balancers, 4 app instances,
a database with 2 async replicas.

Nemesis targets are every node of the design (balancers, instances, database routers and nodes);
the clients are not. Checkers: no request silently lost, each route's p99 objective (outside
fault windows), and no acknowledged write lost after the final heal.
"""

from __future__ import annotations

from collections import Counter

from simulator import CheckResult, Param, RunData, Scenario, Setup, UsageError, register, windows
from simulator.kit import checks
from simulator.kit.graph import parse

# The default design is examples/graphs/three-tier.toml's (a test keeps them the same).
THREE_TIER = {
    "lb": {"kind": "load-balancer", "policy": "p2c", "to": "app", "replicas": 2, "consecutive_errors": 5,
           "timeout_ms": 400, "retries": 1},
    "app": {"kind": "service", "replicas": 4, "cores": 2, "service_ms": "lognormal:2.5:cv=0.8", "timeout_ms": 150,
            "retries": 1},
    "db": {"kind": "database", "replicas": 2, "replication": "async", "lag_ms": "exponential:20",
           "fsync_ms": "exponential:1", "service_ms": {"read": "exponential:0.5", "write": "exponential:1"},
           "timeout_ms": 100},
}
THREE_TIER_ROUTES = [
    {"name": "read", "share": 0.9, "path": ["lb", "app", "db:read"], "slo_p99_ms": 50, "timeout_ms": 1000,
     "retries": 1, "retry_budget": 1.0},
    {"name": "write", "share": 0.1, "path": ["lb", "app", "db:write"], "slo_p99_ms": 60, "timeout_ms": 1000,
     "retries": 1, "retry_budget": 1.0},
]


def _table(raw):
    if not isinstance(raw, dict):
        raise ValueError
    return dict(raw)


def _array(raw):
    if not isinstance(raw, list):
        raise ValueError
    return list(raw)


_table.__name__ = "a TOML table"
_array.__name__ = "a TOML array of tables"


@register
class Graph(Scenario):
    name = "graph"
    summary = "a system design from TOML: load balancers, services, databases, rate limiters, queues and routes"
    params = (
        Param("components", THREE_TIER, "the design's components: name -> { kind = ..., ... }", type=_table),
        Param("routes", THREE_TIER_ROUTES, "the routes: [{ name, share, path, slo_p99_ms }, ...]", type=_array),
        Param("slo_outside_faults", True, "judge SLOs only on requests outside fault windows", type=bool),
    )
    config_tables = ("components", "routes")
    unused_options = ("node_count",)  # its components' replicas size it
    checkers = {
        "every-request-answered": "every request ended ok or fail: none lost without an answer",
        "slo": "each route's p99 (of successful requests, outside fault windows) is within its slo_p99_ms",
        "no-lost-writes": "every write acknowledged to a client is in the database after the final heal",
        "exactly-once": "no write of an idempotent route is stored twice (retries carry its idempotency key)",
    }
    bugs = {"ignore-idempotency-keys": "databases store a retried write again instead of recognising its key"}
    # Pauses make clients retry writes the database already stored. (The slo checker fails under
    # pauses too, bug or not: a resumed balancer's backlog outlasts the fault window.)
    exposes = {"ignore-idempotency-keys": "--seed 1 --nemesis pause --nemesis-interval 2"}
    nemeses = ("crash", "pause", "partition-isolate-one", "slow-link", "flaky-link")
    # quiesce_s outlasts the default client timeout (5 s), so a request lost near the end of the
    # main phase has time to end before the run does
    defaults = {"rate": 500.0, "time_limit_s": 20.0, "op_timeout_ms": 15_000.0, "quiesce_s": 6.0,
                "final_timeout_s": 1.0, "latency_ms": 0.5}
    # the figure: the three-tier design at 2,000 requests/s for 60 s
    benchmarks = {"graph-3tier": {"options": {"rate": 2000.0, "time_limit_s": 60.0}, "params": {}}}
    examples = (
        "dsim run graph --seed 1",
        "dsim run graph --config examples/graphs/three-tier.toml --seed 1",
        "dsim run graph --config examples/graphs/three-tier.toml --nemesis crash,partition-isolate-one",
        "dsim run graph --bug ignore-idempotency-keys --nemesis pause --nemesis-interval 2 --seed 1",
    )

    @classmethod
    def validate(cls, params) -> None:
        parse(params["components"], params["routes"])

    def build(self, sim, cfg) -> Setup:
        components = cfg.params["components"]
        if cfg.bug == "ignore-idempotency-keys":
            components = {n: ({**c, "dedupe": False} if c.get("kind") == "database" else c)
                          for n, c in components.items()}
        design = parse(components, cfg.params["routes"])
        directory = design.build(sim)
        databases = [n for n, k in design.kinds.items() if k == "database"]

        def expose() -> dict:
            final = {}
            for db in databases:
                router = sim.hosts[db].node
                primary = sim.hosts[router.primary].node if router is not None else None
                final[db] = [e[1] for e in primary.log] if primary is not None else []
            return {"writes": final}

        from simulator.kit.client import generator

        return Setup(servers=design.servers(), client=design.client(directory), generate=generator(design.routes),
                     expose=expose)

    def check(self, run: RunData) -> dict[str, CheckResult]:
        design = parse(run.cfg.params["components"], run.cfg.params["routes"])
        slos = {r.name: r.slo_p99_ms for r in design.routes if r.slo_p99_ms is not None}
        exclude = []
        if run.cfg.params["slo_outside_faults"]:
            exclude = [(a, b) for a, b, _ in windows(run.faults, run.end_ns)]
        return {
            "every-request-answered": checks.every_request_answered(run.history),
            "slo": checks.slo(run.history, slos, exclude),
            "no-lost-writes": checks.no_lost_writes(run.history, design.terminal_writes(),
                                                    run.exposed.get("writes", {})),
            "exactly-once": checks.exactly_once(run.history, [r.name for r in design.routes if r.idempotent and
                                                              r.name in design.terminal_writes()],
                                                run.exposed.get("writes", {})),
        }

    def figures(self, run: RunData) -> dict:
        design = parse(run.cfg.params["components"], run.cfg.params["routes"])
        cores = {}
        for name, spec in design.components.items():
            kind = design.kinds[name]
            if kind == "service":
                cores[name] = spec.cores * spec.replicas
            elif kind == "database":
                cores[name] = spec.cores * (spec.replicas + 1)
            elif kind == "load-balancer" and spec.service_ms:
                cores[name] = spec.cores * spec.replicas
            elif kind == "queue" and spec.workers:
                cores[name] = spec.worker_slots * spec.workers
        comps = checks.component_figures(run.records, run.table("kit.served"), cores,
                                         int(run.cfg.time_limit_s * 1e9))
        counts = Counter(r["kind"] for r in run.records)  # one pass over the records, not one per kind
        events = {}
        for kind in ("kit.retry", "kit.eject", "kit.uneject", "kit.failover", "kit.breaker", "kit.redeliver",
                     "kit.dead"):
            if counts[kind]:
                events[kind[4:]] = counts[kind]
        return {"components": comps, "routes": checks.route_figures(run.history), "events": events}

    def plots(self, run: RunData, folder, shade) -> list[str]:
        """graph.png: the design, each component with its utilisation and p99 time in it."""
        from simulator import plots

        design = parse(run.cfg.params["components"], run.cfg.params["routes"])
        comps = self.figures(run)["components"]
        layers = design.layers()
        nodes = []
        for name in design.components:
            f = comps.get(name, {})
            kind, spec = design.kinds[name], design.components[name]
            if kind == "queue":
                lines = [name, f"queue x{spec.partitions}, {spec.workers} workers"]
            else:
                lines = [name, f"{kind} x{spec.replicas + 1 if kind == 'database' else spec.replicas}"]
            if f.get("utilisation") is not None:
                lines.append(f"util {f['utilisation']:.0%}")
            if f.get("p99_ms") is not None:
                lines.append(f"p99 {f['p99_ms']:.1f} ms")
            drops = sum(f.get("drops", {}).values())
            if drops:
                lines.append(f"drops {drops}")
            hot = (f.get("utilisation") or 0) > 0.8 or drops
            nodes.append({"id": name, "label": "\n".join(lines), "layer": layers[name],
                          "color": "#f6d5d5" if hot else "#dbe9f6"})
        sub = f"seed {run.cfg.seed}, {run.cfg.rate:g} requests/s" + \
            (f", nemesis {','.join(run.cfg.nemesis)}" if run.cfg.nemesis else "")
        return [plots.component_graph(nodes, design.edges(), folder / "graph.png",
                                       "the design: utilisation and p99 time of each component (downstream calls included)", sub)]


__all__ = ["Graph", "UsageError"]
