"""Clients send requests to one service node with ``servers`` cores; each request takes a service
time of mean ``service_ms``. With ``--latency 0`` and exponential service it is exactly an M/M/c
queue (Poisson arrivals at ``--rate``), so its mean response time must match the Erlang C formula:
the textbook check of the kernel's timing, cost model, workload and metrics.

The node does nothing but answer: the point is the runtime's cost model (cores, a FIFO inbox,
service-time distributions). Planted bugs show the checkers can fail:

``double-serve``   the node answers about 1% of requests twice (exactly-once catches it)
``lose-requests``  the node silently drops 5% of requests (the availability floor catches it)
"""

from __future__ import annotations

import math

from simulator import CheckResult, ClientNode, Dist, Node, Param, RunData, Scenario, Setup, erlang_c, message, register
from simulator.checkers.basic import availability, exactly_once

SERVER = "n1"


@message
class Request:
    op_id: int


@message
class Response:
    op_id: int


class Server(Node):
    """Answers every request once its service time has passed (the runtime models the CPU)."""

    def __init__(self, bug: str | None):
        self.bug = bug

    def on_message(self, ctx, src, msg):
        if self.bug == "lose-requests" and ctx.rng.random() < 0.05:
            return
        ctx.record("served", op_id=msg.op_id)
        ctx.send(src, Response(msg.op_id))
        if self.bug == "double-serve" and ctx.rng.random() < 0.01:
            ctx.record("served", op_id=msg.op_id)
            ctx.send(src, Response(msg.op_id))


class Client(ClientNode):
    def on_invoke(self, ctx, op):
        ctx.send(SERVER, Request(op.id))

    def on_message(self, ctx, src, msg):
        ctx.complete(msg.op_id, "ok")


@register
class Queue(Scenario):
    name = "queue"
    summary = "clients -> one service node with c cores: an M/M/c queue, its mean response time beside Erlang C's"
    params = (
        Param("servers", 1, "cores of the service node", type=int, min=1, max=100_000),
        Param("service_ms", 10.0, "mean service time per request, ms", min=0.0),
        Param("service_dist", "exponential", "service-time distribution", type=str,
              choices=("exponential", "constant", "lognormal")),
        Param("service_cv", 1.0, "coefficient of variation of lognormal service times", min=0.0, max=100.0),
        Param("availability_floor", 0.99, "share of requests that must succeed (without faults)", min=0.0, max=1.0),
    )
    bugs = {
        "double-serve": "the service node answers about 1% of requests twice",
        "lose-requests": "the service node silently drops 5% of requests",
    }
    checkers = {
        "exactly-once": "every answered request was served once, none twice, none unasked",
        "availability": "at least availability_floor of requests succeed; one never answered counts as failed "
                        "(skipped under a nemesis)",
    }
    nemeses = ("crash", "pause", "slow-link", "flaky-link")
    # What `dsim hunt` draws from: load below the single core's capacity (100 ops/s at 10 ms).
    search = {"rate": (10.0, 60.0), "nemesis_interval_s": (1.0, 20.0), "time_limit_s": (5.0, 30.0)}
    unused_options = ("node_count",)  # its parameters size it
    defaults = {"rate": 50.0, "node_count": 1, "time_limit_s": 60.0, "op_timeout_ms": 60_000.0,
                "quiesce_s": 1.0, "final_timeout_s": 1.0}
    examples = (
        "dsim run queue --seed 7",
        "dsim run queue --rate 9 --set servers=10 --set service_ms=1000 --latency 0 --time-limit 20000",
        "dsim sweep queue --seeds 1-8 --grid servers=1,2 --jobs 2",
    )

    def build(self, sim, cfg) -> Setup:
        p = cfg.params
        if p["service_dist"] == "lognormal":
            service = Dist("lognormal", p["service_ms"], cv=p["service_cv"])
        else:
            service = Dist(p["service_dist"], p["service_ms"])
        sim.add_node(SERVER, lambda: Server(cfg.bug), cores=p["servers"], service={"Request": service},
                     inbox_limit=10_000_000)
        return Setup(servers=[SERVER], client=lambda cid: Client(), generate=lambda rng: ("request", None))

    def check(self, run: RunData) -> dict[str, CheckResult]:
        ok_ids, info_ids = [], []
        served = [r["op_id"] for r in run.records_of("served")]
        answered = self._answered(run)
        for op_id, kind in answered.items():
            (ok_ids if kind == "ok" else info_ids).append(op_id)
        checks = {"exactly-once": exactly_once(ok_ids, served, may_be_missing=info_ids)}
        floor = run.cfg.params["availability_floor"]
        if run.cfg.nemesis or run.cfg.faults:
            checks["availability"] = CheckResult(True, "", {"skipped": "faults were injected"})
        else:
            checks["availability"] = availability(run.history, floor, until_ns=run.heal_ns)
        return checks

    @staticmethod
    def _answered(run: RunData) -> dict[int, str]:
        """op id -> how it ended; op ids are given out in invoke order, as the workload does."""
        open_ops: dict[int, int] = {}
        out: dict[int, str] = {}
        next_id = 0
        for op in run.history:
            if op["type"] == "invoke":
                open_ops[op["process"]] = next_id
                out[next_id] = "pending"
                next_id += 1
            else:
                out[open_ops.pop(op["process"])] = op["type"]
        return out

    def figures(self, run: RunData) -> dict:
        p = run.cfg.params
        out = {"offered_load_erlangs": round(run.cfg.rate * p["service_ms"] / 1000, 6)}
        if p["service_dist"] == "exponential" and run.cfg.latency_ms == 0 and not run.cfg.concurrency:
            w = erlang_c(p["servers"], run.cfg.rate, p["service_ms"] / 1000).response_s
            out["erlang_c_response_ms"] = None if math.isinf(w) else round(w * 1000, 4)
        return out
