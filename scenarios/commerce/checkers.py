"""The commerce checkers. Each reads the run's records (what services did, at the instant they did it)
and the final durable state of every service (exposed after the final heal and the drain), and names
the first offending order, SKU, account or payout.
"""

from __future__ import annotations

from collections import defaultdict

from simulator import CheckResult


def of_kind(run, kind: str) -> list[dict]:
    """The run's records of one kind (grouped once per run: every checker and figure asks)."""
    groups = getattr(run, "_commerce_kinds", None)
    if groups is None or groups[0] is not run.records:
        by: dict[str, list[dict]] = {}
        for r in run.records:
            by.setdefault(r["kind"], []).append(r)
        groups = (run.records, by)
        run._commerce_kinds = groups
    return groups[1].get(kind, [])


def _first(bad: list[str], total: int, details: dict) -> CheckResult:
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return CheckResult(False, bad[0] + more, {**details, "violations": len(bad)})
    return CheckResult(True, "", details)


def no_oversell(run) -> CheckResult:
    """Held plus sold never exceeds stock received, for any SKU and warehouse, at any change."""
    bad, n = [], 0
    for r in of_kind(run, "inv.level"):
        n += 1
        if r["held"] + r["sold"] > r["stock"]:
            bad.append(f"SKU {r['sku']} in warehouse {r['wh']} at {r['time_ns'] / 1e9:.3f}s: held {r['held']} + "
                       f"sold {r['sold']} > stock {r['stock']} (order {r['saga']})")
    return _first(bad, n, {"level_changes": n})


def ledger_balanced(run) -> CheckResult:
    """Every journal's lines sum to zero, and every account's final balance is the sum of its lines."""
    bad = []
    journals = of_kind(run, "ledger.journal")
    for r in journals:
        s = sum(amt for _, amt in r["lines"])
        if s != 0:
            bad.append(f"journal {r['key']} (order {r['order']}) at {r['time_ns'] / 1e9:.3f}s sums to {s} cents, not 0")
    ledger = run.exposed.get("payments", {})
    sums: dict[str, int] = defaultdict(int)
    for lines in ledger.get("journals", {}).values():
        for acct, amt in lines:
            sums[acct] += amt
    for acct, bal in sorted(ledger.get("balances", {}).items()):
        if bal != sums.get(acct, 0):
            bad.append(f"account {acct}: balance {bal} != sum of its lines {sums.get(acct, 0)}")
    total = sum(ledger.get("balances", {}).values())
    return _first(bad, len(journals), {"journals": len(journals), "sum_of_balances": total,
                                       "volume_cents": sum(max(0, a) for r in journals for _, a in r["lines"])})


def exactly_once_money(run) -> CheckResult:
    """No order charged or captured twice, no refund or void twice (or without a charge), no payout
    sent to a rail twice, no order's points credited twice, and no balance of points below zero at
    any journal."""
    bad = []
    per: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    points: dict[str, int] = defaultdict(int)
    lowest: dict[str, tuple[int, str, int]] = {}
    for r in of_kind(run, "ledger.journal"):
        if r["order"] >= 0:
            per[r["order"]][r["entry"]] += 1
        for acct, amt in r["lines"]:
            if acct.startswith("points:"):
                b = points[acct] = points[acct] + amt
                if b < 0 and acct not in lowest:
                    lowest[acct] = (b, r["key"], r["time_ns"])
    for order in sorted(per):
        k = per[order]
        for kind in ("charge", "refund", "authorise", "capture", "void"):
            if k[kind] > 1:
                bad.append(f"order {order}: {kind} made {k[kind]} times")
        if k["earn"] > 1:
            bad.append(f"order {order}: points credited {k['earn']} times")
        if k["refund"] and not (k["charge"] or k["capture"]):
            bad.append(f"order {order}: refunded without a charge")
    for acct in sorted(lowest, key=lambda a: lowest[a][2]):
        b, key, t = lowest[acct]
        bad.append(f"account {acct}: {b} points after journal {key} at {t / 1e9:.3f}s")
    rails: dict[int, list[str]] = defaultdict(list)
    for r in of_kind(run, "rail.transfer"):
        rails[r["payout"]].append(r["key"])
    for pid in sorted(rails):
        if len(rails[pid]) > 1:
            bad.append(f"payout {pid} sent to the rail {len(rails[pid])} times (keys {', '.join(rails[pid])})")
    return _first(bad, len(per), {"orders_with_money": len(per), "rail_transfers": sum(len(v) for v in rails.values()),
                                  "payouts": len(rails), "points_accounts": len(points),
                                  "points_outstanding": sum(points.values())})


def _downtime(run, node: str) -> list[tuple[int, int]]:
    out, down = [], None
    for f in run.faults:
        if f.get("node") != node:
            continue
        if f.get("action") in ("crash", "pause") and down is None:
            down = f["time_ns"]
        elif f.get("action") in ("restart", "resume") and down is not None:
            out.append((down, f["time_ns"]))
            down = None
    if down is not None:
        out.append((down, run.end_ns))
    return out


