"""Email pipeline handlers, one node at a time, with a fake context (no simulation)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scenarios.email.checks import max_window
from scenarios.email.ingest import Api, Client
from scenarios.email.messages import (
    BULK,
    TX,
    Accepted,
    Ack,
    Empty,
    Enqueue,
    Enqueued,
    Extend,
    Leased,
    ProviderReply,
    ProviderSend,
    Pull,
    QueueMessage,
    SubmitCampaign,
    SubmitSend,
    Suppress,
    Suppressed,
)
from scenarios.email.model import (
    BOUNCED,
    DEFERRED,
    DELIVERED,
    DUPLICATE,
    THROTTLED,
    UNAVAILABLE,
    AddressBook,
    Mailboxes,
    ProviderControl,
    backoff_ms,
)
from scenarios.email.provider import Provider
from scenarios.email.queue import Partition
from scenarios.email.settings import Settings
from scenarios.email.worker import Worker
from simulator.engine.testing import FakeContext


def settings(**over) -> Settings:
    base = Settings(
        apis=("a0",), partitions=("q0", "q1"), workers=("w0",), providers=("mx",), suppression="supp",
        population=1_000_000, shares=(1.0,), bounce_rate=0.0, batch_size=10, fanout_window=4,
        enqueue_timeout_ms=1000.0, visibility_timeout_ms=30_000.0, long_poll_ms=500.0, sample_ms=1000.0,
        worker_slots=4, connections=8, call_recipients=50, tx_reserved_slots=1, send_timeout_ms=5000.0, retry_base_ms=1000.0,
        retry_cap_ms=30_000.0, max_attempts=3, max_age_ms=600_000.0, bucket_rate_s=(0.0,), bucket_burst=(1.0,),
        provider_limit_s=(0.0,), provider_burst=(1.0,), provider_latency_ms=(100.0,), send_dist="exponential",
        defer_rate=0.0)
    return dataclasses.replace(base, **over)


def qmsg(job: int, cls: str = TX, items=(0,), attempt: int = 0, batch: int = 0, delay_ms: float = 0.0) -> QueueMessage:
    return QueueMessage((job, batch, attempt), job, cls, 1000 * job, 100, tuple(items), attempt, 0, delay_ms)


def sent_of(ctx, kind) -> list:
    return [(dst, m) for dst, m in ctx.sent if isinstance(m, kind)]


# ---- queue partition -------------------------------------------------------------------------
def started_partition(s=None):
    ctx = FakeContext("q0")
    node = Partition(s or settings())
    node.on_start(ctx)
    return node, ctx


def test_enqueue_is_durable_and_confirmed_once():
    """An enqueued message is on disk and confirmed; the same id enqueued again is confirmed but not queued twice."""
    node, ctx = started_partition()
    m = qmsg(1)
    node.on_message(ctx, "a0", Enqueue(m))
    node.on_message(ctx, "a0", Enqueue(m))
    assert [x for _, x in sent_of(ctx, Enqueued)] == [Enqueued(m.msg_id), Enqueued(m.msg_id)]
    assert ctx.storage.snapshot()["m/1.0.0"] == m
    assert len(node.ready_hi) == 1


def test_pull_serves_transactional_before_campaign_and_tx_only_pulls_park():
    """Transactional mail is leased first; a transactional-only pull waits rather than take a campaign batch."""
    node, ctx = started_partition()
    node.on_message(ctx, "a0", Enqueue(qmsg(1, BULK)))
    node.on_message(ctx, "a0", Enqueue(qmsg(2, TX)))
    node.on_message(ctx, "w0", Pull(1, bulk_ok=True))
    node.on_message(ctx, "w1", Pull(2, bulk_ok=False))
    leased = sent_of(ctx, Leased)
    assert [(dst, m.msg.job) for dst, m in leased] == [("w0", 2)]
    assert "w1" in node.parked
    node.on_message(ctx, "w0", Pull(3, bulk_ok=True))
    assert [m.msg.job for _, m in sent_of(ctx, Leased)] == [2, 1]


def test_parked_pull_gets_a_new_message_or_empty_after_the_long_poll():
    """A parked pull is answered by the next message; another parked pull gets Empty when its long poll ends."""
    node, ctx = started_partition()
    node.on_message(ctx, "w0", Pull(1, bulk_ok=True))
    node.on_message(ctx, "w1", Pull(2, bulk_ok=True))
    node.on_message(ctx, "a0", Enqueue(qmsg(7)))
    assert [(d, m.pull_id) for d, m in sent_of(ctx, Leased)] == [("w0", 1)]
    ctx.advance(500)
    node.on_timer(ctx, "wake")
    assert [(d, m) for d, m in sent_of(ctx, Empty)] == [("w1", Empty(2))]


def test_unacked_lease_is_redelivered_after_the_visibility_timeout():
    """A leased message that is not acked becomes visible again when its visibility timeout passes."""
    node, ctx = started_partition()
    node.on_message(ctx, "a0", Enqueue(qmsg(1)))
    node.on_message(ctx, "w0", Pull(1, bulk_ok=True))
    ctx.advance(29_999)
    node.on_timer(ctx, "wake")
    assert not node.ready_hi
    ctx.advance(1)
    node.on_timer(ctx, "wake")
    assert list(node.ready_hi) == [(1, 0, 0)]
    assert any(r["kind"] == "kit.redeliver" for r in ctx.records)


def test_extended_lease_is_not_redelivered_until_the_extension_runs_out():
    """A lease extended by its worker stays invisible past the original timeout, then expires if not extended again."""
    node, ctx = started_partition()
    node.on_message(ctx, "a0", Enqueue(qmsg(1)))
    node.on_message(ctx, "w0", Pull(1, bulk_ok=True))
    receipt = sent_of(ctx, Leased)[0][1].receipt
    ctx.advance(20_000)
    node.on_message(ctx, "w0", Extend((1, 0, 0), receipt))
    node.on_message(ctx, "w0", Extend((1, 0, 0), receipt + 99))  # a stale receipt changes nothing
    ctx.advance(10_000)
    node.on_timer(ctx, "wake")
    assert not node.ready_hi
    ctx.advance(20_000)
    node.on_timer(ctx, "wake")
    assert list(node.ready_hi) == [(1, 0, 0)]


def test_worker_extends_leases_it_still_works_on():
    """Every third of the visibility timeout a worker extends the leases it has not finished."""
    node, ctx = started_worker()
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0,)), 42))
    ctx.advance(10_000)
    node.on_timer(ctx, "extend")
    assert [(d, m) for d, m in sent_of(ctx, Extend)] == [("q0", Extend((5, 0, 0), 42))]


def test_ack_deletes_and_stores_the_retry_invisible_for_its_backoff():
    """An ack deletes the message and, in the same write, stores its retry, which stays invisible for its delay."""
    node, ctx = started_partition()
    node.on_message(ctx, "a0", Enqueue(qmsg(1, items=(0, 1, 2))))
    node.on_message(ctx, "w0", Pull(1, bulk_ok=True))
    fsyncs = ctx.storage.fsyncs
    retry = qmsg(1, items=(2,), attempt=1, delay_ms=1500.0)
    node.on_message(ctx, "w0", Ack((1, 0, 0), retry, ()))
    snap = ctx.storage.snapshot()
    assert "m/1.0.0" not in snap and snap["m/1.0.1"] == retry
    assert ctx.storage.fsyncs == fsyncs + 1
    ctx.advance(1499)
    node.on_timer(ctx, "wake")
    node.on_message(ctx, "w0", Pull(2, bulk_ok=True))
    assert len(sent_of(ctx, Leased)) == 1
    ctx.advance(1)
    node.on_timer(ctx, "wake")
    assert [m.msg.msg_id for _, m in sent_of(ctx, Leased)] == [(1, 0, 0), (1, 0, 1)]


def test_second_ack_of_the_same_message_never_queues_its_retry_twice():
    """Two workers acking one message (a redelivery) store its retry batch once, thanks to tombstones."""
    node, ctx = started_partition()
    node.on_message(ctx, "a0", Enqueue(qmsg(1, items=(0, 1))))
    retry = qmsg(1, items=(1,), attempt=1)
    node.on_message(ctx, "w0", Ack((1, 0, 0), retry, ()))
    ctx.advance(1)
    node.on_timer(ctx, "wake")
    node.on_message(ctx, "w1", Pull(1, bulk_ok=True))
    node.on_message(ctx, "w1", Ack((1, 0, 1), None, ()))
    node.on_message(ctx, "w2", Ack((1, 0, 0), retry, ()))
    assert not [k for k in ctx.storage.snapshot() if k.startswith("m/")]


def test_restarted_partition_makes_every_stored_message_visible():
    """After a crash the leases are gone but the messages are on disk, and all of them can be leased again."""
    node, ctx = started_partition()
    node.on_message(ctx, "a0", Enqueue(qmsg(1)))
    node.on_message(ctx, "a0", Enqueue(qmsg(2, BULK)))
    node.on_message(ctx, "w0", Pull(1, bulk_ok=True))
    fresh = Partition(settings())
    fresh.on_start(ctx)
    assert list(fresh.ready_hi) == [(1, 0, 0)] and list(fresh.ready_lo) == [(2, 0, 0)]


def test_fifo_only_bug_serves_in_arrival_order():
    """With the fifo-only bug a campaign batch that arrived first is leased before transactional mail."""
    node, ctx = started_partition(settings(bug="fifo-only"))
    node.on_message(ctx, "a0", Enqueue(qmsg(1, BULK)))
    node.on_message(ctx, "a0", Enqueue(qmsg(2, TX)))
    node.on_message(ctx, "w0", Pull(1, bulk_ok=False))
    assert [m.msg.job for _, m in sent_of(ctx, Leased)] == [1]


# ---- worker ----------------------------------------------------------------------------------
def started_worker(s=None):
    ctx = FakeContext("w0")
    node = Worker(s or settings())
    node.on_start(ctx)
    return node, ctx


def test_worker_long_polls_every_partition_and_sends_keyed_calls():
    """A started worker pulls from each partition; a leased batch becomes one keyed provider call."""
    node, ctx = started_worker()
    pulls = sent_of(ctx, Pull)
    assert sorted(d for d, _ in pulls) == ["q0", "q1"]
    node.on_message(ctx, "q0", Leased(pulls[0][1].pull_id, qmsg(5, BULK, items=(0, 1, 2)), 1))
    calls = sent_of(ctx, ProviderSend)
    assert len(calls) == 1 and calls[0][0] == "p-mx"
    assert calls[0][1].items == (0, 1, 2) and calls[0][1].keyed
    assert not sent_of(ctx, Ack)


def test_worker_acks_only_after_every_recipient_is_settled_with_a_backed_off_retry():
    """The ack waits for the provider's answer, then carries the deferred recipients as a delayed retry."""
    node, ctx = started_worker()
    node.on_message(ctx, "q0", Leased(1, qmsg(5, BULK, items=(0, 1, 2)), 1))
    call = sent_of(ctx, ProviderSend)[0][1]
    assert not sent_of(ctx, Ack)
    node.on_message(ctx, "p-mx", ProviderReply(call.call_id, bytes([DELIVERED, DEFERRED, DUPLICATE])))
    (dst, ack), = sent_of(ctx, Ack)
    assert dst == "q0" and ack.msg_id == (5, 0, 0) and ack.dead == ()
    assert ack.retry.items == (1,) and ack.retry.attempt == 1 and ack.retry.msg_id == (5, 0, 1)
    assert 0 <= ack.retry.delay_ms < 1000.0


