"""The kit's transaction modes (simulator/kit/saga.py): the orchestrator's forward path, compensation,
retries and recovery from its log; the step table's idempotency and barrier; the choreography of a plan."""

from __future__ import annotations

from simulator.engine.testing import FakeContext
from simulator.kit.saga import (DONE, TIMER, UNDONE, Orchestrator, Plan, Step, StepCall, StepReply, StepTable,
                                next_after)

SAGA = Plan("saga", ((Step("inv", "reserve", "release"),), (Step("pay", "charge", "refund"),),
                     (Step("ship", "ship"),)), pivot=2)
TCC = Plan("tcc", ((Step("inv", "try", "cancel", True), Step("pay", "try", "cancel", True)),
                   (Step("inv", "confirm"), Step("pay", "confirm"))), pivot=1)


def coordinator(plan=SAGA):
    ends = []
    orch = Orchestrator(plan, lambda ctx, svc, call: ctx.send(svc, call),
                        lambda ctx, sid, outcome, reason: ends.append((sid, outcome, reason)),
                        step_timeout_ms=200.0, retry_ms=100.0)
    return orch, ends


def answer(orch, ctx, ok=True, value=None):
    """Answer every call sent since the last answer; returns the calls answered."""
    calls = [m for _, m in ctx.take_sent()]
    for c in calls:
        orch.on_reply(ctx, StepReply(c.saga, c.step, c.action, ok, value))
    return calls


def test_a_saga_runs_its_groups_in_order_and_ends_done():
    """Each group's call goes out once the previous one answered ok; the last ok ends the saga done."""
    ctx = FakeContext("orders")
    orch, ends = coordinator()
    assert orch.begin(ctx, 7, ("args",))
    seen = []
    for _ in range(3):
        seen += [(c.step, c.action) for c in answer(orch, ctx)]
    assert seen == [(0, "reserve"), (1, "charge"), (2, "ship")]
    assert ends == [(7, DONE, "")]
    assert orch.outcome(ctx, 7) == (DONE, "")
    assert not orch.begin(ctx, 7, ("args",))  # a duplicate request starts nothing


def test_a_no_before_the_pivot_compensates_the_earlier_steps_latest_first():
    """A declined charge undoes the charge (an empty compensation at the participant) then the
    reservation, and the saga ends undone with the reason."""
    ctx = FakeContext("orders")
    orch, ends = coordinator()
    orch.begin(ctx, 1, ())
    answer(orch, ctx)  # reserved
    answer(orch, ctx, ok=False, value="declined")
    undo = [(c.step, c.action) for c in answer(orch, ctx)]
    undo += [(c.step, c.action) for c in answer(orch, ctx)]
    assert undo == [(1, "refund"), (0, "release")]
    assert ends == [(1, UNDONE, "declined")]
    assert any(r["kind"] == "saga.phase" and r["phase"] == "compensating" for r in ctx.records)


def test_a_silent_saga_step_is_asked_again_after_the_step_timeout():
    """Saga steps are retried until they answer: a timeout sends the same call again."""
    ctx = FakeContext("orders")
    orch, _ = coordinator()
    orch.begin(ctx, 1, ())
    first = ctx.take_sent()
    ctx.advance(200)
    orch.on_timer(ctx, TIMER)
    again = ctx.take_sent()
    assert [m for _, m in again] == [m for _, m in first]
    assert [r["attempt"] for r in ctx.records if r["kind"] == "saga.retry"] == [2]


def test_a_silent_tcc_try_cancels_both_branches_and_a_failed_compensation_is_retried():
    """A try past the step timeout is a no: both tries are cancelled; a cancel answered no is asked
    again after retry_ms until it succeeds."""
    ctx = FakeContext("tm")
    orch, ends = coordinator(TCC)
    orch.begin(ctx, 3, ())
    tries = [m for _, m in ctx.take_sent()]
    orch.on_reply(ctx, StepReply(3, tries[0].step, "try", True, None))  # the inventory try answered
    ctx.advance(200)
    orch.on_timer(ctx, TIMER)
    cancels = [m for _, m in ctx.take_sent()]
    assert sorted((c.step, c.action) for c in cancels) == [(0, "cancel"), (1, "cancel")]
    orch.on_reply(ctx, StepReply(3, 0, "cancel", True, None))
    orch.on_reply(ctx, StepReply(3, 1, "cancel", False, "busy"))
    ctx.advance(100)
    orch.on_timer(ctx, TIMER)
    assert [(m.step, m.action) for _, m in ctx.take_sent()] == [(1, "cancel")]
    orch.on_reply(ctx, StepReply(3, 1, "cancel", True, None))
    assert ends == [(3, UNDONE, "timeout")]


def test_after_a_restart_the_coordinator_resumes_each_saga_from_its_log():
    """The log survives a crash: a new coordinator on the same storage re-sends the current group,
    and a saga that had ended is not resumed."""
    ctx = FakeContext("orders")
    orch, _ = coordinator()
    orch.begin(ctx, 1, ())
    orch.begin(ctx, 2, ())
    answer(orch, ctx)  # both reserved, both now charging
    ctx.take_sent()
    orch.on_reply(ctx, StepReply(2, 1, "charge", True, None))
    orch.on_reply(ctx, StepReply(2, 2, "ship", True, None))
    ctx.take_sent()
    ctx.storage.crash(lose_unsynced=True)
    again, ends = coordinator()
    again.on_start(ctx)
    assert [(m.saga, m.step, m.action) for _, m in ctx.take_sent()] == [(1, 1, "charge")]
    assert ends == []


def test_the_step_table_answers_a_repeat_from_its_record_and_ignores_one_under_way():
    """A finished call's record is its answer; a call still running is not started twice."""
    ctx = FakeContext("inv")
    table = StepTable({"reserve": "release"})
    call = StepCall(1, 0, "reserve", ())
    assert table.done(ctx, call) is None and table.start(call)
    assert not table.start(call)
    table.finish(ctx, call, True, 2)
    assert table.done(ctx, call) == (True, 2)


def test_the_barrier_makes_an_early_undo_empty_and_refuses_the_forward_action_that_follows():
    """DTM's barrier: an undo with no forward record is an empty compensation, and the forward
    action arriving after it is hanging (refused); a forward that was refused needs no undo either."""
    ctx = FakeContext("inv")
    table = StepTable({"try": "cancel"})
    cancel, try_ = StepCall(1, 0, "cancel", ()), StepCall(1, 0, "try", ())
    assert table.empty_compensation(ctx, cancel)
    table.finish(ctx, cancel, True, "empty")
    assert table.hanging(ctx, try_)
    other = StepCall(2, 0, "try", ())
    table.finish(ctx, other, False, "out-of-stock")
    assert table.empty_compensation(ctx, StepCall(2, 0, "cancel", ()))


def test_choreography_goes_forward_on_ok_and_back_through_the_undoable_steps_on_a_no():
    """next_after: ok moves to the next group or ends done; a failed forward step undoes the steps
    before it (skipping steps with nothing to undo); the last undo ends undone."""
    plan = Plan("saga", ((Step("inv", "reserve", "release"),), (Step("pay", "charge", "refund"),),
                         (Step("inv", "sell"),), (Step("ship", "ship"),)), pivot=3)
    assert next_after(plan, 0, False, True) == ("forward", 1)
    assert next_after(plan, 3, False, True) == (DONE, 0)
    assert next_after(plan, 0, False, False) == (UNDONE, 0)
    assert next_after(plan, 2, False, False) == ("undo", 1)
    assert next_after(plan, 1, True, True) == ("undo", 0)
    assert next_after(plan, 0, True, True) == (UNDONE, 0)
