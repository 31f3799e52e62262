"""Validation of the send stage against queueing theory (M/M/c, Erlang C).

The real send stage (one queue partition, ``c`` workers with one slot and one connection each, one
provider that never fails, has no limit, and answers after an exponential time) is fed by a
Poisson source of one-recipient transactional messages, with zero network latency, CPU and fsync
costs. Each worker is then one server, the partition's ready queue is the waiting line, and the
time a message waits between arriving and being leased must have the mean of the Erlang C formula:

    Wq = C(c, a) / (c mu - lambda),  a = lambda / mu,
    C(c, a) = (a^c / c!) / (1 - a/c) / (sum_{k<c} a^k / k! + (a^c / c!) / (1 - a/c))

The sample mean of waiting times converges slowly (successive waits are correlated): a few
hundred thousand customers give about 1% standard error at c=2, rho=0.5.

    python -m scenarios.email.validation --servers 2 --rho 0.5 --customers 200000
"""

from __future__ import annotations

import math
import sys

import numpy as np

from simulator import Dist, Node, Simulation, UsageError, erlang_c
from simulator import scriptargs as A

from .messages import TX, Enqueue, QueueMessage
from .model import IDEAL, Mailboxes, ProviderControl, provider_node
from .provider import Provider, SuppressionList
from .queue import Partition
from .settings import Settings

MAX_SERVERS = 10_000  # the email design's workers at most
MAX_CUSTOMERS = 10_000_000  # every lease's record is held in memory
MIN_RHO = 1e-6
MIN_SEND_MS, MAX_SEND_MS = 1e-3, 1e9  # the kernel's clock counts nanoseconds
MAX_SPAN_S = 1e6  # simulated seconds of arrivals at most: idle workers long-poll twice a second all along


class PoissonSource(Node):
    """Enqueues ``customers`` one-recipient transactional messages at Poisson times."""

    def __init__(self, partition: str, rate_s: float, customers: int):
        self.partition = partition
        self.mean_gap_ms = 1000.0 / rate_s
        self.customers = customers

    def on_start(self, ctx) -> None:
        self.sent = 0
        self.gaps: list[float] = []
        self._next(ctx)

    def _next(self, ctx) -> None:
        if not self.gaps:
            self.gaps = ctx.rng.exponential(self.mean_gap_ms, 4096).tolist()
        ctx.set_timer("arrive", self.gaps.pop())

    def on_timer(self, ctx, name: str) -> None:
        job = self.sent
        self.sent += 1
        ctx.send(self.partition, Enqueue(QueueMessage((job, 0, 0), job, TX, job, 1, (0,), 0, ctx.now)))
        if self.sent < self.customers:
            self._next(ctx)


def send_stage_settings(servers: int, send_ms: float) -> Settings:
    return Settings(
        apis=(), partitions=("q0",), workers=tuple(f"w{i}" for i in range(servers)), providers=(IDEAL,),
        suppression="supp", population=1 << 40, shares=(1.0,), bounce_rate=0.0, batch_size=1,
        fanout_window=1, enqueue_timeout_ms=1e9, visibility_timeout_ms=1e12, long_poll_ms=500.0,
        sample_ms=1e9, worker_slots=1, connections=1, call_recipients=1, tx_reserved_slots=0, send_timeout_ms=1e12,
        retry_base_ms=1.0, retry_cap_ms=1.0, max_attempts=8, max_age_ms=1e15, bucket_rate_s=(0.0,),
        bucket_burst=(1.0,), provider_limit_s=(0.0,), provider_burst=(1.0,), provider_latency_ms=(send_ms,),
        send_dist="exponential", defer_rate=0.0)


def send_stage_waits(servers: int, rate_s: float, send_ms: float, customers: int, seed: int) -> np.ndarray:
    """Waiting times (s) of ``customers`` messages through the real send stage."""
    from .worker import Worker

    s = send_stage_settings(servers, send_ms)
    sim = Simulation(seed, latency=Dist("constant", 0.0))
    sim.add_node("q0", lambda: Partition(s), inbox_limit=1 << 40)
    for w in s.workers:
        sim.add_node(w, lambda: Worker(s), inbox_limit=1 << 40)
    sim.add_node("supp", lambda: SuppressionList(s))
    sim.add_node(provider_node(IDEAL), lambda: Provider(s, 0, ProviderControl(), Mailboxes()))
    sim.add_node("src", lambda: PoissonSource("q0", rate_s, customers))
    # run until every customer has been leased (then a little more is harmless)
    horizon_ns = int((customers / rate_s) * 1.5e9) + 10**10
    sim.run(horizon_ns)
    waits = np.fromiter((r["wait_ns"] for r in sim.records if r["kind"] == "kit.lease"), dtype=np.int64)
    return waits / 1e9


def _rho(text: str, option: str) -> float:
    expected = f"a finite number from {MIN_RHO:g} to below 1 (the load per server; a stable queue needs it below 1)"
    try:
        rho = A.number(MIN_RHO, 1.0).value(text, option)
    except UsageError:
        rho = math.nan
    if not rho < 1:
        raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
    return rho


def main(argv=None) -> int:
    ap = A.Parser(prog="python -m scenarios.email.validation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=A.integer(1, MAX_SERVERS), default=2,
                    help=f"send workers, each one server (1 to {MAX_SERVERS:,})")
    ap.add_argument("--rho", type=A.Check(_rho), default=0.5, help="load per server (above 0, below 1)")
    ap.add_argument("--send-ms", type=A.number(MIN_SEND_MS, MAX_SEND_MS), default=100.0,
                    help=f"mean send time in ms ({MIN_SEND_MS:g} to {MAX_SEND_MS:g})")
    ap.add_argument("--customers", type=A.integer(1, MAX_CUSTOMERS), default=200_000,
                    help=f"messages sent (1 to {MAX_CUSTOMERS:,})")
    ap.add_argument("--seed", type=A.seed, default=1)
    a = ap.parse(argv)
    if isinstance(a, int):  # a bad argument (its one line printed, before the run), or --help
        return a
    rate = a.rho * a.servers * 1000.0 / a.send_ms
    if a.customers / rate > MAX_SPAN_S:
        ap.fail(f"bad value '{a.customers}' for --customers: at {rate:g} arrivals/s (--rho x --servers x 1000 / "
                f"--send-ms) they span {a.customers / rate:g} simulated s; expected at most {MAX_SPAN_S:g} s of "
                "arrivals (fewer customers, or a higher arrival rate)")
    w = send_stage_waits(a.servers, rate, a.send_ms, a.customers, a.seed)
    p_wait, wq, _ = erlang_c(a.servers, rate, a.send_ms / 1000)
    print(f"customers {len(w)}  waiting time mean {w.mean() * 1e3:.3f} ms, Erlang C {wq * 1e3:.3f} ms "
          f"(ratio {w.mean() / wq:.4f}); P(wait) {np.mean(w > 0):.4f}, Erlang C {p_wait:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
