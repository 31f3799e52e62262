"""The commerce design: handler stories for inventory, payments, payouts and rails, its checkers on
hand-made runs, and seeded runs of every mode under faults."""

from __future__ import annotations

import pytest

from simulator import FakeContext, RunData, build_config, execute
from simulator.engine.dists import Dist
from simulator.kit.saga import StepCall, StepReply
from scenarios.commerce import checkers as C
from scenarios.commerce.scenario import MODES, Commerce, plan_for
from scenarios.commerce.services import (Inventory, Payments, Payouts, RailAck, Rails, RailSend, Wiring)

P = {p.name: p.default for p in Commerce.params}


def wiring(mode="saga-orchestrated", bug=None, stock=((1, 0),), **kw) -> Wiring:
    base = dict(mode=mode, plan=plan_for(mode), skus=len(stock), warehouses=len(stock[0]), stock=stock,
                restock_qty=0, restock_ms=1e9, ttl_ms=1000.0, sweep_ms=100.0, db_ms=Dist("constant", 5.0),
                psp_ms=Dist("constant", 5.0), fee_bp=300, step_timeout_ms=200.0, retry_ms=100.0,
                payout_interval_ms=1000.0, rail_timeout_ms=500.0, rail_timeout_share=0.0, relay_ms=500.0,
                coordinators=1, bus_partitions=1, bug=bug)
    base.update(kw)
    return Wiring(**base)


ORDER = (0, 0, 1, 1000, False, False)  # customer 0, SKU 0, 1 unit, 10.00, not declined, not cancelled


def step(node, ctx, saga, action, args=ORDER, stepno=0, src="orders"):
    node.on_message(ctx, src, StepCall(saga, stepno, action, args))


def finish(node, ctx, ms=5.0):
    """Let the local transactions under way end; the replies they sent."""
    ctx.advance(ms)
    node.on_timer(ctx, "work")
    return [m for _, m in ctx.take_sent() if isinstance(m, StepReply)]


def test_inventory_holds_the_last_unit_once_and_the_reservation_expires_after_its_ttl():
    """A reserve takes the only unit; a second order finds none; the sweep past the TTL releases
    the hold, and the unit can be reserved again."""
    ctx = FakeContext("inventory")
    inv = Inventory(wiring())
    inv.on_start(ctx)
    step(inv, ctx, 1, "reserve")
    assert [(r.ok, r.value) for r in finish(inv, ctx)] == [(True, 0)]
    step(inv, ctx, 2, "reserve")
    assert [(r.ok, r.value) for r in finish(inv, ctx)] == [(False, "out-of-stock")]
    ctx.advance(1000)
    inv.on_timer(ctx, "sweep")
    assert [r["why"] for r in ctx.records if r["kind"] == "inv.unhold"] == ["expired"]
    step(inv, ctx, 3, "reserve")
    assert [r.ok for r in finish(inv, ctx)] == [True]


def test_two_concurrent_reserves_of_the_last_unit_oversell_only_without_the_lock():
    """Both reserves arrive while one unit is free: checked and held in one local transaction, the
    second is refused; with reserve-without-lock both are held and no-oversell sees it."""
    for bug, oks in ((None, [True, False]), ("reserve-without-lock", [True, True])):
        ctx = FakeContext("inventory")
        inv = Inventory(wiring(bug=bug))
        inv.on_start(ctx)
        step(inv, ctx, 1, "reserve")
        step(inv, ctx, 2, "reserve")
        assert [r.ok for r in finish(inv, ctx)] == oks
        run = RunData(None, [], ctx.records, [], {}, ctx.now, ctx.now, {})
        assert C.no_oversell(run).valid is (bug is None)


def test_a_try_that_arrives_after_its_cancel_is_refused_unless_the_barrier_is_missing():
    """TCC: the cancel finds no try (an empty cancel, recorded); the late try is then hanging and
    refused; under tcc-hanging-try it holds stock that nothing will release."""
    for bug, held in ((None, False), ("tcc-hanging-try", True)):
        ctx = FakeContext("inventory")
        inv = Inventory(wiring("tcc", bug=bug))
        inv.on_start(ctx)
        step(inv, ctx, 1, "cancel-inv")
        assert [(r.ok, r.value) for r in finish(inv, ctx)] == [(True, "empty-compensation")]
        step(inv, ctx, 1, "try-inv")
        finish(inv, ctx)
        assert (1 in inv.holds) is held


