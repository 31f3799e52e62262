"""twopc node handlers under a fake context: locks, resource managers, the 2PC TM, Paxos Commit."""

from __future__ import annotations

from dataclasses import replace

from scenarios.twopc import messages as m
from scenarios.twopc.faults import Traps
from scenarios.twopc.locks import AUDIT, TRANSFER, LockTable
from scenarios.twopc.paxos import PaxosCoordinator
from scenarios.twopc.rm_protocols import RmPaxos, RmTwoPhase
from scenarios.twopc.tm import TransactionManager
from scenarios.twopc.wiring import Wiring
from simulator.engine.testing import FakeContext

W = Wiring(protocol="2pc", rms=("rm1", "rm2", "rm3"), coordinators=("tm1",), f=0, accounts=30, initial_balance=100,
           lock_wait_timeout_ms=50, vote_timeout_ms=150, doubt_timeout_ms=300, doubt_retry_ms=150,
           recovery_timeout_ms=50, suspect_ms=2000, ack_delay_ms=10, cooperative=False, bug=None)
WP = replace(W, protocol="paxos-commit", coordinators=("tm1", "tm2", "tm3"), f=1)

# account 0 lives on rm1, 1 on rm2, 2 on rm3 (round-robin)
PARTS = (("rm1", ((0, -10),)), ("rm2", ((1, 10),)))


class FakeSim:
    """What a Traps object needs from a simulation."""

    def __init__(self):
        self.records, self.scheduled = [], []

    def record(self, node, kind, fields):
        self.records.append((node, kind, fields))

    def schedule(self, delay, fn, a=None, b=None):
        self.scheduled.append((fn, a))


def traps():
    return Traps(FakeSim())


def boot(node, node_id, **kw):
    ctx = FakeContext(node_id, **kw)
    node.on_start(ctx)
    return ctx


def types(sent):
    return [(dst, type(msg).__name__) for dst, msg in sent]


# ---- locks --------------------------------------------------------------------------------------
def test_transfers_on_disjoint_accounts_share_a_shard_but_not_an_account():
    """Two transfers on different accounts both lock at once; a third on a taken account waits."""
    lt = LockTable()
    assert lt.acquire(1, TRANSFER, (0,)) and lt.acquire(2, TRANSFER, (3,))
    assert not lt.acquire(3, TRANSFER, (0,))
    assert lt.release(1) == [3]


def test_audit_waits_for_transfers_and_later_transfers_queue_behind_it():
    """An audit's shard S lock waits for IX holders; a transfer arriving after it waits too (no starvation)."""
    lt = LockTable()
    assert lt.acquire(1, TRANSFER, (0,))
    assert not lt.acquire(2, AUDIT, ())
    assert not lt.acquire(3, TRANSFER, (6,))
    assert lt.release(1) == [2]
    assert lt.release(2) == [3]


# ---- resource manager ---------------------------------------------------------------------------
def test_initiating_rm_forces_its_prepare_record_before_voting():
    """On Begin the initiating RM locks, forces a prepare record and sends its yes vote to the TM."""
    rm = RmTwoPhase(W)
    ctx = boot(rm, "rm1")
    fsyncs = ctx.storage.fsyncs
    rm.on_message(ctx, "c1", m.Begin(7, "transfer", PARTS, "c1"))
    assert ctx.storage.get("p/7") is not None and ctx.storage.fsyncs == fsyncs + 1
    [(dst, vote)] = ctx.sent
    assert dst == "tm1" and type(vote) is m.Prepared and vote.initiator and vote.depth == 1
    assert ctx.records[-1]["kind"] == "prepared"


def test_overdraft_is_a_no_vote_answered_to_the_client():
    """A debit larger than the balance makes the initiating RM vote no and tell the client itself."""
    rm = RmTwoPhase(W)
    ctx = boot(rm, "rm1")
    rm.on_message(ctx, "c1", m.Begin(7, "transfer", (("rm1", ((0, -500),)), ("rm2", ((1, 500),))), "c1"))
    assert ctx.storage.get("p/7") is None
    [(dst, res)] = ctx.sent
    assert dst == "c1" and res == m.TxResult(7, False, m.VOTE_NO)


