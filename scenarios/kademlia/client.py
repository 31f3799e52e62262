"""The client: asks a random node to run a find, put or get for it, and asks another on silence."""

from __future__ import annotations

from simulator import ClientNode

from .ids import key_id
from .node import ClientDone, ClientFind, ClientGet, ClientPut


class KadClient(ClientNode):
    """Sends each operation to a node drawn uniformly from ``n1..n<nodes>``; after ``retry_ms``
    without an answer (the node may have left) it asks another. The workload's op timeout ends it."""

    def __init__(self, nodes: int, retry_ms: float, id_bits: int):
        self.nodes = nodes
        self.id_bits = id_bits
        self.retry_ms = retry_ms
        self.ops: dict[int, object] = {}

    def on_invoke(self, ctx, op) -> None:
        self.ops[op.id] = op
        self._send(ctx, op)

    def _send(self, ctx, op) -> None:
        dst = f"n{int(ctx.rng.integers(1, self.nodes + 1))}"
        if op.f == "find":  # the target travels in the history as hex: ids pass 64 bits
            msg = ClientFind(op.id, int(op.value, 16))
        elif op.f == "get":
            msg = ClientGet(op.id, key_id(op.value, self.id_bits))
        else:
            msg = ClientPut(op.id, key_id(op.value[0], self.id_bits), op.value[1])
        ctx.send(dst, msg)
        ctx.set_timer(f"o{op.id}", self.retry_ms)

    def on_timer(self, ctx, name: str) -> None:
        op = self.ops.get(int(name[1:]))
        if op is not None:
            self._send(ctx, op)

    def on_message(self, ctx, src: str, msg) -> None:
        if type(msg) is not ClientDone:
            return
        op = self.ops.get(msg.op)
        if op is None:
            return
        if msg.ok is None:  # that node has not joined yet
            self._send(ctx, op)
            return
        del self.ops[msg.op]
        ctx.cancel_timer(f"o{msg.op}")
        if op.f == "get":
            value = (op.value, msg.value)
        elif op.f == "put":
            value = op.value
        else:
            value = (op.value, msg.value)
        ctx.complete(msg.op, "ok" if msg.ok else "fail", value)
