"""The bank workload: transfers between accounts on different shards, Zipf-skewed, and audits.

A transfer moves ``amount`` from one account to each of ``transfer_legs - 1`` others, every
account on a different shard, so it has ``transfer_legs`` participants; the shard of the
debited account is the initiating RM. An audit sums every balance under shared locks on every
shard (its participants are all the shards, the initiating one rotating).

Accounts are drawn from a bounded Zipf law with exponent ``zipf_s`` (0 is uniform) over a fixed
random ranking, so the hot accounts sit on every shard. Draws are made in numpy batches from the
workload's stream.
"""

from __future__ import annotations

import numpy as np

from simulator import ClientNode

from . import messages as m

BATCH = 1024


class BankClient(ClientNode):
    """Sends each operation to its initiating RM and completes it from the TxResult."""

    def __init__(self, w):
        self.w = w
        self.ops: dict[int, object] = {}

    def on_invoke(self, ctx, op):
        w = self.w
        if op.f == "audit":
            s = len(w.rms)
            first = op.id % s
            parts = tuple((w.rms[(first + i) % s], ()) for i in range(s))
        else:
            value = op.value
            amount = value["amount"]
            src = value["from"]
            dsts = value["to"]
            rms = w.rms
            s = len(rms)
            parts = [(rms[src % s], ((src, -amount * len(dsts)),))]
            for d in dsts:
                parts.append((rms[d % s], ((d, amount),)))
            parts = tuple(parts)
        self.ops[op.id] = op.value
        ctx.send(parts[0][0], m.Begin(op.id, op.f, parts, ctx.id))

    def on_message(self, ctx, src, msg):
        if type(msg) is not m.TxResult:
            return
        value = self.ops.pop(msg.tx, None)
        if msg.committed:
            ctx.complete(msg.tx, "ok", msg.total if msg.total is not None else value)
        else:
            ctx.complete(msg.tx, "fail", {"cause": msg.cause})


class Generator:
    """``generate(rng) -> (f, value)`` for the workload, drawing in batches."""

    def __init__(self, accounts: int, shards: int, legs: int, zipf_s: float, audit_fraction: float,
                 max_amount: int, ranking: np.ndarray):
        self.accounts = accounts
        self.shards = shards
        self.legs = legs
        self.audit_fraction = audit_fraction
        self.max_amount = max_amount
        ranks = np.arange(1, accounts + 1, dtype=float)
        weights = ranks ** (-zipf_s) if zipf_s > 0 else np.ones(accounts)
        self.cdf = np.cumsum(weights) / weights.sum()
        self.ranking = ranking
        self.buf: list = []

    def _refill(self, rng) -> None:
        n = BATCH
        u = rng.random((n, self.legs))
        acc = self.ranking[np.minimum(np.searchsorted(self.cdf, u), self.accounts - 1)]
        kinds = rng.random(n)
        amounts = rng.integers(1, self.max_amount + 1, n)
        self.buf = list(zip(kinds.tolist(), acc.tolist(), amounts.tolist()))
        self.buf.reverse()

    def __call__(self, rng):
        if not self.buf:
            self._refill(rng)
        kind, accs, amount = self.buf.pop()
        if kind < self.audit_fraction:
            return "audit", None
        used = set()
        chosen = []
        for a in accs:  # one account per shard: move to the next account of an unused shard
            while a % self.shards in used:
                a = (a + 1) % self.accounts
            used.add(a % self.shards)
            chosen.append(a)
        return "transfer", {"from": chosen[0], "to": chosen[1:], "amount": amount}