def test_worker_dead_letters_after_max_attempts():
    """A recipient that fails at its last attempt goes to the dead-letter queue, not to another retry."""
    node, ctx = started_worker()
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0,), attempt=2), 1))
    call = sent_of(ctx, ProviderSend)[0][1]
    node.on_message(ctx, "p-mx", ProviderReply(call.call_id, bytes([UNAVAILABLE])))
    (_, ack), = sent_of(ctx, Ack)
    assert ack.retry is None and ack.dead[0].items == (0,) and ack.dead[0].reason == "attempts"


def test_worker_skips_suppressed_addresses_and_suppresses_bounces():
    """Suppressed addresses are not sent (and are recorded); a bounce puts its address on the list."""
    node, ctx = started_worker()
    node.on_message(ctx, "supp", Suppressed((5000,)))
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0, 1)), 1))  # addresses 5000, 5001
    call = sent_of(ctx, ProviderSend)[0][1]
    assert call.items == (1,)
    assert [r["items"] for r in ctx.records if r["kind"] == "suppressed"] == [(0,)]
    node.on_message(ctx, "p-mx", ProviderReply(call.call_id, bytes([BOUNCED])))
    assert [m for _, m in sent_of(ctx, Suppress)] == [Suppress(5001)]
    assert sent_of(ctx, Ack)[0][1].retry is None


