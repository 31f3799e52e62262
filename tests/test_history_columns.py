"""The columnar History reads, pairs, writes and hashes exactly as the list of dicts it replaced."""

from __future__ import annotations

import dataclasses
import hashlib
import marshal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import build_config, execute, get_scenario
from simulator.checkers import metrics as M
from simulator.checkers.linearizable import check_kv
from simulator.pipeline import scenario as registry
from simulator.workload.history import History, pairs, write_jsonl

EVENT = st.tuples(st.sampled_from(("invoke", "ok", "fail", "info")), st.integers(0, 4),
                  st.sampled_from(("read", "write", "cas", "put")),
                  st.one_of(st.none(), st.integers(-5, 5), st.tuples(st.sampled_from("xy"), st.integers(0, 3)),
                            st.lists(st.integers(0, 3), max_size=2), st.text(max_size=3)))


def _events(raw) -> list[dict]:
    return [{"index": i, "time": 1000 * i, "type": t, "process": p, "f": f, "value": v}
            for i, (t, p, f, v) in enumerate(raw)]


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENT, max_size=40))
def test_a_history_reads_pairs_and_hashes_as_its_list_of_dicts(raw):
    """Any sequence of events (stray completions, reused processes, odd values) reads back as the same
    dicts, pairs as pairs() pairs the list, and feeds the digest the same marshal bytes."""
    events = _events(raw)
    want = hashlib.sha256(b"seed")
    want.update(marshal.dumps(events, 2))
    for dicts_up_to in (None, 0, 5):  # dicts kept, columns alone, dicts dropped part-way
        h = History(events, dicts_up_to=dicts_up_to)
        assert len(h) == len(events) and h == events and list(h) == events
        assert h[3:7] == events[3:7] and (not events or h[-1] == events[-1])
        assert list(pairs(h)) == pairs(events)
        assert len(pairs(h)) == len(pairs(events))
        assert h.digest_into(hashlib.sha256(b"seed")).hexdigest() == want.hexdigest()


def test_chunked_reading_pairs_across_chunk_borders(monkeypatch):
    """Pairs whose completion lies chunks after their invoke, and a pass read in tiny chunks, still
    give exactly the list's pairs."""
    import simulator.workload.history as H

    monkeypatch.setattr(H, "ROWS_PER_CHUNK", 3)
    events = [{"index": 0, "time": 0, "type": "invoke", "process": 99, "f": "w", "value": 1}]
    for i in range(1, 30):
        events.append({"index": i, "time": i, "type": "invoke" if i % 2 else "ok", "process": i % 2 or (i - 1) % 7,
                       "f": "w", "value": i})
    events.append({"index": 30, "time": 30, "type": "info", "process": 99, "f": "w", "value": 1})
    h = History(events, dicts_up_to=0)
    assert list(pairs(h)) == pairs(events) and list(h) == events


def test_a_history_writes_the_bytes_of_its_list(tmp_path):
    """write_jsonl of a History is byte for byte write_jsonl of the same dicts in a list."""
    events = _events([("invoke", 1, "write", ("k", 1)), ("invoke", 2, "read", None), ("ok", 1, "write", ("k", 1)),
                      ("ok", 2, "read", ("k", "é")), ("info", 3, "cas", [1, 2.5])])
    write_jsonl(tmp_path / "a.jsonl", History(events, dicts_up_to=2))
    write_jsonl(tmp_path / "b.jsonl", events)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_a_history_refuses_an_event_out_of_place():
    """An appended event whose index is not its position is refused, naming what is accepted."""
    h = History()
    with pytest.raises(ValueError, match="index = its position"):
        h.append({"index": 5, "time": 0, "type": "invoke", "process": 0, "f": "w", "value": None})


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k not in ("seconds", "checker_seconds")}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


