"""Linearizability of key-value registers (read / write / cas), per key, Wing-Gong style.

A history is linearizable when every operation can be given one instant between its invoke and
its completion such that the operations, run one after another in that order on a plain
register, return what clients were told. Registers on different keys are independent
(P-compositionality, Horn and Kroening 2015), so each key is searched alone.

Operations, in the history's shape (``simulator.workload.history``)::

    invoke  f="read"   value=(key, None)        ok value=(key, v)       v is what the read saw
    invoke  f="write"  value=(key, v)           ok
    invoke  f="cas"    value=(key, (old, new))  ok (it swapped) / fail (it did not)

Outcomes: ``ok`` happened; ``fail`` definitely did not happen (left out); ``info`` (timed out) may
or may not have happened: it may take effect at any instant after its invoke, or never. An
``info`` read changes nothing and is left out.

The search (Wing and Gong 1993; Lowe 2017; Porcupine's layout): the invoke and completion events
of one key sit in a doubly linked list in time order. Walking it, at an invoke we try to apply that
operation to the register now; if the result matches and the pair (set of operations linearized,
register value) was not seen before (memoization), the operation is *lifted* out of the list and
the walk restarts at the head. Reaching the completion of an operation not yet linearized means the
choices so far were wrong: backtrack. The key is linearizable when every ``ok`` operation is
lifted; ``info`` operations left over simply never happened.

Two sound reductions keep ``info`` operations (whose completion is "never") from blowing up the
search: an ``info`` write or cas whose new value nobody ever observes is dropped (taking effect
could only hurt), and an ``info`` write whose value has a single writer and is observed by an
``ok`` read or cas must have happened before that observer completed, so it gets that deadline.

The search is exponential in the worst case. ``budget_s`` (wall seconds) and ``max_steps`` bound
it, for each key and each 100,000 of its operations (``BUDGET_OPS``): a search that stays about
linear in its history always finishes, however long the run, and one that blows up is cut off
in proportion to what it was given. Past either bound the key's result is ``"unknown"`` rather
than a hang. A budget for the whole history would instead turn every long enough run "unknown"
(a simulated hour of Raft is 3.6M operations, minutes of search at a few steps an operation).

Memory: a :class:`~simulator.workload.history.History` is grouped by key from its columns (an
array of operation slots a key) and each key's operations are built only while that key is
searched; memoized search states behind the oldest open choice point are dropped, since the walk
can never return before that point.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from array import array

from ..workload.history import TYPES, History, pairs
from . import UNKNOWN, CheckResult
from .parallel import WORTH_FORKING, available, fork_call

_INF = float("inf")
BUDGET_OPS = 100_000  # budget_s and max_steps are per key and per this many of its operations
_SEEN_PRUNE = 1 << 16  # memo entries kept before states behind the oldest choice point are dropped


def _norm(v: Any) -> Any:
    """JSON turns tuples into lists; make values hashable again."""
    if isinstance(v, list):
        return tuple(_norm(x) for x in v)
    return v


class _Op:
    __slots__ = ("call", "ret", "f", "arg", "out", "process", "ok", "idx")

    def __init__(self, call, ret, f, arg, out, process, ok):
        self.call = call
        self.ret = ret
        self.f = f
        self.arg = arg
        self.out = out
        self.process = process
        self.ok = ok
        self.idx = -1

    def describe(self) -> str:
        t0 = f"{self.call / 1e6:.3f}"
        if self.f == "read":
            what = f"read -> {self.out!r}"
        elif self.f == "write":
            what = f"write {self.arg!r}"
        else:
            what = f"cas {self.arg[0]!r}->{self.arg[1]!r}"
        if self.ok:
            return f"{what} (process {self.process}, {t0}-{self.ret / 1e6:.3f} ms)"
        return f"{what} (process {self.process}, invoked {t0} ms, outcome unknown)"


def _step(state: Any, op: _Op) -> tuple[bool, Any]:
    f = op.f
    if f == "read":
        return op.out == state, state
    if f == "write":
        return True, op.arg
    old, new = op.arg
    return (state == old), new


def _collect(history: list[dict]) -> dict[Any, list[_Op]]:
    """Operations by key, in invoke order (from ``history.pairs``; one never completed is info).
    Failed operations and unfinished reads constrain nothing and are left out."""
    by_key: dict[Any, list[_Op]] = {}
    kinds = ("read", "write", "cas")
    for inv, done in pairs(history):
        f = inv["f"]
        if f not in kinds:
            continue
        t = done["type"] if done is not None else "info"
        if t == "fail" or (t != "ok" and f == "read"):
            continue
        key, arg = inv["value"][0], inv["value"][1]
        if type(arg) is list:
            arg = _norm(arg)
        op = _Op(inv["time"], _INF, f, arg, None, inv["process"], False)
        if t == "ok":
            op.ok = True
            op.ret = done["time"]
            if f == "read":
                out = done["value"]
                op.out = out[1] if isinstance(out, (list, tuple)) and len(out) == 2 else out
                if type(op.out) is list:
                    op.out = _norm(op.out)
        by_key.setdefault(key, []).append(op)
    return by_key


def _collect_slots(history: History) -> dict[Any, array]:
    """:func:`_collect` for a History, from its paired columns: each key's operation slots (positions
    in ``history.inv_at``), in invoke order, with the same operations left out. No dicts."""
    by_key: dict[Any, array] = {}
    names = history.f_names
    kinds = {i for i, name in enumerate(names) if name in ("read", "write", "cas")}
    read_code = names.index("read") if "read" in names else -1
    fcol, types, values = history.f, history.type, history.value
    for slot, (a, d) in enumerate(zip(history.inv_at, history.done_at)):
        fc = fcol[a]
        if fc not in kinds:
            continue
        t = types[d] if d >= 0 else 3
        if t == 2 or (t != 1 and fc == read_code):
            continue
        key = values[a][0]
        got = by_key.get(key)
        if got is None:
            got = by_key[key] = array("q")
        got.append(slot)
    return by_key


def _ops_at(history: History, slots: array) -> list[_Op]:
    """The _Op of each slot, exactly as :func:`_collect` builds them from the pairs."""
    out = []
    names, fcol, types, times, values, procs = (history.f_names, history.f, history.type, history.time,
                                               history.value, history.process)
    inv_at, done_at = history.inv_at, history.done_at
    for slot in slots:
        a, d = inv_at[slot], done_at[slot]
        f = names[fcol[a]]
        arg = values[a][1]
        if type(arg) is list:
            arg = _norm(arg)
        op = _Op(times[a], _INF, f, arg, None, procs[a], False)
        if d >= 0 and TYPES[types[d]] == "ok":
            op.ok = True
            op.ret = times[d]
            if f == "read":
                out_v = values[d]
                op.out = out_v[1] if isinstance(out_v, (list, tuple)) and len(out_v) == 2 else out_v
                if type(op.out) is list:
                    op.out = _norm(op.out)
        out.append(op)
    return out


def _reduce_info(ops: list[_Op], initial: Any) -> list[_Op]:
    """Drop unobserved info writes; give singly-written observed info writes a deadline."""
    writers: dict[Any, int] = {}
    observed_by_ok: dict[Any, float] = {}
    observed_any: set = set()
    for op in ops:
        if op.f == "write":
            writers[op.arg] = writers.get(op.arg, 0) + 1
        elif op.f == "cas":
            writers[op.arg[1]] = writers.get(op.arg[1], 0) + 1
        seen = op.out if op.f == "read" else (op.arg[0] if op.f == "cas" else None)
        if op.f in ("read", "cas"):
            try:
                observed_any.add(seen)
            except TypeError:
                return ops
            if op.ok:
                observed_by_ok[seen] = min(observed_by_ok.get(seen, _INF), op.ret)
    out = []
    for op in ops:
        if op.ok or op.f == "read":
            out.append(op)
            continue
        new = op.arg if op.f == "write" else op.arg[1]
        if new not in observed_any:
            continue  # nobody saw it: "never happened" is always at least as good
        if op.f == "write" and writers.get(new) == 1 and new != initial and new in observed_by_ok:
            op.ret = observed_by_ok[new]
            op.ok = True  # it must have happened, before that observer completed
        out.append(op)
    return out


class _Budget(Exception):
    pass


def _new_value(op: _Op) -> Any:
    return op.arg if op.f == "write" else op.arg[1]


def _search(ops: list[_Op], initial: Any, deadline: float, steps_left: list[int]):
    """Search one key, just in time. Returns (True, None) or (False, witness dict).

    Events are walked in time order (invokes before completions at equal times). An invoke makes
    its operation *pending*. A pending read whose value equals the register is linearized at once
    (a read changes nothing, so placing it as early as possible never hurts). At the completion of
    an operation not yet linearized, the search must place it now, and branches over the useful
    choices, backtracking when none works:

    - a read needing value v: apply a pending cas, or a pending write of a value that this read or
      another pending read or cas needs to see;
    - a write: apply it now; or, if another plain write was applied since it was invoked, place it
      *retroactively* just before that one, where nobody can see it (the only choice when nobody
      ever observes its value); or first apply a pending cas, or a write some pending read or
      cas needs to see before this write overwrites it;
    - a cas: apply it now if the register holds its expected value, or first apply what enables it.

    Plain writes that nobody needs are never tried early: they can always be placed retroactively.
    Memoized on (position, register value, linearized operations still open).
    """
    events = []
    observed = set()
    for i, op in enumerate(ops):
        op.idx = i
        events.append((op.call, 0, i))
        if op.ret != _INF:
            events.append((op.ret, 1, i))
        if op.f == "read":
            observed.add(op.out)
        elif op.f == "cas":
            observed.add(op.arg[0])
    events.sort()
    n_events = len(events)
    state = initial
    lin: set[int] = set()  # linearized, completion not passed yet
    pending: list[int] = []  # invoked, not linearized
    order: list[int] = []  # linearization so far (for the counter-example)
    writes = 0  # plain writes applied so far on this path
    writes_at_call: dict[int, int] = {}
    # frame: [p, state, lin, pending, order_len, writes, actions, next_action]
    frames: list[list] = []
    seen: set = set()
    p = 0
    steps = 0
    best_p = -1
    witness = None

    def greedy_reads(state, lin, pending, order):
        keep = []
        for j in pending:
            o = ops[j]
            if o.f == "read" and o.out == state:
                lin.add(j)
                order.append(j)
            else:
                keep.append(j)
        return keep

    # per-operation columns, read in the branching below
    f_of = [op.f for op in ops]
    ret_of = [op.ret for op in ops]
    needs = [op.out if op.f == "read" else (op.arg[0] if op.f == "cas" else None) for op in ops]
    writes_value = [op.arg if op.f == "write" else (op.arg[1] if op.f == "cas" else None) for op in ops]

    def actions_for(x: _Op, state, pending, writes):
        xi, xf = x.idx, x.f
        others = [j for j in pending if j != xi and f_of[j] != "read"]
        acts = []
        if others:  # which pending writes and cas could usefully go first?
            wanted = {needs[j] for j in pending if f_of[j] != "write"}  # values pending reads/cas need
            if xf != "write":
                wanted.add(needs[xi])
            useful = [j for j in others if f_of[j] == "cas" or writes_value[j] in wanted]
            if len(useful) > 1:
                useful.sort(key=ret_of.__getitem__)
            acts = [("apply", j) for j in useful]
        if xf == "read":
            return acts
        if xf == "write":
            retro = writes > writes_at_call[xi]
            if retro and x.arg not in observed:
                return [("retro", xi)]
            return [("apply", xi), ("retro", xi), *acts] if retro else [("apply", xi), *acts]
        return [("apply", xi), *acts]

    seen_cap = _SEEN_PRUNE
    while True:
        steps += 1
        if len(seen) > seen_cap:
            # The walk only moves forward from the current position or from a kept choice point,
            # so a state memoized before the oldest of those can never be met again.
            floor = frames[0][0] if frames else p
            seen = {k for k in seen if k[0] >= floor}
            seen_cap = max(_SEEN_PRUNE, 2 * len(seen))
        if steps & 0x3FF == 0 and time.monotonic() > deadline:
            raise _Budget()
        if steps > steps_left[0]:
            raise _Budget()
        if p == n_events:
            steps_left[0] -= steps
            return True, None
        _, kind, i = events[p]
        if kind == 0:
            o = ops[i]
            if o.f == "read" and o.out == state:
                lin.add(i)
                order.append(i)
            else:
                if o.f == "write":
                    writes_at_call[i] = writes
                pending.append(i)
            p += 1
            continue
        if i in lin:
            lin.discard(i)
            p += 1
            continue
        # op i completes here unlinearized: branch over what to do next
        acts = actions_for(ops[i], state, pending, writes)
        if len(acts) == 1:
            # One choice (the usual case): take it in place. A frame would only be popped on
            # failure, so none is kept; failing here records the witness a popped frame would.
            what, c = acts[0]
            steps += 1
            op = ops[c]
            if what == "retro":
                good, new_state, new_writes = True, state, writes
            else:
                good, new_state = _step(state, op)
                new_writes = writes + (op.f == "write")
            olen = len(order)
            if good:
                new_lin = set(lin)
                new_lin.add(c)
                new_pending = [j for j in pending if j != c]
                order.append(c)
                if what == "apply":
                    new_pending = greedy_reads(new_state, new_lin, new_pending, order)
                key = (p, new_state, frozenset(new_lin))
                if key not in seen:
                    seen.add(key)
                    state, lin, pending, writes = new_state, new_lin, new_pending, new_writes
                    continue
            if p > best_p:
                best_p = p
                witness = {"stuck": ops[i], "state": state, "done": [ops[j] for j in order[max(0, olen - 3):olen]]}
        else:
            frames.append([p, state, frozenset(lin), tuple(pending), len(order), writes, acts, 0])
        while True:
            if not frames:
                steps_left[0] -= steps
                return False, witness
            fr = frames[-1]
            if fr[7] >= len(fr[6]):
                frames.pop()
                if fr[0] > best_p:
                    best_p = fr[0]
                    witness = {"stuck": ops[events[fr[0]][2]], "state": fr[1],
                               "done": [ops[j] for j in order[max(0, fr[4] - 3):fr[4]]]}
                continue
            what, c = fr[6][fr[7]]
            fr[7] += 1
            steps += 1
            op = ops[c]
            if what == "retro":
                good, new_state, new_writes = True, fr[1], fr[5]
            else:
                good, new_state = _step(fr[1], op)
                new_writes = fr[5] + (op.f == "write")
            if not good:
                continue
            new_lin = set(fr[2])
            new_lin.add(c)
            del order[fr[4]:]
            order.append(c)
            new_pending = [j for j in fr[3] if j != c]
            if what == "apply":
                new_pending = greedy_reads(new_state, new_lin, new_pending, order)
            key = (fr[0], new_state, frozenset(new_lin))
            if key in seen:
                continue
            seen.add(key)
            p, state, lin, pending, writes = fr[0], new_state, new_lin, new_pending, new_writes
            break
        # continue the walk from p: if the completing op is now linearized, it passes; else branch again


def check_kv(history: Iterable[dict], *, initial: Any = None, budget_s: float = 60.0,
             max_steps: int = 20_000_000, parallel: bool = True) -> CheckResult:
    """Is the read/write/cas history linearizable, key by key? See the module docstring.

    ``initial`` is every register's value before the first operation. Returns valid True, False
    (the message names the key and the operations that could not be ordered) or "unknown" when a
    key's search ran out of ``budget_s`` wall seconds or ``max_steps`` steps, both counted per key
    and per ``BUDGET_OPS`` of its operations (see the module docstring).

    With ``parallel`` (and ``WORTH_FORKING`` operations or more, on Linux) the keys are split in
    two halves of about equal size and one half is searched in a forked process
    (:mod:`simulator.checkers.parallel`). The verdict and its message are the same as a search in
    one process: the first failing key in key order is reported.
    """
    t0 = time.monotonic()
    if isinstance(history, History):
        slots = _collect_slots(history)
        by_key: dict = {k: (lambda v=v: _ops_at(history, v), len(v)) for k, v in slots.items()}
    else:
        by_key = {k: (lambda v=v: v, len(v))
                  for k, v in _collect(history if isinstance(history, list) else list(history)).items()}
    keys = sorted(by_key, key=repr)
    sizes = [by_key[k][1] for k in keys]
    wait = None
    mine = list(range(len(keys)))
    if parallel and len(keys) > 1 and sum(sizes) >= WORTH_FORKING and available():
        halves: tuple[list[int], list[int]] = ([], [])
        load = [0, 0]
        for pos in sorted(mine, key=lambda q: (-sizes[q], q)):  # largest first, to the lighter half
            h = 0 if load[0] <= load[1] else 1
            halves[h].append(pos)
            load[h] += sizes[pos]
        mine, theirs = sorted(halves[0]), sorted(halves[1])
        wait = fork_call(lambda: _check_keys(by_key, keys, theirs, initial, budget_s, max_steps))
    results = [_check_keys(by_key, keys, mine, initial, budget_s, max_steps)]
    if wait is not None:
        got = wait()
        results.append(got[0] if got is not None else
                       _check_keys(by_key, keys, theirs, initial, budget_s, max_steps))
    failed = [r[0] for r in results if r[0] is not None]
    if failed:
        pos, message = min(failed)
        return CheckResult(False, message, {"key": repr(keys[pos]), "keys": len(keys)})
    unknown = sorted(pos for r in results for pos in r[1])
    details = {"keys": len(keys), "ops_searched": sum(r[2] for r in results), "steps": sum(r[3] for r in results),
               "seconds": round(time.monotonic() - t0, 3)}
    if unknown:
        return CheckResult(UNKNOWN, f"search budget ran out on key(s) {', '.join(repr(keys[q]) for q in unknown[:5])}"
                                    f" (budget {budget_s} s and {max_steps} steps a key and {BUDGET_OPS:,} "
                                    f"operations)", details)
    return CheckResult(True, "", details)


def _check_keys(by_key: dict, keys: list, positions: list[int], initial: Any, budget_s: float,
                max_steps: int) -> tuple[tuple[int, str] | None, list[int], int, int]:
    """Search ``keys[pos]`` for each position, in order, stopping at the first failure. ``by_key``
    maps a key to (a function building its operations, their count), so one key's operations
    are held at a time.

    Returns ((position, message) of the failure or None, positions whose budget ran out, operations
    searched, steps taken)."""
    n_ops = 0
    steps = 0
    unknown = []
    for pos in positions:
        key = keys[pos]
        build, count = by_key[key]
        share = max(1.0, count / BUDGET_OPS)
        ops = _reduce_info(build(), initial)
        n_ops += len(ops)
        allowed = int(max_steps * share)
        steps_left = [allowed]
        try:
            ok, witness = _search(ops, initial, time.monotonic() + budget_s * share, steps_left)
        except _Budget:
            unknown.append(pos)
            steps += allowed
            continue
        steps += allowed - steps_left[0]
        if not ok:
            return (pos, _explain(key, witness)), unknown, n_ops, steps
    return None, unknown, n_ops, steps


def _explain(key: Any, witness: dict | None) -> str:
    if witness is None:
        return f"key {key!r}: no linearization exists"
    stuck: _Op = witness["stuck"]
    done = witness["done"]
    before = "; ".join(op.describe() for op in done) if done else "nothing"
    return (f"key {key!r}: not linearizable: {stuck.describe()} cannot be placed: in the longest "
            f"order found, the register held {witness['state']!r} after {before}, and no order of the "
            f"operations concurrent with it makes it return what the client was told")
