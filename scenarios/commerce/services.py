"""The commerce services: orders, inventory, payments (a double-entry ledger), shipping, payouts and
the outside payment rails. Each keeps its own state in its own durable storage and runs every step
of an order as a local transaction (the state change and the step's idempotency record in one fsync).

A participant's local transaction takes ``db_ms`` (drawn per call); calls run concurrently, so a
slow one can finish after a later one (the way a try can commit after its cancel). Work under way
is volatile: a crash loses it, and the caller asks again.

In ``saga-choreographed`` mode nothing calls the participants: each consumes its own queue
(``bus-<service>``, a kit :class:`~simulator.kit.queue.Queue`), runs the step, and writes the next
event (:func:`~simulator.kit.saga.next_after`) into its *outbox* in the same local transaction; a
relay sends the outbox to the next queue until it is stored there (transactional outbox). The
queue's tombstones make a re-sent event harmless, the step table makes a redelivered one harmless.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from simulator import ClientNode, Dist, Node, message
from simulator.kit.queue import Ack, Empty, Enqueue, Enqueued, Leased, Pull
from simulator.kit.saga import DONE, UNDONE, Orchestrator, Plan, StepCall, StepReply, StepTable, next_after

ORDERS, INVENTORY, PAYMENTS, SHIPPING = "orders", "inventory", "payments", "shipping"
PAYOUTS, RAILS = "payouts", "rails"
RAIL_NAMES = ("ach", "wire", "instant")
RAIL_MS = {"ach": 40.0, "wire": 20.0, "instant": 5.0}  # time for a rail to answer a transfer


def event_id(saga: int, step: int, action: str) -> str:
    """An event's id, the idempotency key the queue's tombstones and the outbox use."""
    return f"{saga}.{step}.{action}"


def bus(service: str, saga: int, partitions: int) -> str:
    """The queue partition that carries a saga's events to a service (or to one orders node) in
    choreographed mode: a consumer takes one event per round trip from each partition, so
    partitions are what lets a service work on several events at once."""
    return f"bus-{service}-{saga % partitions + 1}"


PULL_CREDIT = 256  # events one long poll may hand over (a standing pull: no Pull per event)


def pull_bus(node, ctx, name: str, part: str | None) -> None:
    """Long-poll ``part`` of ``name``'s queue (the partition whose poll ended), or every partition.
    ``node.credit`` holds, per partition, the current poll's id and the events it may still hand over."""
    for q in (part,) if part is not None else [bus(name, i, node.w.bus_partitions)
                                               for i in range(node.w.bus_partitions)]:
        node.pulls += 1
        node.credit[q] = [node.pulls, PULL_CREDIT]
        ctx.send(q, Pull(node.pulls, True, PULL_CREDIT))


def leased_from(node, ctx, name: str, part: str, pull_id: int) -> None:
    """One event of ``part``'s current poll arrived: poll again once its credit is spent."""
    cur = node.credit.get(part)
    if cur is not None and cur[0] == pull_id:
        cur[1] -= 1
        if cur[1] <= 0:
            pull_bus(node, ctx, name, part)


def orders_node(w: "Wiring", order: int) -> str:
    """The orders node an order belongs to (its coordinator, and where its end is reported)."""
    return f"{ORDERS}-{order % w.coordinators + 1}"


@dataclass(frozen=True)
class Wiring:
    mode: str
    plan: Plan
    skus: int
    warehouses: int
    stock: tuple  # initial stock, stock[sku][wh]
    restock_qty: int
    restock_ms: float
    ttl_ms: float
    sweep_ms: float
    db_ms: Dist
    psp_ms: Dist
    fee_bp: int
    step_timeout_ms: float
    retry_ms: float
    payout_interval_ms: float
    rail_timeout_ms: float
    rail_timeout_share: float
    relay_ms: float
    coordinators: int
    bus_partitions: int
    bug: str | None
    # loyalty points, later refunds and payout rails (defaults: the design's own)
    points_bp: int = 500
    redeem_share: float = 0.5
    notice_ms: float = 200.0
    ach_settle_days: float = 1.0
    wire_fee_cents: int = 2500


@message
class PlaceOrder:
    order: int
    args: tuple  # (customer, sku, qty, amount, decline, cancel)


@message
class OrderResult:
    order: int
    outcome: str  # "done" | "undone"
    reason: str


@message
class Event:
    """A choreography event: run ``action`` of step ``step`` (or, for orders, the end ``action``)."""

    msg_id: str  # event_id(saga, step, action): a string is its own storage key at the queue
    saga: int
    step: int
    action: str
    args: tuple


@message
class RailSend:
    key: str
    payout: int
    amount: int
    rail: str


@message
class RailAck:
    key: str
    payout: int


@message
class Delivered:
    """Shipping's delivery notices, relayed until acknowledged: (order, customer, amount) each."""

    notices: tuple


@message
class DeliveredAck:
    orders: tuple


REFUND = "refund-delivered"  # a customer's refund of a delivered order, asked of payments directly


