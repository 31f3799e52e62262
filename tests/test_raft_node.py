"""Raft handlers, one at a time, with a fake context (no simulation)."""

from __future__ import annotations

from scenarios.raft.client import RaftClient
from scenarios.raft.durable import entries_after
from scenarios.raft.log import KV
from scenarios.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    Command,
    Entry,
    InstallSnapshot,
    RequestVote,
    RequestVoteReply,
)
from scenarios.raft.node import CANDIDATE, FOLLOWER, LEADER, RaftNode
from scenarios.raft.scenario import Raft
from simulator.engine.node import Operation
from simulator.engine.testing import FakeContext

PEERS = ["n1", "n2", "n3", "n4", "n5"]


def opts(**kw):
    o = {p.name: p.default for p in Raft.params}
    o.update(kw)
    return o


def started(node_id="n1", bug=None, ctx=None, **kw):
    ctx = ctx or FakeContext(node_id)
    node = RaftNode(node_id, PEERS, opts(**kw), bug)
    node.on_start(ctx)
    return node, ctx


def make_leader(**kw):
    """n1 elected in term 1 by n2 and n3; messages sent so far are discarded."""
    node, ctx = started(**kw)
    node.on_timer(ctx, "election")
    for voter in ("n2", "n3"):
        node.on_message(ctx, voter, RequestVoteReply(1, voter, True))
    assert node.role == LEADER
    ctx.take_sent()
    return node, ctx


def cmd(op_id, f="write", key="k", arg=1, client="c1", process=None):
    return Command(op_id, op_id if process is None else process, f, key, arg, client)


def test_election_timeout_makes_a_candidate_that_asks_every_peer():
    """On an election timeout a follower becomes candidate, votes for itself durably and asks every peer."""
    node, ctx = started()
    fsyncs = ctx.storage.fsyncs
    node.on_timer(ctx, "election")
    assert node.role == CANDIDATE and node.term == 1
    assert ctx.storage.get("term") == 1 and ctx.storage.get("vote") == "n1"
    assert ctx.storage.fsyncs > fsyncs
    sent = ctx.take_sent()
    assert sorted(dst for dst, _ in sent) == ["n2", "n3", "n4", "n5"]
    assert all(isinstance(m, RequestVote) and m.term == 1 and not m.pre_vote for _, m in sent)


def test_vote_is_durable_and_given_once_per_term():
    """A follower grants one vote per term, persists it before answering, and keeps it across a restart."""
    node, ctx = started("n2")
    node.on_message(ctx, "n1", RequestVote(3, "n1", 0, 0))
    assert ctx.take_sent() == [("n1", RequestVoteReply(3, "n2", True))]
    assert ctx.storage.get("vote") == "n1"
    reborn = RaftNode("n2", PEERS, opts(), None)  # a crash: a fresh object on the same storage
    reborn.on_start(ctx)
    reborn.on_message(ctx, "n3", RequestVote(3, "n3", 5, 2))
    assert ctx.take_sent() == [("n3", RequestVoteReply(3, "n2", False))]


def test_no_persist_vote_bug_votes_twice_after_restart():
    """With no-persist-vote, a restarted server forgets its vote and grants a second one in the same term."""
    node, ctx = started("n2", bug="no-persist-vote")
    node.on_message(ctx, "n1", RequestVote(3, "n1", 0, 0))
    reborn = RaftNode("n2", PEERS, opts(), "no-persist-vote")
    reborn.on_start(ctx)
    ctx.take_sent()
    reborn.on_message(ctx, "n3", RequestVote(3, "n3", 0, 0))
    assert ctx.take_sent() == [("n3", RequestVoteReply(3, "n2", True))]
    votes = [(r["term"], r["candidate"]) for r in ctx.records if r["kind"] == "vote"]
    assert votes == [(3, "n1"), (3, "n3")]