def test_a_charge_and_its_refund_are_balanced_journals_and_a_retried_refund_counts_once():
    """charge and refund are journals summing to zero; a refund asked twice (a retried compensation)
    is one journal; under compensate-without-idempotency every ask is a refund."""
    for bug, refunds in ((None, 1), ("compensate-without-idempotency", 3)):
        ctx = FakeContext("payments")
        pay = Payments(wiring(bug=bug))
        pay.on_start(ctx)
        step(pay, ctx, 1, "charge", stepno=1)
        finish(pay, ctx)
        step(pay, ctx, 1, "refund", stepno=1)
        step(pay, ctx, 1, "refund", stepno=1)
        finish(pay, ctx)
        step(pay, ctx, 1, "refund", stepno=1)
        finish(pay, ctx)
        journals = [r for r in ctx.records if r["kind"] == "ledger.journal"]
        assert all(sum(a for _, a in r["lines"]) == 0 for r in journals)
        assert [r["entry"] for r in journals].count("refund") == refunds
        run = RunData(None, [], ctx.records, [], {}, ctx.now, ctx.now, {})
        assert C.exactly_once_money(run).valid is (bug is None)


def test_a_declined_charge_needs_no_refund_and_refund_keeps_fee_unbalances_the_ledger():
    """A declined charge writes nothing, so its compensation is empty; refund-keeps-fee writes a
    refund journal that does not sum to zero, which ledger-balanced names."""
    ctx = FakeContext("payments")
    pay = Payments(wiring())
    pay.on_start(ctx)
    step(pay, ctx, 1, "charge", args=(0, 0, 1, 1000, True, False), stepno=1)
    step(pay, ctx, 1, "refund", args=(0, 0, 1, 1000, True, False), stepno=1)
    assert [(r.action, r.ok, r.value) for r in finish(pay, ctx)] == [
        ("charge", False, "declined"), ("refund", True, "empty-compensation")]
    ctx = FakeContext("payments")
    pay = Payments(wiring(bug="refund-keeps-fee"))
    pay.on_start(ctx)
    step(pay, ctx, 1, "charge", stepno=1)
    finish(pay, ctx)
    step(pay, ctx, 1, "refund", stepno=1)
    finish(pay, ctx)
    run = RunData(None, [], ctx.records, [], {"payments": {"journals": {}, "balances": {}}}, ctx.now, ctx.now, {})
    res = C.ledger_balanced(run)
    assert not res.valid and "refund/1" in res.message


def test_a_payout_retried_after_a_rail_timeout_keeps_its_key_and_the_rail_pays_once():
    """The rail moves the money and loses its answer; the retry carries the same key, so the rail
    answers from its record; under payout-retry-without-key the retry is a second transfer."""
    for bug, transfers in ((None, 1), ("payout-retry-without-key", 2)):
        w = wiring(bug=bug, rail_timeout_share=1.0)
        ctx, rctx = FakeContext("payouts"), FakeContext("rails")
        po, rails = Payouts(w), Rails(w)
        po.on_start(ctx)
        ctx.advance(1000)
        po.on_timer(ctx, "payout")
        sweep = [m for _, m in ctx.take_sent()][0]
        po.on_message(ctx, "payments", StepReply(sweep.saga, 0, "sweep", True, 500))
        sends = [m for _, m in ctx.take_sent() if isinstance(m, RailSend)]
        rails.on_message(rctx, "payouts", sends[0])
        ctx.advance(500)
        po.on_timer(ctx, "check")
        sends = [m for _, m in ctx.take_sent() if isinstance(m, RailSend)]
        rails.on_message(rctx, "payouts", sends[0])
        rctx.advance(100)
        rails.on_timer(rctx, "work")
        acks = [m for _, m in rctx.take_sent() if isinstance(m, RailAck)]
        assert len([r for r in rctx.records if r["kind"] == "rail.transfer"]) == transfers
        assert len(acks) == (1 if bug is None else 0)


def test_saga_atomic_names_an_order_stuck_midway_and_one_undone_with_money_kept():
    """An order placed and never ended is stuck; one ended undone while the customer is still
    charged is a half-state."""
    recs = [{"kind": "order.placed", "order": 1, "time_ns": 0}, {"kind": "order.placed", "order": 2, "time_ns": 0},
            {"kind": "order.end", "order": 2, "outcome": "undone", "time_ns": 5},
            {"kind": "ledger.journal", "order": 2, "entry": "charge", "key": "charge/2", "time_ns": 1,
             "lines": [["customer:0", -100], ["merchant", 100]]}]
    res = C.saga_atomic(RunData(None, [], recs, [], {}, 10, 10, {}))
    assert not res.valid and "order 1 never ended" in res.message and res.details["violations"] == 2


def test_a_ttl_reservation_held_past_its_bound_is_named_unless_inventory_was_down():
    """reservations-expire: a hold that outlives TTL + sweep + 1 s fails; inventory downtime during
    the hold extends the bound."""
    recs = [{"kind": "inv.hold", "saga": 1, "sku": 0, "wh": 0, "qty": 1, "expires_ns": 1, "hold": "reserve",
             "time_ns": 0},
            {"kind": "inv.unhold", "saga": 1, "time_ns": 5_000_000_000}]
    run = RunData(None, [], recs, [], {}, 6_000_000_000, 6_000_000_000, {})
    assert not C.reservations_expire(run, 1000.0, 100.0).valid
    faults = [{"action": "crash", "node": "inventory", "time_ns": 1_000_000_000},
              {"action": "restart", "node": "inventory", "time_ns": 4_000_000_000}]
    run = RunData(None, [], recs, faults, {}, 6_000_000_000, 6_000_000_000, {})
    assert C.reservations_expire(run, 1000.0, 100.0).valid


