"""Test helpers: a fake context for exercising node handlers without a simulation.

    ctx = FakeContext("n1", now_ms=0)
    node = Follower(peers=["n2", "n3"])
    node.on_timer(ctx, "election")
    assert [type(m).__name__ for _, m in ctx.sent] == ["RequestVote", "RequestVote"]

``ctx.sent`` lists (dst, msg); ``ctx.timers`` maps a timer's name to the delay it was set with
(a range stays a range: the fake draws nothing); ``ctx.records``, ``ctx.tables`` (rows of
``record_row`` by kind) and ``ctx.completed`` collect observations and client completions;
``ctx.storage`` is a real :class:`Storage` whose fsyncs are counted. Advance time with
``ctx.advance(ms)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .storage import Storage


class FakeContext:
    def __init__(self, node_id: str = "n1", now_ms: float = 0.0, seed: int = 0):
        self.id = node_id
        self._now = int(now_ms * 1e6)
        self.rng = np.random.default_rng(seed)
        self.storage = Storage()
        self.sent: list[tuple[str, Any]] = []
        self.timers: dict[str, Any] = {}
        self.records: list[dict] = []
        self.tables: dict[str, list[tuple]] = {}
        self.logs: list[str] = []
        self.completed: list[tuple[int, str, Any]] = []
        self.incarnation = 0  # set it to test a node after a restart

    @property
    def now(self) -> int:
        return self._now

    @property
    def now_ms(self) -> float:
        return self._now / 1e6

    def advance(self, ms: float) -> None:
        self._now += int(ms * 1e6)

    def send(self, dst: str, msg: Any) -> None:
        self.sent.append((dst, msg))

    def set_timer(self, name: str, after_ms) -> None:
        self.timers[name] = after_ms

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)

    def timer_set(self, name: str) -> bool:
        return name in self.timers

    def record(self, kind: str, **fields: Any) -> None:
        self.records.append({"time_ns": self._now, "node": self.id, "kind": kind, **fields})

    def record_row(self, kind: str, row: tuple) -> None:
        self.tables.setdefault(kind, []).append((self._now, self.id) + row)

    def log(self, text: str) -> None:
        self.logs.append(str(text))

    def complete(self, op_id: int, type: str, value: Any = None) -> bool:
        if any(c[0] == op_id for c in self.completed):
            return False
        self.completed.append((op_id, type, value))
        return True

    def take_sent(self) -> list[tuple[str, Any]]:
        """The messages sent since the last call, and forget them."""
        out, self.sent = self.sent, []
        return out
