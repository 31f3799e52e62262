"""Seeded runs of the email scenario: verdicts, each planted bug caught, determinism, M/M/c."""

from __future__ import annotations

import pytest

from scenarios.email.validation import send_stage_waits
from simulator import erlang_c
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.run import execute

FULL_NEMESIS = "crash,partition-random-halves,slow-link,provider-outage"


def run(seed: int, bug: str | None = None, nemesis: str | None = None, sets: dict | None = None, **options):
    if nemesis:
        options["nemesis"] = nemesis
    cfg = build_config(registry.get("email"), seed=seed, options=options, sets=sets or {}, bug=bug)
    return execute(cfg)


def test_default_run_is_valid_and_every_email_is_accounted_for():
    """Without faults every check holds and each accepted email was delivered, bounced, suppressed or dead-lettered."""
    out = run(1)
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    f = out.metrics["figures"]
    assert f["campaigns"] >= 1 and f["emails"] > 20_000
    assert f["emails"] == f["delivered"] + f["bounced"] + f["suppressed"] + f["dead_letters"]
    assert f["suppressed"] > 0  # later campaigns met addresses that bounced earlier
    assert f["tx_latency_p99_ms"] < 10_000


def test_crashes_partitions_slow_links_and_an_outage_lose_and_duplicate_nothing():
    """Under the full nemesis and a provider outage nothing is lost or sent twice, limits hold, and keys did work."""
    out = run(1, nemesis=FULL_NEMESIS)  # seed 1 draws a crash, a random-halves partition and an outage
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    f = out.metrics["figures"]
    assert f["unavailable"] > 0  # the outage happened and was ridden out with retries
    assert f["redeliveries"] > 0 and f["duplicates_prevented"] > 0  # keys absorbed the redeliveries


def test_queue_unreachable_and_workers_cut_from_queue_stay_valid():
    """Isolating a queue partition, cutting workers from the queue and slowing a provider keep every check."""
    out = run(1, nemesis="queue-unreachable,workers-cut-from-queue,provider-slow", time_limit_s=40.0)
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}


def test_ten_second_outage_from_a_fault_plan_is_ridden_out():
    """A provider outage given as plan actions makes sends fail, then everything is delivered after it ends."""
    faults = [{"at_s": 10, "action": "provider_outage", "provider": "gmail"},
              {"at_s": 20, "action": "provider_restore", "provider": "gmail"}]
    cfg = build_config(registry.get("email"), seed=4, options={"time_limit_s": 40.0}, sets={})
    cfg.faults = faults
    out = execute(cfg)
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    assert out.metrics["figures"]["unavailable"] > 0


def test_ack_before_send_loses_the_recipients_of_a_crashed_worker():
    """With ack-before-send a worker crash loses the emails it had leased; nothing-lost names them."""
    out = run(1, bug="ack-before-send", nemesis="crash")
    check = out.checks["nothing-lost"]
    assert check.valid is False
    assert "accepted emails ended neither delivered" in check.message and "recipient" in check.message
    assert check.details["lost"] > 0


def test_no_idempotency_delivers_a_redelivered_batch_twice():
    """Without idempotency keys a batch redelivered after a crash reaches its recipients twice."""
    out = run(1, bug="no-idempotency", nemesis="crash")
    check = out.checks["no-duplicates"]
    assert check.valid is False
    assert "got the same email more than once" in check.message and "delivered 2 times" in check.message


def test_no_backoff_exceeds_a_providers_limit_during_an_outage():
    """Immediate retries outside the rate limiter flood a provider in an outage beyond its limit."""
    out = run(1, bug="no-backoff", nemesis="provider-outage")
    check = out.checks["rate-limits"]
    assert check.valid is False
    assert "above its limit" in check.message


def test_fifo_only_makes_transactional_mail_wait_behind_campaigns():
    """Without priority, transactional mail waits behind campaign batches and misses its p99 objective."""
    out = run(1, bug="fifo-only")
    check = out.checks["tx-latency"]
    assert check.valid is False
    assert "above the 10 s objective" in check.message
    assert run(1).checks["tx-latency"].valid is True  # the same load with priority holds it


def test_same_seed_gives_the_same_digest():
    """Two runs with one seed (with crashes and an outage) have one trace digest; another seed differs."""
    a = run(5, nemesis="crash,provider-outage", time_limit_s=25.0)
    b = run(5, nemesis="crash,provider-outage", time_limit_s=25.0)
    c = run(6, nemesis="crash,provider-outage", time_limit_s=25.0)
    assert a.digest == b.digest
    assert a.metrics["figures"] == b.metrics["figures"]
    assert c.digest != a.digest


@pytest.mark.slow
def test_send_stage_waiting_time_matches_erlang_c():
    """With one never-failing provider, Poisson arrivals and exponential sends, the mean wait is Erlang C's within 3%."""
    servers, send_ms, rho = 2, 100.0, 0.5
    rate_s = rho * servers * 1000.0 / send_ms
    waits = send_stage_waits(servers, rate_s, send_ms, customers=120_000, seed=1)
    p_wait, wq_s, _ = erlang_c(servers, rate_s, send_ms / 1000.0)
    assert len(waits) == 120_000
    assert waits.mean() == pytest.approx(wq_s, rel=0.03)
    assert (waits > 0).mean() == pytest.approx(p_wait, rel=0.03)
