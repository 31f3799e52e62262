"""Figures from histories (simulator.checkers.metrics): latency quantiles, throughput series, availability, recovery."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.checkers import metrics as M

MS = 1_000_000
S = 1_000_000_000


class H:
    """Builds a history from (process, f, invoke ns, completion ns or None, type)."""

    def __init__(self):
        self.events = []

    def op(self, p, t0, t1=None, type="ok", f="w", value=None):
        self.events.append((t0, 0, {"type": "invoke", "process": p, "f": f, "value": value, "time": t0}))
        if t1 is not None:
            self.events.append((t1, 1, {"type": type, "process": p, "f": f, "value": value, "time": t1}))
        return self

    def build(self):
        out = [e for _, _, e in sorted(self.events, key=lambda x: (x[0], x[1]))]
        for i, e in enumerate(out):
            e["index"] = i
        return out


def test_latency_quantiles_of_a_hand_built_history():
    """Latencies 1..100 ms give numpy's linear-interpolated percentiles, max and mean in ms."""
    h = H()
    for k in range(1, 101):
        h.op(k, k * S, k * S + k * MS)
    _, lat = M.latencies(h.build())
    summary = M.latency_summary_ms(lat)
    assert summary == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "p999": 99.901, "max": 100.0, "mean": 50.5}


def test_latencies_count_only_ok_and_filter_by_f():
    """Only ok operations have a latency; f= keeps one operation kind; invoke times come with them."""
    h = (H().op(0, 0, 2 * MS).op(1, 0, 5 * MS, type="fail").op(2, 0, 9 * MS, type="info")
         .op(3, 1 * MS, 4 * MS, f="r").op(4, 1 * MS))
    t, lat = M.latencies(h.build())
    assert sorted(lat.tolist()) == [2 * MS, 3 * MS]
    t, lat = M.latencies(h.build(), f="r")
    assert t.tolist() == [1 * MS] and lat.tolist() == [3 * MS]


def test_latency_summary_of_nothing_is_none():
    """With no ok operation every latency figure is None."""
    s = M.latency_summary_ms(np.array([], dtype=np.int64))
    assert set(s) == {"p50", "p95", "p99", "p999", "max", "mean"} and all(v is None for v in s.values())


def test_op_counts():
    """op_counts counts invokes and each ending."""
    h = H().op(0, 0, 1, "ok").op(1, 0, 2, "fail").op(2, 0, 3, "info").op(3, 0).build()
    assert M.op_counts(h) == {"ok": 1, "fail": 1, "info": 1, "invoked": 4}


def test_throughput_series_buckets_completions_per_second():
    """throughput_series counts completions by type per bucket, as a per-second rate, with bucket start times."""
    h = (H().op(0, 0, 500 * MS).op(1, 0, 700 * MS).op(2, 0, 1200 * MS).op(3, 0, 2100 * MS, type="fail")
         .op(4, 0, 3 * S).build())  # a completion at end_ns lands in the last bucket
    ts = M.throughput_series(h, end_ns=3 * S, bucket_s=1.0)
    assert ts["ok"].tolist() == [2.0, 1.0, 1.0]
    assert ts["fail"].tolist() == [0.0, 0.0, 1.0]
    assert ts["info"].tolist() == [0.0, 0.0, 0.0]
    assert ts["t_s"].tolist() == [0.0, 1.0, 2.0]
    half = M.throughput_series(h, end_ns=3 * S, bucket_s=0.5)
    assert half["ok"].tolist() == [0.0, 4.0, 2.0, 0.0, 0.0, 2.0]
    assert half["t_s"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_availability_metric():
    """availability is the ok share of operations invoked before until_ns, one that never ended
    counting as not ok; None if none was invoked."""
    h = H().op(0, 0, 1, "ok").op(1, 0, 2, "info").op(2, 5 * S, 6 * S, "fail").op(3, 0).build()
    assert M.availability(h) == 0.25
    assert M.availability(h, until_ns=S) == pytest.approx(1 / 3, abs=1e-6)
    assert M.availability(H().op(0, 0).build()) == 0.0
    assert M.availability([]) is None


def test_recovery_after_a_stop_action():
    """Recovery is the time from a heal to the first ok completion of an operation invoked at or after it."""
    h = (H().op(0, 9 * S, 10_500 * MS)            # invoked before the heal: does not count
         .op(1, 10 * S, 11_000 * MS, type="fail")  # not ok
         .op(2, 10_100 * MS, 11_200 * MS)          # the first ok invoked after the heal
         .op(3, 10_200 * MS, 11_500 * MS)).build()
    faults = [{"time_ns": 5 * S, "action": "partition", "nemesis": "partition-random-halves", "phase": "start"},
              {"time_ns": 10 * S, "action": "heal", "nemesis": "partition-random-halves", "phase": "stop"},
              {"time_ns": 20 * S, "action": "final_heal"}]
    rec = M.recovery(h, faults)
    assert rec == [{"fault": "partition-random-halves", "healed_at_s": 10.0, "recovery_s": 1.2},
                   {"fault": "final_heal", "healed_at_s": 20.0, "recovery_s": None}]


def test_recovery_takes_the_earliest_completion_not_the_earliest_invoke():
    """Of the ops invoked after a heal, the one that completes first sets recovery, whatever its invoke order."""
    h = H().op(0, 10 * S, 13 * S).op(1, 11 * S, 12 * S).build()
    rec = M.recovery(h, [{"time_ns": 10 * S, "action": "restart", "nemesis": "crash", "phase": "stop"}])
    assert rec[0]["recovery_s"] == 2.0


def test_summarise_main_phase_figures():
    """summarise gives counts, latency, main-phase throughput, availability and the worst recovery."""
    h = H().op(0, 0, 100 * MS).op(1, S, 1200 * MS).op(2, 3 * S, 4500 * MS).build()
    faults = [{"time_ns": 500 * MS, "action": "restart", "nemesis": "crash", "phase": "stop"}]
    out = M.summarise(h, faults, main_end_ns=4 * S)
    assert out["ops"] == {"ok": 3, "fail": 0, "info": 0, "invoked": 3, "lost": 0}
    assert out["throughput_ops_s"] == 0.5  # two ok completions within the 4 s main phase
    assert out["availability"] == 1.0
    assert out["recovery_max_s"] == 0.7
    assert out["latency_ms"]["max"] == 1500.0


def test_summarise_counts_main_phase_operations_that_never_ended_as_lost():
    """An operation invoked before the main phase ends that never ended is lost: counted in ops and
    against availability; invoked = ok + fail + info + lost."""
    h = (H().op(0, 0, 100 * MS).op(1, S, 1200 * MS, type="info").op(2, 2 * S).op(3, 3 * S)
         .op(4, 5 * S, 5100 * MS).build())  # op 4 is a final operation, after the main phase
    out = M.summarise(h, [], main_end_ns=4 * S)
    assert out["ops"] == {"ok": 2, "fail": 0, "info": 1, "invoked": 5, "lost": 2}
    ops = out["ops"]
    assert ops["invoked"] == ops["ok"] + ops["fail"] + ops["info"] + ops["lost"]
    assert out["availability"] == 0.25  # 1 ok of the 4 main-phase operations