class Sampler:
    """Durations in ns from ``dist``, drawn from the node's stream in batches."""

    def __init__(self, dist: Dist):
        self.dist = dist
        self.buf: list[int] = []

    def __call__(self, rng) -> int:
        if not self.buf:
            self.buf = (self.dist.draw_ms(rng, 256) * 1e6).astype("int64").tolist()
        return self.buf.pop()


class Delays:
    """Work due at a later instant, behind one timer (``work``) that fires on a 1 ms grid, so work
    falling due close together is done in one firing (a local transaction ends up to 1 ms late)."""

    TIMER = "work"
    GRID_NS = 1_000_000

    def __init__(self):
        self.heap: list = []
        self.seq = 0
        self.at: int | None = None

    def add(self, ctx, due_ns: int, item) -> None:
        due_ns = -(-due_ns // self.GRID_NS) * self.GRID_NS
        self.seq += 1
        heapq.heappush(self.heap, (due_ns, self.seq, item))
        if self.at is None or due_ns < self.at:
            self.at = due_ns
            ctx.set_timer(self.TIMER, max(0, due_ns - ctx.now) / 1e6)

    def due(self, ctx) -> list:
        self.at = None
        out, heap = [], self.heap
        while heap and heap[0][0] <= ctx.now:
            out.append(heapq.heappop(heap)[2])
        if heap:
            self.at = heap[0][0]
            ctx.set_timer(self.TIMER, max(0, self.at - ctx.now) / 1e6)
        return out


class Outbox:
    """Events written in a local transaction (``o/<id>``) and relayed until their queue stored them;
    ``pending`` mirrors the stored ones (rebuilt by :meth:`load` after a restart)."""

    def __init__(self, w: Wiring):
        self.w = w
        self.pending: dict[str, tuple] = {}

    def load(self, ctx) -> None:
        st = ctx.storage
        self.pending = {k: st.get(k) for k in st.keys() if k.startswith("o/")}

    def put(self, ctx, dst_queue: str, ev: Event) -> None:
        if self.w.bug == "outbox-after-commit":
            # the planted bug: published outside the local transaction, once, and lost if the
            # queue is down or cut off at that instant (or this node crashes before it is sent)
            ctx.send(dst_queue, Enqueue(ev))
            return
        k = "o/" + ev.msg_id
        self.pending[k] = (dst_queue, ev)
        ctx.storage.put(k, (dst_queue, ev), sync=False)
        ctx.send(dst_queue, Enqueue(ev))

    def relay(self, ctx) -> None:
        for dst, ev in self.pending.values():
            ctx.send(dst, Enqueue(ev))

    def stored(self, ctx, msg_id) -> None:
        k = "o/" + msg_id
        if self.pending.pop(k, None) is not None:
            ctx.storage.delete(k, sync=False)


def emit_next(ctx, w: Wiring, outbox: Outbox, saga: int, step: int, undoing: bool, ok: bool, args, reason) -> None:
    """Choreography: the event that follows this step's local transaction, into the outbox."""
    kind, g = next_after(w.plan, step, undoing, ok)
    if kind in (DONE, UNDONE):
        end = Event(event_id(saga, -1, kind), saga, -1, kind, (reason,))
        outbox.put(ctx, bus(orders_node(w, saga), saga, w.bus_partitions), end)
        return
    st = w.plan.groups[g][0]
    action = st.action if kind == "forward" else st.undo
    if kind == "undo":
        ctx.record("saga.phase", saga=saga, phase="compensating", group=g, reason=reason)
    outbox.put(ctx, bus(st.service, saga, w.bus_partitions), Event(event_id(saga, g, action), saga, g, action, args))


class Participant(Node):
    """A service that runs steps: by call (orchestrated, tcc, 2pc) or by event (choreographed)."""

    UNDO: dict[str, str] = {}
    NAME = ""

    def __init__(self, w: Wiring):
        self.w = w
        self.table = StepTable(self.UNDO)
        self.delays = Delays()
        self.db = Sampler(self.db_dist(w))
        self.outbox = Outbox(w)
        self.choreo = w.mode == "saga-choreographed"
        self.pulls = 0
        self.credit: dict[str, list[int]] = {}

    def db_dist(self, w: Wiring) -> Dist:
        return w.db_ms

    def on_start(self, ctx):
        self.load(ctx)
        if self.choreo:
            self.outbox.load(ctx)
            self.outbox.relay(ctx)
            self._pull(ctx)
            ctx.set_timer("relay", self.w.relay_ms)

    def load(self, ctx) -> None:
        """Rebuild volatile views of the durable state."""

    def _pull(self, ctx, part: str | None = None) -> None:
        pull_bus(self, ctx, self.NAME, part)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is StepCall:
            self.receive(ctx, src, msg)
        elif t is Leased:
            ev = msg.msg
            leased_from(self, ctx, self.NAME, src, msg.pull_id)
            self.receive(ctx, None, StepCall(ev.saga, ev.step, ev.action, ev.args))
        elif t is Empty:
            self._pull(ctx, src)
        elif t is Enqueued:
            self.outbox.stored(ctx, msg.msg_id)
        else:
            self.other(ctx, src, msg)

    def other(self, ctx, src, msg) -> None:
        pass

    def receive(self, ctx, src, call: StepCall) -> None:
        if not self.skip_idempotency(call):
            rec = self.table.done(ctx, call)
            if rec is not None:
                if src is not None:
                    ctx.send(src, StepReply(call.saga, call.step, call.action, rec[0], rec[1]))
                else:  # a redelivered event: its successor is in the outbox already
                    self._ack(ctx, call)
                return
            if not self.table.start(call):
                return
        self.delays.add(ctx, ctx.now + self.db(ctx.rng), (src, call, self.at_arrival(ctx, call)))

    def skip_idempotency(self, call: StepCall) -> bool:
        return False

    def at_arrival(self, ctx, call: StepCall):
        """What the step reads when it arrives (only the planted race uses it)."""
        return None

    def on_timer(self, ctx, name):
        if name == Delays.TIMER:
            for src, call, seen in self.delays.due(ctx):
                self.complete(ctx, src, call, seen)
        elif name == "relay":
            self.outbox.relay(ctx)
            ctx.set_timer("relay", self.w.relay_ms)
            self._pull(ctx)  # a pull parked at a queue that crashed is gone: ask again
        else:
            self.timer(ctx, name)

    def timer(self, ctx, name) -> None:
        pass

    def complete(self, ctx, src, call: StepCall, seen) -> None:
        if self.table.empty_compensation(ctx, call):
            ok, value = True, "empty-compensation"
            ctx.record("step.empty", svc=self.NAME, saga=call.saga, action=call.action)
        elif self.table.hanging(ctx, call) and not self.ignore_barrier(call):
            ok, value = False, "hanging"
            ctx.record("step.hanging", svc=self.NAME, saga=call.saga, action=call.action)
        else:
            ok, value = self.apply(ctx, call, seen)
        if self.choreo and src is None:
            undoing = call.action in self.table.forward_of
            emit_next(ctx, self.w, self.outbox, call.saga, call.step, undoing, ok, call.args,
                      "" if ok else str(value))
        self.table.finish(ctx, call, ok, value)
        if src is not None:
            ctx.send(src, StepReply(call.saga, call.step, call.action, ok, value))
        else:
            self._ack(ctx, call)

    def _ack(self, ctx, call: StepCall) -> None:
        ctx.send(bus(self.NAME, call.saga, self.w.bus_partitions), Ack(event_id(call.saga, call.step, call.action)))

    def ignore_barrier(self, call: StepCall) -> bool:
        return False

    def apply(self, ctx, call: StepCall, seen) -> tuple[bool, object]:
        raise NotImplementedError


# ---- inventory -------------------------------------------------------------------------------------
class Inventory(Participant):
    """Stock per SKU per warehouse; a hold (``h/<saga>``) is a reservation: with a deadline for saga
    reserves (swept every ``sweep_ms`` once ``reservation_ttl_s`` has passed), without one for TCC
    tries and 2PC prepares (released by cancel / abort, or kept in doubt). ``s/<sku>.<wh>`` ->
    (stock received, sold); what is held is the sum of the holds."""

    NAME = INVENTORY
    UNDO = {"reserve": "release", "try-inv": "cancel-inv", "prepare-inv": "abort-inv"}
    HOLD = {"reserve", "try-inv", "prepare-inv"}
    RELEASE = {"release", "cancel-inv", "abort-inv"}
    SELL = {"sell", "confirm-inv", "commit-inv"}

    def load(self, ctx):
        st, w = ctx.storage, self.w
        self.level: dict[tuple[int, int], list[int]] = {}
        for sku in range(w.skus):
            for wh in range(w.warehouses):
                stock, sold = st.get(f"s/{sku}.{wh}", (w.stock[sku][wh], 0))
                self.level[(sku, wh)] = [stock, 0, sold]
        self.holds: dict[int, tuple] = {}
        # 2PC: a prepared transaction holds the row lock of its SKU and warehouse until the decision
        # arrives (strict two-phase locking), so nobody else can use that row while it is in doubt
        self.locked: dict[tuple[int, int], int] = {}
        for k in st.keys():
            if k.startswith("h/"):
                h = st.get(k)
                self.holds[int(k[2:])] = h
                self.level[(h[0], h[1])][1] += h[2]
                if h[4] == "prepare-inv":
                    self.locked[(h[0], h[1])] = int(k[2:])
        if "booted" not in st:  # the starting stock, once, so that levels over time start from it
            for (sku, wh), (stock, held, sold) in self.level.items():
                ctx.record("inv.level", sku=sku, wh=wh, stock=stock, held=held, sold=sold, saga=-1, why="start")
            st.put("booted", True)
        ctx.set_timer("sweep", w.sweep_ms)
        ctx.set_timer("restock", w.restock_ms)

    def _avail(self, sku: int, wh: int) -> int:
        s, h, d = self.level[(sku, wh)]
        return s - h - d

    def _pick(self, sku: int, qty: int) -> int | None:
        """The warehouse with the most available stock of ``sku`` if it has ``qty``, among the rows
        no prepared 2PC transaction has locked."""
        whs = range(self.w.warehouses)
        if self.locked:
            whs = [wh for wh in whs if (sku, wh) not in self.locked]
            if not whs:
                return None
        best = max(whs, key=lambda wh: (self._avail(sku, wh), -wh))
        return best if self._avail(sku, best) >= qty else None

    def _note(self, ctx, sku, wh, saga, why) -> None:
        s, h, d = self.level[(sku, wh)]
        ctx.storage.put(f"s/{sku}.{wh}", (s, d), sync=False)
        ctx.record("inv.level", sku=sku, wh=wh, stock=s, held=h, sold=d, saga=saga, why=why)

    def at_arrival(self, ctx, call):
        if self.w.bug == "reserve-without-lock" and call.action in self.HOLD:
            return self._pick(call.args[1], call.args[2])
        return None

    def ignore_barrier(self, call):
        return self.w.bug == "tcc-hanging-try" and call.action == "try-inv"

    def apply(self, ctx, call, seen):
        a = call.action
        _cust, sku, qty, _amount, _decline, cancel = call.args
        if a in self.HOLD:
            if a != "reserve" and cancel:
                return False, "cancelled"
            if self.w.bug == "reserve-without-lock":
                wh = seen  # checked when the request arrived, not when the hold is written
            else:
                wh = self._pick(sku, qty)  # check and hold in one local transaction
            if wh is None:
                if self.locked and any((sku, x) in self.locked for x in range(self.w.warehouses)):
                    return False, "locked"
                return False, "out-of-stock"
            expires = ctx.now + int(self.w.ttl_ms * 1e6) if a == "reserve" else 0
            self._hold(ctx, call.saga, (sku, wh, qty, expires, a))
            return True, wh
        if a in self.RELEASE:
            self._unhold(ctx, call.saga, "release")
            return True, None
        if a in self.SELL:
            if a == "sell" and cancel:
                return False, "cancelled"
            h = self.holds.get(call.saga)
            if h is not None:
                self._unhold(ctx, call.saga, "sold", note=False)
                wh = h[1]
            else:  # the reservation expired: sell from free stock if there is some
                wh = self._pick(sku, qty)
                if wh is None:
                    return False, "reservation-expired"
            self.level[(sku, wh)][2] += qty
            ctx.storage.put(f"sold/{call.saga}", (sku, wh, qty), sync=False)
            self._note(ctx, sku, wh, call.saga, "sell")
            return True, wh
        return False, f"unknown action {a}"

    def _hold(self, ctx, saga: int, h: tuple) -> None:
        self.holds[saga] = h
        if h[4] == "prepare-inv":
            self.locked[(h[0], h[1])] = saga
        self.level[(h[0], h[1])][1] += h[2]
        ctx.storage.put(f"h/{saga}", h, sync=False)
        ctx.record("inv.hold", saga=saga, sku=h[0], wh=h[1], qty=h[2], expires_ns=h[3], hold=h[4])
        self._note(ctx, h[0], h[1], saga, "hold")

    def _unhold(self, ctx, saga: int, why: str, note: bool = True) -> None:
        h = self.holds.pop(saga, None)
        if h is None:
            return
        if self.locked.get((h[0], h[1])) == saga:
            del self.locked[(h[0], h[1])]
        self.level[(h[0], h[1])][1] -= h[2]
        ctx.storage.delete(f"h/{saga}", sync=False)
        ctx.record("inv.unhold", saga=saga, sku=h[0], wh=h[1], qty=h[2], why=why)
        if note:
            self._note(ctx, h[0], h[1], saga, why)

    def timer(self, ctx, name):
        if name == "sweep":
            now = ctx.now
            gone = [s for s, h in self.holds.items() if 0 < h[3] <= now]
            for s in gone:
                self._unhold(ctx, s, "expired")
            if gone:
                ctx.storage.sync()
            ctx.set_timer("sweep", self.w.sweep_ms)
        elif name == "restock":
            w = self.w
            for (sku, wh), lv in self.level.items():
                if lv[0] - lv[1] - lv[2] < w.restock_qty:
                    lv[0] += w.restock_qty
                    self._note(ctx, sku, wh, -1, "restock")
            ctx.storage.sync()
            ctx.set_timer("restock", w.restock_ms)


# ---- payments --------------------------------------------------------------------------------------
class Payments(Participant):
    """A double-entry ledger: a journal (``j/<key>``) is lines (account, amount in cents) summing to
    zero; balances (``a/<account>``) are the sums of their lines. Accounts: ``customer:<n>``,
    ``merchant``, ``fees`` (the processor's), ``fees:wire`` (the wire rail's), ``held`` (TCC and 2PC
    authorisations), ``clearing`` (payouts on their way to a rail), ``points:<n>`` (a customer's
    loyalty points, 1 point = 1 cent, a liability) and ``loyalty`` (what the programme has given).
    Charges and refunds go to the card processor, so they take ``psp_ms``.

    Points: a charge (or TCC/2PC authorisation) pays up to ``redeem_share`` of the amount with the
    customer's points, in the same journal; its compensation reverses that journal, points included.
    Points are earned on delivery: shipping writes a notice in the ship step's local transaction and
    relays it here until acknowledged (:class:`Delivered`); the credit is journaled once per order
    (key ``earn/<order>``), which also marks the order delivered (``dv/<order>``).

    A later refund of a delivered order (:data:`REFUND`, asked by the customer) reverses the money
    journals under the same key as a compensation's refund (``refund/<order>``, so it happens once)
    and takes back the points the order earned; if the customer has spent them, the refund is reduced
    by the shortfall (kept by ``loyalty``) so that no points balance goes below zero."""

    NAME = PAYMENTS
    UNDO = {"charge": "refund", "try-pay": "cancel-pay", "prepare-pay": "abort-pay"}

    def db_dist(self, w):
        return w.psp_ms

    def load(self, ctx):
        self.balance: dict[str, int] = {}
        self.journals = 0
        for k in ctx.storage.keys():
            if k.startswith("a/"):
                self.balance[k[2:]] = ctx.storage.get(k)
            elif k.startswith("j/"):
                self.journals += 1

    def skip_idempotency(self, call):
        # a refund of a delivered order may be asked before the delivery is known here: its
        # idempotency is the refund journal's key, not a recorded answer
        return call.action == REFUND or (self.w.bug == "compensate-without-idempotency" and call.action == "refund")

    def _journal(self, ctx, key: str, kind: str, order: int, lines: tuple, **extra) -> None:
        st = ctx.storage
        bugged = ((self.w.bug == "compensate-without-idempotency" and kind == "refund" and not extra)
                  or (self.w.bug == "points-without-idempotency" and kind == "earn"))
        if bugged:
            n = 1
            while f"j/{key}#{n}" in st:
                n += 1
            key = f"{key}#{n}"
        st.put(f"j/{key}", lines, sync=False)
        for acct, amt in lines:
            b = self.balance[acct] = self.balance.get(acct, 0) + amt
            st.put(f"a/{acct}", b, sync=False)
        self.journals += 1
        ctx.record("ledger.journal", key=key, entry=kind, order=order, lines=[list(x) for x in lines], **extra)

    def _redeem(self, cust: int, amount: int) -> int:
        """Points the customer pays with: what they have, up to ``redeem_share`` of the amount."""
        return max(0, min(self.balance.get(f"points:{cust}", 0), int(amount * self.w.redeem_share)))

    @staticmethod
    def _pay_lines(acct: str, cust: int, amount: int, points: int, to: tuple) -> tuple:
        lines = [(acct, -(amount - points))]
        if points:
            lines.append((f"points:{cust}", -points))
        return (*lines, *to)

    def apply(self, ctx, call, seen):
        a, saga = call.action, call.saga
        if a == "sweep":
            return self._sweep(ctx, saga, call.args)
        if a == REFUND:
            return self._refund_delivered(ctx, saga, call.args)
        cust, _sku, _qty, amount, decline, _cancel = call.args
        acct = f"customer:{cust}"
        fee = amount * self.w.fee_bp // 10_000
        st = ctx.storage
        if a in ("charge", "try-pay", "prepare-pay") and decline:
            return False, "declined"
        if a == "charge":
            pts = self._redeem(cust, amount)
            self._journal(ctx, f"charge/{saga}", "charge", saga,
                          self._pay_lines(acct, cust, amount, pts, (("merchant", amount - fee), ("fees", fee))))
        elif a == "refund":
            lines = tuple((acct_, -amt) for acct_, amt in st.get(f"j/charge/{saga}", ()))
            if self.w.bug == "refund-keeps-fee":
                lines = tuple(x for x in lines if x[0] != "fees")  # the fee is kept and nothing balances it
            self._journal(ctx, f"refund/{saga}", "refund", saga, lines)
        elif a in ("try-pay", "prepare-pay"):
            pts = self._redeem(cust, amount)
            self._journal(ctx, f"hold/{saga}", "authorise", saga,
                          self._pay_lines(acct, cust, amount, pts, (("held", amount),)))
        elif a in ("confirm-pay", "commit-pay"):
            self._journal(ctx, f"capture/{saga}", "capture", saga,
                          (("held", -amount), ("merchant", amount - fee), ("fees", fee)))
        elif a in ("cancel-pay", "abort-pay"):
            lines = tuple((acct_, -amt) for acct_, amt in st.get(f"j/hold/{saga}", ()))
            self._journal(ctx, f"void/{saga}", "void", saga, lines)
        else:
            return False, f"unknown action {a}"
        return True, None

    def _sweep(self, ctx, pid: int, rail) -> tuple[bool, int]:
        """A payout: the merchant's balance moves to clearing, less the wire rail's fee."""
        amt = max(0, self.balance.get("merchant", 0))
        if not amt:
            return True, 0
        fee = min(amt, self.w.wire_fee_cents) if rail == "wire" else 0
        lines = (("merchant", -amt), ("clearing", amt - fee)) + ((("fees:wire", fee),) if fee else ())
        self._journal(ctx, f"payout/{pid}", "payout", -1, lines)
        return True, amt - fee

    def _refund_delivered(self, ctx, order: int, args) -> tuple[bool, object]:
        st = ctx.storage
        delivered = f"dv/{order}" in st
        if f"j/refund/{order}" in st:
            return (True, "refunded already") if delivered else (False, "undone")
        if not delivered:
            rec = st.get(StepTable.key(order, 1, "charge")) or st.get(StepTable.key(order, 1, "try-pay")) \
                or st.get(StepTable.key(order, 1, "prepare-pay"))
            if (rec is not None and not rec[0]) or f"j/void/{order}" in st:
                return False, "undone"
            return False, "not-delivered"
        cust = args[0]
        acct, pacct = f"customer:{cust}", f"points:{cust}"
        money = points = merchant = fees = 0
        for key in (f"j/charge/{order}", f"j/hold/{order}", f"j/capture/{order}"):
            for who, amt in st.get(key, ()):
                if who == acct:
                    money -= amt
                elif who == pacct:
                    points -= amt
                elif who == "merchant":
                    merchant += amt
                elif who == "fees":
                    fees += amt
        earned = sum(amt for who, amt in st.get(f"j/earn/{order}", ()) if who == pacct)
        # the points the order earned come back; what the customer has already spent of them
        # comes off the money refunded instead (a balance of points never goes below zero)
        short = min(money, max(0, earned - (self.balance.get(pacct, 0) + points)))
        lines = ((acct, money - short), (pacct, points - earned + short), ("merchant", -merchant), ("fees", -fees),
                 ("loyalty", earned))
        self._journal(ctx, f"refund/{order}", "refund", order, tuple(x for x in lines if x[1]),
                      after_delivery=True, reduced_cents=short)
        return True, {"refunded_cents": money - short, "points_back": points, "points_taken": earned - short}

    def other(self, ctx, src, msg) -> None:
        if type(msg) is not Delivered:
            return
        st, bp = ctx.storage, self.w.points_bp
        done = []
        for order, cust, amount in msg.notices:
            if self.w.bug == "points-without-idempotency" or f"dv/{order}" not in st:
                pts = amount * bp // 10_000
                if pts:
                    self._journal(ctx, f"earn/{order}", "earn", order, ((f"points:{cust}", pts), ("loyalty", -pts)))
                st.put(f"dv/{order}", ctx.now, sync=False)
            done.append(order)
        st.sync()
        ctx.send(src, DeliveredAck(tuple(done)))


# ---- shipping --------------------------------------------------------------------------------------
class Shipping(Participant):
    """Creates a shipment (``sh/<saga>``); it always can, given time. Delivery earns loyalty points:
    the ship step writes a notice (``pd/<saga>``) in its own local transaction, and the notices are
    sent to payments every ``notice_ms`` until payments acknowledges them (a transactional outbox:
    a notice may arrive twice, never not at all)."""

    NAME = SHIPPING

    def load(self, ctx):
        st = ctx.storage
        self.notices = {int(k[3:]): st.get(k) for k in st.keys() if k.startswith("pd/")}
        ctx.set_timer("notice", self.w.notice_ms)

    def apply(self, ctx, call, seen):
        st = ctx.storage
        st.put(f"sh/{call.saga}", ctx.now, sync=False)
        notice = (call.args[0], call.args[3])  # customer, amount
        st.put(f"pd/{call.saga}", notice, sync=False)
        self.notices[call.saga] = notice
        ctx.record("ship", saga=call.saga)
        return True, None

    def timer(self, ctx, name):
        if name == "notice":
            if self.notices:
                batch = tuple((o, c, a) for o, (c, a) in list(self.notices.items())[:2000])
                ctx.send(PAYMENTS, Delivered(batch))
            ctx.set_timer("notice", self.w.notice_ms)

    def other(self, ctx, src, msg):
        if type(msg) is DeliveredAck:
            for o in msg.orders:
                if self.notices.pop(o, None) is not None:
                    ctx.storage.delete(f"pd/{o}", sync=False)


# ---- orders ----------------------------------------------------------------------------------------
class Orders(Node):
    """Takes orders from clients and sees each to its end: as the saga's coordinator (orchestrated,
    tcc, 2pc) or, in choreographed mode, by placing the first event and consuming the last."""

    def __init__(self, w: Wiring):
        self.w = w
        self.clients: dict[int, str] = {}
        self.choreo = w.mode == "saga-choreographed"
        self.outbox = Outbox(w)
        self.orch = None if self.choreo else Orchestrator(w.plan, self._send, self._ended,
                                                          step_timeout_ms=w.step_timeout_ms, retry_ms=w.retry_ms)
        self.pulls = 0
        self.credit: dict[str, list[int]] = {}

    def _send(self, ctx, service, call):
        ctx.send(service, call)

    def on_start(self, ctx):
        if self.orch is not None:
            self.orch.on_start(ctx)
        else:
            self.outbox.load(ctx)
            self.outbox.relay(ctx)
            self._pull(ctx)
            ctx.set_timer("relay", self.w.relay_ms)

    def _pull(self, ctx, part: str | None = None) -> None:
        pull_bus(self, ctx, ctx.id, part)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is StepReply:
            self.orch.on_reply(ctx, msg)
        elif t is PlaceOrder:
            self._place(ctx, src, msg)
        elif t is Leased:
            leased_from(self, ctx, ctx.id, src, msg.pull_id)
            ev = msg.msg
            if f"end/{ev.saga}" not in ctx.storage:
                ctx.storage.put(f"end/{ev.saga}", (ev.action, ev.args[0]))
                self._ended(ctx, ev.saga, ev.action, ev.args[0])
            ctx.send(src, Ack(ev.msg_id))
        elif t is Empty:
            self._pull(ctx, src)
        elif t is Enqueued:
            self.outbox.stored(ctx, msg.msg_id)

    def _place(self, ctx, src, msg: PlaceOrder) -> None:
        self.clients[msg.order] = src
        st = ctx.storage
        if self.orch is not None:
            known = self.orch.outcome(ctx, msg.order)
            if known is None:
                ctx.record("order.placed", order=msg.order)
                self.orch.begin(ctx, msg.order, msg.args)
            elif known[0] in (DONE, UNDONE):
                ctx.send(src, OrderResult(msg.order, known[0], known[1]))
            return
        end = st.get(f"end/{msg.order}")
        if end is not None:
            ctx.send(src, OrderResult(msg.order, end[0], end[1]))
        elif f"placed/{msg.order}" not in st:
            ctx.record("order.placed", order=msg.order)
            st.put(f"placed/{msg.order}", ctx.now, sync=False)
            first = self.w.plan.groups[0][0]
            ev = Event(event_id(msg.order, 0, first.action), msg.order, 0, first.action, msg.args)
            self.outbox.put(ctx, bus(first.service, msg.order, self.w.bus_partitions), ev)
            ctx.storage.sync()

    def _ended(self, ctx, saga, outcome, reason) -> None:
        ctx.record("order.end", order=saga, outcome=outcome, reason=reason)
        src = self.clients.pop(saga, None)
        if src is not None:
            ctx.send(src, OrderResult(saga, outcome, reason))

    def on_timer(self, ctx, name):
        if name == "relay":
            self.outbox.relay(ctx)
            self._pull(ctx)
            ctx.set_timer("relay", self.w.relay_ms)
        elif self.orch is not None:
            self.orch.on_timer(ctx, name)


# ---- payouts and rails -----------------------------------------------------------------------------
class Payouts(Node):
    """Pays the merchant out every ``payout_interval_ms`` (a compressed day): sweeps its balance to
    clearing at payments (less the wire fee on the wire rail), then sends it over the day's rail
    (ACH, wire and instant in turn), keyed by the payout so that a retry after a rail time-out is
    the same transfer. ``p/<id>`` -> (state, amount, rail)."""

    def __init__(self, w: Wiring):
        self.w = w
        self.sent_at: dict[int, int] = {}
        self.attempts: dict[int, int] = {}

    def on_start(self, ctx):
        ctx.set_timer("payout", self.w.payout_interval_ms)
        ctx.set_timer("check", self.w.rail_timeout_ms)

    def _open(self, ctx) -> list[tuple[int, tuple]]:
        st = ctx.storage
        return [(int(k[2:]), st.get(k)) for k in st.keys() if k.startswith("p/") and st.get(k)[0] != "paid"]

    def on_timer(self, ctx, name):
        st = ctx.storage
        if name == "payout":
            pid = st.get("next", 0) + 1
            rail = RAIL_NAMES[pid % len(RAIL_NAMES)]
            st.put("next", pid, sync=False)
            st.put(f"p/{pid}", ("sweeping", 0, rail))
            ctx.send(PAYMENTS, StepCall(pid, 0, "sweep", rail))
            ctx.set_timer("payout", self.w.payout_interval_ms)
        elif name == "check":  # re-ask whatever has not answered: the sweep, or the rail
            for pid, (state, amount, rail) in self._open(ctx):
                if state == "sweeping":
                    ctx.send(PAYMENTS, StepCall(pid, 0, "sweep", rail))
                elif ctx.now - self.sent_at.get(pid, 0) >= self.w.rail_timeout_ms * 1e6:
                    self._send(ctx, pid, amount, rail)
            ctx.set_timer("check", self.w.rail_timeout_ms / 2)

    def _send(self, ctx, pid: int, amount: int, rail: str) -> None:
        n = self.attempts[pid] = self.attempts.get(pid, 0) + 1
        key = f"{pid}.{n}" if self.w.bug == "payout-retry-without-key" else str(pid)
        if n > 1:
            ctx.record("payout.retry", payout=pid, attempt=n)
        self.sent_at[pid] = ctx.now
        ctx.send(RAILS, RailSend(key, pid, amount, rail))

    def on_message(self, ctx, src, msg):
        st = ctx.storage
        t = type(msg)
        if t is StepReply and msg.action == "sweep":
            rec = st.get(f"p/{msg.saga}")
            if rec is None or rec[0] != "sweeping":
                return
            if msg.value == 0:
                st.put(f"p/{msg.saga}", ("paid", 0, rec[2]))
                return
            st.put(f"p/{msg.saga}", ("sending", msg.value, rec[2]))
            self._send(ctx, msg.saga, msg.value, rec[2])
        elif t is RailAck:
            rec = st.get(f"p/{msg.payout}")
            if rec is not None and rec[0] == "sending":
                st.put(f"p/{msg.payout}", ("paid", rec[1], rec[2]))
                ctx.record("payout.paid", payout=msg.payout, amount=rec[1], rail=rec[2])


class Rails(Node):
    """The outside payment rails: a transfer is made once per key, and with probability
    ``rail_timeout_share`` its answer never comes although the money has moved. The rails differ in
    when the money arrives (``rail.settled``): ACH collects the day's transfers in a batch that closes
    at the end of the (compressed) day and settles ``ach_settle_days`` days later, so 1-2 days after
    it was sent with the default 1; a wire settles the same day (and cost a fee at the sweep); the
    instant rail settles as it answers."""

    def __init__(self, w: Wiring):
        self.w = w
        self.delays = Delays()

    def on_message(self, ctx, src, msg):
        if type(msg) is not RailSend:
            return
        st = ctx.storage
        if f"t/{msg.key}" not in st:
            st.put(f"t/{msg.key}", (msg.payout, msg.amount, msg.rail))
            ctx.record("rail.transfer", key=msg.key, payout=msg.payout, amount=msg.amount, rail=msg.rail)
            answer_ns = ctx.now + int(RAIL_MS[msg.rail] * 1e6)
            settle_ns, batch = answer_ns, -1
            if msg.rail == "ach":
                day_ns = int(self.w.payout_interval_ms * 1e6)
                batch = ctx.now // day_ns
                settle_ns = int((batch + 1 + self.w.ach_settle_days) * day_ns)
            self.delays.add(ctx, settle_ns, ("settle", msg.key, msg.payout, msg.amount, msg.rail, batch, ctx.now))
            if ctx.rng.random() < self.w.rail_timeout_share:
                ctx.record("rail.lost-answer", key=msg.key, payout=msg.payout)
                return
        self.delays.add(ctx, ctx.now + int(RAIL_MS[msg.rail] * 1e6), (src, RailAck(msg.key, msg.payout)))

    def on_timer(self, ctx, name):
        for item in self.delays.due(ctx):
            if item[0] == "settle":
                _, key, payout, amount, rail, batch, sent_ns = item
                ctx.record("rail.settled", key=key, payout=payout, amount=amount, rail=rail, batch=batch,
                           sent_ns=sent_ns)
            else:
                ctx.send(*item)


# ---- the client ------------------------------------------------------------------------------------
class Shopper(ClientNode):
    """Places each order at its orders node and asks again every ``RESEND_MS`` until it has an answer.
    A refund (``f="refund"``) of an earlier order goes to payments; an order whose delivery payments
    does not know yet is asked again, up to ``REFUND_TRIES`` times, and then the refund fails
    ("not-delivered": no refund is made)."""

    RESEND_MS = 1000.0
    REFUND_TRIES = 4

    def __init__(self, w: Wiring):
        self.w = w
        self.open: dict[int, tuple] = {}
        self.refunds: dict[int, list] = {}  # op id -> [order, args, tries]

    def on_invoke(self, ctx, op):
        v = op.value
        args = (v["customer"], v["sku"], v["qty"], v["amount"], v["decline"], v["cancel"])
        if op.f == "refund":
            self.refunds[op.id] = [v["order"], args, 1]
            ctx.send(PAYMENTS, StepCall(v["order"], op.id, REFUND, args))
        else:
            self.open[op.id] = args
            ctx.send(orders_node(self.w, op.id), PlaceOrder(op.id, args))
        if not ctx.timer_set("resend"):
            ctx.set_timer("resend", self.RESEND_MS)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is OrderResult and self.open.pop(msg.order, None) is not None:
            if msg.outcome == DONE:
                ctx.complete(msg.order, "ok", {"outcome": msg.outcome})
            else:
                ctx.complete(msg.order, "fail", {"outcome": msg.outcome, "reason": msg.reason})
        elif t is StepReply and msg.action == REFUND:
            r = self.refunds.get(msg.step)
            if r is None:
                return
            if msg.ok:
                del self.refunds[msg.step]
                ctx.complete(msg.step, "ok", {"order": r[0], **msg.value} if isinstance(msg.value, dict)
                             else {"order": r[0], "note": msg.value})
            elif msg.value != "not-delivered" or r[2] >= self.REFUND_TRIES:
                del self.refunds[msg.step]
                ctx.complete(msg.step, "fail", {"order": r[0], "reason": msg.value})
            # otherwise "not yet": the resend timer asks again

    def on_timer(self, ctx, name):
        for oid, args in list(self.open.items()):
            ctx.send(orders_node(self.w, oid), PlaceOrder(oid, args))
        for oid, r in self.refunds.items():
            r[2] += 1
            ctx.send(PAYMENTS, StepCall(r[0], oid, REFUND, r[1]))
        if self.open or self.refunds:
            ctx.set_timer("resend", self.RESEND_MS)
