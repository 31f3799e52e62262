"""A Raft server (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm", 2014).

The algorithm, by the paper's sections:

- §5.2 Leader election. A follower that hears nothing from a leader for a randomized election
  timeout becomes a candidate: it increments its term, votes for itself (durably) and asks every
  peer with RequestVote. A majority of votes makes it leader; a message with a higher term turns
  anyone back into a follower. A candidate re-sends RequestVote every heartbeat to peers that have
  not granted it (messages get lost).
- §5.4.1 Election restriction. A vote goes only to a candidate whose log is at least as up to
  date (higher last term, or equal last term and at least as long).
- §5.3 Log replication. The leader appends client commands to its log and sends AppendEntries
  carrying the entries after ``next_index`` and the (index, term) of the one before; a follower
  accepts only if it holds that entry (the consistency check), deleting conflicting suffixes. On a
  rejection the follower says where its log diverges (conflict term and its first index), so the
  leader backs off a whole term at a time (the "fast back-off" the paper sketches at the end of
  §5.3).
- §5.4.2 Commitment. The leader commits an index once a majority stores it *and* the entry there
  is from its current term; earlier entries commit with it (Figure 8 shows why counting replicas of
  older-term entries is wrong: planted bug ``commit-old-term``). A new leader appends a no-op (§8).
- §5.6 / Figure 2 persistence. Current term, vote and log entries go to ``ctx.storage`` and are
  synced before the node answers; the runtime charges fsync latency to the replies. The leader
  groups client requests arriving within ``batch_ms`` into one fsync, and sends AppendEntries at
  these flush ticks (batching): at most one in flight per follower, the next batch at the next
  tick after its reply (at once when the follower is far behind or being repaired); heartbeats
  resend whatever is missing.
- §6 Disruptive servers. A follower that heard from a leader within the minimum election timeout
  ignores RequestVote. Optional PreVote (Ongaro's thesis §9.6) asks for votes without bumping terms
  first; optional CheckQuorum makes a leader step down when it has not heard from a majority for
  an election timeout.
- §7 Log compaction. Every ``snapshot_every`` applied entries a node snapshots its state machine
  and drops its log prefix; a follower too far behind gets InstallSnapshot.
- §8 Client interaction. Non-leaders redirect clients to the leader they know. The state machine
  keeps a session per client process, so a retried write runs at most once. Reads: ``log`` puts
  them through the log; ``read-index`` records the commit index, confirms leadership with a round
  of heartbeats answered by a majority, and answers once that index is applied; ``lease`` answers
  at once while the leader's lease (a majority answered a heartbeat sent less than
  ``lease_ms`` ago on its local clock) runs, which is safe only while clocks behave.

Simplifications: no membership changes (§6 joint consensus) and no leadership transfer; a snapshot
travels in one message; the network may lose, delay and reorder but not corrupt messages.
Reads and their confirmation live in :mod:`scenarios.raft.reads`.
"""

from __future__ import annotations

from typing import Any

from simulator.node import Node

from .log import KV, RaftLog
from .messages import (AppendEntries, AppendEntriesReply, ClientReply, ClientRequest, Command, Entry,
                       InstallSnapshot, InstallSnapshotReply, RequestVote, RequestVoteReply)
from .reads import ReadsMixin

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
RESET_EVERY_MS = 10.0
CHECKPOINT_MASK = 15  # nodes record their apply chain at multiples of 16; a leader also at each commit


def election_timeout_ms(opts: dict) -> tuple[float, float]:
    """(low, high) of the randomized election timeout: ``election_timeout_range`` ("150-300") wins."""
    rng = str(opts.get("election_timeout_range") or "").strip()
    if rng:
        lo, _, hi = rng.partition("-")
        return float(lo), float(hi or lo)
    return float(opts["election_timeout_min_ms"]), float(opts["election_timeout_max_ms"])


