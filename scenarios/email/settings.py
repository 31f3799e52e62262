"""Everything the nodes need to know about their deployment, fixed when the scenario is built.

One frozen object shared by every node factory, so a restarted node comes back with the same
configuration. Quantities carry their units in their names; rates are already scaled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    apis: tuple[str, ...]
    partitions: tuple[str, ...]
    workers: tuple[str, ...]
    providers: tuple[str, ...]  # provider names (node ids are "p-<name>")
    suppression: str
    population: int  # addresses exist from 0 to population - 1
    shares: tuple[float, ...]  # share of addresses per provider
    bounce_rate: float
    # ingest and queue
    batch_size: int
    fanout_window: int  # queue messages an API keeps in flight while expanding jobs
    enqueue_timeout_ms: float
    visibility_timeout_ms: float
    long_poll_ms: float
    sample_ms: float
    # workers
    worker_slots: int
    connections: int  # concurrent provider calls per worker
    call_recipients: int  # recipients per provider call at most
    tx_reserved_slots: int
    send_timeout_ms: float
    retry_base_ms: float
    retry_cap_ms: float
    max_attempts: int
    max_age_ms: float
    bucket_rate_s: tuple[float, ...]  # per worker, per provider (None-like 0 means unlimited)
    bucket_burst: tuple[float, ...]
    # providers
    provider_limit_s: tuple[float, ...]  # 0: unlimited
    provider_burst: tuple[float, ...]
    provider_latency_ms: tuple[float, ...]
    send_dist: str  # exponential, lognormal or constant
    defer_rate: float
    bug: str | None = None
