"""The key-value client: finds the leader, follows redirects, retries on silence.

Each client endpoint keeps a guess of the leader, one for reads and one for writes (as a client
library with a read connection and a write connection does: a write failing over does not move
reads that are being answered). A request goes to the guess; ``redirect`` sends
it to the named leader (or, with no hint, to another server after a short pause); ``dropped`` (the
log entry holding it was overwritten) sends it again the same way. A request unanswered for
``client_retry_ms`` goes to another server (one ``tick`` timer per client, armed for the earliest
moment some request is due, instead of a timer per request). Retried copies are safe: the state
machine runs a write at most once per (process, op id). Retrying stops once the workload's per-operation timeout has passed
(the operation is then ``info``: it may or may not have happened).
"""

from __future__ import annotations

from simulator import ClientNode

from .messages import ClientReply, ClientRequest

NO_LEADER_PAUSE_MS = 10.0


class RaftClient(ClientNode):
    def __init__(self, client_id: str, servers: list[str], retry_ms: float, op_timeout_ms: float):
        self.servers = list(servers)
        first = self.servers[(int(client_id.lstrip("c") or 1) - 1) % len(self.servers)]
        self.guess = {"read": first, "write": first}
        self.retry_ns = int(retry_ms * 1e6)
        self.tick_at: int | None = None  # when the tick timer fires (local ns), None: not set
        self.op_timeout_ns = int(op_timeout_ms * 1e6)
        # op id -> [operation, node last tried, give-up time ns, resend-at time ns, next target or None]
        self.ops: dict[int, list] = {}

    @staticmethod
    def kind(op) -> str:
        return "read" if op.f == "read" else "write"

    def on_invoke(self, ctx, op) -> None:
        node = self.guess[self.kind(op)]
        self.ops[op.id] = [op, node, ctx.now + self.op_timeout_ns, 0, None]
        self.send(ctx, op.id, node)
        self.arm(ctx, ctx.now + self.retry_ns)

    def send(self, ctx, op_id: int, node: str) -> None:
        entry = self.ops[op_id]
        op = entry[0]
        entry[1] = node
        entry[3] = ctx.now + self.retry_ns
        entry[4] = None
        key, arg = op.value
        ctx.send(node, ClientRequest(op.id, op.process, op.f, key, arg))

    def arm(self, ctx, at: int) -> None:
        """Have the tick fire by local time ``at`` ns (no change if it fires earlier already)."""
        if self.tick_at is None or at < self.tick_at:
            self.tick_at = at
            ctx.set_timer("tick", max(0, at - ctx.now) / 1e6)

    def other(self, ctx, not_this: str) -> str:
        choices = [s for s in self.servers if s != not_this]
        if not choices:  # a one-server cluster: the only server is the one to try again
            return not_this
        return choices[int(ctx.rng.integers(len(choices)))]

    def on_message(self, ctx, src: str, msg: ClientReply) -> None:
        entry = self.ops.get(msg.op_id)
        if entry is None:
            return
        kind = self.kind(entry[0])
        if msg.status in ("ok", "fail"):
            del self.ops[msg.op_id]
            self.guess[kind] = src
            op = entry[0]
            ctx.complete(op.id, msg.status, msg.value if msg.status == "ok" else op.value)
            return
        if msg.leader is not None and msg.leader != src:
            self.guess[kind] = msg.leader
            self.send(ctx, msg.op_id, msg.leader)
            self.arm(ctx, entry[3])
        else:  # nobody known to lead: try another server after a pause
            entry[4] = self.guess[kind] = self.other(ctx, src)
            entry[3] = ctx.now + int(NO_LEADER_PAUSE_MS * 1e6)
            self.arm(ctx, entry[3])

    def on_timer(self, ctx, name: str) -> None:
        now = ctx.now
        self.tick_at = None
        for op_id in sorted(self.ops):
            entry = self.ops[op_id]
            if now >= entry[2]:
                del self.ops[op_id]  # the workload has recorded it info
            elif now >= entry[3]:
                target = entry[4] or self.other(ctx, entry[1])
                self.guess[self.kind(entry[0])] = target
                self.send(ctx, op_id, target)
        if self.ops:  # next: the earliest re-send, or the earliest give-up (to forget the entry)
            self.arm(ctx, min(min(e[2], e[3]) for e in self.ops.values()))