def test_vote_refused_to_a_candidate_with_an_older_log():
    """The election restriction: no vote for a candidate whose last term is older (§5.4.1)."""
    node, ctx = started("n2")
    node.on_message(ctx, "n1", AppendEntries(2, "n1", 0, 0, (Entry(2, None),), 0, 0, 0))
    ctx.advance(1000)  # long after the leader was heard from
    ctx.take_sent()
    node.on_message(ctx, "n3", RequestVote(3, "n3", 5, 1))
    assert ctx.take_sent() == [("n3", RequestVoteReply(3, "n2", False))]


def test_recent_leader_contact_ignores_votes():
    """A follower that heard from a leader within the minimum election timeout ignores RequestVote (§6)."""
    node, ctx = started("n2")
    node.on_message(ctx, "n1", AppendEntries(1, "n1", 0, 0, (), 0, 0, 0))
    ctx.take_sent()
    ctx.advance(10)
    node.on_message(ctx, "n3", RequestVote(5, "n3", 9, 9))
    assert node.term == 1 and ctx.take_sent() == [("n3", RequestVoteReply(1, "n2", False))]


def test_pre_vote_does_not_bump_the_term():
    """With PreVote an election timeout asks for pre-votes at term+1 without changing its own term."""
    node, ctx = started(pre_vote=True)
    node.on_timer(ctx, "election")
    assert node.term == 0 and node.role == FOLLOWER
    assert all(m.pre_vote and m.term == 1 for _, m in ctx.take_sent())
    for voter in ("n2", "n3"):
        node.on_message(ctx, voter, RequestVoteReply(1, voter, True, True))
    assert node.role == CANDIDATE and node.term == 1


def test_new_leader_appends_a_noop_and_replicates():
    """A candidate with a majority becomes leader, records it, and sends its no-op entry to every peer."""
    node, ctx = started()
    node.on_timer(ctx, "election")
    ctx.take_sent()
    for voter in ("n2", "n3"):
        node.on_message(ctx, voter, RequestVoteReply(1, voter, True))
    assert node.role == LEADER
    assert [r for r in ctx.records if r["kind"] == "leader"][0]["term"] == 1
    sent = ctx.take_sent()
    assert sorted(d for d, _ in sent) == ["n2", "n3", "n4", "n5"]
    assert all(m.entries == (Entry(1, None),) for _, m in sent)


def test_follower_rejects_a_gap_and_hints_where_to_resume():
    """AppendEntries whose previous entry is missing is refused with the follower's next index."""
    node, ctx = started("n2")
    node.on_message(ctx, "n1", AppendEntries(1, "n1", 4, 1, (Entry(1, None),), 0, 7, 0))
    (dst, reply), = ctx.take_sent()
    assert dst == "n1" and isinstance(reply, AppendEntriesReply)
    assert not reply.success and reply.conflict_index == 1 and reply.seq == 7


def test_follower_truncates_a_conflicting_suffix():
    """Entries that conflict with the leader's are deleted from memory and storage, the leader's kept."""
    node, ctx = started("n2")
    old = (Entry(1, None), Entry(1, cmd(1)), Entry(1, cmd(2)))
    node.on_message(ctx, "n1", AppendEntries(1, "n1", 0, 0, old, 0, 0, 0))
    node.on_message(ctx, "n3", AppendEntries(2, "n3", 1, 1, (Entry(2, cmd(9)),), 2, 0, 0))
    assert [e.term for e in node.log.entries] == [1, 2]
    assert ctx.storage.get("last") == 2
    assert entries_after(ctx.storage, 0) == [Entry(1, None), Entry(2, cmd(9))]
    assert node.commit == 2 and node.kv.state == {"k": 1}


def test_leader_commits_only_entries_of_its_term():
    """Figure 8: replicas of an older term's entry on a majority do not commit it; the bug commits it."""
    for bug, expect in ((None, 0), ("commit-old-term", 2)):
        node, ctx = started(bug=bug)
        node.on_message(ctx, "n2", AppendEntries(2, "n2", 0, 0, (Entry(1, None), Entry(2, cmd(1))), 0, 0, 0))
        ctx.advance(1000)
        node.on_timer(ctx, "election")  # term 3
        for voter in ("n3", "n4"):
            node.on_message(ctx, voter, RequestVoteReply(3, voter, True))
        assert node.role == LEADER and node.log.last_index == 3  # its no-op at index 3
        node.durable_index = 2  # the no-op is not synced yet: only the old entries count
        for f in ("n3", "n4"):
            node.on_message(ctx, f, AppendEntriesReply(3, f, True, 2, 2, None, 0, 0))
        assert node.commit == expect, bug


