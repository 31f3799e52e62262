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
from pathlib import Path
from typing import Any, Iterable

import numpy as np

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


def write_jsonl(path: str | Path, ops: Iterable[dict]) -> None:
    with open(path, "w") as fh:
        for op in ops:
            fh.write(json.dumps(_jsonable(op), separators=(",", ":")))
            fh.write("\n")


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
    for op in history:
        if op["type"] == "invoke":
            pair = [op, None]
            open_by_process[op["process"]] = pair
            out.append(pair)
        else:
            pair = open_by_process.pop(op["process"], None)
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