def reservations_expire(run, ttl_ms: float, sweep_ms: float) -> CheckResult:
    """A saga reservation ends within reservation_ttl_s + one sweep + 1 s (plus any time inventory was
    down meanwhile); a TCC or 2PC hold ends once its order has ended, by the end of the run."""
    slack_ns = int((ttl_ms + sweep_ms + 1000.0) * 1e6)
    holds = {r["saga"]: r for r in of_kind(run, "inv.hold")}
    ends = {r["saga"]: r["time_ns"] for r in of_kind(run, "inv.unhold")}
    ended_orders = {r["order"] for r in of_kind(run, "order.end")}
    down = _downtime(run, "inventory")
    bad, longest = [], 0.0
    for saga in sorted(holds):
        h = holds[saga]
        t0 = h["time_ns"]
        t1 = ends.get(saga)
        life = (t1 if t1 is not None else run.end_ns) - t0
        longest = max(longest, life / 1e6)
        if h["expires_ns"] > 0:
            lost = sum(max(0, min(b, t0 + life) - max(a, t0)) for a, b in down)
            if life > slack_ns + lost:
                bad.append(f"reservation of order {saga} (SKU {h['sku']}, warehouse {h['wh']}) held "
                           f"{life / 1e9:.1f}s > TTL {ttl_ms / 1e3:g}s + bound")
        elif t1 is None and saga in ended_orders:
            bad.append(f"{h['hold']} hold of order {saga} (SKU {h['sku']}, warehouse {h['wh']}, {h['qty']} units) "
                       f"from {t0 / 1e9:.3f}s never released though the order ended")
    return _first(bad, len(holds), {"holds": len(holds), "longest_hold_ms": round(longest, 3)})


def saga_atomic(run) -> CheckResult:
    """After the final heal and the drain, every order that reached orders is fully done (charged,
    stock sold, shipped, no hold, no refund but a customer's own after delivery) or fully undone (no
    net charge, nothing sold or shipped, no hold), and none is stuck midway (half-compensated)."""
    ex = run.exposed
    ends = {r["order"]: r["outcome"] for r in of_kind(run, "order.end")}
    placed = sorted({r["order"] for r in of_kind(run, "order.placed")})
    sold = ex.get("inventory", {}).get("sold", {})
    held = ex.get("inventory", {}).get("holds", {})
    shipped = set(ex.get("shipping", {}).get("shipped", ()))
    net: dict[int, int] = defaultdict(int)
    refunded_later: set[int] = set()
    for r in of_kind(run, "ledger.journal"):
        if r["order"] >= 0:
            if r.get("after_delivery"):
                refunded_later.add(r["order"])
            for acct, amt in r["lines"]:
                if acct.startswith("customer:") or (acct.startswith("points:") and r["entry"] != "earn"
                                                    and not r.get("after_delivery")):
                    net[r["order"]] += amt
    phases = {}
    for r in of_kind(run, "saga.phase"):
        phases[r["saga"]] = r["phase"]
    bad, counts = [], defaultdict(int)
    for o in placed:
        out = ends.get(o)
        if out is None:
            state = "half-compensated" if phases.get(o) == "compensating" else "midway"
            bad.append(f"order {o} never ended: stuck {state}")
            counts["stuck"] += 1
            continue
        counts[out] += 1
        if out == "done":
            if o in refunded_later:  # refunded after delivery: the refund is the customer's own operation
                net[o] = min(net[o], -1)
            if o not in sold or o not in shipped or net[o] >= 0 or o in held:
                bad.append(f"order {o} ended done but sold={o in sold}, shipped={o in shipped}, "
                           f"customer net {net[o]} cents, hold left={o in held}")
        elif net[o] != 0 or o in sold or o in shipped or o in held:
            bad.append(f"order {o} ended undone but customer net {net[o]} cents, sold={o in sold}, "
                       f"shipped={o in shipped}, hold left={o in held}")
    return _first(bad, len(placed), {"orders": len(placed), **dict(counts)})


def liveness(run, bound_ms: float) -> CheckResult:
    """Every order that reached orders ended, and within ``bound_ms`` of the final heal (of its
    placing, if that came later); every client operation ended: ok (done), fail (undone) or info
    (counted: no answer in time)."""
    placed: dict[int, int] = {}
    for r in of_kind(run, "order.placed"):
        placed.setdefault(r["order"], r["time_ns"])
    ends: dict[int, int] = {}
    for r in of_kind(run, "order.end"):
        ends.setdefault(r["order"], r["time_ns"])
    types = defaultdict(int)
    for e in run.history:
        types[e["type"]] += 1
    missing = sorted(set(placed) - set(ends))
    bound_ns = int(bound_ms * 1e6)
    late, slowest = [], 0
    for o in sorted(placed):
        t1 = ends.get(o)
        if t1 is None:
            continue
        after = t1 - max(placed[o], run.heal_ns)
        slowest = max(slowest, after)
        if after > bound_ns:
            late.append(o)
    details = {"placed": len(placed), "ended": len(set(ends) & set(placed)), "ops_invoked": types["invoke"],
               "ops_ok": types["ok"], "ops_fail": types["fail"], "ops_info": types["info"],
               "ops_unanswered": types["invoke"] - types["ok"] - types["fail"] - types["info"],
               "slowest_after_heal_ms": round(slowest / 1e6, 3), "late": len(late)}
    if missing:
        return CheckResult(False, f"{len(missing)} orders never ended (first: order {missing[0]})", details)
    if late:
        o = late[0]
        return CheckResult(False, f"{len(late)} orders ended more than {bound_ms / 1e3:g}s after the final heal "
                           f"(first: order {o}, ended {(ends[o] - max(placed[o], run.heal_ns)) / 1e9:.3f}s after "
                           f"{'the heal' if placed[o] <= run.heal_ns else 'it was placed'})", details)
    return CheckResult(True, "", details)
