"""Reads that skip the log (§8 of the Raft paper, and §6.4 of Ongaro's thesis).

``read-index``: the leader notes its commit index as the read's index (waiting until an entry of
its own term is committed, so the index covers everything committed before it led), then starts a
round: AppendEntries to every follower with a new ``seq``. Once a majority (counting itself) has
answered that round, nobody else can have been leader when the read arrived; the read is answered
from the state machine as soon as its index is applied. Reads arriving while a round is in flight
wait for the next one, so one round serves many reads (batching).

``lease``: a majority answering a round the leader sent at local time ``t`` means no other leader
can be elected before ``t + election_timeout_min`` (followers ignore votes that soon after hearing
from a leader, §6). The leader answers reads locally until ``t + lease_ms`` on its *local* clock,
with ``lease_ms`` a little below the minimum election timeout. A clock that jumps backwards
stretches the lease past that bound: the stale reads the checker then finds are the point.

Planted bug ``stale-read``: the leader answers every read at once from its own state machine,
never asking whether it still leads.
"""

from __future__ import annotations

from .messages import ClientReply, Command


class ReadsMixin:
    def init_reads(self) -> None:
        self.seq = 0
        self.acked_seq: dict[str, int] = {}
        self.acked_at: dict[str, int | None] = {}
        self.heard_from: dict[str, int] = {}
        self.reads_waiting: list[list] = []  # [read_index or None, need_seq, cmd]
        self.round_seq = 0
        self.want_round = False
        self.lease_until: int | None = None

    def start_reads(self, ctx) -> None:
        """Fresh read state for a new term of leadership."""
        self.init_reads()
        now = ctx.now
        self.heard_from = {p: now for p in self.peers}  # CheckQuorum gives a new leader a full timeout
        self.acked_seq = {p: 0 for p in self.peers}
        self.acked_at = {p: None for p in self.peers}

    def read(self, ctx, cmd: Command) -> None:
        if self.bug == "stale-read":
            ctx.send(cmd.client, ClientReply(cmd.op_id, "ok", (cmd.key, self.kv.state.get(cmd.key))))
            return
        own_term = self.log.term_at(self.commit) == self.term
        if (self.o["read_mode"] == "lease" and own_term and self.lease_until is not None
                and ctx.now < self.lease_until):
            if self.applied >= self.commit:
                ctx.send(cmd.client, ClientReply(cmd.op_id, "ok", (cmd.key, self.kv.state.get(cmd.key))))
            else:
                self.reads_waiting.append([self.commit, 0, cmd])
            return
        self.reads_waiting.append([self.commit if own_term else None, self.seq + 1, cmd])
        self.want_round = True
        self.maybe_start_round(ctx)

    def majority_seq(self) -> int:
        acked = sorted([self.seq, *self.acked_seq.values()], reverse=True)
        return acked[self.majority - 1]

    def maybe_start_round(self, ctx) -> None:
        if not self.want_round or (self.round_seq and self.majority_seq() < self.round_seq):
            return
        self.want_round = False
        self.seq += 1
        self.round_seq = self.seq
        self.broadcast(ctx, force=True)
        if not self.peers:  # a one-server cluster is its own majority: the round is answered already
            self.release_reads(ctx)

    def note_ack(self, ctx, p: str, seq: int, sent_at: int) -> None:
        """A follower answered an AppendEntries or InstallSnapshot of this term."""
        self.heard_from[p] = ctx.now
        if seq > self.acked_seq.get(p, 0):
            self.acked_seq[p] = seq
        prev = self.acked_at.get(p)
        if prev is None or sent_at > prev:
            self.acked_at[p] = sent_at
        if self.o["read_mode"] == "lease":
            times = sorted([ctx.now, *(t if t is not None else -1 for t in self.acked_at.values())], reverse=True)
            base = times[self.majority - 1]
            if base >= 0:
                until = base + int(float(self.o["lease_ms"]) * 1e6)
                if self.lease_until is None or until > self.lease_until:
                    self.lease_until = until
        if self.reads_waiting:
            self.release_reads(ctx)
        if self.want_round:
            self.maybe_start_round(ctx)

    def reads_applied(self, ctx) -> None:
        if self.reads_waiting and self.role == "leader":
            self.release_reads(ctx)

    def release_reads(self, ctx) -> None:
        maj = self.majority_seq()
        own_term = self.log.term_at(self.commit) == self.term
        keep = []
        state = self.kv.state
        for r in self.reads_waiting:
            if r[0] is None and own_term:
                r[0] = self.commit
            if r[0] is not None and r[1] <= maj and self.applied >= r[0]:
                cmd = r[2]
                ctx.send(cmd.client, ClientReply(cmd.op_id, "ok", (cmd.key, state.get(cmd.key))))
            else:
                keep.append(r)
        self.reads_waiting = keep

    def abandon_reads(self, ctx) -> None:
        """No longer leader: send waiting reads elsewhere (reads are safe to retry)."""
        for r in self.reads_waiting:
            ctx.send(r[2].client, ClientReply(r[2].op_id, "redirect", None, None))
        self.reads_waiting = []
        self.lease_until = None
