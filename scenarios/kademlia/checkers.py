"""Kademlia's checkers, against an oracle the protocol never sees.

The oracle is rebuilt from the run's observations: when each node came up (a ``kad.member`` row
"up", with its id), when it finished joining (a "joined" row), and when it went down (the fault
log: ``crash`` and churn's ``leave``). From these it knows, at any instant, the ids of the live,
joined nodes in a sorted list, and finds the true k closest to a target by XOR with
:func:`ids.k_closest`.

A lookup is held *exact* when nothing disturbed it: it started ``settle_s`` after the last
membership change (a join, a leave, a crash) and no fault window overlapped it or those
``settle_s`` before it. On a network without churn that is every lookup after the joins, and
each must return exactly the k closest live nodes. The others are held to a floor: the mean
share of the true k closest that they found, over lookups outside windows of faults that keep a
live node from answering in time (``UNANSWERING``: partitions, lost or slowed links, pauses; a
lookup cut off from half the network cannot find it), must reach ``lookup_floor``. Evictions and
gets are excused in the same windows.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict

from simulator import CheckResult, windows

from .ids import ADDR_BITS, LOOKUP, k_closest

DOWN_ACTIONS = ("crash", "leave")
MAX_NAMED = 3


def _s(ns: int) -> str:
    return f"{ns / 1e9:.3f}s"


class Membership:
    """Who was up, and joined, under which id, when (from the ``kad.member`` rows and the fault log)."""

    def __init__(self, run):
        self.events: list[tuple[int, int, str, int]] = []  # (time, order, kind, ...) joined/down
        self.up: dict[str, list[list]] = defaultdict(list)  # node -> [[id, up_ns, down_ns]]
        self.id_intervals: dict[int, list[list]] = defaultdict(list)  # id -> [[up_ns, down_ns, node]]
        self.changes: list[int] = []
        seq = 0
        evs = []
        for t, node, event, nid in run.table("kad.member"):  # ids.MEMBER
            evs.append((t, seq, event, node, nid))
            seq += 1
        for f in run.faults:
            if f.get("action") in DOWN_ACTIONS and f.get("node"):
                evs.append((f["time_ns"], seq, "down", f["node"], None))
                seq += 1
        evs.sort()
        current: dict[str, list] = {}
        for t, _, kind, node, nid in evs:
            if kind == "up":
                iv = [nid, t, None, node]
                self.up[node].append(iv)
                current[node] = iv
                self.id_intervals[nid].append(iv)
            elif kind == "joined":
                self.events.append((t, "join", node, nid))
                self.changes.append(t)
            else:
                iv = current.pop(node, None)
                if iv is not None:
                    iv[2] = t
                    self.events.append((t, "down", node, iv[0]))
                    self.changes.append(t)
        self.changes.sort()

    def id_at(self, node: str, t: int):
        for nid, a, b, _ in self.up.get(node, ()):
            if a <= t and (b is None or t <= b):
                return nid
        return None

    def up_during(self, nid: int, s: int, e: int) -> bool:
        """Whether a node with id ``nid`` was up at some instant of [s, e]."""
        return any(iv[1] <= e and (iv[2] is None or iv[2] >= s) for iv in self.id_intervals.get(nid, ()))

    def up_throughout(self, nid: int, s: int, e: int) -> str | None:
        """The node that had id ``nid`` and was up throughout [s, e], if any."""
        for iv in self.id_intervals.get(nid, ()):
            if iv[1] <= s and (iv[2] is None or iv[2] >= e):
                return iv[3]
        return None

    def changed_in(self, s: int, e: int) -> bool:
        i = bisect_left(self.changes, s)
        return i < len(self.changes) and self.changes[i] <= e


class LiveIds:
    """The sorted ids of live, joined nodes, advanced in time order."""

    def __init__(self, m: Membership):
        self.events = sorted(m.events, key=lambda e: e[0])
        self.i = 0
        self.ids: list[int] = []
        self.count: dict[int, int] = defaultdict(int)
        self.joined: dict[str, int] = {}

    def at(self, t: int) -> list[int]:
        ev = self.events
        while self.i < len(ev) and ev[self.i][0] <= t:
            _, kind, node, nid = ev[self.i]
            self.i += 1
            if kind == "join":
                if node in self.joined:
                    self._drop(self.joined.pop(node))
                self.joined[node] = nid
                self.count[nid] += 1
                if self.count[nid] == 1:
                    insort(self.ids, nid)
            elif node in self.joined:
                self._drop(self.joined.pop(node))
        return self.ids

    def _drop(self, nid: int) -> None:
        self.count[nid] -= 1
        if self.count[nid] == 0:
            del self.count[nid]
            self.ids.pop(bisect_left(self.ids, nid))


def fault_windows(run, settle_ns: int = 0) -> list[tuple[int, int, str]]:
    return [(a, b + settle_ns, lab) for a, b, lab in windows(run.faults, run.end_ns)]


# Faults under which a live, reachable node may still fail to answer an RPC in time: a cut or
# lossy link, a link slowed past the RPC timeout, a paused process (nemesis names and plan verbs).
# A contact lost to one of these timed out honestly, so neither an eviction nor a lookup's share
# of the k closest during one is held to what an undisturbed network owes.
UNANSWERING = ("partition", "isolate", "block", "slow", "flaky", "set_loss", "pause")


def _overlaps(ws, s: int, e: int, kinds=None) -> bool:
    return any(a <= e and b >= s and (kinds is None or lab.startswith(kinds)) for a, b, lab in ws)


def lookups(run, purposes=None):
    """The ``kad.lookup`` rows as dicts (``time_ns``, ``node`` and :data:`~.ids.LOOKUP`, ``found``
    as ids), in the order they ended, made one at a time; only those of ``purposes`` if given."""
    for row in run.table("kad.lookup"):
        if purposes is None or row[2] in purposes:
            r = dict(zip(LOOKUP, row[2:]))
            r["time_ns"], r["node"] = row[0], row[1]
            r["found"] = [c >> ADDR_BITS for c in r["found"]]
            yield r


def lookup_correctness(run, p: dict, m: Membership | None = None) -> CheckResult:
    m = m or Membership(run)
    k, bits = p["k"], p["id_bits"]
    settle = int(p["settle_s"] * 1e9)
    ws = fault_windows(run)
    looks = (r for r in lookups(run) if not r["value"] and r["purpose"] != "get")  # in time order, one at a time
    live = LiveIds(m)
    n = 0
    exact = wrong = 0
    shares: list[float] = []
    dead: list[str] = []
    bad: list[str] = []
    for r in looks:
        n += 1
        s, e = r["start_ns"], r["time_ns"]
        ids = live.at(e)
        own = m.id_at(r["node"], e)
        truth = [x for x in k_closest(ids, r["target"], k + 1, bits) if x != own][:k]
        found = r["found"]
        for x in found:
            if not m.up_during(x, s, e):
                if len(dead) < MAX_NAMED:
                    dead.append(f"lookup by {r['node']} ({r['purpose']}, {_s(s)}-{_s(e)}) returned id "
                                f"{x:x}"[:120] + ", which was down throughout it")
                else:
                    dead.append("")
        calm = s - settle >= 0 and not m.changed_in(s - settle, e) and not _overlaps(ws, s - settle, e)
        if calm:
            exact += 1
            if found != truth:
                wrong += 1
                if len(bad) < MAX_NAMED:
                    missed = [x for x in truth if x not in found]
                    ranks = ", ".join(f"rank {truth.index(x) + 1}" for x in missed[:3])
                    bad.append(f"lookup by {r['node']} ({r['purpose']}, {_s(s)}-{_s(e)}, {r['hops']} hops) of target "
                               f"{r['target']:x}"[:110] + f"... found {len(truth) - len(missed)} of the {len(truth)} "
                               f"closest live nodes (missed {ranks or 'none, wrong order'})")
        elif not _overlaps(ws, s, e, UNANSWERING):
            shares.append(len(set(found) & set(truth)) / len(truth) if truth else 1.0)
    mean_share = sum(shares) / len(shares) if shares else 1.0
    details = {"lookups": n, "held_exact": exact, "not_exact": wrong, "under_churn": len(shares),
               "mean_share_found": round(mean_share, 4), "floor": p["lookup_floor"],
               "returned_down_nodes": len(dead)}
    msgs = []
    if wrong:
        msgs.append(f"{wrong} of {exact} undisturbed lookups did not return the true {k} closest; first: "
                    + "; ".join(bad))
    if dead:
        msgs.append(f"{len(dead)} returned contacts were down throughout their lookup; first: "
                    + "; ".join(x for x in dead if x))
    if mean_share < p["lookup_floor"]:
        msgs.append(f"lookups under churn found {mean_share:.1%} of the true {k} closest on average "
                    f"(floor {p['lookup_floor']:.0%}, over {len(shares)} lookups)")
    return CheckResult(not msgs, "; ".join(msgs), details)


def value_availability(run, p: dict, m: Membership | None = None) -> CheckResult:
    """A get of a key whose put succeeded must succeed while a node that stored it was up
    throughout the get (outside UNANSWERING windows). Expiry does not excuse a failure: holders
    republish every ``republish_s``, long before ``expire_s``, so a copy expires only if
    republishing stopped. Exact on an undisturbed network; under churn the share of such gets
    that succeeded must reach ``value_floor``."""
    m = m or Membership(run)
    settle = int(p["settle_s"] * 1e9)
    ws = fault_windows(run)
    from .ids import key_id

    copies: dict[int, list[tuple[str, int, int]]] = defaultdict(list)  # key -> (node, from, until)
    for t, node, key in run.table("kad.stored"):  # ids.STORED
        until = run.end_ns
        for _, a, b, _ in m.up.get(node, ()):
            if a <= t and b is not None and t <= b:
                until = b
        copies[key].append((node, t, until))
    put_ok: dict[str, int] = {}
    invoked: dict[int, dict] = {}
    should = got = 0
    bad: list[str] = []
    strict_bad = 0
    for op in run.history:
        if op["type"] == "invoke":
            invoked[op["process"]] = op
            continue
        inv = invoked.pop(op["process"], None)
        if inv is None:
            continue
        if op["f"] == "put" and op["type"] == "ok":
            put_ok.setdefault(op["value"][0], op["time"])
        if op["f"] != "get":
            continue
        name = inv["value"]
        s, e = inv["time"], op["time"]
        if name not in put_ok or put_ok[name] > s or _overlaps(ws, s, e, UNANSWERING):
            continue
        kid = key_id(name, p["id_bits"])
        holder = next((c for c in copies.get(kid, ()) if c[1] <= s and c[2] >= e), None)
        if holder is None:
            continue
        should += 1
        if op["type"] == "ok":
            got += 1
            continue
        calm = not m.changed_in(s - settle, e) and not _overlaps(ws, s - settle, e)
        strict_bad += calm
        if len(bad) < MAX_NAMED:
            bad.append(f"get of {name} ({_s(s)}-{_s(e)}) ended {op['type']} while {holder[0]} held it, up "
                       f"throughout" + ("" if calm else " (under churn)"))
    share = got / should if should else 1.0
    details = {"gets_with_a_live_copy": should, "succeeded": got, "share": round(share, 4),
               "floor": p["value_floor"], "failed_undisturbed": strict_bad}
    if strict_bad or share < p["value_floor"]:
        what = (f"{strict_bad} gets failed on an undisturbed network" if strict_bad else
                f"{share:.1%} of gets with a live copy succeeded (floor {p['value_floor']:.0%})")
        return CheckResult(False, f"{what}; first: " + "; ".join(bad), details)
    return CheckResult(True, "", details)


def table_violations(node: str, nid: int, buckets: dict, k: int) -> list[str]:
    """What is wrong with one routing table: a bucket over k, a contact outside its bucket's
    range, a duplicate, or the node itself."""
    out = []
    for i, b in buckets.items():
        # Bucket i's range, as contact ints: ids whose bits above i are ours and whose bit i is
        # not. min and max bound it in C (our own id lies outside every range); only a bucket that
        # fails them, or holds a duplicate, is walked contact by contact to name what is wrong.
        shift = i + ADDR_BITS
        base = ((nid >> i) ^ 1) << shift
        if not b or len(b) <= k and base <= min(b) and max(b) < base + (1 << shift) and len(set(b)) == len(b):
            continue
        if len(b) > k:
            out.append(f"{node}: bucket {i} holds {len(b)} contacts (k = {k})")
        lo, hi = 1 << i, 2 << i
        for c in b:
            x = (c >> ADDR_BITS) ^ nid
            if x == 0:
                out.append(f"{node}: its own id is in bucket {i}")
            elif not lo <= x < hi:
                out.append(f"{node}: contact n{c & ((1 << ADDR_BITS) - 1)} is in bucket {i}, outside its range")
        # A contact belongs to one bucket only, so a duplicate across buckets is also out of range
        # in one of them: checking within each bucket finds every duplicate worth naming.
        if len(set(b)) < len(b):
            twice = sorted({c for c in b if b.count(c) > 1})
            out += [f"{node}: contact n{c & ((1 << ADDR_BITS) - 1)} appears twice" for c in twice]
    return out


def routing_table(run, p: dict, m: Membership | None = None) -> CheckResult:
    """Structure at the end and at sampled instants; and no eviction of a contact that was up and
    reachable (a ping would have been answered) for a newcomer."""
    m = m or Membership(run)
    k = p["k"]
    timeout = int(p["rpc_timeout_ms"] * 1e6)
    ws = fault_windows(run)
    bad = list(run.exposed.get("table_samples_bad", []))
    for node, (nid, buckets) in sorted(run.exposed.get("tables", {}).items()):
        bad += table_violations(node, nid, buckets, k)
    evictions = live_evicted = 0
    named = []
    for t, node, victim_c, _newcomer, _reason in run.table("kad.evict"):  # ids.EVICT
        evictions += 1
        victim = m.up_throughout(victim_c >> ADDR_BITS, t - timeout, t)
        if victim is not None and victim != node and not _overlaps(ws, t - timeout, t, UNANSWERING):
            live_evicted += 1
            if len(named) < MAX_NAMED:
                named.append(f"{node} evicted {victim} at {_s(t)} for a newcomer although {victim} was up and "
                             f"reachable throughout the last {p['rpc_timeout_ms']:g} ms")
    details = {"tables_checked": len(run.exposed.get("tables", {})), "samples": run.exposed.get("table_samples", 0),
               "evictions": evictions, "live_evicted": live_evicted}
    msgs = []
    if bad:
        msgs.append(f"{len(bad)} table faults; first: " + "; ".join(bad[:MAX_NAMED]))
    if live_evicted:
        msgs.append(f"{live_evicted} of {evictions} evictions removed a live contact; first: " + "; ".join(named))
    return CheckResult(not msgs, "; ".join(msgs), details)


def liveness(run, p: dict, m: Membership | None = None) -> CheckResult:
    """After the final heal, every final find succeeds, and every final get of a key that one of
    its k closest live nodes holds when the final operations start (within final_timeout_s).

    FIND_VALUE looks among the k closest live nodes to the key, so a key is excused when no copy is
    there: ``lost_keys`` when no node up holds it at all (every holder left), ``out_of_reach`` when
    only nodes farther out do (churn brought closer nodes that have no copy; the next hourly
    republish would move it). An expired copy on a holder that is up still counts as a copy."""
    m = m or Membership(run)
    from .ids import key_id

    final_from = run.heal_ns + int(run.cfg.quiesce_s * 1e9)
    holders: dict[int, set[int]] = defaultdict(set)  # key -> ids of nodes up at final_from with a copy
    for t, node, key in run.table("kad.stored"):  # ids.STORED
        if t <= final_from:
            for nid, a, b, _ in m.up.get(node, ()):
                if a <= t and (b is None or b > final_from):
                    holders[key].add(nid)
    live = LiveIds(m).at(final_from)
    started = {op["process"]: op for op in run.history if op["type"] == "invoke" and op["time"] >= final_from}
    after = [op for op in run.history if op["type"] != "invoke" and op["process"] in started]
    lost, far = set(), set()
    for op in after:
        if op["f"] == "get":
            name = str(started[op["process"]]["value"])
            key = key_id(name, p["id_bits"])
            if not holders.get(key):
                lost.add(name)
            elif not holders[key] & set(k_closest(live, key, p["k"], p["id_bits"])):
                far.add(name)
    failed = [op for op in after if op["type"] != "ok"
              and not (op["f"] == "get" and str(started[op["process"]]["value"]) in lost | far)]
    details = {"final_ops": len(after), "failed": len(failed), "lost_keys": len(lost), "out_of_reach": len(far)}
    if not after:
        return CheckResult(False, "no operation completed after the final heal", details)
    if failed:
        op = failed[0]
        return CheckResult(False, f"{len(failed)} of {len(after)} operations after the final heal did not succeed; "
                                  f"first: {op['f']} {str(op['value'])[:40]} ended {op['type']} at {_s(op['time'])}",
                           details)
    return CheckResult(True, "", details)
