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
Elections and roles live here; log replication, commitment and snapshots in
:mod:`scenarios.raft.replication`; reads and their confirmation in :mod:`scenarios.raft.reads`.
"""

from __future__ import annotations

import math
from typing import Any

from simulator import Node

from .durable import DurableLog
from .log import KV, RaftLog
from .messages import (
    AppendEntries,
    AppendEntriesReply,
    ClientRequest,
    Command,
    Entry,
    InstallSnapshot,
    InstallSnapshotReply,
    RequestVote,
    RequestVoteReply,
)
from .reads import ReadsMixin
from .replication import CANDIDATE, FOLLOWER, LEADER, ReplicationMixin

RESET_EVERY_MS = 10.0


def election_timeout_ms(opts: dict) -> tuple[float, float]:
    """(low, high) of the randomized election timeout: ``election_timeout_range`` ("150-300") wins."""
    rng = str(opts.get("election_timeout_range") or "").strip()
    if rng:
        lo, _, hi = rng.partition("-")
        return float(lo), float(hi or lo)
    return float(opts["election_timeout_min_ms"]), float(opts["election_timeout_max_ms"])


class RaftNode(ReadsMixin, ReplicationMixin, Node):
    """One Raft server. ``opts`` is the scenario's parameter dict; ``bug`` a planted bug or None."""

    def __init__(self, node_id: str, peers: list[str], opts: dict[str, Any], bug: str | None = None):
        self.id = node_id
        self.peers = [p for p in peers if p != node_id]
        self.majority = (len(self.peers) + 1) // 2 + 1
        self.o = opts
        self.bug = bug
        self.timeout_ms = election_timeout_ms(opts)
        self.heartbeat_ms = float(opts["heartbeat_ms"]) or self.timeout_ms[0] / 2
        self.timeout_step_ms = float(opts.get("election_timeout_step_ms") or 0.0)
        self.vote_request_delay_ms = float(opts.get("vote_request_delay_ms") or 0.0)
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
        self.dlog: DurableLog | None = None  # the log's durable twin, from on_start
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
        self.dlog = DurableLog(st)
        self.log.entries = self.dlog.entries(self.log.snap_index)
        self.durable_index = self.log.last_index
        # The first timeout after a boot is drawn from (low, low + high): servers booted together
        # must not keep timing out together (with low == high they would split every vote forever).
        lo, hi = self.timeout_ms
        self.last_reset = ctx.now
        ctx.set_timer("election", self.draw_timeout(ctx, (lo, lo + hi)))

    def persist_state(self, ctx) -> None:
        st = ctx.storage
        self.dirty = True
        st.put("term", self.term, sync=False)
        if self.bug != "no-persist-vote":
            st.put("vote", self.voted_for, sync=False)

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
        ctx.set_timer("election", self.draw_timeout(ctx, self.timeout_ms))

    def draw_timeout(self, ctx, bounds: tuple[float, float]):
        """The election timer's delay: the (low, high) range as is, or with ``election_timeout_step_ms``
        a value drawn uniformly and rounded to the nearest step, half up. LogCabin draws whole
        milliseconds (``setElectionTimer`` takes ``Core::Random::randomRange``, which rounds a uniform
        double with ``lround``), so with a 150-155 ms range six values remain and two servers pick the
        same one often enough to time out within microseconds of each other."""
        step = self.timeout_step_ms
        if not step:
            return bounds
        lo, hi = bounds
        # never zero: a step coarser than the range must not make a server time out at once, forever
        return step * max(1, math.floor((lo + (hi - lo) * ctx.rng.random()) / step + 0.5))

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
            if self.o["vote_write_overlap"]:
                self.start_overlapped(ctx)
                return
            self.persist_state(ctx)
            self.sync(ctx)
            ctx.record("vote", term=self.term, candidate=self.id)
            term = self.term
        self.reset_election_timer(ctx)
        self.ask_votes(ctx, term, pre_vote, self.peers)
        ctx.set_timer("vote_retry", self.heartbeat_ms)
        if len(self.votes) >= self.majority:  # a one-server cluster: its own vote is a majority
            if pre_vote:
                self.start_election(ctx, pre_vote=False)
            else:
                self.become_leader(ctx)

    def start_overlapped(self, ctx) -> None:
        """Ask for votes while the candidate's own term and vote are being written (thesis §9.3:
        the write "can be overlapped with the RequestVote messages"). The candidate counts its own
        vote only once it is durable: it mails itself the vote after the sync, so the reply leaves
        when the fsync is done and dies with the candidate if it crashes first."""
        self.votes = set()
        ctx.record("vote", term=self.term, candidate=self.id)
        self.reset_election_timer(ctx)
        if self.vote_request_delay_ms:  # a what-if (README, Figure 16): the window in which votes split
            ctx.set_timer("ask_votes", self.vote_request_delay_ms)
        else:
            self.ask_votes(ctx, self.term, False, self.peers)  # sent before the sync: they leave now
        self.persist_state(ctx)
        self.sync(ctx)
        ctx.send(self.id, RequestVoteReply(self.term, self.id, True))
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
        if self.o["leader_write_overlap"]:
            # the first heartbeat leaves before the no-op is durable, as when the leader writes its
            # disk in parallel with replicating (thesis §10.2.1); the no-op follows at the flush
            self.broadcast(ctx, force=True)
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
        elif name == "ask_votes":
            if self.role == CANDIDATE:  # a newer term or a leader since would have made it a follower
                self.ask_votes(ctx, self.term, False, self.peers)
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