@pytest.mark.parametrize("name", registry.names())
def test_every_design_gets_the_same_verdicts_metrics_and_figures_from_columns_as_from_dicts(name, monkeypatch):
    """A seeded run of each shipped design under faults, its history held in columns alone (as a long
    run's is): its checkers, metrics and figures give exactly what they give on the same history as
    a list of dicts."""
    import simulator.workload.history as H

    monkeypatch.setattr(H, "DICTS_UP_TO", 0)
    options = {"time_limit_s": 3.0, "quiesce_s": 1.0, "final_timeout_s": 2.0,
               "nemesis": "crash,partition-random-halves", "nemesis_interval_s": 1.0}
    cfg = build_config(get_scenario(name), seed=1, options=options)
    out = execute(cfg)
    assert isinstance(out.run.history, History) and out.run.history.dicts is None
    as_list = dataclasses.replace(out.run, history=out.run.history.to_list())
    scenario = get_scenario(name)()
    checks = {k: v.to_dict() for k, v in scenario.check(as_list).items()}
    assert _without_seconds(out.metrics["checks"]) == _without_seconds(checks)
    main_end_ns = int(cfg.time_limit_s * 1e9)
    listed = M.summarise(as_list.history, as_list.faults, main_end_ns)
    assert {k: out.metrics[k] for k in listed} == listed
    assert _without_seconds(out.metrics["figures"]) == _without_seconds(scenario.figures(as_list))


def test_the_linearizability_checker_still_fails_a_columnar_history():
    """A stale read recorded in a History is caught, with the message the list of dicts gets."""
    events = _events([("invoke", 0, "write", ("x", 1)), ("ok", 0, "write", ("x", 1)),
                      ("invoke", 0, "write", ("x", 2)), ("ok", 0, "write", ("x", 2)),
                      ("invoke", 1, "read", ("x", None)), ("ok", 1, "read", ("x", 1))])
    got, want = check_kv(History(events, dicts_up_to=0)), check_kv(events)
    assert got.valid is False and got.message == want.message


def test_a_run_held_in_columns_alone_has_the_same_digest_and_history_bytes(tmp_path, monkeypatch):
    """A seeded raft run under faults whose History drops its dicts (at once, or part-way) gives the
    digest and history.jsonl bytes of the run that keeps them."""
    import simulator.workload.history as H
    from simulator.pipeline.runner import run_to_folder

    options = {"time_limit_s": 3.0, "nemesis": "partition-random-halves,crash", "nemesis_interval_s": 1.0}
    cfg = build_config(get_scenario("raft"), seed=3, options=options)
    got = {}
    for limit in (H.DICTS_UP_TO, 0, 1000):
        monkeypatch.setattr(H, "DICTS_UP_TO", limit)
        outcome, _, _ = run_to_folder(cfg, tmp_path / str(limit), plots=False)
        assert (outcome.run.history.dicts is None) == (limit < len(outcome.run.history))
        got[limit] = (outcome.digest, (tmp_path / str(limit) / "history.jsonl").read_bytes(), outcome.valid)
    assert got[0] == got[1000] == got[H.DICTS_UP_TO]


def test_values_reads_one_type_and_function_from_the_columns():
    """History.values gives the values of the events of one type and function, in order, and nothing for an unknown f."""
    h = History(dicts_up_to=0)
    for i, (t, f, v) in enumerate([(0, "read", None), (0, "write", 1), (1, "read", "a"), (2, "write", "x"),
                                   (0, "read", None), (1, "read", "b")]):
        h.add(i, t, i % 2, f, v)
    assert list(h.values("ok", "read")) == ["a", "b"]
    assert list(h.values("fail", "write")) == ["x"]
    assert list(h.values("ok", "cas")) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(EVENT, max_size=40), st.sets(st.sampled_from(("read", "write", "cas", "nope")), max_size=3))
def test_only_and_values_select_as_a_filter_over_the_dicts(raw, fs):
    """``only(fs)`` is the events whose f is in ``fs``, in order, with their whole-history index; when every
    completion carries its invoke's f (as the workload records them) it pairs its operations as the
    whole history pairs them; ``values`` is a filter on type and f."""
    events = _events(raw)
    well_formed = all(d is None or d["f"] == i["f"] for i, d in pairs(events))
    for dicts_up_to in (None, 0):
        h = History(events, dicts_up_to=dicts_up_to)
        sub = h.only(sorted(fs))
        assert sub == [e for e in events if e["f"] in fs]
        if well_formed:
            assert pairs(sub) == [[i, d] for i, d in pairs(events) if i["f"] in fs]
        for t in ("invoke", "ok"):
            for f in ("read", "nope"):
                assert list(h.values(t, f)) == [e["value"] for e in events if e["type"] == t and e["f"] == f]


