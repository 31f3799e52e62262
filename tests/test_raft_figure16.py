"""The Figure 16 experiment against the paper: the vs-paper table, a small trial of the experiment
file, and the LogCabin-specific parameters (off by default) that the experiment turns on."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from scenarios.raft import figure16
from scenarios.raft.messages import AppendEntries, RequestVote, RequestVoteReply
from scenarios.raft.node import CANDIDATE, LEADER, RaftNode
from scenarios.raft.scenario import Raft
from simulator.engine.storage import Storage
from simulator.engine.testing import FakeContext
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config, load_toml
from simulator.pipeline.run import execute

TOML = Path(__file__).resolve().parent.parent / "scenarios" / "raft" / "figure16.toml"
PEERS = ["n1", "n2", "n3", "n4", "n5"]


def write_runs(path: Path, times: dict[str, list]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "election_timeout_range", "election_ms"])
        for rng, values in times.items():
            for i, v in enumerate(values):
                w.writerow([i + 1, rng, v])


def test_vs_paper_csv_has_one_row_per_published_statement(tmp_path):
    """figure16.py --runs writes figure16-vs-paper.csv: each statement of the paper, its value, ours, ours/paper."""
    runs = tmp_path / "runs.csv"
    write_runs(runs, {"150-150": ["", 10500.0, ""],        # no leader within 10 s: censored, twice over
                      "150-155": [200.0, 287.0, 400.0],
                      "150-200": [150.0, 200.0, 513.0],
                      "12-24": [20.0, 30.0, 55.0]})
    assert figure16.main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "figure16-vs-paper.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["range_ms", "statement", "paper_ms", "ours_ms", "ratio", "trials", "no_leader_share",
                             "paper_says"]
    got = {(r["range_ms"], r["statement"]): r for r in rows}
    assert sorted(got) == [("12-24", "max"), ("12-24", "mean"), ("150-150", "median"), ("150-155", "median"),
                           ("150-200", "max")]
    assert got[("150-150", "median")]["paper_ms"] == ">10000" and got[("150-150", "median")]["ours_ms"] == ">10000"
    assert float(got[("150-150", "median")]["no_leader_share"]) == 1.0
    assert float(got[("150-155", "median")]["ratio"]) == 1.0
    assert float(got[("150-200", "max")]["ratio"]) == 1.0
    assert math.isclose(float(got[("12-24", "mean")]["ratio"]), 35.0 / 35.0)
    assert math.isclose(float(got[("12-24", "max")]["ratio"]), 55.0 / 152.0, rel_tol=1e-3)
    assert (tmp_path / "out" / "figure16.png").stat().st_size > 0
    assert (tmp_path / "out" / "figure16.csv").exists()


def test_a_trial_of_the_experiment_file_elects_after_the_synchronized_heartbeat():
    """One 12-24 ms trial: the leader broadcasts, crashes within the next heartbeat interval, a new leader reaches all."""
    cfg = build_config(registry.get("raft"), seed=3, file=load_toml(TOML), options={"time_limit_s": 1.5},
                       sets={"election_timeout_range": "12-24"})
    out = execute(cfg)
    ms = out.metrics["figures"]["election_ms"]
    # the crash falls within 6 ms of the heartbeat that reset every timer: at least 12 - 6 ms later
    # someone times out, and a vote costs a 14.8 ms (mean) disk write
    assert 6.0 <= ms < 250.0
    crashes = [f for f in out.run.faults if f.get("nemesis") == "crash-leader"]
    assert len(crashes) == 1


def node(**kw) -> tuple[RaftNode, FakeContext, list[int]]:
    """A started server n1, its context, and the number of messages sent at each fsync so far."""
    o = {p.name: p.default for p in Raft.params}
    o.update(kw)
    n = RaftNode("n1", PEERS, o)
    ctx = FakeContext("n1")
    sent_at_sync: list[int] = []
    ctx.storage = Storage(lambda: sent_at_sync.append(len(ctx.sent)))
    n.on_start(ctx)
    return n, ctx, sent_at_sync


def test_overlapped_vote_write_asks_first_and_counts_its_own_vote_once_durable():
    """vote_write_overlap: RequestVotes leave before the candidate's sync; its own vote comes back as a reply after it."""
    n, ctx, sent_at_sync = node(vote_write_overlap=True)
    n.on_timer(ctx, "election")
    assert n.role == CANDIDATE and n.votes == set()
    kinds = [(dst, type(m).__name__) for dst, m in ctx.sent]
    assert kinds[:4] == [(p, "RequestVote") for p in PEERS[1:]] and sent_at_sync == [4]
    assert kinds[4:] == [("n1", "RequestVoteReply")]  # sent after the sync: it leaves when the write is done
    assert ctx.storage.get("vote") == "n1"
    n.on_message(ctx, "n1", ctx.sent[4][1])
    n.on_message(ctx, "n2", RequestVoteReply(n.term, "n2", True))
    assert n.role == CANDIDATE  # two of five
    n.on_message(ctx, "n3", RequestVoteReply(n.term, "n3", True))
    assert n.role == LEADER


def test_default_vote_write_is_synced_before_asking():
    """By default (as the Raft paper's Figure 2 reads) the candidate syncs its vote, then asks, and counts itself."""
    n, ctx, sent_at_sync = node()
    n.on_timer(ctx, "election")
    assert n.votes == {"n1"} and sent_at_sync == [0]
    assert [type(m) for _, m in ctx.sent] == [RequestVote] * 4


