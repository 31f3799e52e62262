"""Orders, money and stock: one order touches inventory, payments and shipping, each with its own
database, and the ``mode`` says how the order stays atomic across them.

An order reserves stock (per SKU, in the warehouse with the most free units), charges the customer
(a double-entry ledger: customer, merchant, fees), sells the reserved units and ships. Modes
(the plans are in :mod:`simulator.kit.saga`):

``saga-orchestrated``   the orders service is the coordinator: a durable saga log, each step and
                        each compensation (release, refund) retried until it succeeds; every step
                        commits locally at once, so others see the intermediate states
``saga-choreographed``  no coordinator: each service consumes its own kit queue and writes the
                        next event into a transactional outbox in the same local transaction
``tcc``                 try (reserve stock without a deadline, authorise the card) in parallel,
                        then confirm or cancel; DTM's barrier handles empty cancels and hanging tries
``2pc``                 prepare (the same holds, in doubt) in parallel, the decision forced to the
                        log, then commit or abort; participants wait however long the coordinator
                        is down

Beside the orders, the merchant is paid out every ``payout_interval_s`` (a compressed day) over
ACH (in daily batches that settle ``ach_settle_days`` days after they close), wire (same day, a
``wire_fee_cents`` fee journaled to ``fees:wire``) or an instant rail, any of which may time out
*after* moving the money. Customers earn loyalty points on delivery (``points_bp`` of the amount,
1 point = 1 cent, a liability account ``points:<n>`` in the same ledger): shipping writes a delivery
notice in the ship step's local transaction and relays it to payments until acknowledged, and
payments credits it once per order (key ``earn/<order>``). A charge (or TCC/2PC authorisation) pays
up to ``redeem_share`` of the amount with points, in its own journal; its compensation gives them
back. A share ``refund_share`` of orders is refunded about ``refund_after_s`` later, as its own
``refund`` operation, by payments' keyed refund (``refund/<order>``, the compensation's key): the
points the order earned are taken back, and if the customer has spent them the refund is reduced
by the shortfall, so that no points balance goes below zero.

Simplifications: one node per service (a crash stops it until it restarts; its disk survives);
payments declined and customer cancellations are drawn by the workload (the order carries them);
stock is restocked every ``restock_s``; customers always redeem the points they have (up to
``redeem_share``); a refund is asked of payments, which knows an order is delivered only once
shipping's notice has arrived (until then the refund is "not-delivered" and asked again, up to four
times a second apart, then refused); a refunded delivery's goods are not restocked; refund ops are
placed by operation count (``refund_after_s`` times the rate), not by clock; no invoices or referral
points; the rails are one node that never crashes, and the payout rail rotates daily (ACH, wire,
instant).
"""

from __future__ import annotations

import bisect
from collections import deque
from pathlib import Path

import numpy as np

from simulator import Dist, Param, RunData, Scenario, Setup, UsageError, register
from simulator.kit.queue import Queue, QueueSpec
from simulator.kit.saga import Plan, Step

from . import checkers as C
from .figures import compute
from .services import (INVENTORY, ORDERS, PAYMENTS, PAYOUTS, RAILS, SHIPPING, Inventory, Orders,
                       Payments, Payouts, Rails, Shipping, Shopper, Wiring)

MODES = ("saga-orchestrated", "saga-choreographed", "tcc", "2pc")
# The buses' lease and long-poll ends are checked on this grid (a lease expires up to this much
# late): one wake per partition per step instead of one per event, nearly all of them settled.
WAKE_GRID_MS = 100.0