def test_client_is_redirected_to_the_leader():
    """A follower answers a client with a redirect naming the leader it knows."""
    node, ctx = started("n2")
    node.on_message(ctx, "n1", AppendEntries(1, "n1", 0, 0, (), 0, 0, 0))
    ctx.take_sent()
    node.on_message(ctx, "c1", ClientRequest(5, 0, "write", "k", 1))
    assert ctx.take_sent() == [("c1", ClientReply(5, "redirect", None, "n1"))]


def test_write_is_acknowledged_after_commit_and_batched():
    """Requests gathered in one batch cost one fsync and are answered once a majority stores them."""
    node, ctx = make_leader()
    for op in (1, 2):
        node.on_message(ctx, "c1", ClientRequest(op, op, "write", "k", op))
    assert ctx.timers["flush"] == opts()["batch_ms"]
    fsyncs = ctx.storage.fsyncs
    node.on_timer(ctx, "flush")
    assert ctx.storage.fsyncs == fsyncs + 1
    ctx.take_sent()
    for f in ("n2", "n3"):
        node.on_message(ctx, f, AppendEntriesReply(1, f, True, 3, 3, None, 0, 0))
    assert [m for d, m in ctx.take_sent() if d == "c1"] == [ClientReply(1, "ok", ("k", 1)), ClientReply(2, "ok", ("k", 2))]


def test_overwritten_request_is_dropped_not_acknowledged():
    """A deposed leader tells the client its entry was overwritten; with ack-by-index it says ok."""
    for bug, status in ((None, "dropped"), ("ack-by-index", "ok")):
        node, ctx = make_leader(bug=bug)
        node.on_message(ctx, "c1", ClientRequest(7, 7, "write", "k", 70))
        node.on_timer(ctx, "flush")  # index 2 holds the client's write, term 1
        ctx.take_sent()
        other = (Entry(2, None), Entry(2, cmd(8, arg=80, client="c2")))
        node.on_message(ctx, "n2", AppendEntries(2, "n2", 1, 1, other, 3, 0, 0))
        replies = [m for d, m in ctx.take_sent() if d == "c1"]
        assert [r.status for r in replies] == [status], bug
        assert node.kv.state == {"k": 80}


def test_stale_read_bug_answers_without_confirming():
    """With stale-read the leader answers a read at once; with read-index it first waits for a majority round."""
    node, ctx = make_leader(bug="stale-read")
    node.on_message(ctx, "c1", ClientRequest(3, 3, "read", "k", None))
    assert ctx.take_sent() == [("c1", ClientReply(3, "ok", ("k", None)))]
    node, ctx = make_leader(read_mode="read-index")
    node.on_timer(ctx, "flush")
    for f in ("n2", "n3"):
        node.on_message(ctx, f, AppendEntriesReply(1, f, True, 1, 1, None, 0, 0))  # the no-op commits
    ctx.take_sent()
    node.on_message(ctx, "c1", ClientRequest(3, 3, "read", "k", None))
    round_ = ctx.take_sent()
    assert round_ and all(isinstance(m, AppendEntries) and m.seq == 1 for _, m in round_)
    node.on_message(ctx, "n2", AppendEntriesReply(1, "n2", True, 1, 1, None, 1, 0))
    assert ctx.take_sent() == []  # one follower is not a majority
    node.on_message(ctx, "n3", AppendEntriesReply(1, "n3", True, 1, 1, None, 1, 0))
    assert ("c1", ClientReply(3, "ok", ("k", None))) in ctx.take_sent()