class RaftNode(ReadsMixin, Node):
    """One Raft server. ``opts`` is the scenario's parameter dict; ``bug`` a planted bug or None."""

    def __init__(self, node_id: str, peers: list[str], opts: dict[str, Any], bug: str | None = None):
        self.id = node_id
        self.peers = [p for p in peers if p != node_id]
        self.majority = (len(self.peers) + 1) // 2 + 1
        self.o = opts
        self.bug = bug
        self.timeout_ms = election_timeout_ms(opts)
        self.heartbeat_ms = float(opts["heartbeat_ms"]) or self.timeout_ms[0] / 2
        # Figure 16's control: the leader sends these followers heartbeats only, never entries
        self.lagging = set(sorted(self.peers, key=lambda n: (len(n), n))[len(self.peers) - int(opts["lagging_followers"]):]) \
            if int(opts["lagging_followers"]) else set()
        self.follows_term = 0
        self.snapshot_every = int(opts["snapshot_every"])
        self.batch_ms = float(opts["batch_ms"])
        self.batch_entries = int(opts["batch_entries"])
        self.role = FOLLOWER
        self.term = 0
        self.voted_for: str | None = None
        self.log = RaftLog()
        self.kv = KV()
        self.commit = 0
        self.applied = 0
        self.leader: str | None = None
        self.last_leader_contact: int | None = None
        self.votes: set[str] = set()
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.inflight: dict[str, bool] = {}
        self.durable_index = 0  # leader: entries up to here are synced locally
        self.pending: dict[int, tuple[int, Command]] = {}  # index -> (term appended, command)
        self.prevoting = False
        self.last_reset = -(1 << 62)
        self.reset_every_ns = int(min(RESET_EVERY_MS, self.heartbeat_ms / 4) * 1e6)
        self.dirty = False  # storage writes not yet synced in this handler
        self._snapshot = ((), (), 0)
        self.init_reads()

    # ---- persistence ----------------------------------------------------------------------------
    def on_start(self, ctx) -> None:
        st = ctx.storage
        self.term = st.get("term", 0)
        self.voted_for = st.get("vote")
        snap = st.get("snap")
        if snap is not None:
            index, term, state, sessions, chain = snap
            self.log = RaftLog(index, term)
            self.kv = KV.restore(state, sessions, chain)
            self._snapshot = (state, sessions, chain)
            self.commit = self.applied = index
        last = st.get("last", self.log.snap_index)
        self.log.entries = [st.get(f"log/{i}") for i in range(self.log.snap_index + 1, last + 1)]
        self.durable_index = self.log.last_index
        # The first timeout after a boot is drawn from (low, low + high): servers booted together
        # must not keep timing out together (with low == high they would split every vote forever).
        lo, hi = self.timeout_ms
        self.last_reset = ctx.now
        ctx.set_timer("election", (lo, lo + hi))

    def persist_state(self, ctx) -> None:
        st = ctx.storage
        self.dirty = True
        st.put("term", self.term, sync=False)
        if self.bug != "no-persist-vote":
            st.put("vote", self.voted_for, sync=False)

    def persist_entries(self, ctx, lo: int, old_last: int) -> None:
        """Write entries ``lo ..`` and delete any stale ones past the new end (not synced yet)."""
        st = ctx.storage
        log = self.log
        self.dirty = True
        for i in range(lo, log.last_index + 1):
            st.put(f"log/{i}", log.at(i), sync=False)
        for i in range(log.last_index + 1, old_last + 1):
            st.delete(f"log/{i}", sync=False)
        st.put("last", log.last_index, sync=False)

    def sync(self, ctx) -> None:
        ctx.storage.sync()
        self.dirty = False

    # ---- roles ----------------------------------------------------------------------------------
    def reset_election_timer(self, ctx, throttle: bool = False) -> None:
        # Under load AppendEntries arrive every few ms; re-arming the timer for each would flood the
        # event heap with stale firings, so a leader's messages re-arm it at most every
        # RESET_EVERY_MS of local time (the timeout may end up to that much early; a clock that
        # jumps backwards re-arms at once).
        now = ctx.now
        if throttle and 0 <= now - self.last_reset < self.reset_every_ns:
            return
        self.last_reset = now
        ctx.set_timer("election", self.timeout_ms)

    def become_follower(self, ctx, term: int) -> None:
        was_leader = self.role == LEADER
        if term > self.term:
            self.term = term
            self.voted_for = None
            self.persist_state(ctx)
        self.role = FOLLOWER
        self.votes = set()
        if was_leader:
            ctx.record("step_down", term=self.term)
            ctx.cancel_timer("heartbeat")
            ctx.cancel_timer("quorum")
            ctx.cancel_timer("flush")
            if self.log.last_index > self.durable_index:  # gathered for the next fsync, never sent
                self.drop_pending_from(ctx, self.durable_index + 1)
                self.log.truncate_from(self.durable_index + 1)
            self.abandon_reads(ctx)
            self.reset_election_timer(ctx)

    def start_election(self, ctx, pre_vote: bool) -> None:
        self.leader = None
        self.votes = {self.id}
        if pre_vote:
            self.role = FOLLOWER
            self.prevoting = True
            term = self.term + 1
        else:
            self.prevoting = False
            self.role = CANDIDATE
            self.term += 1
            self.voted_for = self.id
            self.persist_state(ctx)
            self.sync(ctx)
            ctx.record("vote", term=self.term, candidate=self.id)
            term = self.term
        self.reset_election_timer(ctx)
        self.ask_votes(ctx, term, pre_vote, self.peers)
        ctx.set_timer("vote_retry", self.heartbeat_ms)

    def ask_votes(self, ctx, term: int, pre_vote: bool, peers) -> None:
        rv = RequestVote(term, self.id, self.log.last_index, self.log.last_term, pre_vote)
        for p in peers:
            ctx.send(p, rv)

    def become_leader(self, ctx) -> None:
        self.role = LEADER
        self.leader = self.id
        self.prevoting = False
        ctx.record("leader", term=self.term)
        ctx.cancel_timer("election")
        ctx.cancel_timer("vote_retry")
        last = self.durable_index = self.log.last_index  # a follower's log is synced before it answers
        self.next_index = {p: last + 1 for p in self.peers}
        self.match_index = {p: 0 for p in self.peers}
        self.inflight = {p: False for p in self.peers}
        self.acked_at = {p: None for p in self.peers}
        self.start_reads(ctx)
        self.log.append(Entry(self.term, None))  # §8: commit an entry of this term at once
        self.flush(ctx)
        ctx.set_timer("heartbeat", self.heartbeat_ms)
        if self.o["check_quorum"]:
            ctx.set_timer("quorum", self.timeout_ms[0])

    # ---- timers ---------------------------------------------------------------------------------
    def on_timer(self, ctx, name: str) -> None:
        self.timer(ctx, name)
        if self.dirty:
            self.sync(ctx)

    def timer(self, ctx, name: str) -> None:
        if name == "election":
            if self.role != LEADER:
                self.start_election(ctx, pre_vote=bool(self.o["pre_vote"]))
        elif name == "vote_retry":
            if self.role == CANDIDATE or self.prevoting:
                term = self.term if self.role == CANDIDATE else self.term + 1
                self.ask_votes(ctx, term, self.role != CANDIDATE, [p for p in self.peers if p not in self.votes])
                ctx.set_timer("vote_retry", self.heartbeat_ms)
        elif name == "heartbeat":
            if self.role == LEADER:
                self.broadcast(ctx, force=True)
                ctx.set_timer("heartbeat", self.heartbeat_ms)
        elif name == "flush":
            if self.role == LEADER:
                self.flush(ctx)
        elif name == "quorum":
            if self.role == LEADER:
                horizon = ctx.now - int(self.timeout_ms[0] * 1e6)
                heard = 1 + sum(1 for p in self.peers if self.heard_from.get(p, -1) >= horizon)
                if heard < self.majority:
                    self.become_follower(ctx, self.term)
                else:
                    ctx.set_timer("quorum", self.timeout_ms[0])

    # ---- messages -------------------------------------------------------------------------------
    def on_message(self, ctx, src: str, msg: Any) -> None:
        self.handle(ctx, src, msg)
        if self.dirty:
            self.sync(ctx)

    def handle(self, ctx, src: str, msg: Any) -> None:
        t = type(msg)
        if t is AppendEntries:
            self.on_append(ctx, msg)
        elif t is AppendEntriesReply:
            self.on_append_reply(ctx, msg)
        elif t is ClientRequest:
            self.on_client(ctx, src, msg)
        elif t is RequestVote:
            self.on_request_vote(ctx, msg)
        elif t is RequestVoteReply:
            self.on_vote(ctx, msg)
        elif t is InstallSnapshot:
            self.on_install_snapshot(ctx, msg)
        elif t is InstallSnapshotReply:
            self.on_install_snapshot_reply(ctx, msg)

    def on_request_vote(self, ctx, m: RequestVote) -> None:
        recent = (self.role == FOLLOWER and self.leader is not None and self.last_leader_contact is not None
                  and ctx.now - self.last_leader_contact < int(self.timeout_ms[0] * 1e6))
        up_to_date = (m.last_log_term, m.last_log_index) >= (self.log.last_term, self.log.last_index)
        if m.pre_vote:
            granted = m.term > self.term and up_to_date and not recent and self.role != LEADER
            ctx.send(m.candidate, RequestVoteReply(m.term if granted else self.term, self.id, granted, True))
            return
        if recent or m.term < self.term:
            ctx.send(m.candidate, RequestVoteReply(self.term, self.id, False))
            return
        if m.term > self.term:
            self.become_follower(ctx, m.term)
            self.leader = None
        granted = up_to_date and self.voted_for in (None, m.candidate)
        if granted:
            self.voted_for = m.candidate
            self.persist_state(ctx)
            self.reset_election_timer(ctx)
            ctx.record("vote", term=self.term, candidate=m.candidate)
        if self.dirty:
            self.sync(ctx)
        ctx.send(m.candidate, RequestVoteReply(self.term, self.id, granted))

    def on_vote(self, ctx, m: RequestVoteReply) -> None:
        if m.pre_vote:
            if self.prevoting and self.role == FOLLOWER and m.granted and m.term == self.term + 1:
                self.votes.add(m.voter)
                if len(self.votes) >= self.majority:
                    self.start_election(ctx, pre_vote=False)
            elif m.term > self.term:
                self.become_follower(ctx, m.term)
            return
        if m.term > self.term:
            self.become_follower(ctx, m.term)
            return
        if self.role == CANDIDATE and m.term == self.term and m.granted:
            self.votes.add(m.voter)
            if len(self.votes) >= self.majority:
                self.become_leader(ctx)

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
                put = ctx.storage.put
                for i, e in enumerate(entries, start=prev + 1):
                    put(f"log/{i}", e, sync=False)
                put("last", last + len(entries), sync=False)
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
        old_last = log.last_index
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
            self.persist_entries(ctx, first_new, old_last)
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
            old_last, old_snap = log.last_index, log.snap_index
            if log.term_at(m.last_index) == m.last_term:
                log.compact(m.last_index, m.last_term)  # keep the suffix we already have
            else:
                self.drop_pending_from(ctx, old_snap + 1)
                log.entries = []
                log.snap_index, log.snap_term = m.last_index, m.last_term
            self.kv = KV.restore(m.state, m.sessions, m.chain)
            self.commit = self.applied = m.last_index
            ctx.record("applied", hi=m.last_index, chain=m.chain, term=m.last_term)
            self.write_snapshot(ctx, old_snap, old_last)
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
            self.persist_entries(ctx, self.durable_index + 1, self.durable_index)
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

    def on_append_reply(self, ctx, m: AppendEntriesReply) -> None:
        if m.term > self.term:
            self.become_follower(ctx, m.term)
            return
        if self.role != LEADER or m.term != self.term:
            return
        p = m.follower
        self.note_ack(ctx, p, m.seq, m.sent_at)
        self.inflight[p] = False
        if m.success:
            if m.match_index > self.match_index[p]:
                self.match_index[p] = m.match_index
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
        if m.term > self.term:
            self.become_follower(ctx, m.term)
            return
        if self.role != LEADER or m.term != self.term:
            return
        p = m.follower
        self.note_ack(ctx, p, m.seq, m.sent_at)
        self.inflight[p] = False
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
        old_snap, old_last = log.snap_index, log.last_index
        log.compact(self.applied, log.term_at(self.applied))
        self.write_snapshot(ctx, old_snap, old_last)

    def write_snapshot(self, ctx, old_snap: int, old_last: int) -> None:
        """Store the state machine as of ``applied`` and drop the log keys it replaces."""
        log, st = self.log, ctx.storage
        self.dirty = True
        state, sessions, chain = self.kv.snapshot()
        self._snapshot = (state, sessions, chain)
        st.put("snap", (log.snap_index, log.snap_term, state, sessions, chain), sync=False)
        for i in range(old_snap + 1, min(old_last, log.snap_index) + 1):
            st.delete(f"log/{i}", sync=False)
        # a leader's entries past durable_index are still waiting for the batch fsync
        last = min(log.last_index, self.durable_index) if self.role == LEADER else log.last_index
        for i in range(max(log.snap_index, last) + 1, old_last + 1):
            st.delete(f"log/{i}", sync=False)
        st.put("last", max(last, log.snap_index), sync=False)
