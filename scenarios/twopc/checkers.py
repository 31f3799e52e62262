"""The transaction manager's invariants, from what a run left: observations and final state.

Observations (``ctx.record``) the nodes make:
  prepared  (RM)           tx, sent, writes
  applied   (RM)           tx, outcome C/A, cause, depth, held_ms, low (lowest balance it left)
  decided   (coordinator)  tx, outcome, cause, parts, sent, writes, fast
  accepted  (acceptor)     tx, sent, writes

Exposed final state, per RM: balances, the transactions whose commit is durable there, the ones
still prepared (in doubt), and its lock table.

Transactions invoked after the quiesce (the final audit) are left out of the "by now" checks:
their messages may still be in flight when the run stops.
"""

from __future__ import annotations

from simulator import CheckResult, RunData, pairs


def of_kind(run: RunData, kind: str) -> list[dict]:
    """The records of one kind, grouped once per run (the checkers and figures ask many times)."""
    groups = getattr(run, "_twopc_kinds", None)
    if groups is None:
        groups = {}
        for r in run.records:
            groups.setdefault(r["kind"], []).append(r)
        run._twopc_kinds = groups
    return groups.get(kind, [])


def _s(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


def final_start(run: RunData) -> tuple[int, int]:
    """(time the final phase began, the first transaction id of the final phase)."""
    t = run.heal_ns + int(run.cfg.quiesce_s * 1e9)
    first = sum(1 for op in run.history if op["type"] == "invoke" and op["time"] < t)
    return t, first


def atomicity(run: RunData) -> CheckResult:
    """Every participant applies the same outcome; one decision per transaction; a committed
    transaction is applied by every participant (unless one is still in doubt: see liveness); and
    every client was told the decision: an operation that ended ok was decided commit, one that
    ended fail (definitely did not happen) was not. Without the last, an acknowledgement that no
    decision backs would be counted nowhere: the other checks start from the decisions."""
    decided: dict[int, dict] = {}
    for r in of_kind(run, "decided"):
        d = decided.setdefault(r["tx"], {})
        if r["outcome"] not in d:
            d[r["outcome"]] = r
    for tx, d in decided.items():
        if len(d) > 1:
            c, a = d["C"], d["A"]
            return CheckResult(False, f"transaction {tx} was decided commit (by {c['node']} at {_s(c['time_ns'])}) "
                                      f"and abort (by {a['node']} at {_s(a['time_ns'])})", {"tx": tx})
    applied: dict[int, dict[str, dict]] = {}
    for r in of_kind(run, "applied"):
        per = applied.setdefault(r["tx"], {})
        prev = per.get(r["node"])
        if prev is not None and prev["outcome"] != r["outcome"]:
            return CheckResult(False, f"{r['node']} applied transaction {r['tx']} as {_word(prev['outcome'])} "
                                      f"at {_s(prev['time_ns'])} and as {_word(r['outcome'])} at {_s(r['time_ns'])}",
                               {"tx": r["tx"]})
        per.setdefault(r["node"], r)
    for tx, per in applied.items():
        outcomes = {r["outcome"] for r in per.values()}
        if len(outcomes) > 1:
            rs = sorted(per.values(), key=lambda r: r["time_ns"])
            c = next(r for r in rs if r["outcome"] == "C")
            a = next(r for r in rs if r["outcome"] == "A")
            return CheckResult(False, f"transaction {tx} is half done: {c['node']} committed it at {_s(c['time_ns'])} "
                                      f"but {a['node']} aborted it at {_s(a['time_ns'])}", {"tx": tx})
        if "C" in outcomes and "C" not in decided.get(tx, {}):
            r = next(iter(per.values()))
            return CheckResult(False, f"{r['node']} committed transaction {tx} that no coordinator decided to commit",
                               {"tx": tx})
    t_final, first_final = final_start(run)
    in_doubt = {rm: set(st["in_doubt"]) for rm, st in run.exposed.get("rms", {}).items()}
    for tx, d in decided.items():
        c = d.get("C")
        if c is None or tx >= first_final:
            continue
        per = applied.get(tx, {})
        for rm, _ in c["parts"]:
            if rm not in per and tx not in in_doubt.get(rm, ()):
                return CheckResult(False, f"transaction {tx} was committed at {_s(c['time_ns'])} but {rm} never "
                                          f"applied it and does not even hold it in doubt", {"tx": tx, "rm": rm})
    return _clients_told_the_decision(run, decided)


def _clients_told_the_decision(run: RunData, decided: dict[int, dict]) -> CheckResult:
    """Transaction ids are operation ids, given out in invoke order (the client sends op.id)."""
    told = 0
    for tx, (inv, comp) in enumerate(pairs(run.history)):
        if comp is None or comp["type"] == "info":
            continue
        told += 1
        committed = "C" in decided.get(tx, {})
        if comp["type"] == "ok" and not committed:
            return CheckResult(False, f"the client was told {inv['f']} {tx} committed at {_s(comp['time'])}, but no "
                                      f"coordinator decided to commit it", {"tx": tx})
        if comp["type"] == "fail" and committed:
            return CheckResult(False, f"the client was told {inv['f']} {tx} failed at {_s(comp['time'])}, but it was "
                                      f"decided commit at {_s(decided[tx]['C']['time_ns'])}", {"tx": tx})
    return CheckResult(True, "", {"outcomes_told": told})


def _word(outcome: str) -> str:
    return "commit" if outcome == "C" else "abort"


def conservation(run: RunData) -> CheckResult:
    """Money is neither made nor lost: every committed audit and the final state sum to the start."""
    expected = run.cfg.params["accounts"] * run.cfg.params["initial_balance"]
    bad = [op for op in run.history if op["type"] == "ok" and op["f"] == "audit" and op["value"] != expected]
    if bad:
        op = bad[0]
        return CheckResult(False, f"an audit that committed at {_s(op['time'])} summed the balances to {op['value']}, "
                                  f"not {expected} ({len(bad)} such audits)", {"bad_audits": len(bad)})
    rms = run.exposed.get("rms", {})
    total = sum(sum(st["balances"].values()) for st in rms.values())
    if rms and total != expected:
        return CheckResult(False, f"the final balances sum to {total}, not {expected}", {"final_total": total})
    return CheckResult(True, "", {"audits_checked": sum(1 for op in run.history if op["type"] == "ok"
                                                         and op["f"] == "audit")})


def no_overdraft(run: RunData) -> CheckResult:
    """No committed transfer leaves an account below zero (the RM checks funds under its locks)."""
    for r in of_kind(run, "applied"):
        if r["low"] < 0:
            return CheckResult(False, f"{r['node']} left an account at {r['low']} when it committed transaction "
                                      f"{r['tx']} at {_s(r['time_ns'])}", {"tx": r["tx"]})
    return CheckResult(True)


def durability(run: RunData) -> CheckResult:
    """No committed transaction is lost across crashes: each participant's durable state has it
    (or still holds it prepared), and its balances are exactly what its durable commits imply."""
    rms = run.exposed.get("rms", {})
    if not rms:
        return CheckResult("unknown", "no final state was exposed")
    committed: dict[int, tuple] = {}
    for r in of_kind(run, "decided"):
        if r["outcome"] == "C" and r["tx"] not in committed:
            committed[r["tx"]] = r
    initial = run.cfg.params["initial_balance"]
    expected: dict[str, dict[int, int]] = {rm: {int(a): initial for a in st["balances"]} for rm, st in rms.items()}
    _, first_final = final_start(run)
    for tx, r in committed.items():
        for rm, deltas in r["parts"]:
            st = rms.get(rm)
            if st is None:
                continue
            if tx in st["committed"]:
                for a, d in deltas:
                    expected[rm][a] += d
            elif tx not in st["in_doubt"] and tx < first_final:
                return CheckResult(False, f"transaction {tx}, committed at {_s(r['time_ns'])}, is lost at {rm}: "
                                          f"its durable state has neither the commit nor the prepare record",
                                   {"tx": tx, "rm": rm})
    for rm, st in rms.items():
        for tx in st["committed"]:
            if tx not in committed:
                return CheckResult(False, f"{rm} has transaction {tx} as committed, but no coordinator committed it",
                                   {"tx": tx, "rm": rm})
        for a, bal in st["balances"].items():
            if bal != expected[rm][int(a)]:
                return CheckResult(False, f"account {a} at {rm} holds {bal}, but the commits durable there imply "
                                          f"{expected[rm][int(a)]}", {"account": a, "rm": rm})
    return CheckResult(True)


def liveness(run: RunData) -> CheckResult:
    """After the final heal and the quiesce, no transaction is in doubt, no lock is held or
    awaited, and the final audit commits."""
    t_final, first_final = final_start(run)
    quiesce = run.cfg.quiesce_s
    for rm, st in sorted(run.exposed.get("rms", {}).items()):
        old = [tx for tx in st["in_doubt"] if tx < first_final]
        if old:
            return CheckResult(False, f"{quiesce:g} s after the final heal, {rm} still holds {len(old)} transaction(s) "
                                      f"in doubt (the first: {old[0]})", {"rm": rm, "in_doubt": len(old)})
        for what in ("held", "waiting"):
            old = [tx for tx in st["locks"][what] if tx < first_final]
            if old:
                verb = "holds locks for" if what == "held" else "has lock requests waiting for"
                return CheckResult(False, f"{quiesce:g} s after the final heal, {rm} still {verb} {len(old)} "
                                          f"transaction(s) (the first: {old[0]})", {"rm": rm, what: len(old)})
    final_procs = {op["process"] for op in run.history
                   if op["type"] == "invoke" and op["time"] >= t_final and op["f"] == "audit"}
    ends = [op for op in run.history if op["type"] != "invoke" and op["process"] in final_procs]
    if final_procs and not ends:
        return CheckResult(False, "the final audit did not finish before the run's end")
    if ends and ends[-1]["type"] != "ok":
        return CheckResult(False, f"the final audit did not commit: {ends[-1]['type']} {ends[-1]['value']}")
    return CheckResult(True)


CHECKS = {
    "atomicity": atomicity,
    "conservation": conservation,
    "no-overdraft": no_overdraft,
    "durability": durability,
    "liveness-after-heal": liveness,
}
