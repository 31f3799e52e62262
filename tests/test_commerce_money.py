"""The commerce design's loyalty points, later refunds, payout rails and liveness bound: handler
stories for shipping, payments and the rails, the checkers on hand-made runs, and the planted
points-without-idempotency bug on its seeded run."""

from __future__ import annotations

from simulator import FakeContext, RunData, build_config, execute
from simulator.kit.saga import StepCall, StepReply
from scenarios.commerce import checkers as C
from scenarios.commerce.scenario import Commerce, Generator
from scenarios.commerce.services import (REFUND, Delivered, DeliveredAck, Payments, Rails, RailSend, Shipping)

from tests.test_commerce import finish, step, wiring


def journals(ctx) -> list[dict]:
    return [r for r in ctx.records if r["kind"] == "ledger.journal"]


def run_of(records, history=(), heal_ns=0, end_ns=None) -> RunData:
    end = end_ns if end_ns is not None else max((r["time_ns"] for r in records), default=0)
    return RunData(None, list(history), records, [], {}, end, heal_ns, {})


def deliver(pay, ctx, *orders, amount=1000):
    """Hand payments shipping's delivery notices of ``orders`` (customer 0); the ack it sends."""
    pay.on_message(ctx, "shipping", Delivered(tuple((o, 0, amount) for o in orders)))
    return [m for _, m in ctx.take_sent() if isinstance(m, DeliveredAck)]


def test_shipping_keeps_a_delivery_notice_until_payments_acknowledges_it():
    """The ship step writes the notice in its own local transaction; every notice tick relays it
    again until the ack arrives, and it survives a restart meanwhile."""
    w = wiring()
    ctx = FakeContext("shipping")
    shp = Shipping(w)
    shp.on_start(ctx)
    step(shp, ctx, 7, "ship", stepno=3)
    finish(shp, ctx)
    for _ in range(2):
        shp.on_timer(ctx, "notice")
        assert [m.notices for _, m in ctx.take_sent()] == [((7, 0, 1000),)]
    again = Shipping(w)  # a restart: the notice is durable
    again.on_start(ctx)
    assert again.notices == {7: (0, 1000)}
    again.on_message(ctx, "payments", DeliveredAck((7,)))
    again.on_timer(ctx, "notice")
    assert ctx.take_sent() == [] and "pd/7" not in ctx.storage


def test_points_are_credited_once_per_delivered_order_unless_the_key_is_skipped():
    """A notice delivered three times earns the order's points once (5% of 10.00 = 50 points);
    under points-without-idempotency each copy credits them and exactly-once-money names the order."""
    for bug, earns in ((None, 1), ("points-without-idempotency", 3)):
        ctx = FakeContext("payments")
        pay = Payments(wiring(bug=bug))
        pay.on_start(ctx)
        for _ in range(3):
            assert [a.orders for a in deliver(pay, ctx, 5)] == [(5,)]
        assert [r["entry"] for r in journals(ctx)] == ["earn"] * earns
        assert pay.balance["points:0"] == 50 * earns
        res = C.exactly_once_money(run_of(ctx.records))
        assert res.valid is (bug is None)
        if bug:
            assert "order 5: points credited 3 times" in res.message


def test_a_charge_pays_up_to_half_with_points_and_its_compensation_gives_them_back():
    """With 50 points, a 10.00 charge takes 50 points and 9.50; the refund that compensates it
    reverses the same journal, points included; every journal sums to zero."""
    ctx = FakeContext("payments")
    pay = Payments(wiring())
    pay.on_start(ctx)
    deliver(pay, ctx, 1)
    step(pay, ctx, 2, "charge", stepno=1)
    finish(pay, ctx)
    charge = journals(ctx)[-1]
    assert dict(map(tuple, charge["lines"]))["customer:0"] == -950
    assert pay.balance["points:0"] == 0
    step(pay, ctx, 2, "refund", stepno=1)
    finish(pay, ctx)
    assert pay.balance["points:0"] == 50 and pay.balance["customer:0"] == 0
    assert all(sum(a for _, a in r["lines"]) == 0 for r in journals(ctx))


def test_a_delivered_order_is_refunded_once_and_its_points_are_taken_back():
    """Before its delivery is known the refund is 'not-delivered'; after it, the refund reverses the
    charge and takes back the 50 points earned; asked again it is answered without a second refund."""
    ctx = FakeContext("payments")
    pay = Payments(wiring())
    pay.on_start(ctx)
    step(pay, ctx, 3, "charge", stepno=1)
    finish(pay, ctx)
    step(pay, ctx, 3, REFUND, stepno=100, src="c1")
    assert [(r.ok, r.value) for r in finish(pay, ctx)] == [(False, "not-delivered")]
    deliver(pay, ctx, 3)
    step(pay, ctx, 3, REFUND, stepno=100, src="c1")
    step(pay, ctx, 3, REFUND, stepno=101, src="c1")
    replies = finish(pay, ctx)
    assert replies[0].value == {"refunded_cents": 1000, "points_back": 0, "points_taken": 50}
    assert replies[1].value == "refunded already"
    assert [r["entry"] for r in journals(ctx)].count("refund") == 1
    assert pay.balance["points:0"] == 0 and pay.balance["customer:0"] == 0
    assert C.exactly_once_money(run_of(ctx.records)).valid


