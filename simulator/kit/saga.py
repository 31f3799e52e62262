"""Transactions across services without a shared database: sagas, TCC and two-phase commit as one
plan driven by a coordinator with a durable log, plus the participant's idempotency table and barrier.

A *plan* is a list of groups of steps; the steps of a group run in parallel, the groups one after
the other. Every step names a service, its forward action and the action that undoes it (its
compensation, or None). Groups before ``pivot`` may fail: a participant answers no (out of stock,
declined), or, for steps with ``fails_on_timeout``, stays silent past the step timeout; the saga then
*compensates*, running the undo of every step of the failed group and of every earlier group, the
latest first. From ``pivot`` on the saga can only go forward: each step is retried until it
succeeds. The three classic shapes are the same plan with different actions:

    saga (Garcia-Molina and Salem, 1987)   [reserve] [charge] [sell] | [ship]        undo: release, refund
    TCC (try / confirm / cancel)           [try-inv, try-pay] | [confirm-inv, confirm-pay] [ship]   undo: cancel
    2PC                                    [prepare-inv, prepare-pay] | [commit-inv, commit-pay] [ship]  undo: abort

(``|`` marks the pivot; for 2PC, entering it is forcing the commit record, and a coordinator that
restarts before it asks for the votes again rather than presuming abort.) What differs is the participants: a saga step commits locally at once (others
see it: the intermediate states sagas are known for), a TCC try reserves what confirm will take, a 2PC
prepare holds its resources in doubt until the coordinator's decision arrives, however long it is down.

:class:`Orchestrator` is the coordinator's core (it is not a node: a design's node owns one and
forwards messages and its timer to it). Its log, in the owner's storage, is one record per saga,
``saga/<id>`` -> (phase, group, args, reason), forced at every transition, so a restarted coordinator
resumes each saga where it was and re-sends the current group's calls. Retrying is therefore
everywhere, and every step must be idempotent: participants keep a :class:`StepTable` keyed by
(saga, step, action) in the same local transaction as their own state.

:class:`StepTable` also implements the *barrier* DTM documents for TCC (and that sagas need too):

- empty compensation: an undo that arrives for a step never done is recorded and answered ok;
- hanging forward: a forward action whose undo is already recorded is refused, so a try delayed
  past its cancel reserves nothing (the ``tcc-hanging-try`` failure when the check is skipped).

:func:`next_after` is the choreography of the same plan: after a step's local transaction, the
service itself computes the next event (the next step, or the undo of the previous one, or the end),
so sagas run without a coordinator when each service reacts to the last one's event.

Records (``ctx.record``): ``saga.begin`` (saga, plan), ``saga.phase`` (saga, phase, group, reason),
``saga.retry`` (saga, step, action, attempt), ``saga.end`` (saga, outcome, reason, latency_ms).

Simplifications: one coordinator node per plan (no standby: a crashed coordinator stops its sagas until
it restarts); a silent step is asked again after a wait that doubles per attempt (up to eight step
timeouts), a step that answered no after ``retry_ms``, without jitter; group steps are not
cancelled when a sibling fails (their late answers are ignored, their undo is sent anyway).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable

from ..engine.node import message

FORWARD, COMPENSATING, DONE, UNDONE = "forward", "compensating", "done", "undone"
TIMER = "saga.tick"
GRID_NS = 5_000_000  # the coordinator's timer fires on a 5 ms grid
BACKOFF_CAP = 8  # a silent participant is asked again after at most 8 step timeouts
_MISSING = object()


@message
class StepCall:
    """Run ``action`` of step ``step`` of saga ``saga`` (``args``: plain data the participant needs)."""

    saga: int
    step: int
    action: str
    args: Any


@message
class StepReply:
    saga: int
    step: int
    action: str
    ok: bool
    value: Any


@dataclass(frozen=True)
class Step:
    """service           the node that runs it
    action             its forward action
    undo               the action that compensates it (None: nothing to undo)
    fails_on_timeout   silence past the step timeout counts as a no (TCC tries, 2PC votes); otherwise
                       a silent participant is asked again until it answers"""

    service: str
    action: str
    undo: str | None = None
    fails_on_timeout: bool = False


@dataclass(frozen=True)
class Plan:
    name: str
    groups: tuple[tuple[Step, ...], ...]
    pivot: int  # index of the first group that only goes forward (retried until it succeeds)

    def steps(self) -> list[tuple[int, int, Step]]:
        """(group, step number, step); step numbers run across groups."""
        out, n = [], 0
        for g, group in enumerate(self.groups):
            for s in group:
                out.append((g, n, s))
                n += 1
        return out

    def first_of(self, group: int) -> int:
        return sum(len(g) for g in self.groups[:group])


def next_after(plan: Plan, group: int, undoing: bool, ok: bool) -> tuple[str, int]:
    """Choreography of a plan of one step per group: after the local transaction of ``group``'s step
    (its forward action, or its undo when ``undoing``) answered ``ok``, what comes next:
    ``("forward", g)``, ``("undo", g)`` or ``("end", 0)`` with the outcome in the first field
    (``"done"`` / ``"undone"``). A forward step that failed did nothing, so undoing starts below it."""
    if not undoing and ok:
        if group + 1 < len(plan.groups):
            return "forward", group + 1
        return DONE, 0
    g = group - 1
    while g >= 0 and plan.groups[g][0].undo is None:
        g -= 1
    return ("undo", g) if g >= 0 else (UNDONE, 0)


class _Saga:
    __slots__ = ("id", "phase", "group", "args", "reason", "waiting", "started", "attempts")

    def __init__(self, sid, phase, group, args, reason, started):
        self.id, self.phase, self.group, self.args, self.reason = sid, phase, group, args, reason
        self.waiting: dict[int, str] = {}  # step number -> action awaited
        self.started = started
        self.attempts: dict[int, int] = {}


class Orchestrator:
    """The coordinator of one plan. ``send(ctx, service, StepCall)`` reaches a participant;
    ``on_end(ctx, saga_id, outcome, reason)`` is told once per saga that ends (again after a restart
    for sagas that ended before it but whose end the owner had not acknowledged: owners are idempotent).
    The owner calls :meth:`on_start` from its own ``on_start``, and hands over :class:`StepReply`
    messages and the ``saga.tick`` timer."""

    def __init__(self, plan: Plan, send: Callable, on_end: Callable, *, step_timeout_ms: float = 200.0,
                 retry_ms: float = 100.0):
        self.plan = plan
        self.send = send
        self.on_end = on_end
        self.timeout_ns = int(step_timeout_ms * 1e6)
        self.retry_ns = int(retry_ms * 1e6)
        self.steps = plan.steps()
        self.sagas: dict[int, _Saga] = {}
        self.heap: list = []  # (due ns, seq, saga id, step number, action, attempt)
        self.seq = 0
        self.timer_at: int | None = None

    # ---- the owner's hooks ----------------------------------------------------------------------
    def on_start(self, ctx) -> None:
        """Resume every saga the log holds that has not ended."""
        st = ctx.storage
        for key in list(st.keys()):
            if key.startswith("saga/"):
                phase, group, args, reason, started = st.get(key)
                if phase in (DONE, UNDONE):
                    continue
                sg = self.sagas[int(key[5:])] = _Saga(int(key[5:]), phase, group, args, reason, started)
                self._run_group(ctx, sg)

    def begin(self, ctx, saga_id: int, args: Any) -> bool:
        """Start a saga (False if the log already has it: a duplicate request)."""
        key = f"saga/{saga_id}"
        if saga_id in self.sagas or key in ctx.storage:
            return False
        sg = self.sagas[saga_id] = _Saga(saga_id, FORWARD, 0, args, "", ctx.now)
        self._log(ctx, sg)
        ctx.record("saga.begin", saga=saga_id, plan=self.plan.name)
        self._run_group(ctx, sg)
        return True

    def outcome(self, ctx, saga_id: int) -> tuple[str, str] | None:
        """(phase, reason) of a saga in the log, or None."""
        rec = ctx.storage.get(f"saga/{saga_id}")
        return None if rec is None else (rec[0], rec[3])

    def on_reply(self, ctx, msg: StepReply) -> None:
        sg = self.sagas.get(msg.saga)
        if sg is None or sg.waiting.get(msg.step) != msg.action:
            return  # late, duplicate, or for a group already past
        if msg.ok or sg.phase == COMPENSATING or sg.group >= self.plan.pivot:
            if not msg.ok:  # undo and post-pivot steps are retried until they succeed
                self._retry(ctx, sg, msg.step, msg.action)
                return
            del sg.waiting[msg.step]
            if not sg.waiting:
                self._advance(ctx, sg)
            return
        self._fail(ctx, sg, str(msg.value))

    def on_timer(self, ctx, name: str) -> bool:
        if name != TIMER:
            return False
        self.timer_at = None
        now, heap = ctx.now, self.heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._stale(entry):
                continue
            _, _, sid, step, action, attempt = entry
            sg = self.sagas[sid]
            st = self.steps[step][2]
            if st.fails_on_timeout and sg.phase == FORWARD and sg.group < self.plan.pivot:
                self._fail(ctx, sg, "timeout")
            else:
                self._call(ctx, sg, step, action)
        self._arm(ctx)
        return True

    def in_flight(self) -> int:
        return len(self.sagas)

    # ---- inside ---------------------------------------------------------------------------------
    def _log(self, ctx, sg: _Saga) -> None:
        ctx.storage.put(f"saga/{sg.id}", (sg.phase, sg.group, sg.args, sg.reason, sg.started))

    def _run_group(self, ctx, sg: _Saga) -> None:
        g = sg.group
        first = self.plan.first_of(g)
        sg.waiting = {}
        for i, st in enumerate(self.plan.groups[g]):
            action = st.action if sg.phase == FORWARD else st.undo
            if action is not None:
                sg.waiting[first + i] = action
        if not sg.waiting:
            self._advance(ctx, sg)
            return
        for step, action in list(sg.waiting.items()):
            self._call(ctx, sg, step, action)

    def _call(self, ctx, sg: _Saga, step: int, action: str) -> None:
        attempt = sg.attempts[step] = sg.attempts.get(step, 0) + 1
        if attempt > 1:
            ctx.record("saga.retry", saga=sg.id, step=step, action=action, attempt=attempt)
        self.send(ctx, self.steps[step][2].service, StepCall(sg.id, step, action, sg.args))
        # A participant that stays silent (down, cut off) is asked less and less often: the wait
        # doubles per attempt up to BACKOFF_CAP step timeouts, so a long outage costs few messages.
        wait = self.timeout_ns * min(1 << (attempt - 1), BACKOFF_CAP)
        self._push(ctx, ctx.now + wait, sg.id, step, action, attempt)

    def _retry(self, ctx, sg: _Saga, step: int, action: str) -> None:
        """Ask again after ``retry_ms``: a new attempt number makes the pending timeout stale."""
        attempt = sg.attempts[step] = sg.attempts.get(step, 0) + 1
        self._push(ctx, ctx.now + self.retry_ns, sg.id, step, action, attempt)

    def _push(self, ctx, due: int, sid: int, step: int, action: str, attempt: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, sid, step, action, attempt))
        if self.timer_at is None or due < self.timer_at - GRID_NS:
            self._arm(ctx)

    def _stale(self, entry) -> bool:
        sg = self.sagas.get(entry[2])
        return sg is None or sg.waiting.get(entry[3]) != entry[4] or sg.attempts.get(entry[3]) != entry[5]

    def _arm(self, ctx) -> None:
        # Deadlines of calls already answered are dropped here, not when the answer comes (a heap
        # cannot remove from the middle): the timer then waits for a live deadline only.
        heap = self.heap
        while heap and self._stale(heap[0]):
            heapq.heappop(heap)
        if heap:
            due = -(-heap[0][0] // GRID_NS) * GRID_NS  # clustered deadlines share one firing
            if self.timer_at != due:
                self.timer_at = due
                ctx.set_timer(TIMER, max(0, due - ctx.now) / 1e6)
        else:
            self.timer_at = None

    def _advance(self, ctx, sg: _Saga) -> None:
        if sg.phase == FORWARD:
            if sg.group + 1 >= len(self.plan.groups):
                self._end(ctx, sg, DONE)
                return
            sg.group += 1
        else:
            if sg.group == 0:
                self._end(ctx, sg, UNDONE)
                return
            sg.group -= 1
        sg.attempts = {}
        self._log(ctx, sg)
        ctx.record("saga.phase", saga=sg.id, phase=sg.phase, group=sg.group, reason=sg.reason)
        self._run_group(ctx, sg)

    def _fail(self, ctx, sg: _Saga, reason: str) -> None:
        sg.phase, sg.reason, sg.attempts = COMPENSATING, reason, {}
        self._log(ctx, sg)
        ctx.record("saga.phase", saga=sg.id, phase=sg.phase, group=sg.group, reason=reason)
        self._run_group(ctx, sg)

    def _end(self, ctx, sg: _Saga, outcome: str) -> None:
        sg.phase = outcome
        self._log(ctx, sg)
        del self.sagas[sg.id]
        ctx.record("saga.end", saga=sg.id, outcome=outcome, reason=sg.reason,
                   latency_ms=(ctx.now - sg.started) / 1e6)
        self.on_end(ctx, sg.id, outcome, sg.reason)


class StepTable:
    """A participant's record of the steps it has run: ``k/<saga>.<step>.<action>`` -> (ok, value),
    written in the same local transaction as the state the step changed. ``undo_of`` maps each
    forward action to its compensation (for the barrier)."""

    def __init__(self, undo_of: dict[str, str]):
        self.undo_of = undo_of
        self.forward_of = {u: f for f, u in undo_of.items()}
        self.running: set[tuple] = set()  # volatile: steps whose local transaction is under way

    @staticmethod
    def key(saga: int, step: int, action: str) -> str:
        return f"k/{saga}.{step}.{action}"

    def done(self, ctx, call: StepCall) -> Any:
        """The recorded (ok, value) of this call, or None."""
        return ctx.storage.get(self.key(call.saga, call.step, call.action))

    def start(self, call: StepCall) -> bool:
        """Mark the call under way; False if it already is (a retry of a call not finished yet)."""
        k = (call.saga, call.step, call.action)
        if k in self.running:
            return False
        self.running.add(k)
        return True

    def empty_compensation(self, ctx, call: StepCall) -> bool:
        """An undo for a step whose forward action never ran, or ran and refused (DTM's empty
        rollback): there is nothing to undo."""
        fwd = self.forward_of.get(call.action)
        if fwd is None:
            return False
        rec = ctx.storage.get(self.key(call.saga, call.step, fwd))
        return rec is None or not rec[0]

    def hanging(self, ctx, call: StepCall) -> bool:
        """A forward action whose undo already ran (DTM's hanging try / suspension)."""
        undo = self.undo_of.get(call.action)
        return undo is not None and ctx.storage.get(self.key(call.saga, call.step, undo)) is not None

    def finish(self, ctx, call: StepCall, ok: bool, value: Any) -> None:
        """Record the outcome and make the local transaction durable (one fsync with the state)."""
        self.running.discard((call.saga, call.step, call.action))
        ctx.storage.put(self.key(call.saga, call.step, call.action), (ok, value))
