"""A reverse proxy tier in front of upstreams of uneven speed, one of which degrades.

Clients (the kit's :class:`~simulator.kit.client.Client`) send three routes to one of
``proxies`` proxy instances picked at random: ``GET /api/items`` (50%), ``POST /api/orders``
(20%, not idempotent: each takes effect on the upstream that serves it) and ``GET /static/assets``
(30%). The proxies (proxy.py) terminate TLS, route by path prefix to the ``api`` cluster
(upstreams ``api-1``.. with mean service times ``api_service_ms``, uneven on purpose) or the
``static`` cluster, balance by ``policy``, pool connections per upstream, retry GETs (never
POSTs), probe every upstream and eject outliers.

The degraded upstream (``degraded``, default ``api-1``, the fastest, which load-aware policies
favour) goes through three phases, the ways upstreams fail in production:

``slow``    from ``slow_at_s``: service times x ``slow_factor``; its health endpoint still answers,
            so only outlier ejection (per-try timeouts in a row) takes it out.
``errors``  from ``errors_at_s``: every request answered 503 at once, health endpoint still fine.
            Fast failures draw traffic under least-outstanding and p2c; only ejection helps.
``hung``    from ``hang_at_s`` to ``recover_at_s``: no answer at all, not even to probes. Ejection
            ends by its timer; only active health checks keep it out.

Planted bugs: ``retry-non-idempotent`` (POSTs retried after a per-try timeout: the slow upstream
still performs the first attempt, so the order is placed twice), ``no-outlier-ejection`` (the
slow and erroring upstream stays in rotation: the error share of POSTs and the GETs' p99 break
the SLO), ``health-check-ignores-timeout`` (an unanswered probe is not a failure, so the hung
upstream comes back each time its ejection ends).
"""

from __future__ import annotations

import bisect
from collections import defaultdict

import numpy as np

from simulator import CheckResult, Param, RunData, Scenario, Setup, UsageError, pairs, register, windows
from simulator.kit import checks
from simulator.kit.balancer import POLICIES, HealthCheck, OutlierDetection
from simulator.kit.client import IDEM, Client, Route, generator
from simulator.kit.directory import Directory

from .proxy import Degrade, Proxy, ProxySpec, Rule, Upstream

RULES = (Rule("/api/", "api"), Rule("/static/", "static"))
NS = 1_000_000_000


def routes(p: dict) -> list[Route]:
    """The client's routes; GETs are retried once by the client on a timeout or 504."""
    slo = p["slo_p99_ms"]
    return [Route("get-item", ("proxy:GET /api/items",), 0.5, retries=1, timeout_ms=p["client_timeout_ms"],
                  slo_p99_ms=slo),
            Route("post-order", ("proxy:POST /api/orders",), 0.2, retries=0, timeout_ms=p["client_timeout_ms"],
                  slo_p99_ms=slo, idempotent=False),
            Route("get-static", ("proxy:GET /static/assets",), 0.3, retries=1, timeout_ms=p["client_timeout_ms"],
                  slo_p99_ms=slo)]


MAX_UPSTREAMS = 64  # a cluster's upstreams (one per entry of its *_service_ms), as many as proxies may be


def means(text: str, name: str) -> list[float]:
    try:
        out = [float(x) for x in str(text).split(",")]
        if not out or any(not (0 < x < 1e6) for x in out):
            raise ValueError
    except ValueError:
        raise UsageError(f"bad value {text!r} for {name}: expected comma-separated mean service times in ms "
                         "(each > 0), e.g. 2,3,4,6") from None
    if len(out) > MAX_UPSTREAMS:
        shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."
        raise UsageError(f"bad value {shown!r} for {name}: expected at most {MAX_UPSTREAMS} comma-separated mean "
                         f"service times in ms (one upstream each), not {len(out)}")
    return out


def clusters(p: dict) -> dict[str, list[str]]:
    return {c: [f"{c}-{i + 1}" for i in range(len(means(p[f"{c}_service_ms"], f"{c}_service_ms")))]
            for c in ("api", "static")}