def test_lock_wait_times_out_into_a_no_vote():
    """A transaction waiting for a lock held by a prepared one votes no (lock-timeout) when its wait expires."""
    rm = RmTwoPhase(W)
    ctx = boot(rm, "rm2")
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    rm.on_message(ctx, "tm1", m.Prepare(8, "transfer", PARTS, "c1", "tm1", 2))
    assert types(ctx.take_sent()) == [("tm1", "Prepared")]
    ctx.advance(60)
    rm.on_timer(ctx, "tick")
    [(dst, no)] = ctx.take_sent()
    assert no == m.Aborted(8, "rm2", m.LOCK_TIMEOUT, 3)


def test_commit_applies_deltas_releases_locks_and_wakes_waiters():
    """Commit applies the deltas; the released lock goes to the waiting transaction, which then prepares."""
    rm = RmTwoPhase(W)
    ctx = boot(rm, "rm2")
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    rm.on_message(ctx, "tm1", m.Prepare(8, "transfer", PARTS, "c1", "tm1", 2))
    ctx.take_sent()
    rm.on_message(ctx, "tm1", m.Commit(7, 4))
    assert ctx.storage.get("a/1") == 110 and ctx.storage.get("p/7") is None
    assert [(d, type(x).__name__, x.tx) for d, x in ctx.take_sent()] == [("tm1", "Prepared", 8)]


def test_restarted_rm_stays_in_doubt_holding_locks_and_asks_the_tm():
    """After a crash a prepared transaction comes back in doubt, keeps its locks, and the RM asks the TM."""
    rm = RmTwoPhase(W)
    ctx = boot(rm, "rm2")
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    again = RmTwoPhase(W)  # the crash: a fresh node over the same storage
    ctx.sent.clear()
    again.on_start(ctx)
    assert again.locks.summary()["held"] == [7]
    again.on_timer(ctx, "tick")
    assert types(ctx.sent) == [("tm1", "QueryOutcome")]


def test_forget_prepared_bug_writes_no_prepare_record():
    """With forget-prepared the RM votes yes without a prepare record, so a restart forgets the transaction."""
    rm = RmTwoPhase(replace(W, bug="forget-prepared"))
    ctx = boot(rm, "rm2")
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    assert ctx.storage.get("p/7") is None and types(ctx.sent) == [("tm1", "Prepared")]


def test_early_unlock_bug_releases_locks_at_prepare():
    """With early-unlock a prepared transaction holds no locks, so a conflicting one prepares at once."""
    rm = RmTwoPhase(replace(W, bug="early-unlock"))
    ctx = boot(rm, "rm2")
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    rm.on_message(ctx, "tm1", m.Prepare(8, "transfer", PARTS, "c1", "tm1", 2))
    assert [x.tx for _, x in ctx.sent] == [7, 8]


def test_cooperative_peer_that_never_voted_aborts_durably():
    """Asked by an in-doubt peer about a transaction it never saw, an RM aborts it durably and says so."""
    rm = RmTwoPhase(replace(W, cooperative=True))
    ctx = boot(rm, "rm3")
    rm.on_message(ctx, "rm1", m.QueryPeer(7, "rm1"))
    assert ctx.storage.get("o/7") == "A"
    assert ctx.sent == [("rm1", m.PeerState(7, "rm3", "aborted"))]
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    assert type(ctx.sent[-1][1]) is m.Aborted


def test_two_phase_commit_acks_only_after_an_fsync():
    """A 2PC RM acknowledges applied commits in a batch, after forcing them to disk."""
    rm = RmTwoPhase(W)
    ctx = boot(rm, "rm2")
    rm.on_message(ctx, "tm1", m.Prepare(7, "transfer", PARTS, "c1", "tm1", 2))
    rm.on_message(ctx, "tm1", m.Commit(7, 4))
    ctx.sent.clear()
    fsyncs = ctx.storage.fsyncs
    ctx.advance(10)
    rm.on_timer(ctx, "tick")
    assert ctx.sent == [("tm1", m.Ack("rm2", (7,)))] and ctx.storage.fsyncs == fsyncs + 1


# ---- two-phase commit TM ------------------------------------------------------------------------
def test_tm_sends_prepare_to_the_others_without_logging():
    """On the initiating vote the TM sends Prepare to the other N-1 RMs and writes nothing (presumed abort)."""
    tm = TransactionManager(W, traps())
    ctx = boot(tm, "tm1")
    parts = PARTS + (("rm3", ((2, 0),)),)
    tm.on_message(ctx, "rm1", m.Prepared(7, "rm1", True, "transfer", parts, "c1", 0, 1))
    assert types(ctx.sent) == [("rm2", "Prepare"), ("rm3", "Prepare")]
    assert ctx.sent[0][1].depth == 2 and ctx.storage.fsyncs == 0