def plan_for(mode: str) -> Plan:
    """The plan each mode runs (see :mod:`simulator.kit.saga`)."""
    if mode in ("saga-orchestrated", "saga-choreographed"):
        return Plan("saga", ((Step(INVENTORY, "reserve", "release"),), (Step(PAYMENTS, "charge", "refund"),),
                             (Step(INVENTORY, "sell"),), (Step(SHIPPING, "ship"),)), pivot=3)
    if mode == "tcc":
        return Plan("tcc", ((Step(INVENTORY, "try-inv", "cancel-inv", True),
                             Step(PAYMENTS, "try-pay", "cancel-pay", True)),
                            (Step(INVENTORY, "confirm-inv"), Step(PAYMENTS, "confirm-pay")),
                            (Step(SHIPPING, "ship"),)), pivot=1)
    return Plan("2pc", ((Step(INVENTORY, "prepare-inv", "abort-inv", True),
                         Step(PAYMENTS, "prepare-pay", "abort-pay", True)),
                        (Step(INVENTORY, "commit-inv"), Step(PAYMENTS, "commit-pay")),
                        (Step(SHIPPING, "ship"),)), pivot=1)


class Generator:
    """``generate(rng) -> ("order", value)``: a customer, a Zipf-popular SKU, 1-2 units at the SKU's
    price, and whether the card is declined or the customer cancels; or ``("refund", value)``: the
    refund of an earlier order (of one not declined nor cancelled, drawn with ``refund_share``), about
    ``refund_after_s`` later (counted in arrivals at the run's rate, since the generator has no clock:
    operation ids are the calls' order). Drawn in batches."""

    def __init__(self, p: dict, rate: float = 50.0):
        self.p = p
        ranks = np.arange(1, p["skus"] + 1, dtype=float)
        w = ranks ** (-p["zipf_s"]) if p["zipf_s"] > 0 else np.ones(p["skus"])
        self.cdf = (np.cumsum(w) / w.sum()).tolist()
        self.buf: list = []
        self.n = 0  # the id of the operation this call generates
        self.lag = max(1, int(p["refund_after_s"] * rate))
        self.later: deque = deque()  # (op id due, order, value) of refunds to come, in order

    def _refill(self, rng) -> None:
        u = rng.random((512, 6))
        self.buf = u.tolist()
        self.buf.reverse()

    def __call__(self, rng):
        if not self.buf:
            self._refill(rng)
        u_sku, u_cust, u_qty, u_dec, u_can, u_ref = self.buf.pop()
        n = self.n
        self.n = n + 1
        later = self.later
        if later and later[0][0] <= n:
            _, order, v = later.popleft()
            return "refund", {**v, "order": order}
        p = self.p
        sku = min(bisect.bisect_right(self.cdf, u_sku), p["skus"] - 1)
        qty = 1 + int(u_qty < 0.3)
        price = 500 + (sku * 7919) % 9500  # cents, fixed per SKU
        v = {"customer": int(u_cust * p["customers"]), "sku": sku, "qty": qty, "amount": price * qty,
             "decline": u_dec < p["decline_share"], "cancel": u_can < p["cancel_share"]}
        if u_ref < p["refund_share"] and not (v["decline"] or v["cancel"]):
            later.append((n + self.lag, n, v))
        return "order", v


def _dist(p: dict, name: str) -> Dist:
    try:
        return Dist.parse(p[name])
    except ValueError as exc:
        raise UsageError(f"bad value {p[name]!r} for {name}: expected KIND:MEAN_MS like lognormal:3:cv=3 "
                         f"({exc})") from None