def spec(p: dict) -> ProxySpec:
    return ProxySpec(
        clusters=clusters(p), rules=RULES, policy=p["policy"], cores=p["proxy_cores"],
        tls_handshake_ms=p["tls_handshake_ms"], request_ms=p["request_ms"], keepalive_requests=p["keepalive_requests"],
        pool_max_conns=p["pool_max_conns"], pool_max_pending=p["pool_max_pending"], connect_ms=p["connect_ms"],
        per_try_timeout_ms=p["per_try_timeout_ms"], retries=p["retries"],
        health=HealthCheck(p["hc_interval_ms"], p["hc_timeout_ms"], p["unhealthy_threshold"], p["healthy_threshold"]),
        outlier=OutlierDetection(p["consecutive_errors"], p["max_ejection_share"], p["base_ejection_ms"]),
        max_ejection_ms=p["max_ejection_ms"])


def stragglers_ns(p: dict) -> int:
    """How long after an endpoint is taken out a request already picked for it may still leave:
    one waiting in the pool leaves by its per-try timeout, one connecting after connect_ms."""
    return int((p["per_try_timeout_ms"] + p["connect_ms"]) * 1e6)


def detect_ns(p: dict) -> int:
    """The time active checks take to mark a hung upstream unhealthy: the round after it hangs
    comes within an interval, and unhealthy_threshold rounds must miss their timeout."""
    return int((p["unhealthy_threshold"] * p["hc_interval_ms"] + p["hc_timeout_ms"]) * 1e6) + stragglers_ns(p)


