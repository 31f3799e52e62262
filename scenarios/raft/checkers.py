"""Raft's own invariants (the paper's Figure 3), checked from what nodes recorded and left behind.

- Vote once: a server votes for at most one candidate per term, even across a crash (what a
  durable ``votedFor`` guarantees, and what election safety rests on).
- Election safety: at most one leader per term. Fed by ``leader`` observations, in time order, so
  the message names the first term that got a second leader and when.
- State-machine safety: no two nodes apply different entries at one index. Each node records the
  running CRC of (term, op id) of everything it applied (``applied``, at every index that is a
  multiple of 16, where an InstallSnapshot lands, and on a leader at each commit); two chains at
  one index mean two histories. Each is also compared with the most up-to-date final log, which
  holds every committed entry (leader completeness, §5.4): a committed entry lost shows there.
- Log matching: if two final logs hold an entry with the same index and term, they agree on every
  entry up to it (compared through prefix chains of the durable logs the scenario exposes).
- Liveness after heal: once every fault is healed, a leader serves again: each final read ends ok.
"""

from __future__ import annotations

from simulator import CheckResult, pairs

from .log import chain_step


def election_safety(records: list[dict]) -> CheckResult:
    leaders: dict[int, tuple[str, int]] = {}
    terms = 0
    for r in records:
        if r["kind"] != "leader":
            continue
        first = leaders.get(r["term"])
        if first is None:
            leaders[r["term"]] = (r["node"], r["time_ns"])
            terms += 1
        elif first[0] != r["node"]:
            return CheckResult(False, f"two leaders in term {r['term']}: {first[0]} (elected at "
                                      f"{first[1] / 1e6:.3f} ms) and {r['node']} (elected at {r['time_ns'] / 1e6:.3f} ms)",
                               {"term": r["term"], "leaders": [first[0], r["node"]]})
    return CheckResult(True, "", {"terms_with_leader": terms})


def vote_once(records: list[dict]) -> CheckResult:
    """Each server votes for at most one candidate per term, across restarts (Figure 2's votedFor)."""
    votes: dict[tuple[str, int], tuple[str, int]] = {}
    n = 0
    for r in records:
        if r["kind"] != "vote":
            continue
        n += 1
        key = (r["node"], r["term"])
        first = votes.get(key)
        if first is None:
            votes[key] = (r["candidate"], r["time_ns"])
        elif first[0] != r["candidate"]:
            return CheckResult(False, f"{r['node']} voted twice in term {r['term']}: for {first[0]} at "
                                      f"{first[1] / 1e6:.3f} ms and for {r['candidate']} at {r['time_ns'] / 1e6:.3f} ms",
                               {"node": r["node"], "term": r["term"]})
    return CheckResult(True, "", {"votes": n})


def _final_chains(logs: dict[str, tuple]) -> tuple[str, dict[int, int]]:
    """Prefix chains of the most up-to-date final log (it holds every committed entry, §5.4)."""
    def rank(node):
        si, st, _, entries = logs[node]
        return ((entries[-1].term if entries else st), si + len(entries), node)
    best = max(logs, key=rank)
    si, st, chain, entries = logs[best]
    out = {si: chain} if si else {}
    for k, e in enumerate(entries, start=1):
        chain = chain_step(chain, e)
        out[si + k] = chain
    return best, out


def state_machine_safety(records: list[dict], logs: dict[str, tuple] | None = None) -> CheckResult:
    """Applied chains agree at every index two nodes recorded, and with the final log."""
    seen: dict[int, tuple[int, str, int, int]] = {}
    compared = 0
    for r in records:
        if r["kind"] != "applied":
            continue
        hi = r["hi"]
        first = seen.get(hi)
        if first is None:
            seen[hi] = (r["chain"], r["node"], r["time_ns"], r["term"])
        elif first[0] != r["chain"]:
            return CheckResult(False, f"nodes applied different entries up to index {hi}: {first[1]} (at "
                                      f"{first[2] / 1e6:.3f} ms, last entry of term {first[3]}) and {r['node']} (at "
                                      f"{r['time_ns'] / 1e6:.3f} ms, last entry of term {r['term']}); a committed entry "
                                      f"was lost or replaced", {"index": hi, "nodes": [first[1], r["node"]]})
        else:
            compared += 1
    if logs:
        best, chains = _final_chains(logs)
        for hi in sorted(seen):
            c, node, t, term = seen[hi]
            if hi in chains:
                compared += 1
                if chains[hi] != c:
                    return CheckResult(False, f"{node} applied entries up to index {hi} (at {t / 1e6:.3f} ms, last of "
                                              f"term {term}) that the final log of {best} does not hold: a committed "
                                              f"entry was lost", {"index": hi, "nodes": [node, best]})
    return CheckResult(True, "", {"indices_compared": compared})


def log_matching(logs: dict[str, tuple]) -> CheckResult:
    """``logs``: node -> (snap_index, snap_term, snap_chain, entries)."""
    first: dict[tuple[int, int], tuple[int, str]] = {}
    checked = 0
    for node in sorted(logs):
        snap_index, snap_term, chain, entries = logs[node]
        points = [((snap_index, snap_term), chain)] if snap_index else []
        for k, e in enumerate(entries, start=1):
            chain = chain_step(chain, e)
            points.append(((snap_index + k, e.term), chain))
        for key, c in points:
            prior = first.get(key)
            if prior is None:
                first[key] = (c, node)
            elif prior[0] != c:
                return CheckResult(False, f"logs of {prior[1]} and {node} both hold an entry of term {key[1]} at "
                                          f"index {key[0]} but differ before it", {"index": key[0], "term": key[1]})
            else:
                checked += 1
    return CheckResult(True, "", {"entries_compared": checked})


def liveness(history: list[dict], heal_ns: int) -> CheckResult:
    start = len(history)
    while start > 0 and history[start - 1]["time"] >= heal_ns:  # only the tail after the heal
        start -= 1
    final = [(inv, comp) for inv, comp in pairs(history[start:]) if inv["type"] == "invoke"]
    if not final:
        return CheckResult(True, "", {"final_ops": 0})
    bad = [inv for inv, comp in final if comp is None or comp["type"] != "ok"]
    if bad:
        inv = bad[0]
        return CheckResult(False, f"{len(bad)} of {len(final)} operations after the final heal did not succeed "
                                  f"(first: {inv['f']} {inv['value']!r} invoked at {inv['time'] / 1e6:.3f} ms): "
                                  f"no leader served them", {"final_ops": len(final), "failed": len(bad)})
    lat = max(comp["time"] - inv["time"] for inv, comp in final)
    return CheckResult(True, "", {"final_ops": len(final), "final_latency_max_ms": round(lat / 1e6, 3)})