def test_pairs_of_a_long_history_build_only_the_rows_they_need():
    """Pairs over a columns-only history give the same pairs as the list of dicts, including operations
    that end far after they start and operations that never end."""
    events = []
    for i in range(70_000):
        events.append({"index": len(events), "time": i, "type": "invoke", "process": i, "f": "read", "value": i})
        if i % 3 == 0:
            events.append({"index": len(events), "time": i, "type": "ok", "process": i, "f": "read", "value": i})
    for i in range(1, 70_000, 3):  # late completions, long after their chunk
        events.append({"index": len(events), "time": 10**6 + i, "type": "info", "process": i, "f": "read",
                       "value": None})
    h = History(events, dicts_up_to=0)
    assert list(pairs(h)) == pairs(events)



def test_a_history_expecting_more_than_dicts_up_to_keeps_no_dicts_and_reads_the_same():
    """A history told to expect more than dicts_up_to events builds no dicts, and reads, pairs and
    hashes as one that built them; told no more, it keeps them."""
    kept, dropped, few = History(dicts_up_to=10), History(dicts_up_to=10), History(dicts_up_to=10)
    dropped.expect(11)
    few.expect(10)
    for h in (kept, dropped, few):
        for i in range(8):
            h.add(i, i % 2, i // 2, "read", [i])
    assert dropped.dicts is None and len(kept.dicts) == len(few.dicts) == 8
    assert list(dropped) == list(kept) and list(pairs(dropped)) == list(pairs(kept))
    assert dropped.digest_into(hashlib.sha256()).digest() == kept.digest_into(hashlib.sha256()).digest()


def test_a_long_open_loop_run_keeps_no_history_dicts():
    """The workload tells its history how many events an open-loop run makes (two an operation):
    a run expected past DICTS_UP_TO builds none, a short one keeps them."""
    from simulator.engine.kernel import Simulation
    from simulator.workload.clients import Workload

    for rate, keeps in ((100.0, True), (1e6, False)):
        w = Workload(Simulation(1), ["c1"], lambda rng: ("read", None), op_timeout_ns=10**9, rate=rate)
        w.start(10**9)
        assert (w.history.dicts is not None) is keeps


def test_pairing_in_chunks_matches_pairs_of_the_list_whatever_the_chunk_borders():
    """Events flushed a few at a time (repeated invokes, stray completions, process ids past 32 bits)
    pair exactly as pairs() pairs the list of dicts one by one."""
    import random

    rng = random.Random(5)
    for _ in range(200):
        events = [{"index": i, "time": i, "type": rng.choice(["invoke", "invoke", "ok", "info", "fail"]),
                   "process": rng.randrange(8) * rng.choice([1, 10**12]), "f": "r", "value": i}
                  for i in range(rng.randrange(1, 200))]
        h, step = History(dicts_up_to=0), rng.choice([1, 3, 17, 1000])
        for lo in range(0, len(events), step):
            for e in events[lo:lo + step]:
                h.add(e["time"], ["invoke", "ok", "fail", "info"].index(e["type"]), e["process"], "r", e["value"])
            h.flush()
        index = [[a["index"], b and b["index"]] for a, b in pairs(h)]
        assert index == [[a["index"], b and b["index"]] for a, b in pairs(list(events))]


WIDE_INT = st.one_of(st.integers(-(2 ** 63) + 1, 2 ** 63 - 1),
                     st.sampled_from((0, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 45, -(2 ** 60))))


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(WIDE_INT, st.sampled_from(("invoke", "ok", "fail", "info")), WIDE_INT,
                          st.sampled_from(("read", "é", 7, ("f", 1))),
                          st.one_of(st.none(), WIDE_INT, st.text(max_size=4), st.binary(max_size=300),
                                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))),
                max_size=30))
def test_the_digest_lays_out_the_marshal_bytes_of_any_ints_names_and_values(raw):
    """The columns' digest (no dicts built) equals marshal's bytes for times and processes of any
    int64 (32-bit or not, negative), functions of any marshallable kind and values of any size,
    across chunk borders and when a chunk of wide values is split."""
    import simulator.workload.history as H

    events = [{"index": i, "time": t, "type": ty, "process": p, "f": f, "value": v}
              for i, (t, ty, p, f, v) in enumerate(raw)]
    want = hashlib.sha256(marshal.dumps(events, 2)).hexdigest()
    old = H.ROWS_PER_CHUNK, H._CELLS_AT_ONCE
    try:
        for rows, cells in ((old[0], old[1]), (4, 600)):
            H.ROWS_PER_CHUNK, H._CELLS_AT_ONCE = rows, cells
            assert History(events, dicts_up_to=0).digest_into(hashlib.sha256()).hexdigest() == want
    finally:
        H.ROWS_PER_CHUNK, H._CELLS_AT_ONCE = old
