"""Operation histories (simulator.workload.history): pairing, JSON-lines round trip, EDN export."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.workload.history import pairs, read_jsonl, to_edn, write_jsonl


@dataclass(frozen=True)
class Point:
    x: int
    y: int


def sample():
    return [
        {"index": 0, "time": 1_200_000, "type": "invoke", "process": 3, "f": "write", "value": ("k1", 4)},
        {"index": 1, "time": 1_300_000, "type": "invoke", "process": 5, "f": "read", "value": None},
        {"index": 2, "time": 3_400_000, "type": "ok", "process": 3, "f": "write", "value": ("k1", 4)},
        {"index": 3, "time": 3_500_000, "type": "invoke", "process": 3, "f": "cas", "value": {"from": 1, "to": 2}},
        {"index": 4, "time": 9_000_000, "type": "info", "process": 3, "f": "cas", "value": {"from": 1, "to": 2}},
    ]


def test_pairs_matches_completions_to_invokes_by_process():
    """pairs() yields (invoke, completion) in invoke order, matching by process; an unended op pairs with None."""
    h = sample()
    got = [(inv["index"], None if comp is None else comp["index"]) for inv, comp in pairs(h)]
    assert got == [(0, 2), (1, None), (3, 4)]


def test_pairs_ignores_a_completion_without_an_invoke():
    """A stray completion with no open invoke on its process is skipped."""
    h = [{"index": 0, "time": 1, "type": "ok", "process": 9, "f": "w", "value": 1}]
    assert list(pairs(h)) == []


def test_jsonl_round_trip(tmp_path):
    """write_jsonl then read_jsonl gives the same operations, with tuples as lists and one object a line."""
    path = tmp_path / "history.jsonl"
    write_jsonl(path, sample())
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith('{"index":0,')
    back = read_jsonl(path)
    expect = sample()
    for op in expect:
        if isinstance(op["value"], tuple):
            op["value"] = list(op["value"])
    assert back == expect


def test_jsonl_converts_nested_tuples_and_keys(tmp_path):
    """Nested tuples become lists and dict keys become strings, so any history value can be written."""
    path = tmp_path / "h.jsonl"
    write_jsonl(path, [{"value": {1: (2, (3, 4)), "x": [(5,)]}}])
    assert read_jsonl(path) == [{"value": {"1": [2, [3, 4]], "x": [[5]]}}]


def test_read_jsonl_skips_blank_lines(tmp_path):
    """Blank lines in a history file are ignored."""
    path = tmp_path / "h.jsonl"
    path.write_text('{"index": 0}\n\n  \n{"index": 1}\n')
    assert read_jsonl(path) == [{"index": 0}, {"index": 1}]


def test_to_edn_shape():
    """to_edn writes one Jepsen-style EDN map a line, with keywords for type and f and EDN values."""
    out = to_edn(sample())
    lines = out.splitlines()
    assert out.endswith("\n") and len(lines) == 5
    assert lines[0] == '{:index 0, :time 1200000, :type :invoke, :process 3, :f :write, :value ["k1" 4]}'
    assert lines[1] == "{:index 1, :time 1300000, :type :invoke, :process 5, :f :read, :value nil}"
    assert lines[4] == '{:index 4, :time 9000000, :type :info, :process 3, :f :cas, :value {"from" 1, "to" 2}}'


def test_to_edn_values():
    """Booleans, floats, nested lists and other objects become EDN literals."""
    h = [{"index": 0, "time": 0, "type": "ok", "process": 0, "f": "x", "value": [True, False, 1.5, [None]]},
         {"index": 1, "time": 0, "type": "ok", "process": 0, "f": "x", "value": Point(1, 2)}]
    lines = to_edn(h).splitlines()
    assert lines[0].endswith(":value [true false 1.5 [nil]]}")
    assert lines[1].endswith(':value "Point(x=1, y=2)"}')


def test_numpy_values_are_written_to_jsonl_as_plain_json(tmp_path):
    """Operation values holding numpy scalars or arrays (drawn from the ops stream) are written as JSON numbers and lists."""
    h = [{"index": 0, "time": 0, "type": "invoke", "process": 0, "f": "write",
          "value": ("k", np.int64(3), np.float64(0.5), np.arange(2))}]
    path = tmp_path / "h.jsonl"
    write_jsonl(path, h)
    assert read_jsonl(path)[0]["value"] == ["k", 3, 0.5, [0, 1]]


def test_numpy_integers_are_edn_numbers():
    """to_edn writes a numpy integer in an operation value as an EDN number, not a string."""
    h = [{"index": 0, "time": 0, "type": "invoke", "process": 0, "f": "write", "value": ("k", np.int64(3))}]
    assert to_edn(h).rstrip().endswith(':value ["k" 3]}')
