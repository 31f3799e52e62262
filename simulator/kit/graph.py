"""System designs as graphs: components and routes from a TOML design, validated and built.

A design (the ``components`` table and ``routes`` array; see ``examples/graphs/``)::

    [params.components]
    lb  = { kind = "load-balancer", policy = "p2c", to = "app" }
    app = { kind = "service", replicas = 4, cores = 2, service_ms = "lognormal:12:cv=0.8" }
    db  = { kind = "database", replicas = 2, replication = "async", lag_ms = "exponential:20" }

    [[params.routes]]
    name = "read"
    share = 0.9
    path = ["lb", "app", "db:read"]

Each kind's keys are its spec's fields (documented in its module: ``service``, ``balancer``,
``database``, ``ratelimit``, ``queue``), plus for every component that calls others the retry policy and
breaker as flat keys: ``timeout_ms``, ``retries``, ``backoff_base_ms``, ``backoff_max_ms``,
``jitter``, ``retry_budget``, ``breaker_failures``, ``breaker_open_ms``. Durations are numbers
of ms; distributions are strings ``KIND:MEAN_MS[:cv=X]``. A bad design raises ``UsageError``
with one line naming the problem.

A ``queue`` is a durable queue (``partitions`` nodes) with a pool of ``workers`` draining it: a
route that ends at the queue (``["api", "jobs:resize"]``) is answered once its job is stored, and
a worker later works the job (``service_ms`` for its op, then its ``calls`` in order, carrying
the request's key and idempotency key) and acks it; a job whose calls fail comes back after the
visibility timeout and, past ``max_receives`` deliveries, goes to the dead-letter queue::

    jobs = { kind = "queue", partitions = 2, workers = 4, worker_slots = 2,
             service_ms = "exponential:20", calls = ["db:write"], max_receives = 5 }

Default timeouts nest, so that an inner hop gives up before its caller does: client 5 s; load
balancer 2 s per attempt, one retry; service 800 ms, one retry; database router 500 ms.

A design's size is bounded as a whole, not only key by key, so that any accepted design builds
in seconds: at most 10,000 hosts in all (every component's replicas, partitions and workers, and
each database's primary and router), 50,000 links (each balancer replica's endpoints; each queue worker's
partitions and slots) and 1,000,000 ring entries (each ring-hash balancer replica's vnodes for
each endpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..engine.dists import Dist
from ..engine.errors import UsageError
from .balancer import POLICIES, BalancerSpec, HealthCheck, LoadBalancer, OutlierDetection
from .caller import BreakerPolicy, RetryPolicy
from .client import Client, Route
from .database import DatabaseSpec, DbNode, DbRouter
from .directory import Directory
from .messages import split_hop
from .queue import Queue, QueueSpec, QueueWorker
from .ratelimit import ALGORITHMS, RateLimiter, RateLimiterSpec
from .service import Service, ServiceSpec

KINDS = ("service", "load-balancer", "database", "rate-limiter", "queue")
CALLER_KEYS = ("timeout_ms", "retries", "backoff_base_ms", "backoff_max_ms", "jitter", "retry_budget",
               "breaker_failures", "breaker_open_ms")
KEYS = {
    "service": ("replicas", "cores", "service_ms", "queue_limit", "calls", "parallel") + CALLER_KEYS,
    "load-balancer": ("to", "policy", "vnodes", "replicas", "cores", "service_ms", "health_interval_ms",
                      "health_timeout_ms", "unhealthy_threshold", "healthy_threshold", "consecutive_errors",
                      "max_ejection_share", "base_ejection_ms") + CALLER_KEYS,
    "database": ("replicas", "cores", "service_ms", "fsync_ms", "durable", "replication", "lag_ms", "read_from",
                 "failover", "detect_ms", "heartbeat_ms", "queue_limit", "timeout_ms", "dedupe"),
    "rate-limiter": ("algorithm", "limit", "window_ms", "per", "to", "replicas") + CALLER_KEYS,
    "queue": ("partitions", "visibility_timeout_ms", "long_poll_ms", "max_receives", "fsync_ms", "workers",
              "worker_slots", "service_ms", "calls") + CALLER_KEYS,
}
ROUTE_KEYS = ("name", "path", "share", "keys", "timeout_ms", "retries", "retry_budget", "slo_p99_ms", "idempotent")
DEFAULT_RETRY = {"service": RetryPolicy(timeout_ms=800.0, retries=1),
                 "load-balancer": RetryPolicy(timeout_ms=2000.0, retries=1),
                 "rate-limiter": RetryPolicy(timeout_ms=2000.0),
                 "database": RetryPolicy(timeout_ms=500.0),
                 "queue": RetryPolicy(timeout_ms=800.0, retries=1)}


@dataclass
class Design:
    components: dict[str, Any]  # name -> spec, in the file's order
    kinds: dict[str, str]
    routes: list[Route]

    def queues(self) -> list[str]:
        return [n for n, k in self.kinds.items() if k == "queue"]

    def terminal_writes(self) -> list[str]:
        """Routes whose last hop writes to a database."""
        out = []
        for r in self.routes:
            comp, op = split_hop(r.path[-1])
            if self.kinds[comp] == "database" and op == "write":
                out.append(r.name)
        return out

    def servers(self) -> list[str]:
        """Every node id the design adds, in order (the nemesis targets)."""
        ids = []
        for name, spec in self.components.items():
            ids += node_ids(self.kinds[name], spec)
        return ids

    def directory(self) -> Directory:
        d = Directory()
        for name, spec in self.components.items():
            kind = self.kinds[name]
            d.add(name, [name] if kind == "database" else spec.instance_ids())  # a queue: its partitions
        return d

    def build(self, sim) -> Directory:
        """Add every component's nodes to ``sim``; the directory the clients need."""
        d = self.directory()
        for name, spec in self.components.items():
            kind = self.kinds[name]
            if kind == "service":
                for i in spec.instance_ids():
                    sim.add_node(i, lambda s=spec: Service(s, d), inbox_limit=10**9)
            elif kind == "load-balancer":
                for i in spec.instance_ids():
                    sim.add_node(i, lambda s=spec: LoadBalancer(s, d), inbox_limit=10**9)
            elif kind == "rate-limiter":
                for i in spec.instance_ids():
                    sim.add_node(i, lambda s=spec: RateLimiter(s, d), inbox_limit=10**9)
            elif kind == "queue":
                for i in spec.partition_ids():
                    sim.add_node(i, lambda s=spec: Queue(s), fsync=spec.fsync_ms, inbox_limit=10**9)
                for i in spec.worker_ids():
                    sim.add_node(i, lambda s=spec: QueueWorker(s, d), inbox_limit=10**9)
            else:
                sim.add_node(name, lambda s=spec: DbRouter(s), inbox_limit=10**9)
                for i in spec.node_ids():
                    sim.add_node(i, lambda s=spec: DbNode(s, name), fsync=spec.fsync_ms, inbox_limit=10**9)
        return d

    def edges(self) -> list[tuple[str, str, str]]:
        """(caller, callee, the routes over it joined by commas) for every call the design makes."""
        out: dict[tuple[str, str], list[str]] = {}
        for r in self.routes:
            comps = [split_hop(h)[0] for h in r.path]
            for a, b in zip(comps, comps[1:]):
                out.setdefault((a, b), []).append(r.name)
        for name, spec in self.components.items():
            kind = self.kinds[name]
            targets = [spec.to] if kind == "load-balancer" or (kind == "rate-limiter" and spec.to) else []
            targets += [split_hop(h)[0] for h in spec.calls] if kind in ("service", "queue") else []
            for b in targets:
                out.setdefault((name, b), [])
        return [(a, b, ", ".join(names)) for (a, b), names in out.items()]

    def layers(self) -> dict[str, int]:
        """Each component's depth: the longest chain of calls leading to it (entry points are 0)."""
        depth = {n: 0 for n in self.components}
        edges = self.edges()
        for _ in range(len(depth)):  # the design is acyclic (checked), so this settles
            for a, b, _ in edges:
                depth[b] = max(depth[b], depth[a] + 1)
        return depth

    def client(self, d: Directory):
        return lambda cid: Client(self.routes, d)