def test_worker_token_bucket_limits_what_leaves_and_waits_for_tokens():
    """With a bucket of 5 tokens at 10/s, a 20-recipient batch sends 5 now and sets a timer for the rest."""
    node, ctx = started_worker(settings(bucket_rate_s=(10.0,), bucket_burst=(5.0,)))
    node.on_message(ctx, "q0", Leased(1, qmsg(5, BULK, items=tuple(range(20))), 1))
    calls = sent_of(ctx, ProviderSend)
    assert [len(c.items) for _, c in calls] == [5]
    assert ctx.timers["b0"] == pytest.approx(500.0, abs=0.01)
    ctx.advance(500)
    node.on_timer(ctx, "b0")
    assert [len(c.items) for _, c in sent_of(ctx, ProviderSend)] == [5, 5]


def test_timed_out_call_counts_as_a_transient_failure():
    """A provider call without an answer within the send timeout is retried later through the queue."""
    node, ctx = started_worker()
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0,)), 1))
    call = sent_of(ctx, ProviderSend)[0][1]
    node.on_timer(ctx, "c%d" % call.call_id)
    assert sent_of(ctx, Ack)[0][1].retry.items == (0,)
    node.on_message(ctx, "p-mx", ProviderReply(call.call_id, bytes([DELIVERED])))  # late: ignored
    assert len(sent_of(ctx, Ack)) == 1