def test_a_refund_whose_points_were_spent_is_reduced_and_no_points_balance_goes_negative():
    """The customer spends the 50 points order 1 earned on order 2; refunding order 1 then gives back
    9.50 (10.00 less the 50 points it cannot take back) and leaves the points balance at zero."""
    ctx = FakeContext("payments")
    pay = Payments(wiring())
    pay.on_start(ctx)
    step(pay, ctx, 1, "charge", stepno=1)
    finish(pay, ctx)
    deliver(pay, ctx, 1)
    step(pay, ctx, 2, "charge", stepno=1)
    finish(pay, ctx)
    step(pay, ctx, 1, REFUND, stepno=100, src="c1")
    assert finish(pay, ctx)[0].value == {"refunded_cents": 950, "points_back": 0, "points_taken": 0}
    refund = journals(ctx)[-1]
    assert refund["after_delivery"] and refund["reduced_cents"] == 50
    assert pay.balance["points:0"] == 0
    assert C.exactly_once_money(run_of(ctx.records)).valid


def test_a_negative_points_balance_is_named_by_exactly_once_money():
    """A journal that takes a customer's points below zero fails the checker, naming the account."""
    recs = [{"kind": "ledger.journal", "key": "charge/4", "entry": "charge", "order": 4, "time_ns": 2_000_000_000,
             "lines": [["customer:9", -900], ["points:9", -100], ["merchant", 1000]]}]
    res = C.exactly_once_money(run_of(recs))
    assert not res.valid and "account points:9: -100 points after journal charge/4" in res.message


def test_wire_payouts_pay_a_fee_and_ach_settles_in_a_batch_a_day_or_two_later():
    """The sweep for a wire payout journals the fee to fees:wire; the rails settle a wire the same
    day and an ACH transfer only after its batch closes and ach_settle_days more days pass."""
    w = wiring(wire_fee_cents=300, ach_settle_days=1.0)  # a day is payout_interval_ms = 1000 ms
    ctx = FakeContext("payments")
    pay = Payments(w)
    pay.on_start(ctx)
    step(pay, ctx, 1, "charge", stepno=1)
    finish(pay, ctx)
    pay.on_message(ctx, "payouts", StepCall(1, 0, "sweep", "wire"))
    sent = [r for r in finish(pay, ctx, 20.0) if isinstance(r, StepReply)]
    lines = dict(map(tuple, journals(ctx)[-1]["lines"]))
    assert lines["fees:wire"] == 300 and sent[0].value == lines["clearing"] == 970 - 300
    rctx = FakeContext("rails", now_ms=1500.0)
    rails = Rails(w)
    rails.on_message(rctx, "payouts", RailSend("1", 1, 670, "wire"))
    rails.on_message(rctx, "payouts", RailSend("2", 2, 500, "ach"))
    settled = {}
    for _ in range(400):
        rctx.advance(10.0)
        rails.on_timer(rctx, "work")
        settled.update({r["rail"]: r["time_ns"] for r in rctx.records if r["kind"] == "rail.settled"})
    assert settled["wire"] < 2_000_000_000 and settled["ach"] == 3_000_000_000  # batch 1 closes at 2 s, +1 day


def test_the_generator_refunds_an_order_about_refund_after_s_later_by_its_operation_id():
    """With every order refunded and a lag of 2 s at 10 orders/s, the 21st operation refunds the
    first order, carrying its customer and amount; declined or cancelled orders are never refunded."""
    import numpy as np

    p = {pp.name: pp.default for pp in Commerce.params}
    p.update(refund_share=1.0, refund_after_s=2.0, decline_share=0.0, cancel_share=0.0)
    gen = Generator(p, rate=10.0)
    rng = np.random.default_rng(1)
    ops = [gen(rng) for _ in range(25)]
    assert [f for f, _ in ops[:20]] == ["order"] * 20 and ops[20][0] == "refund"
    assert ops[20][1]["order"] == 0 and ops[20][1]["amount"] == ops[0][1]["amount"]
    p.update(decline_share=1.0)
    gen = Generator(p, rate=10.0)
    assert all(gen(rng)[0] == "order" for _ in range(60))


def test_points_without_idempotency_is_caught_on_its_seeded_run_and_the_design_is_not():
    """Under the pause nemesis at seed 2, payments is paused while shipping relays the same notices
    again and again: with the bug the points are credited many times; without it, once."""
    opts = {"nemesis": ("pause",)}
    bad = execute(build_config(Commerce, seed=2, options=opts, bug="points-without-idempotency"))
    assert bad.valid is False and "points credited" in bad.checks["exactly-once-money"].message
    good = execute(build_config(Commerce, seed=2, options=opts))
    assert good.valid is True and good.metrics["figures"]["points"]["earned"] > 0
