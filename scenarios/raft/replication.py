"""Log replication, commitment, applying and snapshots: the half of a Raft server that moves entries.

Follower side (§5.3): AppendEntries with the consistency check, deleting a conflicting suffix,
persisting new entries before answering, and the conflict hint (term and its first index) that
lets the leader back off a term at a time; InstallSnapshot (§7). Leader side: client requests are
appended and grouped into one fsync per ``batch_ms`` (batching), AppendEntries leave at those
flush ticks with at most one in flight per follower; commitment counts replicas of current-term
entries only (§5.4.2; bug ``commit-old-term`` counts any). Applying answers the client that asked,
checking that the entry at the index is still its own (bug ``ack-by-index`` does not).
Mixed into :class:`scenarios.raft.node.RaftNode`, which owns elections and the state used here.
"""

from __future__ import annotations

from .log import KV
from .messages import (
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    Command,
    Entry,
    InstallSnapshot,
    InstallSnapshotReply,
)

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
CHECKPOINT_MASK = 15  # nodes record their apply chain at multiples of 16; a leader also at each commit


class ReplicationMixin:
    def persist_entries(self, ctx, lo: int) -> None:
        """Write entries ``lo ..`` in place of any durable ones from ``lo`` on (not synced yet)."""
        self.dirty = True
        self.dlog.write(lo, self.log.slice(lo, self.log.last_index + 1))

    # ---- replication: follower side -------------------------------------------------------------
    def heard_leader(self, ctx, leader: str) -> None:
        if self.term > self.follows_term:  # the first word from this term's leader
            self.follows_term = self.term
            ctx.record("follow", term=self.term, leader=leader)
        self.leader = leader
        self.last_leader_contact = ctx.now
        self.prevoting = False
        self.reset_election_timer(ctx, throttle=True)

    def on_append(self, ctx, m: AppendEntries) -> None:
        if m.term < self.term:
            ctx.send(m.leader, AppendEntriesReply(self.term, self.id, False, 0, 0, None, m.seq, m.sent_at))
            return
        if m.term > self.term or self.role != FOLLOWER:
            self.become_follower(ctx, m.term)
        self.heard_leader(ctx, m.leader)
        log = self.log
        prev, entries = m.prev_index, m.entries
        mine = log.entries
        last = log.snap_index + len(mine)
        if prev == last and (mine[-1].term if mine else log.snap_term) == m.prev_term:
            # the common case: the entries go right after our last one
            if entries:
                mine.extend(entries)
                self.dlog.write(prev + 1, entries)
                self.sync(ctx)
            match = prev + len(entries)
            if m.leader_commit > self.commit:
                self.advance_commit(ctx, min(m.leader_commit, match))
            ctx.send(m.leader, AppendEntriesReply(self.term, self.id, True, match, match, None, m.seq, m.sent_at))
            return
        if prev < log.snap_index:  # the start is already in our snapshot: committed, so it matches
            skip = log.snap_index - prev
            entries = entries[skip:]
            prev = log.snap_index
            prev_term = log.snap_term
        else:
            prev_term = m.prev_term
        if prev > log.last_index:
            self.reply_append(ctx, m, False, log.last_index + 1, None)
            return
        have = log.term_at(prev)
        if have != prev_term:
            self.reply_append(ctx, m, False, log.first_index_of_term(have, prev), have)
            return
        first_new = None
        for k, e in enumerate(entries):
            i = prev + 1 + k
            if i <= log.last_index:
                if log.term_at(i) == e.term:
                    continue
                self.drop_pending_from(ctx, i)
                log.truncate_from(i)
            first_new = i
            log.entries.extend(entries[k:])
            break
        if first_new is not None:
            self.persist_entries(ctx, first_new)
        if self.dirty:
            self.sync(ctx)
        match = prev + len(entries)
        if m.leader_commit > self.commit:
            self.advance_commit(ctx, min(m.leader_commit, match))
        self.reply_append(ctx, m, True, match, None)

    def reply_append(self, ctx, m, success, index, conflict_term) -> None:
        ctx.send(m.leader, AppendEntriesReply(self.term, self.id, success, index if success else 0,
                                              index, conflict_term, m.seq, m.sent_at))

    def on_install_snapshot(self, ctx, m: InstallSnapshot) -> None:
        if m.term < self.term:
            ctx.send(m.leader, InstallSnapshotReply(self.term, self.id, 0, m.seq, m.sent_at))
            return
        if m.term > self.term or self.role != FOLLOWER:
            self.become_follower(ctx, m.term)
        self.heard_leader(ctx, m.leader)
        if m.last_index > self.commit:
            log = self.log
            old_snap = log.snap_index
            if log.term_at(m.last_index) == m.last_term:
                log.compact(m.last_index, m.last_term)  # keep the suffix we already have
            else:
                self.drop_pending_from(ctx, old_snap + 1)
                log.entries = []
                log.snap_index, log.snap_term = m.last_index, m.last_term
            self.kv = KV.restore(m.state, m.sessions, m.chain)
            self.commit = self.applied = m.last_index
            ctx.record("applied", hi=m.last_index, chain=m.chain, term=m.last_term)
            self.write_snapshot(ctx)
            self.sync(ctx)
        ctx.send(m.leader, InstallSnapshotReply(self.term, self.id, max(m.last_index, self.commit), m.seq, m.sent_at))

    # ---- replication: leader side ---------------------------------------------------------------
    def on_client(self, ctx, src: str, m: ClientRequest) -> None:
        if self.role != LEADER:
            ctx.send(src, ClientReply(m.op_id, "redirect", None, self.leader if self.leader != self.id else None))
            return
        cmd = Command(m.op_id, m.process, m.f, m.key, m.arg, src)
        if m.f == "read" and (self.o["read_mode"] != "log" or self.bug == "stale-read"):
            self.read(ctx, cmd)
            return
        index = self.log.append(Entry(self.term, cmd))
        self.pending[index] = (self.term, cmd)
        if not ctx.timer_set("flush"):
            ctx.set_timer("flush", self.batch_ms)

    def flush(self, ctx) -> None:
        """Make the new entries durable (one fsync for the batch) and send them."""
        if self.log.last_index > self.durable_index:
            self.persist_entries(ctx, self.durable_index + 1)
            self.sync(ctx)
            self.durable_index = self.log.last_index
        self.broadcast(ctx, force=False)
        self.maybe_commit(ctx)

    def broadcast(self, ctx, force: bool) -> None:
        for p in self.peers:
            if force or not self.inflight[p]:
                self.send_append(ctx, p)

    def send_append(self, ctx, p: str) -> None:
        log = self.log
        nxt = self.next_index[p]
        self.inflight[p] = True
        if nxt <= log.snap_index:
            state, sessions, chain = self.snapshot_data
            ctx.send(p, InstallSnapshot(self.term, self.id, log.snap_index, log.snap_term, state, sessions, chain,
                                        self.seq, ctx.now))
            return
        hi = min(self.durable_index + 1, nxt + self.batch_entries) if p not in self.lagging else nxt
        entries = log.slice(nxt, hi) if hi > nxt else ()
        ctx.send(p, AppendEntries(self.term, self.id, nxt - 1, log.term_at(nxt - 1), entries, self.commit,
                                  self.seq, ctx.now))

    def follower_answered(self, ctx, m) -> bool:
        """A follower's reply to this leader's current term: step down on a newer term; note the ack
        (for read-index and leases) and that nothing is in flight to it now. False: ignore it."""
        if m.term > self.term:
            self.become_follower(ctx, m.term)
            return False
        if self.role != LEADER or m.term != self.term:
            return False
        self.note_ack(ctx, m.follower, m.seq, m.sent_at)
        self.inflight[m.follower] = False
        return True

    def on_append_reply(self, ctx, m: AppendEntriesReply) -> None:
        if not self.follower_answered(ctx, m):
            return
        p = m.follower
        if m.success:
            if m.match_index > self.match_index[p]:
                self.match_index[p] = m.match_index
                if m.match_index > self.commit:  # otherwise this reply cannot move the commit index
                    self.maybe_commit(ctx)
            self.next_index[p] = max(self.next_index[p], m.match_index + 1)
        else:
            nxt = m.conflict_index
            if m.conflict_term is not None:
                last = self.log.last_index_of_term(m.conflict_term)
                if last is not None:
                    nxt = last + 1
            self.next_index[p] = max(1, min(nxt, self.log.last_index + 1, self.next_index[p]))
        if p in self.lagging:
            return
        if not m.success or self.durable_index - self.next_index[p] >= self.batch_entries:
            self.send_append(ctx, p)  # repairing or catching up: no reason to wait
        elif self.next_index[p] <= self.durable_index and not ctx.timer_set("flush"):
            ctx.set_timer("flush", self.batch_ms)  # the next batch goes at the flush tick

    def on_install_snapshot_reply(self, ctx, m: InstallSnapshotReply) -> None:
        if not self.follower_answered(ctx, m):
            return
        p = m.follower
        if m.last_index > self.match_index[p]:
            self.match_index[p] = m.last_index
            self.maybe_commit(ctx)
        self.next_index[p] = max(self.next_index[p], m.last_index + 1)
        if self.next_index[p] <= self.durable_index:
            self.send_append(ctx, p)

    def maybe_commit(self, ctx) -> None:
        """§5.4.2: commit the highest index a majority stores whose entry is from this term."""
        matches = sorted([self.durable_index, *self.match_index.values()], reverse=True)
        n = matches[self.majority - 1]
        if n <= self.commit:
            return
        if self.bug != "commit-old-term" and self.log.term_at(n) != self.term:
            return
        self.advance_commit(ctx, n)

    # ---- applying -------------------------------------------------------------------------------
    def advance_commit(self, ctx, index: int) -> None:
        if index <= self.commit:
            return
        self.commit = index
        kv, log = self.kv, self.log
        entries, base = log.entries, log.snap_index + 1
        apply, pending = kv.apply, self.pending
        for i in range(self.applied + 1, index + 1):
            entry = entries[i - base]
            result = apply(entry)
            if pending:
                self.answer(ctx, i, entry, result)
            if i & CHECKPOINT_MASK == 0:
                ctx.record("applied", hi=i, chain=kv.chain, term=entry.term)
        self.applied = index
        if self.role == LEADER and index & CHECKPOINT_MASK:
            ctx.record("applied", hi=index, chain=kv.chain, term=entries[index - base].term)
        if self.reads_waiting:
            self.reads_applied(ctx)
        if self.snapshot_every and index - log.snap_index >= self.snapshot_every:
            self.take_snapshot(ctx)

    def answer(self, ctx, index: int, entry: Entry, result) -> None:
        waiting = self.pending.pop(index, None)
        if waiting is None:
            return
        term, cmd = waiting
        if entry.term == term and entry.command is not None and entry.command.op_id == cmd.op_id:
            ctx.send(cmd.client, ClientReply(cmd.op_id, result[0], result[1]))
        elif self.bug == "ack-by-index":
            value = (cmd.key, self.kv.state.get(cmd.key)) if cmd.f == "read" else (cmd.key, cmd.arg)
            ctx.send(cmd.client, ClientReply(cmd.op_id, "ok", value))
        else:
            ctx.send(cmd.client, ClientReply(cmd.op_id, "dropped", None, self.leader))

    def drop_pending_from(self, ctx, index: int) -> None:
        """Entries from ``index`` on are being overwritten: their clients learn that copy is dead."""
        if not self.pending or self.bug == "ack-by-index":
            return
        for i in sorted(k for k in self.pending if k >= index):
            _, cmd = self.pending.pop(i)
            ctx.send(cmd.client, ClientReply(cmd.op_id, "dropped", None, self.leader))

    # ---- snapshots (§7) -------------------------------------------------------------------------
    @property
    def snapshot_data(self):
        return self._snapshot

    def take_snapshot(self, ctx) -> None:
        log = self.log
        log.compact(self.applied, log.term_at(self.applied))
        self.write_snapshot(ctx)

    def write_snapshot(self, ctx) -> None:
        """Store the state machine as of ``applied`` and drop the log keys it replaces."""
        log, st = self.log, ctx.storage
        self.dirty = True
        state, sessions, chain = self.kv.snapshot()
        self._snapshot = (state, sessions, chain)
        st.put("snap", (log.snap_index, log.snap_term, state, sessions, chain), sync=False)
        # durable entries past the log's end go (InstallSnapshot replaced the log); a leader's
        # entries past durable_index are still waiting for the batch fsync
        last = min(log.last_index, self.durable_index) if self.role == LEADER else log.last_index
        self.dlog.truncate(max(last, log.snap_index) + 1)
        self.dlog.compact(log.snap_index)