def test_leader_write_overlap_sends_the_first_heartbeat_before_the_no_op_sync():
    """leader_write_overlap: a new leader's first AppendEntries leave before its no-op is synced; by default after."""
    for overlap, before in ((True, 4), (False, 0)):
        n, ctx, sent_at_sync = node(leader_write_overlap=overlap)
        n.on_timer(ctx, "election")
        sent_at_sync.clear()
        ctx.sent.clear()
        for voter in ("n2", "n3"):
            n.on_message(ctx, voter, RequestVoteReply(n.term, voter, True))
        assert n.role == LEADER
        assert sent_at_sync == [before]
        assert sum(type(m) is AppendEntries for _, m in ctx.sent) == 4


def test_availsim_two_down_trial_waits_only_for_live_servers(tmp_path):
    """AvailSim's two-down trial: a server down before the leader's crash is not waited for, so the election is measured."""
    from scenarios.raft import availsim

    two_down = availsim.configs(tmp_path)[2]
    cfg = build_config(registry.get("raft"), seed=2, file=load_toml(two_down), options={"time_limit_s": 5.0})
    out = execute(cfg)
    crashed = [f["node"] for f in out.run.faults if f.get("action") == "crash"]
    assert len(crashed) == 2 and crashed[0] == "n5"
    ms = out.metrics["figures"]["election_ms"]
    # a timeout of 300-600 ms after the last heartbeat's 30-40 ms flight, then vote and heartbeat trips
    assert ms is not None and 300.0 < ms < 3000.0


def test_availsim_summary_compares_with_the_thesis():
    """availsim's row: mean and 99.9th percentile beside the thesis's, with ours / thesis."""
    from scenarios.raft import availsim

    row = availsim.summary(1, [475.0] * 999 + [1500.0])
    assert row["mean_ms"] == round((475.0 * 999 + 1500.0) / 1000, 1)
    assert row["thesis_mean_ms"] == 475.0 and row["thesis_p999_ms"] == 1500.0
    assert row["mean_ratio"] == round(row["mean_ms"] / 475.0, 3)
    assert 475.0 <= row["p999_ms"] <= 1500.0 and row["no_leader"] == 0


def test_election_timeout_step_draws_whole_milliseconds_rounded_half_up():
    """election_timeout_step_ms=1: every election timer is a whole number of ms in the range, ends at half weight."""
    n, ctx, _ = node(election_timeout_range="150-155", election_timeout_step_ms=1.0)
    drawn = [n.draw_timeout(ctx, n.timeout_ms) for _ in range(3000)]
    assert set(drawn) == {150.0, 151.0, 152.0, 153.0, 154.0, 155.0}
    ends = sum(d in (150.0, 155.0) for d in drawn) / len(drawn)
    assert 0.15 < ends < 0.25  # lround: each end catches half a millisecond of the uniform draw, 10% each
    n, ctx, _ = node(election_timeout_range="150-155")
    assert n.draw_timeout(ctx, n.timeout_ms) == (150.0, 155.0)  # the default: the engine draws any value
    n, ctx, _ = node(election_timeout_range="12-24", election_timeout_step_ms=100.0)
    assert {n.draw_timeout(ctx, n.timeout_ms) for _ in range(50)} == {100.0}  # a coarse step: never a zero timeout


def test_figure16_and_availsim_summarise_trials_with_the_shared_helper():
    """figure16.py's per-range row and availsim.py's per-curve row carry the same statistics from trials.summarise."""
    from scenarios.raft import availsim, trials

    values = [400.0, 480.0, 500.0, 1500.0]  # every statistic exact to 0.1 ms, so both roundings agree
    shared = trials.summarise(values, digits=1)
    (f16,) = figure16.summarise({"150-300": values})
    avail = availsim.summary(1, values)
    for key in ("trials", "median_ms", "mean_ms", "p99_ms", "p999_ms", "max_ms", "no_leader"):
        assert f16[key] == shared[key] == avail[key]
    assert trials.summarise([100.0, math.inf])["mean_ms"] == math.inf  # a censored trial: the mean is unknown
    assert "no leader 1" in trials.line("150-150 ms", trials.summarise([100.0, math.inf]))


def test_vote_request_delay_holds_the_request_votes_back_until_its_timer():
    """vote_request_delay_ms (a what-if): the overlapped candidate asks only when that timer fires, if still a candidate."""
    n, ctx, _ = node(vote_write_overlap=True, vote_request_delay_ms=1.0)
    n.on_timer(ctx, "election")
    assert ctx.timers["ask_votes"] == 1.0
    assert [type(m) for _, m in ctx.sent] == [RequestVoteReply]  # only its own vote, once durable
    n.on_timer(ctx, "ask_votes")
    assert [dst for dst, m in ctx.sent if type(m) is RequestVote] == PEERS[1:]
    n, ctx, _ = node(vote_write_overlap=True, vote_request_delay_ms=1.0)
    n.on_timer(ctx, "election")
    n.on_message(ctx, "n2", RequestVoteReply(n.term + 1, "n2", False))  # a newer term: a follower again
    n.on_timer(ctx, "ask_votes")
    assert not any(type(m) is RequestVote for _, m in ctx.sent)


def test_figure16_set_without_a_value_is_bad_input(tmp_path, capsys):
    """figure16.py --set needs KEY=VALUE: anything else exits 2 with one line naming the value, before any sweep."""
    assert figure16.main(["--set", "vote_request_delay_ms", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad value 'vote_request_delay_ms' for --set: expected KEY=VALUE" in err
    assert not (tmp_path / "out").exists()
