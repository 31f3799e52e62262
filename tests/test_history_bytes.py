"""history.jsonl (and faults.jsonl) bytes: the orjson writer writes exactly what the json writer did."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.runner import run_to_folder
from simulator.workload.history import _jsonable, write_jsonl

# sha256 of history.jsonl and faults.jsonl written by the json writer (commit 1c64600, before orjson),
# produced with `dsim run queue --seed 7 --time-limit 5 --no-plots` and `dsim run raft --seed 3
# --time-limit 3 --nemesis partition-random-halves,crash --nemesis-interval 1 --no-plots`.
BEFORE = {
    "queue": ({"time_limit_s": 5.0}, "0071472de4df1949e6a583dda13dafa3cba4036dc592c6d081893d15ca717dcc",
              "6c5f968b07fb1025e63e74a509379e1ba212e156d558df2b08e28b78991258dd"),
    "raft": ({"time_limit_s": 3.0, "nemesis": "partition-random-halves,crash", "nemesis_interval_s": 1.0},
             "96f57afbbf0e4be0f3f637c572a4a2c178c08fb3c9c782bbdf763f92a3d740cc",
             "33ad42e7b1d1146c830347979988c752a4926d37436de1f84ef75a6818a7914a"),
}
SEEDS = {"queue": 7, "raft": 3}


def _reference(ops) -> bytes:
    """The writer as it was: json.dumps of the _jsonable value, compact, one line each."""
    return b"".join(json.dumps(_jsonable(op), separators=(",", ":")).encode() + b"\n" for op in ops)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_seeded_runs_write_the_same_history_and_faults_bytes_as_the_json_writer(tmp_path):
    """A seeded queue run and a seeded raft run under faults write history.jsonl and faults.jsonl
    byte for byte as the json writer did (hashes recorded before the change)."""
    for name, (options, history_sha, faults_sha) in BEFORE.items():
        cfg = build_config(registry.get(name), seed=SEEDS[name], options=options)
        folder = tmp_path / name
        outcome, _, _ = run_to_folder(cfg, folder, plots=False)
        assert (folder / "history.jsonl").read_bytes() == _reference(outcome.run.history)
        assert _sha(folder / "history.jsonl") == history_sha, name
        assert _sha(folder / "faults.jsonl") == faults_sha, name


def _check(tmp_path, ops):
    path = tmp_path / "h.jsonl"
    write_jsonl(path, ops)
    assert path.read_bytes() == _reference(ops)


def test_values_where_orjson_and_json_differ_are_written_as_json_wrote_them(tmp_path):
    """Small and huge floats, NaN, infinities, non-ASCII, DEL, control characters, numpy float32,
    int dict keys, ints past 64 bits and '},{' inside strings are all written as json wrote them."""
    values = [1e-05, 2.5e-07, 1e16, 1e22, -0.0, 0.1, math.nan, math.inf, -math.inf, [None, math.nan],
              {"x": None, "y": [1, {"z": math.inf}]}, "caf\u00e9", "\u2028", "del\x7f", "a\x01\x1f\n\t\"\\/",
              np.float32(0.1), np.float64(1e-7), np.array([0.5, 1e-9]), np.int64(-3), np.arange(3),
              {1: "one", 2: (3, 4)}, 2**70, -(2**64), "},{", ["},{", {"a": "},{"}], True, None, (1, ("a",)),
              [np.bool_(True)], {"": ""}]
    ops = [{"index": i, "time": i * 7, "type": "ok", "process": i % 3, "f": "x", "value": v}
           for i, v in enumerate(values)]
    _check(tmp_path, ops)
    for op in ops:  # and each alone, where the whole-chunk path sees it with nothing else
        _check(tmp_path, [op])


def test_plain_histories_take_the_fast_path_with_the_same_bytes(tmp_path):
    """Histories of ints, strings, None, lists and dicts (every shipped design's) give the json bytes."""
    ops = [{"index": i, "time": i * 1_000_003, "type": ("invoke", "ok")[i % 2], "process": i % 5, "f": "write",
            "value": [f"k{i % 10}", i] if i % 3 else {"from": i, "to": [i + 1], "cause": None}}
           for i in range(2_000)]
    _check(tmp_path, ops)
    _check(tmp_path, [])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_any_json_value_is_written_as_json_wrote_it(tmp_path_factory, values):
    """For any mix of JSON-like values (with NaN, infinities, big ints, int keys, any text) the bytes
    are the json writer's."""
    ops = [{"index": i, "time": i, "type": "invoke", "process": 0, "f": "f", "value": v} for i, v in enumerate(values)]
    _check(tmp_path_factory.mktemp("h"), ops)


def test_trace_lines_are_what_json_dumps_wrote():
    """trace.jsonl lines (built without json.dumps) equal json.dumps of the event, for ints, big ints,
    names, non-ASCII text, quotes and other values given as their str."""
    import io

    from simulator.engine.kernel import Simulation

    out = io.StringIO()
    sim = Simulation(1, trace_file=out)
    events = [("deliver", ("n1", "n2", "Ping")), ("log", ("n1", 'caf\u00e9 "q" \\ \x7f\n')),
              ("odd", (2**70, -5, 3.5, None, ("t", 1))), ("none", ())]
    for kind, fields in events:
        sim.trace_event(kind, *fields)
    want = "".join(json.dumps({"time_ns": 0, "event": kind,
                               "args": [f if type(f) is int else str(f) for f in fields]}) + "\n"
                   for kind, fields in events)
    assert out.getvalue() == want


def _workload_history(generate, server_reply):
    """A short open-loop run whose one server answers every request with ``server_reply(value)``."""
    from simulator.engine.dists import Dist
    from simulator.engine.kernel import Simulation
    from simulator.engine.node import ClientNode, Node
    from simulator.workload.clients import Workload

    class Server(Node):
        def on_message(self, ctx, src, msg):
            ctx.send(src, (msg[0], server_reply(msg[1])))

    class Client(ClientNode):
        def on_invoke(self, ctx, op):
            ctx.send("s", (op.id, op.value))

        def on_message(self, ctx, src, msg):
            ctx.complete(msg[0], "ok", msg[1])

    sim = Simulation(5, latency=Dist.parse("exponential:1"))
    sim.add_node("s", Server)
    sim.add_node("c1", Client, is_client=True)
    wl = Workload(sim, ["c1"], generate, op_timeout_ns=50_000_000, rate=200.0)
    sim.run(0)
    wl.start(200_000_000)
    sim.run(300_000_000)
    return wl


def test_a_workload_vouches_only_for_immutable_plain_values(tmp_path):
    """The workload vouches for ints, strings, None and tuples of them (the writer then skips its
    scan, same bytes); a float, a list or a numpy value anywhere withdraws the vouch."""
    from simulator.workload import history as H

    plain = _workload_history(lambda rng: ("write", ("k1", int(rng.integers(9)), None)), lambda v: v)
    assert plain.values_plain and H._vouched(plain.history) and len(plain.history) > 20
    write_jsonl(tmp_path / "h.jsonl", plain.history)
    assert (tmp_path / "h.jsonl").read_bytes() == _reference(plain.history)
    for reply in (lambda v: 0.5, lambda v: [v[1]], lambda v: np.int64(3), lambda v: ("k", (1, 1e300))):
        wl = _workload_history(lambda rng: ("write", ("k1", 2)), reply)
        assert not wl.values_plain and not H._vouched(wl.history)
        write_jsonl(tmp_path / "h.jsonl", wl.history)
        assert (tmp_path / "h.jsonl").read_bytes() == _reference(wl.history)


def test_a_vouch_covers_only_the_workloads_own_history_list(tmp_path):
    """A copy of a vouched history, or the history of a workload that is gone, is scanned as any list."""
    from simulator.workload import history as H

    wl = _workload_history(lambda rng: ("write", 1), lambda v: v)
    assert H._vouched(wl.history) and not H._vouched(list(wl.history))
    history = wl.history
    del wl
    import gc
    gc.collect()
    assert not H._vouched(history)