def node_ids(kind: str, spec) -> list[str]:
    if kind == "database":
        return [spec.name, *spec.node_ids()]
    return spec.node_ids() if kind == "queue" else spec.instance_ids()


# ---- parsing ----------------------------------------------------------------------------------
def _bad(where: str, text: str) -> UsageError:
    return UsageError(f"bad design: {where}: {text}")


def _dist(where: str, key: str, raw) -> Dist:
    try:
        return Dist("constant", float(raw)) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else Dist.parse(raw)
    except (TypeError, ValueError) as exc:
        raise _bad(where, f"bad distribution {raw!r} for {key} ({exc})") from None


def _service_ms(where: str, raw) -> dict:
    if isinstance(raw, dict):
        return {str(op): _dist(where, f"service_ms.{op}", v) for op, v in raw.items()}
    return {"*": _dist(where, "service_ms", raw)}


_MAX_COUNT = 1_000_000
_MAX_NUMBER = 1e12  # ms: about 30 years
# A design as a whole: each count may be within _MAX_COUNT and their sums and products still hang the build (and
# every simulated second: health probes and long polls go over every link). At these limits a short run builds and
# runs in a few seconds.
_MAX_HOSTS = 10_000  # nodes the design adds
_MAX_LINKS = 50_000  # balancer replicas x the endpoints each holds; queue workers x (partitions + worker_slots)
_MAX_RING = 1_000_000  # ring-hash balancers: replicas x endpoints x vnodes
_MAX_NAME = 64  # characters of a component's or a route's name
_MAX_CALLS = 64  # hops a service or worker calls for each request