def test_liveness_names_an_order_that_ends_later_than_the_bound_after_the_final_heal():
    """An order open at the heal must end within the bound of it, one placed later within the bound
    of its placing; an order that ends in time passes and one that never ends still fails."""
    s = 1_000_000_000
    recs = [{"kind": "order.placed", "order": 1, "time_ns": 1 * s},
            {"kind": "order.end", "order": 1, "time_ns": 13 * s},
            {"kind": "order.placed", "order": 2, "time_ns": 11 * s},
            {"kind": "order.end", "order": 2, "time_ns": 15 * s}]
    run = RunData(None, [], recs, [], {}, 20 * s, 10 * s, {})  # healed at 10 s
    assert C.liveness(run, 5000.0).valid and C.liveness(run, 5000.0).details["slowest_after_heal_ms"] == 4000.0
    res = C.liveness(run, 3500.0)
    assert not res.valid and "first: order 2" in res.message and res.details["late"] == 1
    run = RunData(None, [], recs[:3], [], {}, 20 * s, 10 * s, {})
    assert not C.liveness(run, 5000.0).valid and "never ended" in C.liveness(run, 5000.0).message


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_stays_valid_under_crashes_and_partitions(mode):
    """A short seeded run of each mode under crash and partition-random-halves: every checker valid,
    every order ended, and the figures report the mode's latency and compensation rate."""
    cfg = build_config(Commerce, seed=3, options={"time_limit_s": 8.0, "nemesis": ("crash", "partition-random-halves"),
                                                  "nemesis_interval_s": 2.0}, sets={"mode": mode})
    res = execute(cfg)
    assert res.valid is True, {k: v.message for k, v in res.checks.items() if not v.valid}
    fig = res.metrics["figures"]
    assert fig["mode"] == mode and fig["ended"] == fig["orders"] > 100
    assert 0 < fig["compensation_rate"] < 1 and fig["latency_ms"]["done"]["n"] > 0


def test_a_choreographed_run_under_crashes_has_one_digest_traced_or_not():
    """Nearly every bus message leaves after an fsync (a held delivery, made inline by the kernel's
    loop when untraced); a run traced to a file, crashes included, gives the same digest."""
    import io

    from simulator.pipeline.run import Run

    cfg = build_config(Commerce, seed=2, options={"time_limit_s": 4.0, "nemesis": ("crash",),
                                                  "nemesis_interval_s": 1.0}, sets={"mode": "saga-choreographed"})
    trace = io.StringIO()
    traced = Run(cfg, trace_file=trace).execute()
    assert traced.digest == execute(cfg).digest and '"event": "deliver"' in trace.getvalue()


def test_the_same_seed_gives_the_same_digest_and_another_seed_another():
    """Runs replay bit for bit from the seed."""
    def digest(seed):
        cfg = build_config(Commerce, seed=seed, options={"time_limit_s": 3.0}, sets={"mode": "saga-choreographed"})
        return execute(cfg).digest
    assert digest(1) == digest(1) != digest(2)


def test_a_coordinator_crash_blocks_other_orders_under_2pc_but_not_under_tcc():
    """With orders-1 down from 5 s to 10 s (coordinator-crash.toml), its prepared 2PC transactions keep
    their inventory rows locked, in doubt for the whole outage, so orders-2's orders are refused
    "locked" meanwhile; TCC tries lock nothing."""
    import tomllib
    from pathlib import Path

    with open(Path(__file__).resolve().parent.parent / "scenarios/commerce/coordinator-crash.toml", "rb") as fh:
        plan = tomllib.load(fh)
    locked, longest = {}, {}
    for mode in ("tcc", "2pc"):
        # seed 2: a transaction of orders-1 is prepared at the crash (not so on every seed)
        res = execute(build_config(Commerce, seed=2, file=dict(plan), options={"time_limit_s": 12.0},
                                   sets={"mode": mode}))
        assert res.valid is True
        ends = [r for r in res.run.records if r["kind"] == "order.end"]
        locked[mode] = sum(1 for r in ends if r["reason"] == "locked" and 5e9 <= r["time_ns"] <= 10.5e9)
        longest[mode] = res.metrics["figures"]["hold_ms"][f"{'try' if mode == 'tcc' else 'prepare'}-inv"]["max"]
    assert locked["tcc"] == 0 < locked["2pc"]
    assert longest["2pc"] > 4000.0