def test_lease_reads_are_local_until_the_lease_ends():
    """In lease mode a read is answered locally within lease_ms of a majority heartbeat, not after."""
    node, ctx = make_leader(read_mode="lease", lease_ms=100.0)
    node.on_timer(ctx, "flush")
    sent_at = ctx.now
    for f in ("n2", "n3"):
        node.on_message(ctx, f, AppendEntriesReply(1, f, True, 1, 1, None, 0, sent_at))
    ctx.take_sent()
    ctx.advance(50)
    node.on_message(ctx, "c1", ClientRequest(4, 4, "read", "k", None))
    assert ctx.take_sent() == [("c1", ClientReply(4, "ok", ("k", None)))]
    ctx.advance(60)
    node.on_message(ctx, "c1", ClientRequest(5, 5, "read", "k", None))
    assert all(isinstance(m, AppendEntries) for _, m in ctx.take_sent())  # a confirmation round instead


def test_install_snapshot_replaces_state():
    """A follower far behind installs the leader's snapshot: state, sessions and indices."""
    node, ctx = started("n2")
    kv = KV()
    kv.apply(Entry(1, cmd(1, arg=5)))
    state, sessions, chain = kv.snapshot()
    node.on_message(ctx, "n1", InstallSnapshot(1, "n1", 40, 1, state, sessions, chain, 0, 0))
    assert node.commit == node.applied == 40 and node.kv.state == {"k": 5}
    assert ctx.storage.get("snap")[0] == 40
    reborn = RaftNode("n2", PEERS, opts(), None)
    reborn.on_start(ctx)
    assert reborn.log.snap_index == 40 and reborn.kv.state == {"k": 5}


def test_session_table_runs_a_retried_write_once():
    """A write retried on another server is applied once; the copy gets the first result."""
    kv = KV()
    assert kv.apply(Entry(1, cmd(1, f="cas", arg=(None, 3)))) == ("ok", ("k", (None, 3)))
    assert kv.apply(Entry(1, cmd(1, f="cas", arg=(None, 3)))) == ("ok", ("k", (None, 3)))
    assert kv.state == {"k": 3}


def test_client_follows_redirects_and_retries_on_silence():
    """The client goes where a redirect points, and to another server when nobody answers."""
    client = RaftClient("c1", PEERS, retry_ms=200, op_timeout_ms=1000)
    ctx = FakeContext("c1")
    client.on_invoke(ctx, Operation(1, 0, "write", ("k", 1)))
    assert ctx.take_sent() == [("n1", ClientRequest(1, 0, "write", "k", 1))]
    client.on_message(ctx, "n1", ClientReply(1, "redirect", None, "n3"))
    assert ctx.take_sent() == [("n3", ClientRequest(1, 0, "write", "k", 1))]
    ctx.advance(250)
    client.on_timer(ctx, "tick")
    (dst, _), = ctx.take_sent()
    assert dst != "n3"
    client.on_message(ctx, dst, ClientReply(1, "ok", ("k", 1)))
    assert ctx.completed == [(1, "ok", ("k", 1))]


def test_client_tick_is_armed_for_the_earliest_due_request():
    """One timer per client, set for the first moment a request is due for re-sending, not a poll."""
    client = RaftClient("c1", PEERS, retry_ms=200, op_timeout_ms=1000)
    ctx = FakeContext("c1")
    client.on_invoke(ctx, Operation(1, 0, "write", ("k", 1)))
    assert ctx.timers["tick"] == 200
    ctx.advance(50)
    client.on_invoke(ctx, Operation(2, 1, "read", ("k", None)))
    assert ctx.timers["tick"] == 200  # still due at 200 ms for op 1; op 2 is due later
    client.on_message(ctx, "n1", ClientReply(2, "redirect", None, None))  # nobody leads: retry in 10 ms
    assert ctx.timers["tick"] == 10
    ctx.advance(10)
    ctx.take_sent()
    client.on_timer(ctx, "tick")
    assert [m.op_id for _, m in ctx.take_sent()] == [2]
    assert ctx.timers["tick"] == 140  # op 1 is due at 200 ms; now is 60 ms
    client.on_message(ctx, "n2", ClientReply(1, "ok", ("k", 1)))
    client.on_message(ctx, "n2", ClientReply(2, "ok", ("k", 1)))
    ctx.advance(140)
    client.on_timer(ctx, "tick")
    assert ctx.take_sent() == [] and not client.ops