def out_periods(records: list[dict]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(proxy, upstream) -> periods the proxy held the upstream ejected or unhealthy."""
    state: dict = defaultdict(lambda: [False, False, None])  # ejected, unhealthy, out since
    out: dict = defaultdict(list)
    for r in records:
        k = r["kind"]
        if k not in ("px.eject", "px.uneject", "px.health", "px.start"):
            continue
        if k == "px.start":  # a restarted proxy forgets: everything is back in
            for key in [key for key in state if key[0] == r["node"]]:
                s = state.pop(key)
                if s[2] is not None:
                    out[key].append((s[2], r["time_ns"]))
            continue
        key = (r["node"], r["up"])
        s = state[key]
        was = s[0] or s[1]
        if k == "px.health":
            s[1] = not r["healthy"]
        else:
            s[0] = k == "px.eject"
        now = s[0] or s[1]
        if now and not was:
            s[2] = r["time_ns"]
        elif was and not now:
            out[key].append((s[2], r["time_ns"]))
            s[2] = None
    for key, s in state.items():
        if s[2] is not None:
            out[key].append((s[2], 1 << 62))
    return out


def no_traffic_to_ejected(run: RunData, p: dict) -> CheckResult:
    """(a) No proxy sends to an upstream it holds ejected or unhealthy, once the straggler bound
    has passed since it took it out. (b) With active checks on, no proxy sends to the hung upstream
    once detect_ns has passed since it hung (or since the proxy last started)."""
    sends = defaultdict(list)
    for r in run.records:
        if r["kind"] == "px.send":
            sends[(r["node"], r["up"])].append(r["time_ns"])
    bound = stragglers_ns(p)
    bad = []
    for key, periods in sorted(out_periods(run.records).items()):
        ts = sends.get(key, [])
        for a, b in periods:
            i, j = bisect.bisect_right(ts, a + bound), bisect.bisect_left(ts, b)
            if j > i:
                bad.append(f"{key[0]} sent {j - i} requests to {key[1]} while it held it out "
                           f"(from {a / NS:.3f}s), the first at {ts[i] / NS:.3f}s")
    details = {"straggler_bound_ms": bound / 1e6, "ejections": sum(1 for r in run.records if r["kind"] == "px.eject")}
    hung = p["degraded"] != "none" and p["hc_interval_ms"] > 0 and p["hang_at_s"] < run.cfg.time_limit_s
    if hung:
        lo, hi = int(p["hang_at_s"] * NS), int(min(p["recover_at_s"], run.cfg.time_limit_s) * NS)
        starts = defaultdict(list)
        for r in run.records:
            if r["kind"] == "px.start":
                starts[r["node"]].append(r["time_ns"])
        late = defaultdict(list)
        for (proxy, up), ts in sorted(sends.items()):
            if up != p["degraded"]:
                continue
            for t in ts[bisect.bisect_left(ts, lo):bisect.bisect_left(ts, hi)]:
                since = max([lo] + [s for s in starts[proxy] if s <= t])
                if t > since + detect_ns(p):
                    late[proxy].append(t)
        for proxy, ts in sorted(late.items()):
            bad.append(f"{proxy} sent {len(ts)} requests to the hung {p['degraded']} after the detection bound "
                       f"({detect_ns(p) / 1e6:.0f} ms after {p['hang_at_s']:g}s), the first at {ts[0] / NS:.3f}s")
        details.update(detection_bound_ms=detect_ns(p) / 1e6, sent_to_hung_late=sum(len(v) for v in late.values()))
    elif p["degraded"] != "none" and p["hang_at_s"] < run.cfg.time_limit_s:
        details["note"] = "hc_interval_ms=0: with no active checks nothing keeps the hung upstream out (part b skipped)"
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        return CheckResult(False, "; ".join(bad[:3]) + more, details)
    return CheckResult(True, "", details)


def outside_faults(run: RunData) -> list[dict]:
    """The history without the requests a fault window overlapped (a crashed proxy loses what it
    held; that is the fault, not the design)."""
    ws = [(a, b) for a, b, _ in windows(run.faults, run.end_ns)]
    if not ws:
        return run.history
    keep = []
    for inv, done in pairs(run.history):
        end = done["time"] if done is not None else run.end_ns
        if not any(inv["time"] <= b and end >= a for a, b in ws):
            keep.append(inv)
            if done is not None:
                keep.append(done)
    return keep


def slo(history: list[dict], p: dict) -> CheckResult:
    """Per route: p99 of successful requests <= slo_p99_ms (the kit's slo) and the share of
    requests that did not succeed <= slo_error_share."""
    names = [r.name for r in routes(p)]
    latency = checks.slo(history, {n: p["slo_p99_ms"] for n in names})
    total, failed = defaultdict(int), defaultdict(int)
    for inv, done in pairs(history):
        total[inv["f"]] += 1
        failed[inv["f"]] += done is None or done["type"] != "ok"
    bad = [latency.message] if latency.valid is False else []
    per = latency.details.get("routes", {})
    for n in names:
        share = failed[n] / total[n] if total[n] else 0.0
        per.setdefault(n, {}).update(errors=failed[n], error_share=round(share, 6))
        if share > p["slo_error_share"]:
            bad.append(f"route {n!r} error share {share:.2%} > {p['slo_error_share']:.0%} "
                       f"({failed[n]} of {total[n]} did not succeed)")
    details = {"routes": per, "slo_p99_ms": p["slo_p99_ms"], "slo_error_share": p["slo_error_share"]}
    if bad:
        return CheckResult(False, "; ".join(bad), details)
    return CheckResult(latency.valid, latency.message, details)


def exactly_once(run: RunData) -> CheckResult:
    """Each POST takes effect at most once, and an acknowledged one exactly once (effects are
    counted by the request's idempotency key, recorded by the upstream that performed it)."""
    effects = defaultdict(int)
    for r in run.records:
        if r["kind"] == "px.effect":
            effects[r["idem"]] += 1
    dup = sorted(k for k, n in effects.items() if n > 1)
    missing, posts = [], 0
    for inv, done in pairs(run.history):
        if inv["f"] == "post-order" and done is not None:
            posts += 1
            if done["type"] == "ok" and effects.get(done["value"][IDEM], 0) == 0:
                missing.append(done["value"][IDEM])
    details = {"posts": posts, "effects": sum(effects.values()), "duplicated": len(dup),
               "acknowledged_without_effect": len(missing)}
    bad = []
    if dup:
        bad.append(f"{len(dup)} orders placed more than once: " +
                   ", ".join(f"request {k} x{effects[k]}" for k in dup[:5]))
    if missing:
        bad.append(f"{len(missing)} acknowledged orders never placed: requests {', '.join(map(str, missing[:5]))}")
    return CheckResult(False, "; ".join(bad), details) if bad else CheckResult(True, "", details)


@register
class ReverseProxy(Scenario):
    name = "reverse-proxy"
    summary = ("a proxy tier (TLS, path routing, pools, retries, health checks, ejection) in front of uneven "
               "upstreams, one of which degrades: slow, erroring, hung")
    params = (
        Param("policy", "p2c", "balancing policy over a cluster's endpoints", type=str, choices=POLICIES),
        Param("proxies", 2, "proxy instances (clients pick one at random)", type=int, min=1, max=64),
        Param("proxy_cores", 2, "CPUs per proxy", type=int, min=1, max=256),
        Param("tls_handshake_ms", 1.0, "proxy CPU for a full TLS handshake (a new client connection), ms", min=0.0),
        Param("request_ms", 0.05, "proxy CPU per request (parse, route, TLS records), ms", min=0.0),
        Param("keepalive_requests", 100, "requests a client connection carries before a new handshake",
              type=int, min=1),
        Param("pool_max_conns", 64, "connections per proxy per upstream", type=int, min=1),
        Param("pool_max_pending", 1024, "requests waiting for a connection per upstream, then 'overflow'",
              type=int, min=0),
        Param("connect_ms", 1.0, "time to open an upstream connection (TCP and TLS), ms", min=0.0),
        Param("per_try_timeout_ms", 100.0, "time an attempt may take at the proxy, pool wait included, ms",
              min=1.0),
        Param("retries", 2, "proxy retries of idempotent requests (GET), to another endpoint", type=int, min=0,
              max=10),
        Param("hc_interval_ms", 500.0, "active health check period, ms (0: off)", min=0.0),
        Param("hc_timeout_ms", 100.0, "a probe unanswered this long fails, ms", min=0.1),
        Param("unhealthy_threshold", 2, "failed probes in a row that take an upstream out", type=int, min=1),
        Param("healthy_threshold", 2, "passed probes in a row that bring it back", type=int, min=1),
        Param("consecutive_errors", 5, "failed attempts in a row (timeouts, 5xx) that eject (0: off)", type=int,
              min=0),
        Param("base_ejection_ms", 1000.0, "first ejection's length, doubled per ejection in a row, ms", min=1.0),
        Param("max_ejection_ms", 3000.0, "longest ejection, ms", min=1.0),
        Param("max_ejection_share", 0.5, "most of a cluster ejected at once (one always may be)", min=0.0, max=1.0),
        Param("api_service_ms", "2,3,4,6", "mean service time of each api upstream (exponential), ms; one "
              "upstream per entry, at most 64", type=str),
        Param("static_service_ms", "1,1", "mean service time of each static upstream, ms; one upstream per "
              "entry, at most 64", type=str),
        Param("upstream_cores", 2, "CPUs per upstream", type=int, min=1, max=256),
        Param("degraded", "api-1", "the upstream that degrades (an api or static upstream id), or none", type=str),
        Param("slow_at_s", 4.0, "when it turns slow, s", min=0.0),
        Param("errors_at_s", 8.0, "when it starts answering 503, s", min=0.0),
        Param("hang_at_s", 12.0, "when it hangs (answers nothing, not even probes), s", min=0.0),
        Param("recover_at_s", 16.0, "when it is well again, s", min=0.0),
        Param("slow_factor", 50.0, "service time multiplier while slow", min=1.0),
        Param("client_timeout_ms", 1000.0, "the client's timeout per attempt, ms", min=1.0),
        Param("slo_p99_ms", 60.0, "each route's p99 objective for successful requests, ms", min=0.001),
        Param("slo_error_share", 0.02, "each route's largest share of requests that do not succeed", min=0.0,
              max=1.0),
    )
    bugs = {
        "retry-non-idempotent": "the proxy retries POSTs after a per-try timeout, though the first attempt may "
                                "still take effect",
        "no-outlier-ejection": "failed attempts in a row never eject an upstream (only active checks act)",
        "health-check-ignores-timeout": "a probe that times out is not counted as failed: only an answer can "
                                        "fail a check",
    }
    exposes = {"retry-non-idempotent": "--seed 1", "no-outlier-ejection": "--seed 1",
               "health-check-ignores-timeout": "--seed 1"}
    checkers = {
        "no-traffic-to-ejected": "no proxy sends to an upstream it holds ejected or unhealthy (after the "
                                 "per-try timeout + connect_ms a pooled request may still take), nor to the hung "
                                 "upstream once active checks had time to find it",
        "every-request-answered": "every request ended ok or fail, none lost (requests overlapping a fault "
                                  "window are left out)",
        "slo": "per route: p99 of successful requests <= slo_p99_ms and error share <= slo_error_share "
               "(outside fault windows)",
        "exactly-once": "every POST took effect at most once, and every acknowledged POST exactly once",
    }
    nemeses = ("crash", "pause", "partition-isolate-one", "slow-link")
    unused_options = ("node_count",)  # its parameters size it
    defaults = {"rate": 1000.0, "time_limit_s": 20.0, "op_timeout_ms": 3000.0, "quiesce_s": 2.0,
                "final_timeout_s": 1.0, "latency_ms": 0.25, "node_count": 1}
    examples = (
        "dsim run reverse-proxy --seed 1",
        "dsim run reverse-proxy --set policy=round-robin --rate 2000 --seed 1",
        "dsim run reverse-proxy --bug no-outlier-ejection --seed 1",
        "dsim run reverse-proxy --seed 1 --nemesis crash --nemesis-interval 3",
        "python -m scenarios.reverse_proxy.policies --loads 500,1500,2500 --out results/proxy-policies",
    )

    @classmethod
    def validate(cls, params) -> None:
        ids = [e for es in clusters(params).values() for e in es]
        if params["degraded"] != "none" and params["degraded"] not in ids:
            raise UsageError(f"bad value {params['degraded']!r} for degraded: expected none or one of {', '.join(ids)}")
        times = [params[k] for k in ("slow_at_s", "errors_at_s", "hang_at_s", "recover_at_s")]
        if times != sorted(times):
            raise UsageError("bad values for slow_at_s, errors_at_s, hang_at_s, recover_at_s: expected them in "
                             f"that order (each >= the one before), got {', '.join(f'{t:g}' for t in times)}")
        if params["hc_interval_ms"] > 0 and params["hc_timeout_ms"] >= params["hc_interval_ms"]:
            raise UsageError(f"bad value {params['hc_timeout_ms']:g} for hc_timeout_ms: expected less than "
                             f"hc_interval_ms ({params['hc_interval_ms']:g}), so each round settles before the next")
        if params["max_ejection_ms"] < params["base_ejection_ms"]:
            raise UsageError(f"bad value {params['max_ejection_ms']:g} for max_ejection_ms: expected >= "
                             f"base_ejection_ms ({params['base_ejection_ms']:g})")
        if params["per_try_timeout_ms"] >= params["client_timeout_ms"]:
            raise UsageError(f"bad value {params['per_try_timeout_ms']:g} for per_try_timeout_ms: expected less than "
                             f"client_timeout_ms ({params['client_timeout_ms']:g}), so the proxy's answer to a try "
                             "can reach the client before it gives up")

    def build(self, sim, cfg) -> Setup:
        p = cfg.params
        s = spec(p)
        proxies = [f"proxy-{i + 1}" for i in range(p["proxies"])]
        for px in proxies:
            sim.add_node(px, lambda: Proxy(s, cfg.bug), inbox_limit=1_000_000)
        degrade = Degrade(*(int(p[k] * NS) for k in ("slow_at_s", "errors_at_s", "hang_at_s", "recover_at_s")),
                          factor=p["slow_factor"])
        upstreams = []
        for c, es in s.clusters.items():
            for e, mean in zip(es, means(p[f"{c}_service_ms"], f"{c}_service_ms")):
                d = degrade if e == p["degraded"] else None
                sim.add_node(e, lambda mean=mean, d=d: Upstream(mean, p["upstream_cores"], d), inbox_limit=1_000_000)
                upstreams.append(e)
        directory = Directory({"proxy": proxies})
        rs = routes(p)
        return Setup(servers=proxies + upstreams, client=lambda cid: Client(rs, directory), generate=generator(rs))

    def check(self, run: RunData) -> dict[str, CheckResult]:
        p = run.cfg.params
        history = outside_faults(run)
        return {"no-traffic-to-ejected": no_traffic_to_ejected(run, p),
                "every-request-answered": checks.every_request_answered(history),
                "slo": slo(history, p),
                "exactly-once": exactly_once(run)}

    def figures(self, run: RunData) -> dict:
        sent = defaultdict(int)
        for r in run.records:
            if r["kind"] == "px.send":
                sent[r["up"]] += 1
        total = sum(sent.values()) or 1
        events = defaultdict(int)
        for r in run.records:
            if r["kind"] in ("px.eject", "px.uneject", "px.health", "kit.retry"):
                events[r["kind"]] += 1
        return {"routes": checks.route_figures(run.history),
                "upstream_share": {u: round(n / total, 4) for u, n in sorted(sent.items())},
                "events": dict(sorted(events.items()))}

    def plots(self, run: RunData, folder, shade) -> list[str]:
        """proxy-upstreams.png: requests/s each api upstream got, and how many proxies held the
        degraded one out, with its phases shaded."""
        from simulator import plots

        p = run.cfg.params
        api = clusters(p)["api"]
        bin_ns = 250_000_000
        bins = np.arange(0, run.end_ns + bin_ns, bin_ns)
        xs = bins[:-1] / NS
        sends = defaultdict(list)
        for r in run.records:
            if r["kind"] == "px.send" and r["up"] in api:
                sends[r["up"]].append(r["time_ns"])
        rate = [(u, xs, np.histogram(sends[u], bins)[0] * (NS / bin_ns)) for u in api]
        phases = [(s, e, f"{p['degraded']} {name}") for s, e, name in
                  ((p["slow_at_s"], p["errors_at_s"], "slow"), (p["errors_at_s"], p["hang_at_s"], "answers 503"),
                   (p["hang_at_s"], p["recover_at_s"], "hung")) if p["degraded"] != "none" and s < e]
        wins = [(int(s * NS), int(min(e * NS, run.end_ns)), lab) for s, e, lab in phases if s * NS < run.end_ns]
        wins += windows(run.faults, run.end_ns)
        rows = [{"series": rate, "ylabel": "requests/s sent", "step": True}]
        if p["degraded"] != "none":
            edges = []
            for (proxy, up), periods in out_periods(run.records).items():
                if up == p["degraded"]:
                    edges += [(a, 1) for a, _ in periods] + [(min(b, run.end_ns), -1) for _, b in periods]
            edges.sort()
            ts, held, n = [0.0], [0], 0
            for t, d in edges:
                n += d
                ts.append(t / NS)
                held.append(n)
            ts.append(run.end_ns / NS)
            held.append(n)
            rows.append({"series": [(f"proxies holding {p['degraded']} out (ejected or unhealthy)", ts, held)],
                         "ylabel": "proxies", "step": True, "xlabel": "simulated time (s)"})
        sub = f"seed {run.cfg.seed}, policy {p['policy']}, {run.cfg.rate:g} requests/s" + \
            (f", bug {run.cfg.bug}" if run.cfg.bug else "")
        return [plots.panels(folder / "proxy-upstreams.png", "Traffic to each api upstream while one degrades",
                             rows, plots.shader(wins), sub)]