def _typed(where: str, key: str, raw, want: type, low=None, choices=()):
    ok = isinstance(raw, want) and not (want is not bool and isinstance(raw, bool))
    if want is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw, ok = float(raw), True
    # NaN compares false with every bound, and a huge count (replicas, cores, workers) would hang the build: numbers
    # are finite, and counts at most _MAX_COUNT.
    top = _MAX_COUNT if want is int else _MAX_NUMBER
    if ok and want in (int, float) and not (math.isfinite(raw) and raw <= top):
        ok = False
    if not ok or (low is not None and raw < low) or (choices and raw not in choices):
        expected = ("one of " + ", ".join(choices)) if choices else \
            {int: "an integer", float: "a number", bool: "true or false", str: "text"}[want] + \
            (f" from {low:g} to {top:,.0f}" if low is not None else "")
        raise _bad(where, f"bad value {raw!r} for {key}: expected {expected}")
    return raw


# key -> (type, minimum or choices)
_TYPES = {
    "replicas": (int, 1), "cores": (int, 1), "queue_limit": (int, 0), "parallel": (bool, None), "vnodes": (int, 1),
    "policy": (str, POLICIES), "health_interval_ms": (float, 0), "health_timeout_ms": (float, 0),
    "unhealthy_threshold": (int, 1), "healthy_threshold": (int, 1), "consecutive_errors": (int, 0),
    "max_ejection_share": (float, 0), "base_ejection_ms": (float, 0), "durable": (bool, None),
    "replication": (str, ("async", "sync")), "read_from": (str, ("primary", "replica")), "failover": (bool, None),
    "detect_ms": (float, 1), "heartbeat_ms": (float, 1), "dedupe": (bool, None), "algorithm": (str, ALGORITHMS), "limit": (int, 1),
    "window_ms": (float, 1), "per": (str, ("global", "key")), "timeout_ms": (float, 1), "retries": (int, 0),
    "backoff_base_ms": (float, 0), "backoff_max_ms": (float, 0), "jitter": (bool, None), "retry_budget": (float, 0),
    "breaker_failures": (int, 0), "breaker_open_ms": (float, 0), "to": (str, None),
    "partitions": (int, 1), "visibility_timeout_ms": (float, 1), "long_poll_ms": (float, 1), "max_receives": (int, 0),
    "workers": (int, 0), "worker_slots": (int, 1),
}


def _hop(where: str, hop: str) -> None:
    """A hop is ``COMPONENT`` or ``COMPONENT:OPERATION``: one colon at most, an operation after it."""
    comp, colon, op = hop.partition(":")
    if not comp or (colon and (not op or ":" in op)):
        raise _bad(where, f"bad hop {hop!r}: expected COMPONENT or COMPONENT:OPERATION, e.g. \"app\" or \"db:read\"")


def _value(where: str, key: str, raw):
    want, extra = _TYPES[key]
    if isinstance(extra, tuple):
        return _typed(where, key, raw, want, choices=extra)
    return _typed(where, key, raw, want, low=extra)