def test_ack_before_send_bug_acks_on_lease():
    """With ack-before-send the worker acks the message the moment it is leased."""
    node, ctx = started_worker(settings(bug="ack-before-send"))
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0,)), 1))
    assert [a.msg_id for _, a in sent_of(ctx, Ack)] == [(5, 0, 0)]


def test_no_idempotency_bug_sends_unkeyed_calls():
    """With no-idempotency the provider calls carry no idempotency keys."""
    node, ctx = started_worker(settings(bug="no-idempotency"))
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0,)), 1))
    assert not sent_of(ctx, ProviderSend)[0][1].keyed


def test_no_backoff_bug_retries_at_once_outside_the_bucket():
    """With no-backoff a deferred recipient is sent again immediately, with no tokens left in the bucket."""
    node, ctx = started_worker(settings(bug="no-backoff", bucket_rate_s=(1.0,), bucket_burst=(1.0,)))
    node.on_message(ctx, "q0", Leased(1, qmsg(5, items=(0,)), 1))
    call = sent_of(ctx, ProviderSend)[0][1]
    node.on_message(ctx, "p-mx", ProviderReply(call.call_id, bytes([DEFERRED])))
    assert len(sent_of(ctx, ProviderSend)) == 2 and not sent_of(ctx, Ack)


# ---- provider ---------------------------------------------------------------------------------
def started_provider(s=None, control=None, mail=None):
    ctx = FakeContext("p-mx")
    mail = mail if mail is not None else Mailboxes()
    node = Provider(s or settings(), 0, control or ProviderControl(), mail)
    node.on_start(ctx)
    return node, ctx, mail


def reply_after(node, ctx) -> ProviderReply:
    name = sorted(ctx.timers)[-1]
    node.on_timer(ctx, name)
    return ctx.sent[-1][1]


def test_provider_recognises_idempotency_keys():
    """A keyed repeat is answered duplicate and not delivered again; an unkeyed repeat is delivered twice."""
    node, ctx, mail = started_provider()
    node.on_message(ctx, "w0", ProviderSend(1, 9, TX, 0, 1, (0,), True))
    node.on_message(ctx, "w0", ProviderSend(2, 9, TX, 0, 1, (0,), True))
    assert reply_after(node, ctx).outcomes == bytes([DUPLICATE])
    assert mail.delivered[9][0] == 1
    node.on_message(ctx, "w0", ProviderSend(3, 9, TX, 0, 1, (0,), False))
    assert mail.delivered[9][0] == 2


def test_provider_throttles_above_its_limit_and_fails_in_an_outage():
    """Above its bucket the provider answers throttled; in an outage every recipient is unavailable."""
    control = ProviderControl()
    node, ctx, mail = started_provider(settings(provider_limit_s=(10.0,), provider_burst=(2.0,)), control)
    node.on_message(ctx, "w0", ProviderSend(1, 9, BULK, 0, 5, (0, 1, 2, 3), True))
    assert reply_after(node, ctx).outcomes == bytes([DELIVERED, DELIVERED, THROTTLED, THROTTLED])
    control.down = True
    node.on_message(ctx, "w0", ProviderSend(2, 9, BULK, 0, 5, (4,), True))
    assert reply_after(node, ctx).outcomes == bytes([UNAVAILABLE])
    calls = [r for r in ctx.records if r["kind"] == "call"]
    assert [c["n"] for c in calls] == [4, 1] and calls[0]["throttled"] == 2


def test_provider_bounces_invalid_addresses():
    """Invalid addresses (a fixed property of the address) bounce and are marked in the mailboxes."""
    s = settings(bounce_rate=0.5)
    book = AddressBook(s.shares, s.bounce_rate)
    bad = next(a for a in range(100) if book.invalid(a))
    node, ctx, mail = started_provider(s)
    node.on_message(ctx, "w0", ProviderSend(1, 4, TX, bad, 1, (0,), True))
    assert reply_after(node, ctx).outcomes == bytes([BOUNCED]) and mail.bounced[4][0] == 1


