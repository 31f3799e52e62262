"""Trace-driven requests for the cache design (``--set trace=PATH``).

The trace is read as the replay tool reads it (``replay.py``): libCacheSim's ``oracleGeneral``
binary or a CSV ``time,key,size[,op]``. Its requests become the run's operations, in the trace's
order (from the start again when the run outlasts it):

key    the trace's object ids, renamed ``k0``, ``k1``... in order of first appearance (the design's
       key space is the trace's distinct objects)
size   an object's size at its first appearance (the design's objects keep one size; a later size
       change in the trace is ignored, where the replay tool counts it as a miss)
op     a CSV's ``set`` / ``write`` / ``delete`` is a write (the design's writes go to the database
       and invalidate); ``get`` / ``read`` a read; without an op column (and in oracleGeneral,
       which has none) a ``write_share`` of the requests are drawn as writes, as the synthetic
       workload does
time   ``trace_speed`` 0 (the default): arrivals at the run's ``--rate``, the trace giving only
       their order; ``trace_speed`` S > 0: arrivals follow the trace's own request rate, its
       times divided by S (2: twice as fast), a Poisson process whose rate follows the trace's
       request counts in 1,000 equal steps of its span (the run's ``--rate`` is then unused)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator import UsageError

from .replay import BadInput, read_csv, read_oracle

FORMATS = ("auto", "oracleGeneral", "csv")
STEPS = 1000
MAX_TIME_S = 2**32 - 1  # oracleGeneral's largest time (a uint32): keeps Unix seconds; int64 nanoseconds hold it


@dataclass
class Trace:
    keys: list[int]  # dense key index per request
    writes: list | None  # per request: True write, False read; None: draw by write_share
    sizes: list[int]  # size per dense key
    times: list[float]

    @property
    def distinct(self) -> int:
        return len(self.sizes)


_memo: dict = {}


def load(path_text: str, fmt: str = "auto") -> Trace:
    """The trace at ``path_text``; a missing, empty or corrupt file is a UsageError naming it."""
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"bad value {path_text!r} for trace: expected an existing trace file "
                         f"(oracleGeneral binary or CSV time,key,size[,op])")
    st = os.stat(path)
    memo_key = (str(path.resolve()), st.st_mtime_ns, st.st_size, fmt)
    if memo_key in _memo:
        return _memo[memo_key]
    kind = fmt if fmt != "auto" else ("csv" if path.suffix.lower() == ".csv" else "oracleGeneral")
    try:
        ops, times = read_csv(path, "trace") if kind == "csv" else read_oracle(path, "trace")
    except BadInput as e:
        raise UsageError(str(e)) from None
    if not ops:
        raise UsageError(f"bad value {path_text!r} for trace: expected at least one request")
    _check_times(path, kind, times)
    dense: dict = {}
    keys, sizes = [], []
    for _, k, s in ops:
        i = dense.get(k)
        if i is None:
            if s < 1:
                raise UsageError(f"bad value {path_text!r} for trace: object {k} has size {s}, expected sizes >= 1")
            i = dense[k] = len(sizes)
            sizes.append(int(s))
        keys.append(i)
    has_ops = kind == "csv" and any(o[0] != "get" for o in ops)
    writes = [o[0] in ("set", "write", "delete") for o in ops] if has_ops else None
    tr = Trace(keys, writes, sizes, [float(t) for t in times])
    _memo.clear()  # one trace at a time: a sweep reuses it, a new file replaces it
    _memo[memo_key] = tr
    return tr


def _check_times(path: Path, kind: str, times: list) -> None:
    """Every request's time finite and from 0 to MAX_TIME_S (``trace_speed`` reads them; a NaN or a
    negative one broke its rate curve), else a UsageError naming the file, the line and the time."""
    t = np.asarray(times, dtype=float)
    bad = ~np.isfinite(t) | (t < 0) | (t > MAX_TIME_S)
    if not bad.any():
        return
    i = int(np.argmax(bad))
    where, shown = f"record {i + 1}", f"{t[i]:g}"
    if kind == "csv":  # the line of the i-th request, as read_csv counts them (blank lines and a header skipped)
        import csv

        with path.open(newline="") as f:
            k = -1
            for n, row in enumerate(csv.reader(f), 1):
                if not row or (n == 1 and row[0].strip().lower() in ("time", "timestamp")):
                    continue
                k += 1
                if k == i:
                    where, shown = f"line {n}", repr(row[0])
                    break
    raise UsageError(f"bad time {shown} at {where} of {str(path)!r} for trace: expected seconds from 0 to "
                     f"{MAX_TIME_S} (a finite number)")


def generate(tr: Trace, write_share: float):
    """``generate(rng) -> (op, key)`` walking the trace from its start, round and round."""
    names = [f"k{i}" for i in range(tr.distinct)]
    keys, writes, n = tr.keys, tr.writes, len(tr.keys)
    at = [0]

    def gen(rng):
        i = at[0]
        at[0] = i + 1 if i + 1 < n else 0
        if writes is None:
            wr = write_share > 0 and float(rng.random()) < write_share
        else:
            wr = writes[i]
        return ("write" if wr else "read"), names[keys[i]]

    return gen


def rate_curve(tr: Trace, speed: float):
    """``rate_at(t_s)``: the trace's requests per second around trace time ``t_s * speed``, in
    ``STEPS`` equal steps of its span, repeating after it."""
    t = np.asarray(tr.times, dtype=float)
    span = float(t.max() - t.min()) if t.size else 0.0
    if span <= 0:
        raise UsageError(f"bad value {speed!r} for trace_speed: the trace's times do not advance (all "
                         f"{t.min() if t.size else 0:g}); expected 0 (arrivals at --rate) with this trace")
    width = span / STEPS
    counts = np.bincount(np.minimum(((t - t.min()) / width).astype(np.int64), STEPS - 1), minlength=STEPS)
    rates = (counts / width * speed).tolist()
    period_s = span / speed

    def rate_at(t_s: float) -> float:
        return rates[min(int((t_s % period_s) / period_s * STEPS), STEPS - 1)]

    return rate_at
