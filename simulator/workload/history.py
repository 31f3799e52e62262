"""Operation histories: the record of what clients asked and what they were told.

One JSON object a line, Jepsen's shape::

    {"index": 0, "time": 1200000, "type": "invoke", "process": 3, "f": "write", "value": ["k1", 4]}
    {"index": 1, "time": 3400000, "type": "ok",     "process": 3, "f": "write", "value": ["k1", 4]}

``time`` is true simulated time in integer ns. Each completion (``ok``, ``fail``: definitely did
not happen, ``info``: may or may not have happened) follows its invoke, and a process has at most
one operation outstanding; a process whose operation ended ``info`` is never used again.
"""

from __future__ import annotations

import json
import weakref
from itertools import chain, compress
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import orjson

TYPES = ("invoke", "ok", "fail", "info")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars from generate(rng) or handlers
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _line_slow(op: Any) -> bytes:
    """One line exactly as dsim has always written it (the reference the fast path must match)."""
    return json.dumps(_jsonable(op), separators=(",", ":")).encode()


# orjson writes what json.dumps writes for dicts, lists, tuples, ints, bools, None and ASCII strings
# (same compact separators, key order and escapes), and numpy integers and booleans as their .item().
# It differs on floats (1e-05 is "0.00001"; NaN and Infinity are null, which the output alone cannot
# tell from None), non-ASCII and DEL (json escapes them), numpy float32, non-string dict
# keys and ints past 64 bits (orjson refuses those two). A chunk holding any of these goes through
# json, line by line; a chunk of plain values is one orjson call.
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_LEAVES = frozenset({int, str, bool, type(None), np.bool_, np.int8, np.int16, np.int32, np.int64,
                     np.uint8, np.uint16, np.uint32, np.uint64})
_SEQUENCES = frozenset({list, tuple})
_DICT = frozenset({dict})
_PLAIN = _LEAVES | _SEQUENCES | _DICT
_CHUNK = 65_536


def _plain(values: list) -> bool:
    """True if ``values`` hold, at any depth, only dicts, lists, tuples, ints, bools, strings and None
    (what orjson and json write alike, strings' characters apart).

    One level at a time, with C-level iteration (map, chain, compress) rather than a Python call
    per value; a level's children are only gathered when it has containers."""
    level: Any = values
    types = set(map(type, level))
    while True:
        if types <= _LEAVES:
            return True
        if not types <= _PLAIN:
            return False
        if types == _DICT:
            # The children's types first, without building them: a history's dicts usually hold
            # only ints, strings and None, and then there is no next level to build.
            children_types = set(map(type, chain.from_iterable(map(dict.values, level))))
            if children_types <= _LEAVES or not children_types <= _PLAIN:
                types = children_types
                continue
            level = list(chain.from_iterable(map(dict.values, level)))
            types = children_types
            continue
        if types <= _SEQUENCES:
            level = list(chain.from_iterable(level))
        else:
            kinds = list(map(type, level))
            level = list(chain(chain.from_iterable(compress(level, map(_SEQUENCES.__contains__, kinds))),
                               chain.from_iterable(map(dict.values, compress(level, map(_DICT.__contains__, kinds))))))
        types = set(map(type, level))


_VOUCHED: list = [None]  # a weak reference to the last Workload (simulator.workload.clients)


def vouch(owner: Any) -> None:
    """Let the writer trust ``owner.history`` while ``owner.values_plain`` is true: the owner (the
    Workload) checked each entry as it was appended (dicts of its own making with an int time, str
    fields and immutable values made of None, ints, bools, strings and tuples), so the writer need
    not scan the values again. A weak reference: a finished run's workload is not kept alive."""
    _VOUCHED[0] = weakref.ref(owner)


def _vouched(ops: list) -> bool:
    ref = _VOUCHED[0]
    owner = ref() if ref is not None else None
    return owner is not None and owner.history is ops and owner.values_plain is True


def _ascii_text(out: bytes) -> bool:
    """No byte json would have escaped (non-ASCII, DEL)."""
    return out.isascii() and b"\x7f" not in out


def _one_by_one(ops: list) -> bytes:
    out = []
    for op in ops:
        line = None
        if _plain([op]):
            try:
                line = orjson.dumps(op, option=_OPTS)
            except TypeError:  # orjson.JSONEncodeError: a non-string key, a huge int
                line = None
        if line is None or not _ascii_text(line):
            line = _line_slow(op)
        out.append(line)
    out.append(b"")
    return b"\n".join(out)


def _chunk_lines(ops: list, vouched: bool = False) -> bytes:
    """``ops`` as JSON lines (each ending in a newline), byte for byte what _line_slow gives.

    The common case is one orjson call for the whole chunk, split into lines at the ``},{`` between
    top-level dicts; that split is only trusted when it made exactly ``len(ops) - 1`` lines (a
    ``},{`` inside a string or a nested value would make more). ``vouched``: the values are known
    plain (see vouch), so the scan of them is skipped."""
    if not ops:
        return b""
    if vouched or (_plain(ops) and set(map(type, ops)) == _DICT):
        try:
            body = orjson.dumps(ops, option=_OPTS)
        except TypeError:
            body = None
        if body is not None and _ascii_text(body):
            lines = body[1:-1].replace(b"},{", b"}\n{")
            # orjson writes no raw newline (JSON escapes them in strings), so each newline is a split
            if lines.count(b"\n") == len(ops) - 1:
                return lines + b"\n"
    return _one_by_one(ops)


def write_jsonl(path: str | Path, ops: Iterable[dict]) -> None:
    """One JSON object a line, compact (``{"index":0,"time":...}``), non-ASCII escaped as json does."""
    if not isinstance(ops, list):
        ops = list(ops)
    vouched = _vouched(ops)
    with open(path, "wb") as fh:
        for start in range(0, len(ops), _CHUNK):
            fh.write(_chunk_lines(ops[start:start + _CHUNK], vouched))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


_PAIRS_CACHE: list = [None, -1, None]  # (history list, its length, its pairs): one entry


def pairs(history: list[dict]) -> list[list]:
    """[invoke, completion] for every operation, in invoke order; completion None if it never ended.

    Metrics, checkers and figures all ask for the pairs of one finished history, so the last answer
    is kept (keyed by the list object and its length: a history is only ever appended to)."""
    cached, n, result = _PAIRS_CACHE
    if cached is history and n == len(history):
        return result
    open_by_process: dict[int, list] = {}
    out: list[list] = []
    append, close = out.append, open_by_process.pop
    for op in history:
        if op["type"] == "invoke":
            pair = [op, None]
            open_by_process[op["process"]] = pair
            append(pair)
        else:
            pair = close(op["process"], None)
            if pair is not None:
                pair[1] = op
    _PAIRS_CACHE[:] = [history, len(history), out]
    return out


def _edn(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_edn(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_edn(k)} {_edn(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def to_edn(history: list[dict]) -> str:
    """The history in Jepsen's EDN shape (one map a line), for Knossos or Elle to cross-check."""
    lines = []
    for op in history:
        lines.append("{:index %d, :time %d, :type :%s, :process %d, :f :%s, :value %s}" % (
            op["index"], op["time"], op["type"], op["process"], op["f"], _edn(op.get("value"))))
    return "\n".join(lines) + "\n"