# ---- ingest API and client --------------------------------------------------------------------
def test_api_accepts_durably_once_and_fans_out_in_batches():
    """A campaign is stored and accepted once; it is expanded into range batches, at most the window in flight."""
    ctx = FakeContext("a0")
    api = Api(settings())
    api.on_start(ctx)
    api.on_message(ctx, "c1", SubmitCampaign(op_id=3, job=3, first_address=100, recipients=55))
    api.on_message(ctx, "c1", SubmitCampaign(op_id=3, job=3, first_address=100, recipients=55))
    assert [m for _, m in sent_of(ctx, Accepted)] == [Accepted(3, 3), Accepted(3, 3)]
    enq = sent_of(ctx, Enqueue)
    assert len(enq) == 4  # the window
    assert enq[0][1].msg.items == range(0, 10) and enq[0][0] == "q1"  # (job + batch) mod partitions
    for _, e in enq:
        api.on_message(ctx, "q0", Enqueued(e.msg.msg_id))
    items = [m.msg.items for _, m in sent_of(ctx, Enqueue)]
    assert items[-1] == range(50, 55) and len(items) == 6


def test_api_resends_an_unconfirmed_batch_to_the_next_partition():
    """A batch not confirmed within the enqueue timeout goes again, to the next partition."""
    ctx = FakeContext("a0")
    api = Api(settings())
    api.on_start(ctx)
    api.on_message(ctx, "c1", SubmitSend(op_id=2, job=2, address=7))
    first = sent_of(ctx, Enqueue)[0][0]
    ctx.advance(1000)
    api.on_timer(ctx, "tick")
    second = sent_of(ctx, Enqueue)[1][0]
    assert {first, second} == {"q0", "q1"}


def test_restarted_api_resumes_fanout_from_its_checkpoint():
    """After a restart the API re-sends only batches after its durable checkpoint."""
    ctx = FakeContext("a0")
    api = Api(settings(fanout_window=100))
    api.on_start(ctx)
    api.on_message(ctx, "c1", SubmitCampaign(op_id=3, job=3, first_address=0, recipients=30))
    for _, e in sent_of(ctx, Enqueue)[:2]:
        api.on_message(ctx, "q0", Enqueued(e.msg.msg_id))
    api.on_timer(ctx, "tick")  # checkpoint: 2 batches done
    ctx.take_sent()
    fresh = Api(settings(fanout_window=100))
    fresh.on_start(ctx)
    assert [m.msg.items for _, m in sent_of(ctx, Enqueue)] == [range(20, 30)]


def test_client_resubmits_until_accepted():
    """A submission is repeated to the next API until one answers; the operation completes once."""
    ctx = FakeContext("c1")
    client = Client(settings(apis=("a0", "a1")))
    from simulator.engine.node import Operation

    client.on_invoke(ctx, Operation(4, 0, "send", 77))
    client.on_timer(ctx, "resubmit")
    assert [d for d, _ in sent_of(ctx, SubmitSend)] == ["a0", "a1"]
    client.on_message(ctx, "a1", Accepted(4, 4))
    client.on_message(ctx, "a0", Accepted(4, 4))
    assert ctx.completed == [(4, "ok", 4)]


# ---- small functions --------------------------------------------------------------------------
def test_backoff_grows_exponentially_with_full_jitter_and_a_cap():
    """Back-off is uniform below base * 2^(attempt-1), capped."""
    assert backoff_ms(1, 1000, 30_000, 0.999) < 1000
    assert backoff_ms(3, 1000, 30_000, 0.5) == 2000
    assert backoff_ms(10, 1000, 30_000, 1.0) == 30_000


def test_max_window_counts_the_busiest_window():
    """The sliding-window maximum finds the busiest window of the given width."""
    t = np.array([0, 100, 900, 1000, 1500, 1999], dtype=np.int64)
    n = np.array([1, 1, 1, 5, 1, 1], dtype=np.int64)
    assert max_window(t, n, 1000) == (7, 100)  # [100, 1100) holds 1 + 1 + 5
    assert max_window(t, n, 1001) == (8, 0)  # [0, 1001) holds 1 + 1 + 1 + 5


def test_address_book_spreads_addresses_by_share():
    """About 40% of addresses land at a provider with a 0.4 share."""
    book = AddressBook((0.4, 0.25, 0.2, 0.15), 0.02)
    counts = np.bincount([book.provider(a) for a in range(20_000)], minlength=4) / 20_000
    assert counts == pytest.approx([0.4, 0.25, 0.2, 0.15], abs=0.02)
    assert sum(book.invalid(a) for a in range(20_000)) / 20_000 == pytest.approx(0.02, abs=0.005)