def _component(name: str, table: Any) -> tuple[str, Any]:
    where = f"component {name!r}"
    if not isinstance(table, dict):
        raise _bad(where, "expected a table such as { kind = \"service\", ... }")
    kind = table.get("kind")
    if kind not in KINDS:
        raise _bad(where, f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    raw = {k: v for k, v in table.items() if k != "kind"}
    for key in raw:
        if key not in KEYS[kind]:
            raise _bad(where, f"unknown key {key!r} for a {kind}: accepted: {', '.join(KEYS[kind])}")
    v: dict[str, Any] = {}
    for key, val in raw.items():
        if key in ("service_ms",):
            v[key] = _service_ms(where, val)
        elif key in ("fsync_ms", "lag_ms"):
            v[key] = _dist(where, key, val)
        elif key == "calls":
            if not isinstance(val, list) or not all(isinstance(h, str) for h in val):
                raise _bad(where, f"bad value {val!r} for calls: expected a list of hops")
            if len(val) > _MAX_CALLS:  # each request fans out to every one: 10,000 took 68 s for a 0.3 s run
                raise _bad(where, f"bad value [...] ({len(val):,} hops) for calls: expected at most {_MAX_CALLS} hops")
            for hop in val:
                _hop(where, hop)
            v[key] = tuple(val)
        else:
            v[key] = _value(where, key, val)
            if key == "max_ejection_share" and v[key] > 1:  # at most every endpoint ejected
                raise _bad(where, f"bad value {val!r} for max_ejection_share: expected a share from 0 to 1")
    _check_pairs(where, kind, v)
    retry = DEFAULT_RETRY[kind]
    rk = {"timeout_ms": "timeout_ms", "retries": "retries", "backoff_base_ms": "backoff_base_ms",
          "backoff_max_ms": "backoff_max_ms", "jitter": "jitter", "retry_budget": "budget_share"}
    retry = replace(retry, **{rk[k]: v.pop(k) for k in list(v) if k in rk})
    breaker = BreakerPolicy(failures=v.pop("breaker_failures", 0), open_ms=v.pop("breaker_open_ms", 1000.0))
    if kind == "service":
        return kind, ServiceSpec(name, retry=retry, breaker=breaker, **v)
    if kind == "load-balancer":
        if "to" not in v:
            raise _bad(where, "a load-balancer needs 'to' (the component it balances over)")
        hmap = {"health_interval_ms": "interval_ms", "health_timeout_ms": "timeout_ms",
                "unhealthy_threshold": "unhealthy_threshold", "healthy_threshold": "healthy_threshold"}
        omap = {"consecutive_errors": "consecutive_errors", "max_ejection_share": "max_ejection_share",
                "base_ejection_ms": "base_ejection_ms"}
        health = HealthCheck(**{hmap[k]: v.pop(k) for k in list(v) if k in hmap})
        outlier = OutlierDetection(**{omap[k]: v.pop(k) for k in list(v) if k in omap})
        return kind, BalancerSpec(name, retry=retry, breaker=breaker, health=health, outlier=outlier, **v)
    if kind == "database":
        return kind, DatabaseSpec(name, retry=retry, **v)
    if kind == "queue":
        return kind, QueueSpec(name, retry=retry, breaker=breaker, **v)
    return kind, RateLimiterSpec(name, retry=retry, **v)


def _check_pairs(where: str, kind: str, v: dict) -> None:
    """Pairs of keys that are each valid but not together (worded as reverse-proxy words the same pairs)."""
    def shown(key: str, default: float) -> str:
        return f"{v[key]:g}" if key in v else f"{default:g} (the default)"

    retry = DEFAULT_RETRY[kind]
    base, top = v.get("backoff_base_ms", retry.backoff_base_ms), v.get("backoff_max_ms", retry.backoff_max_ms)
    if top < base:
        raise _bad(where, f"bad value {shown('backoff_max_ms', top)} for backoff_max_ms: expected >= "
                          f"backoff_base_ms ({shown('backoff_base_ms', base)})")
    if kind == "load-balancer":
        hc = HealthCheck()
        interval = v.get("health_interval_ms", hc.interval_ms)
        timeout = v.get("health_timeout_ms", hc.timeout_ms)
        if interval > 0 and timeout >= interval:
            raise _bad(where, f"bad value {shown('health_timeout_ms', timeout)} for health_timeout_ms: expected less "
                              f"than health_interval_ms ({shown('health_interval_ms', interval)}), so each round "
                              f"settles before the next")


def _check_size(design: Design) -> None:
    """The design as a whole within _MAX_HOSTS, _MAX_LINKS and _MAX_RING; the refusal names the largest part."""
    kinds, specs = design.kinds, design.components
    hosts: dict[str, tuple[int, str]] = {}
    links: dict[str, tuple[int, str]] = {}
    ring: dict[str, tuple[int, str]] = {}
    instances = {}  # what a caller of each component reaches
    for name, spec in specs.items():
        kind = kinds[name]
        if kind == "database":
            hosts[name] = (spec.replicas + 2, f"replicas = {spec.replicas}")  # + primary, router
            instances[name] = 1
        elif kind == "queue":
            hosts[name] = (spec.partitions + spec.workers, f"partitions = {spec.partitions}, workers = {spec.workers}")
            instances[name] = spec.partitions
        else:
            hosts[name] = (spec.replicas, f"replicas = {spec.replicas}")
            instances[name] = spec.replicas
    for name, spec in specs.items():
        kind = kinds[name]
        if kind == "load-balancer" and spec.to in instances:
            n = instances[spec.to]
            behind = f"{n} endpoint{'s' if n != 1 else ''} ({spec.to!r})"
            links[name] = (spec.replicas * n, f"replicas = {spec.replicas} x {behind}")
            if spec.policy == "ring-hash":
                ring[name] = (spec.replicas * n * spec.vnodes,
                              f"vnodes = {spec.vnodes} x {behind} x replicas = {spec.replicas}")
        elif kind == "queue" and spec.workers:
            slots = f"partitions = {spec.partitions} + worker_slots = {spec.worker_slots}"
            links[name] = (spec.workers * (spec.partitions + spec.worker_slots),
                           f"workers = {spec.workers} x ({slots})")
    for parts, limit, what, accepted in (
            (hosts, _MAX_HOSTS, "hosts", "replicas, partitions and workers, summed over components"),
            (links, _MAX_LINKS, "links",
             "balancer replicas x endpoints plus queue workers x (partitions + worker_slots)"),
            (ring, _MAX_RING, "ring entries", "vnodes x endpoints x replicas, summed over ring-hash balancers")):
        total = sum(n for n, _ in parts.values())
        if total > limit:
            name = max(parts, key=lambda k: parts[k][0])
            raise _bad(f"component {name!r}", f"{parts[name][1]} makes {total:,} {what} in the design: accepted: "
                                              f"at most {limit:,} ({accepted})")


def _route(i: int, table: Any, kinds: dict[str, str]) -> Route:
    where = f"route {i + 1}"
    if not isinstance(table, dict):
        raise _bad(where, "expected a table with name, share and path")
    for key in table:
        if key not in ROUTE_KEYS:
            raise _bad(where, f"unknown key {key!r}: accepted: {', '.join(ROUTE_KEYS)}")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(where, "needs a name")
    if len(name) > _MAX_NAME:  # it labels the route's figures and checks
        raise _bad(where, f"bad name {name[:40]!r}... ({len(name):,} characters): expected at most {_MAX_NAME} characters")
    where = f"route {name!r}"
    path = table.get("path")
    if not isinstance(path, list) or not path or not all(isinstance(h, str) for h in path):
        raise _bad(where, "path must be a non-empty list of hops such as [\"lb\", \"app\", \"db:read\"]")
    for hop in path:
        _hop(where, hop)
        if split_hop(hop)[0] not in kinds:
            raise _bad(where, f"hop {hop!r} names no component (components: {', '.join(kinds)})")
    out = {"name": name, "path": tuple(path)}
    for key, want, low in (("share", float, 0), ("keys", int, 1), ("timeout_ms", float, 1), ("retries", int, 0),
                           ("retry_budget", float, 0), ("slo_p99_ms", float, 0.001), ("idempotent", bool, None)):
        if key in table:
            out[key] = _typed(where, key, table[key], want, low=low)
    if out.get("share", 1.0) <= 0:
        raise _bad(where, "share must be > 0")
    return Route(**out)


def _check_graph(design: Design) -> None:
    kinds = design.kinds
    edges: dict[str, list[str]] = {n: [] for n in kinds}

    def edge(a: str, b: str, where: str) -> None:
        if b not in kinds:
            raise _bad(where, f"calls {b!r}, which is not a component (components: {', '.join(kinds)})")
        if b not in edges[a]:
            edges[a].append(b)

    for name, spec in design.components.items():
        if kinds[name] == "load-balancer" or (kinds[name] == "rate-limiter" and spec.to):
            edge(name, spec.to, f"component {name!r}")
        if kinds[name] == "load-balancer" and kinds[spec.to] == "database":  # its one router: nothing to balance
            raise _bad(f"component {name!r}", f"bad value {spec.to!r} for to: {spec.to!r} is a database (one router, "
                       f"called directly as {spec.to}:read or {spec.to}:write): expected a service, load-balancer, "
                       f"rate-limiter or queue")
        if kinds[name] in ("service", "queue"):
            for hop in spec.calls:
                edge(name, split_hop(hop)[0], f"component {name!r}")
    hops = [(f"route {r.name!r}", h) for r in design.routes for h in r.path]
    hops += [(f"component {n!r}", h) for n, spec in design.components.items() if kinds[n] in ("service", "queue")
             for h in spec.calls]
    for where, hop in hops:
        comp, op = split_hop(hop)
        if comp not in kinds:
            raise _bad(where, f"calls {comp!r}, which is not a component (components: {', '.join(kinds)})")
        if kinds[comp] == "database" and op not in ("read", "write"):
            raise _bad(where, f"hop {hop!r}: say {comp}:read or {comp}:write")
        svc = design.components[comp].service_ms if kinds[comp] in ("service", "queue") else None
        if svc is not None and op not in svc and "*" not in svc:
            raise _bad(where, f"hop {hop!r}: {comp} has no service_ms for {op!r} (it has {', '.join(svc)})")
    for r in design.routes:
        comps = [split_hop(h)[0] for h in r.path]
        for a, b in zip(comps, comps[1:]):
            if kinds[a] in ("database", "queue"):
                raise _bad(f"route {r.name!r}", f"hop {a!r} is a {kinds[a]} and must be the last hop")
            if kinds[a] == "load-balancer" and b != design.components[a].to:
                raise _bad(f"route {r.name!r}", f"load balancer {a!r} balances over {design.components[a].to!r}, not {b!r}")
            edge(a, b, f"route {r.name!r}")
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    for root in kinds:  # depth first, without recursion (a chain of thousands of services)
        if root in state:
            continue
        state[root] = 1
        path, todo = [root], [iter(edges[root])]
        while todo:
            m = next(todo[-1], None)
            if m is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(m) == 1:
                cycle = path[path.index(m):] + [m]
                shown = cycle if len(cycle) <= 12 else [*cycle[:5], f"... ({len(cycle) - 10:,} more)", *cycle[-5:]]
                raise UsageError(f"bad design: cycle: {' -> '.join(shown)}")
            elif m not in state:
                state[m] = 1
                path.append(m)
                todo.append(iter(edges[m]))


def parse(components: Any, routes: Any) -> Design:
    """A validated :class:`Design` from the ``components`` table and ``routes`` list."""
    if not isinstance(components, dict) or not components:
        raise UsageError("bad design: no components: give a [params.components] table")
    if not isinstance(routes, list) or not routes:
        raise UsageError("bad design: no routes: give at least one [[params.routes]] table")
    specs, kinds = {}, {}
    for name, table in components.items():
        if len(name) > _MAX_NAME:  # it names hosts, plot lanes and figures
            raise _bad(f"component {name[:40]!r}... ({len(name):,} characters)", f"a name is at most {_MAX_NAME} characters")
        if not name.replace("_", "").replace("-", "").isalnum() or ":" in name:
            raise _bad(f"component {name!r}", "a name is letters, digits, '-' and '_'")
        kinds[name], specs[name] = _component(name, table)
    routes_out = [_route(i, t, kinds) for i, t in enumerate(routes)]
    names = [r.name for r in routes_out]
    if len(set(names)) != len(names):
        raise UsageError(f"bad design: route names repeat: {', '.join(names)}")
    design = Design(specs, kinds, routes_out)
    _check_size(design)  # before anything lists the design's nodes
    ids = design.servers()
    seen = set()
    for i in ids:
        if i in seen or (i[:1] == "c" and i[1:].isdigit()):
            raise UsageError(f"bad design: node id {i!r} is used twice or taken by a client (c1, c2...): rename a component")
        seen.add(i)
    _check_graph(design)
    return design


__all__ = ["Design", "KINDS", "parse"]