def test_tm_forces_the_commit_record_before_sending_commit():
    """With every vote in, the commit record is on disk when the Commits (depth 4) and the reply leave."""
    tm = TransactionManager(W, traps())
    ctx = boot(tm, "tm1")
    tm.on_message(ctx, "rm1", m.Prepared(7, "rm1", True, "transfer", PARTS, "c1", 0, 1))
    ctx.sent.clear()
    tm.on_message(ctx, "rm2", m.Prepared(7, "rm2", False, "transfer", PARTS, "c1", 0, 3))
    assert ctx.storage.get("c/7") == ("rm1", "rm2") and ctx.storage.fsyncs == 1
    assert ctx.sent == [("rm1", m.Commit(7, 4)), ("rm2", m.Commit(7, 4)), ("c1", m.TxResult(7, True, "", None))]


def test_tm_aborts_on_vote_timeout_and_presumes_abort_when_asked_later():
    """A missing vote aborts after vote_timeout_ms; a later question about it is answered Abort."""
    tm = TransactionManager(W, traps())
    ctx = boot(tm, "tm1")
    tm.on_message(ctx, "rm1", m.Prepared(7, "rm1", True, "transfer", PARTS, "c1", 0, 1))
    ctx.sent.clear()
    ctx.advance(151)
    tm.on_timer(ctx, "tick")
    assert types(ctx.take_sent()) == [("rm1", "Abort"), ("rm2", "Abort"), ("c1", "TxResult")]
    tm.on_message(ctx, "rm2", m.QueryOutcome(7, "rm2", "transfer", PARTS, "c1"))
    assert ctx.sent == [("rm2", m.Abort(7, m.FAILURE, 0))]


def test_restarted_tm_resends_logged_commits():
    """A TM restarting with commit records in its log sends Commit to their participants again."""
    tm = TransactionManager(W, traps())
    ctx = boot(tm, "tm1")
    ctx.storage.put("c/7", ("rm1", "rm2"))
    TransactionManager(W, traps()).on_start(ctx)
    assert ctx.sent == [("rm1", m.Commit(7, 0)), ("rm2", m.Commit(7, 0))]


def test_decide_before_log_bug_sends_commit_before_the_record_exists():
    """With decide-before-log a crash after the first Commit leaves no commit record (then presumed abort)."""
    tr = traps()
    tr.arm({"node": "any", "phase_at": "mid-decision"})
    tm = TransactionManager(replace(W, bug="decide-before-log"), tr)
    ctx = boot(tm, "tm1")
    tm.on_message(ctx, "rm1", m.Prepared(7, "rm1", True, "transfer", PARTS, "c1", 0, 1))
    ctx.sent.clear()
    tm.on_message(ctx, "rm2", m.Prepared(7, "rm2", False, "transfer", PARTS, "c1", 0, 3))
    assert ctx.sent == [("rm1", m.Commit(7, 4))] and ctx.storage.get("c/7") is None
    assert tr.sim.scheduled and tm.dead


def test_commit_on_timeout_bug_commits_without_every_vote():
    """With commit-on-timeout the TM commits a transaction whose votes did not all arrive."""
    tm = TransactionManager(replace(W, bug="commit-on-timeout"), traps())
    ctx = boot(tm, "tm1")
    tm.on_message(ctx, "rm1", m.Prepared(7, "rm1", True, "transfer", PARTS, "c1", 0, 1))
    ctx.sent.clear()
    ctx.advance(151)
    tm.on_timer(ctx, "tick")
    assert types(ctx.sent) == [("rm1", "Commit"), ("rm2", "Commit"), ("c1", "TxResult")]


# ---- Paxos Commit -------------------------------------------------------------------------------
def test_paxos_initiator_bundles_begin_commit_with_its_vote():
    """The initiating RM sends BeginCommit to the leader and its ballot-0 2a to the F other acceptors."""
    rm = RmPaxos(WP)
    ctx = boot(rm, "rm1")
    rm.on_message(ctx, "c1", m.Begin(7, "transfer", PARTS, "c1"))
    assert types(ctx.sent) == [("tm1", "BeginCommit"), ("tm2", "Phase2a")]
    assert ctx.records[-1]["sent"] == 2