@register
class Commerce(Scenario):
    name = "commerce"
    summary = "orders across inventory, payments and shipping: orchestrated and choreographed sagas, TCC, 2PC"
    params = (
        Param("mode", "saga-orchestrated", "how an order stays atomic across the services", type=str, choices=MODES),
        Param("skus", 40, "SKUs on sale (Zipf popularity)", type=int, min=1, max=100_000),
        Param("warehouses", 3, "warehouses holding each SKU", type=int, min=1, max=100),
        Param("stock_mean", 15, "mean initial units per SKU per warehouse (some start at 0)", type=int, min=0),
        Param("restock_qty", 10, "units added to a SKU in a warehouse when it runs under this many", type=int, min=0),
        Param("restock_s", 5.0, "how often warehouses restock, simulated s", min=0.01),
        Param("zipf_s", 1.0, "Zipf exponent of SKU popularity (0: uniform)", min=0.0, max=10.0),
        Param("customers", 1000, "distinct customers", type=int, min=1),
        Param("decline_share", 0.05, "share of orders whose card is declined", min=0.0, max=1.0),
        Param("cancel_share", 0.03, "share of orders the customer cancels before they ship", min=0.0, max=1.0),
        Param("reservation_ttl_s", 10.0, "a saga's stock reservation expires after this long", min=0.001),
        Param("sweep_ms", 200.0, "how often inventory releases expired reservations", min=1.0),
        Param("db_ms", "lognormal:3:cv=3", "a local transaction at inventory / shipping, ms (KIND:MEAN[:cv=])",
              type=str),
        Param("psp_ms", "lognormal:20:cv=2", "a charge or refund at the card processor, ms", type=str),
        Param("fee_bp", 290, "the processor's fee, basis points of the amount", type=int, min=0, max=10_000),
        Param("step_timeout_ms", 200.0, "the coordinator waits this long for a step (then retries, or for a "
                                        "TCC try / 2PC vote, gives up)", min=1.0),
        Param("retry_ms", 100.0, "a compensation or post-pivot step that answered no is retried after this", min=1.0),
        Param("payout_interval_s", 1.0, "the merchant is paid out this often (a compressed day)", min=0.01),
        Param("rail_timeout_ms", 500.0, "a payout the rail has not answered is sent again after this", min=1.0),
        Param("rail_timeout_share", 0.05, "share of rail transfers whose answer is lost after the money moved",
              min=0.0, max=1.0),
        Param("ach_settle_days", 1.0, "an ACH batch settles this many (compressed) days after the day it closed",
              min=0.0, max=10.0),
        Param("wire_fee_cents", 2500, "the wire rail's fee per payout, cents (journaled to fees:wire)", type=int,
              min=0),
        Param("points_bp", 500, "loyalty points earned on delivery, basis points of the amount (1 point = 1 cent)",
              type=int, min=0, max=10_000),
        Param("redeem_share", 0.5, "at most this share of an order is paid with the customer's points",
              min=0.0, max=1.0),
        Param("notice_ms", 200.0, "shipping relays delivery notices (for points) to payments this often", min=1.0),
        Param("refund_share", 0.05, "share of orders (not declined or cancelled) refunded later, if delivered",
              min=0.0, max=1.0),
        Param("refund_after_s", 3.0, "a refund comes about this long after its order", min=0.0),
        Param("coordinators", 2, "orders nodes; each coordinates the orders placed with it (order id mod N)",
              type=int, min=1, max=16),
        Param("relay_ms", 500.0, "choreographed: the outbox relay and queue polls run this often", min=1.0),
        Param("bus_partitions", 4, "choreographed: partitions of each service's queue", type=int, min=1, max=64),
        Param("visibility_s", 2.0, "choreographed: a leased event not acked in this time is redelivered", min=0.01),
        Param("liveness_bound_s", 5.0, "every order open at the final heal (or placed after it) ends within this "
                                       "long of it", min=0.001),
    )
    bugs = {
        "compensate-without-idempotency": "payments runs a refund again when a compensation is retried (no "
                                          "idempotency record for refunds): refunded twice",
        "reserve-without-lock": "inventory checks stock when a reserve arrives and writes the hold when its local "
                                "transaction ends, without checking again: oversold",
        "payout-retry-without-key": "a payout whose rail call timed out is retried with a new idempotency key: "
                                    "paid out twice",
        "refund-keeps-fee": "a refund journal credits the customer in full but takes back only the merchant's "
                            "share: the ledger no longer balances",
        "outbox-after-commit": "events are published after the local transaction, once, instead of through the "
                               "outbox: lost on a crash, the order is stuck",
        "tcc-hanging-try": "inventory runs a try that arrives after its cancel (no barrier): the hold is never "
                           "released",
        "points-without-idempotency": "payments credits a delivery's points without checking its key, so a "
                                      "delivery notice relayed again (its answer not yet back) credits them twice",
    }
    exposes = {
        "compensate-without-idempotency": "--seed 7",
        "reserve-without-lock": "--seed 1",
        "payout-retry-without-key": "--seed 1",
        "refund-keeps-fee": "--seed 1",
        "outbox-after-commit": "--seed 1 --set mode=saga-choreographed --nemesis crash",
        "tcc-hanging-try": "--seed 1 --set mode=tcc",
        "points-without-idempotency": "--seed 2 --nemesis pause",
    }
    checkers = {
        "no-oversell": "held plus sold never exceeds stock for any SKU and warehouse, at any change",
        "ledger-balanced": "every journal sums to zero; every final balance equals the sum of its account's lines",
        "exactly-once-money": "no charge, capture, refund or void twice per order (later refunds included); no "
                              "payout sent to a rail twice; no order's points credited twice; no points balance "
                              "below zero",
        "saga-atomic": "after the final heal and drain every order is fully done or fully undone, none stuck "
                       "half-compensated",
        "reservations-expire": "saga reservations end within reservation_ttl_s + a sweep + 1 s (plus inventory "
                               "downtime); TCC/2PC holds end once their order has",
        "liveness": "every order that reached orders ended, within liveness_bound_s of the final heal (or of its "
                    "placing, if later); client ops counted by outcome",
    }
    nemeses = ("crash", "partition-random-halves", "partition-isolate-one", "pause", "slow-link", "flaky-link")
    unused_options = ("node_count",)  # its parameters size it
    defaults = {"rate": 50.0, "time_limit_s": 20.0, "op_timeout_ms": 5000.0, "quiesce_s": 8.0,
                "final_timeout_s": 1.0, "nemesis_interval_s": 3.0, "node_count": 5}
    benchmarks = {
        f"commerce{'' if m == 'saga-orchestrated' else '-' + m}": {
            "options": {"rate": 200.0, "time_limit_s": 120.0, "nemesis": ["crash", "partition-random-halves"],
                        "nemesis_interval_s": 5.0},
            "params": {"mode": m, "restock_qty": 40}}
        for m in MODES
    }
    search = {"rate": (20.0, 200.0), "nemesis_interval_s": (1.0, 6.0), "mode": list(MODES)}
    examples = (
        "dsim run commerce --seed 1",
        "dsim run commerce --set mode=2pc --nemesis crash --seed 1",
        "dsim run commerce --set mode=saga-choreographed --nemesis crash,partition-random-halves --seed 2",
        "dsim sweep commerce --seeds 1-30 --grid mode=saga-orchestrated,saga-choreographed,tcc,2pc "
        "--nemesis crash,partition-random-halves --jobs 2",
    )

    @classmethod
    def validate(cls, params):
        for name in ("db_ms", "psp_ms"):
            _dist(params, name)

    def build(self, sim, cfg) -> Setup:
        p = cfg.params
        mode = p["mode"]
        stock_rng = sim.streams.get("commerce.stock")
        raw = stock_rng.poisson(p["stock_mean"], (p["skus"], p["warehouses"]))
        raw[stock_rng.random((p["skus"], p["warehouses"])) < 0.15] = 0  # some start out of stock
        w = Wiring(mode=mode, plan=plan_for(mode), skus=p["skus"], warehouses=p["warehouses"],
                   stock=tuple(tuple(int(x) for x in row) for row in raw), restock_qty=p["restock_qty"],
                   restock_ms=p["restock_s"] * 1e3, ttl_ms=p["reservation_ttl_s"] * 1e3, sweep_ms=p["sweep_ms"],
                   db_ms=_dist(p, "db_ms"), psp_ms=_dist(p, "psp_ms"), fee_bp=p["fee_bp"],
                   step_timeout_ms=p["step_timeout_ms"], retry_ms=p["retry_ms"],
                   payout_interval_ms=p["payout_interval_s"] * 1e3, rail_timeout_ms=p["rail_timeout_ms"],
                   rail_timeout_share=p["rail_timeout_share"], relay_ms=p["relay_ms"],
                   coordinators=p["coordinators"], bus_partitions=p["bus_partitions"], bug=cfg.bug,
                   points_bp=p["points_bp"], redeem_share=p["redeem_share"], notice_ms=p["notice_ms"],
                   ach_settle_days=p["ach_settle_days"], wire_fee_cents=p["wire_fee_cents"])
        fsync = Dist("constant", 0.5)
        big = 1_000_000
        coords = [f"{ORDERS}-{i + 1}" for i in range(p["coordinators"])]
        for c in coords:
            sim.add_node(c, lambda: Orders(w), fsync=fsync, inbox_limit=big)
        sim.add_node(INVENTORY, lambda: Inventory(w), fsync=fsync, inbox_limit=big)
        sim.add_node(PAYMENTS, lambda: Payments(w), fsync=fsync, inbox_limit=big)
        sim.add_node(SHIPPING, lambda: Shipping(w), fsync=fsync, inbox_limit=big)
        sim.add_node(PAYOUTS, lambda: Payouts(w), fsync=fsync, inbox_limit=big)
        sim.add_node(RAILS, lambda: Rails(w), inbox_limit=big)
        servers = [*coords, INVENTORY, PAYMENTS, SHIPPING, PAYOUTS]
        if mode == "saga-choreographed":
            for svc in (*coords, INVENTORY, PAYMENTS, SHIPPING):
                spec = QueueSpec(f"bus-{svc}", partitions=p["bus_partitions"],
                                 visibility_timeout_ms=p["visibility_s"] * 1e3, long_poll_ms=p["relay_ms"],
                                 sample_ms=1000.0, record_each=False, wake_grid_ms=WAKE_GRID_MS)
                for q in spec.partition_ids():
                    sim.add_node(q, lambda spec=spec: Queue(spec), fsync=fsync, inbox_limit=big)
                    servers.append(q)

        def expose() -> dict:
            def st(n):
                return sim.hosts[n].storage
            inv, pay, shp = st(INVENTORY), st(PAYMENTS), st(SHIPPING)
            return {
                "inventory": {"sold": {int(k[5:]): inv.get(k) for k in inv.keys() if k.startswith("sold/")},
                              "holds": {int(k[2:]): inv.get(k) for k in inv.keys() if k.startswith("h/")}},
                "payments": {"journals": {k[2:]: pay.get(k) for k in pay.keys() if k.startswith("j/")},
                             "balances": {k[2:]: pay.get(k) for k in pay.keys() if k.startswith("a/")}},
                "shipping": {"shipped": sorted(int(k[3:]) for k in shp.keys() if k.startswith("sh/"))},
            }

        return Setup(servers=servers, client=lambda cid: Shopper(w), generate=Generator(p, cfg.rate or 50.0),
                     expose=expose)

    def check(self, run: RunData):
        p = run.cfg.params
        return {
            "no-oversell": C.no_oversell(run),
            "ledger-balanced": C.ledger_balanced(run),
            "exactly-once-money": C.exactly_once_money(run),
            "saga-atomic": C.saga_atomic(run),
            "reservations-expire": C.reservations_expire(run, p["reservation_ttl_s"] * 1e3, p["sweep_ms"]),
            "liveness": C.liveness(run, p["liveness_bound_s"] * 1e3),
        }

    def figures(self, run: RunData) -> dict:
        return compute(run)

    def plots(self, run: RunData, folder: Path, shade) -> list[str]:
        from .plots import draw

        return draw(run, folder, shade)