def test_paxos_leader_commits_once_f_plus_one_acceptors_accepted_every_instance():
    """The leader commits when its own acceptor's bundle and one more (F+1 = 2) cover every RM, at depth 5."""
    lead = PaxosCoordinator("tm1", WP, traps())
    ctx = boot(lead, "tm1")
    lead.on_message(ctx, "rm1", m.BeginCommit(7, "rm1", "transfer", PARTS, "c1", 0, 1))
    assert types(ctx.take_sent()) == [("rm2", "Prepare")]
    lead.on_message(ctx, "rm2", m.Phase2a(7, 0, (("rm2", m.PREPARED, 0),), PARTS, "tm1", 3))
    assert ctx.storage.get("x/7") is not None and ctx.sent == []  # own bundle: written, handed over locally
    votes = (("rm1", m.PREPARED, 0), ("rm2", m.PREPARED, 0))
    lead.on_message(ctx, "tm2", m.Phase2b(7, "tm2", 0, votes, 4))
    assert ctx.sent == [("rm1", m.Commit(7, 5)), ("rm2", m.Commit(7, 5)), ("c1", m.TxResult(7, True, "", None))]


def test_paxos_acceptor_bundles_one_write_and_one_2b_per_transaction():
    """A non-leader acceptor writes once and sends one 2b only when every instance's vote is in."""
    acc = PaxosCoordinator("tm2", WP, traps())
    ctx = boot(acc, "tm2")
    acc.on_message(ctx, "rm1", m.Phase2a(7, 0, (("rm1", m.PREPARED, 0),), PARTS, "tm1", 1))
    assert ctx.sent == [] and ctx.storage.fsyncs == 0
    acc.on_message(ctx, "rm2", m.Phase2a(7, 0, (("rm2", m.PREPARED, 0),), PARTS, "tm1", 3))
    assert ctx.storage.fsyncs == 1
    assert ctx.sent == [("tm1", m.Phase2b(7, "tm2", 0, (("rm1", m.PREPARED, 0), ("rm2", m.PREPARED, 0)), 4))]


def test_paxos_recovery_leader_chooses_aborted_for_free_instances():
    """A coordinator asked about an unknown transaction runs phase 1 with a higher ballot and proposes
    "aborted" for instances no acceptor accepted, keeping the accepted "prepared" ones."""
    rec = PaxosCoordinator("tm2", WP, traps())
    ctx = boot(rec, "tm2")
    rec.on_message(ctx, "rm1", m.Phase2a(7, 0, (("rm1", m.PREPARED, 0),), PARTS, "tm1", 1))
    rec.on_message(ctx, "rm1", m.QueryOutcome(7, "rm1", "transfer", PARTS, "c1"))
    sent = ctx.take_sent()
    assert types(sent) == [("tm1", "Phase1a"), ("tm3", "Phase1a")] and sent[0][1].bal == 4
    rec.on_message(ctx, "tm3", m.Phase1b(7, "tm3", 4, ()))
    twoa = ctx.take_sent()
    assert twoa[0][1].votes == (("rm1", m.PREPARED, 0), ("rm2", m.ABORTED, m.FAILURE))
    rec.on_message(ctx, "tm3", m.Phase2b(7, "tm3", 4, twoa[0][1].votes, 0))
    assert [(d, type(x).__name__) for d, x in ctx.sent] == [("rm1", "Abort"), ("rm2", "Abort"), ("c1", "TxResult")]


def test_paxos_acceptor_ignores_ballot_zero_after_a_higher_promise():
    """Once an acceptor promised a recovery ballot, an RM's late ballot-0 vote is not accepted."""
    acc = PaxosCoordinator("tm3", WP, traps())
    ctx = boot(acc, "tm3")
    acc.on_message(ctx, "tm2", m.Phase1a(7, 4, "tm2"))
    ctx.sent.clear()
    acc.on_message(ctx, "rm1", m.Phase2a(7, 0, (("rm1", m.PREPARED, 0),), PARTS, "tm1", 1))
    acc.on_message(ctx, "rm2", m.Phase2a(7, 0, (("rm2", m.PREPARED, 0),), PARTS, "tm1", 3))
    assert ctx.sent == [] and ctx.storage.get("x/7") == (4, ())
