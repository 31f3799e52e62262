"""Seeded raft runs: valid under faults, every planted bug caught, leases broken by clocks, determinism."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scenarios.raft import checkers as C
from scenarios.raft.messages import Command, Entry
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.run import execute

ALL_FAULTS = ["partition-random-halves", "partition-isolate-one", "crash", "pause", "clock-bump"]


def run(seed, bug=None, **options):
    sets = options.pop("sets", {})
    cfg = build_config(registry.get("raft"), seed=seed, options=options, sets=sets, bug=bug)
    return execute(cfg)


@pytest.mark.parametrize("seed", [1, 2])
def test_valid_under_every_fault(seed):
    """Partitions, crashes, pauses and clock bumps every half second leave every check valid."""
    out = run(seed, nemesis=ALL_FAULTS, nemesis_interval_s=0.5, time_limit_s=10)
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    assert out.metrics["ops"]["ok"] > 1500
    assert out.metrics["figures"]["elections"] >= 2


def test_valid_with_prevote_checkquorum_read_index_and_snapshots():
    """PreVote, CheckQuorum, read-index reads and frequent snapshots (InstallSnapshot) stay valid."""
    out = run(3, nemesis=ALL_FAULTS + ["crash-storm"], nemesis_interval_s=1, time_limit_s=10,
              sets={"pre_vote": True, "check_quorum": True, "read_mode": "read-index", "snapshot_every": 64})
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}


# Each planted bug: the first of the first 20 seeds that catches it under a nemesis that exposes it.
BUGS = {
    "stale-read": (1, dict(nemesis=["partition-random-halves"], nemesis_interval_s=2, time_limit_s=12),
                   {}, "linearizable", "not linearizable"),
    "ack-by-index": (2, dict(nemesis=["partition-isolate-one", "partition-random-halves"], nemesis_interval_s=0.5,
                             time_limit_s=15), {}, "linearizable", "not linearizable"),
    "no-persist-vote": (1, dict(nemesis=["crash-storm"], nemesis_interval_s=2, time_limit_s=10),
                        {"election_timeout_max_ms": 151}, "vote-once", "voted twice in term"),
    "commit-old-term": (1, dict(nemesis=["figure-8"], nemesis_interval_s=4, time_limit_s=12),
                        {}, "state-machine-safety", "committed entry"),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_is_caught(bug):
    """Each planted bug makes a named check fail with a counter-example in words; without it, valid."""
    seed, options, sets, check, words = BUGS[bug]
    out = run(seed, bug=bug, sets=sets, **options)
    assert out.valid is False
    assert out.checks[check].valid is False
    assert words in out.checks[check].message
    clean = run(seed, sets=sets, **options)
    assert clean.valid is True, {k: v.message for k, v in clean.checks.items()}


@pytest.mark.parametrize("read_mode", ["log", "read-index", "lease"])
@pytest.mark.parametrize("pre_vote", [False, True])
def test_a_one_server_cluster_elects_itself_and_serves(read_mode, pre_vote):
    """A single server is its own majority: it elects itself and serves reads in every mode (it used
    to wait forever for votes, or crash picking another server to try)."""
    out = run(1, node_count=1, time_limit_s=3, sets={"read_mode": read_mode, "pre_vote": pre_vote})
    assert out.valid is True, {k: v.message for k, v in out.checks.items()}
    assert out.metrics["figures"]["elections"] == 1
    assert out.metrics["ops"]["ok"] > 0.95 * out.metrics["ops"]["invoked"]


def test_lease_reads_go_stale_when_clocks_jump_but_read_index_does_not():
    """A leader isolated with its clock set back serves stale lease reads; read-index on the same faults does not."""
    faults = dict(nemesis=["isolate-skewed"], nemesis_interval_s=2, time_limit_s=12)
    lease = run(1, sets={"read_mode": "lease"}, **faults)
    assert lease.checks["linearizable"].valid is False
    assert "read ->" in lease.checks["linearizable"].message
    read_index = run(1, sets={"read_mode": "read-index"}, **faults)
    assert read_index.valid is True


def test_same_seed_same_digest():
    """Two runs with one seed give one trace digest; another seed gives another."""
    a = run(5, nemesis=ALL_FAULTS, nemesis_interval_s=1, time_limit_s=4)
    b = run(5, nemesis=ALL_FAULTS, nemesis_interval_s=1, time_limit_s=4)
    c = run(6, nemesis=ALL_FAULTS, nemesis_interval_s=1, time_limit_s=4)
    assert a.digest == b.digest != c.digest


def test_digest_does_not_depend_on_hash_seed():
    """The digest is the same in processes with different PYTHONHASHSEED."""
    code = ("from tests.test_raft_runs import run; "
            "print(run(7, nemesis=['crash', 'partition-random-halves'], nemesis_interval_s=1, time_limit_s=3).digest)")
    digests = set()
    for hs in ("1", "987"):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True)
        digests.add(res.stdout.strip().splitlines()[-1])
    assert len(digests) == 1


# ---- the checkers alone -------------------------------------------------------------------------

def rec(kind, node, t_ms, **fields):
    return {"kind": kind, "node": node, "time_ns": int(t_ms * 1e6), **fields}


def test_election_safety_names_the_term_with_two_leaders():
    """Two leader observations in one term from different nodes fail, naming both."""
    bad = [rec("leader", "n1", 1, term=3), rec("leader", "n2", 5, term=3)]
    r = C.election_safety(bad)
    assert r.valid is False and "term 3" in r.message and "n1" in r.message and "n2" in r.message
    assert C.election_safety([rec("leader", "n1", 1, term=3), rec("leader", "n2", 5, term=4)]).valid is True


def test_vote_once_fails_on_a_second_candidate():
    """A node voting for two candidates in one term fails; the same candidate twice does not."""
    assert C.vote_once([rec("vote", "n3", 1, term=2, candidate="n1"), rec("vote", "n3", 2, term=2, candidate="n1")]).valid
    r = C.vote_once([rec("vote", "n3", 1, term=2, candidate="n1"), rec("vote", "n3", 2, term=2, candidate="n5")])
    assert r.valid is False and "n3 voted twice in term 2" in r.message


def test_state_machine_safety_compares_chains_and_the_final_log():
    """Different apply chains at one index fail; so does a chain the final log does not hold."""
    assert C.state_machine_safety([rec("applied", "n1", 1, hi=16, chain=5, term=1),
                                   rec("applied", "n2", 2, hi=16, chain=6, term=2)]).valid is False
    e = Entry(1, Command(1, 1, "write", "k", 1, "c1"))
    from scenarios.raft.log import chain_step
    logs = {"n1": (0, 0, 0, [e]), "n2": (0, 0, 0, [e])}
    good = [rec("applied", "n1", 1, hi=1, chain=chain_step(0, e), term=1)]
    assert C.state_machine_safety(good, logs).valid is True
    lost = [rec("applied", "n1", 1, hi=1, chain=chain_step(0, Entry(1, None)), term=1)]
    r = C.state_machine_safety(lost, logs)
    assert r.valid is False and "lost" in r.message


def test_log_matching_fails_on_same_index_and_term_with_different_prefixes():
    """Two logs with an equal (index, term) entry but different earlier entries fail log matching."""
    a = [Entry(1, Command(1, 1, "write", "k", 1, "c1")), Entry(2, None)]
    b = [Entry(1, Command(2, 2, "write", "k", 2, "c1")), Entry(2, None)]
    assert C.log_matching({"n1": (0, 0, 0, a), "n2": (0, 0, 0, list(a))}).valid is True
    r = C.log_matching({"n1": (0, 0, 0, a), "n2": (0, 0, 0, b)})
    assert r.valid is False and "index 1" in r.message


def test_liveness_fails_when_final_reads_fail():
    """An operation invoked after the final heal that does not end ok fails liveness."""
    h = [{"index": 0, "time": 10, "type": "invoke", "process": 1, "f": "read", "value": ["k", None]},
         {"index": 1, "time": 20, "type": "info", "process": 1, "f": "read", "value": ["k", None]}]
    assert C.liveness(h, heal_ns=5).valid is False
    assert C.liveness(h, heal_ns=50).valid is True


def test_figure16_trial_measures_the_election_after_a_leader_crash():
    """One trial of the Figure 16 experiment file: the leader is crashed and a new one reaches every survivor."""
    from pathlib import Path

    from simulator.pipeline.config import load_toml

    toml = Path(__file__).resolve().parent.parent / "scenarios" / "raft" / "figure16.toml"
    cfg = build_config(registry.get("raft"), seed=1, file=load_toml(toml))
    out = execute(cfg)
    ms = out.metrics["figures"]["election_ms"]
    # The crash falls within the heartbeat interval (75 ms, half the minimum timeout) after a
    # synchronised heartbeat, so the followers' 150-300 ms timers have already run up to 75 ms.
    assert 150 - 75 <= ms < 1000
    assert [f["action"] for f in out.run.faults if f.get("nemesis") == "crash-leader"] == ["crash"]


def test_figure16_summary_and_drawing(tmp_path):
    """The experiment script turns runs.csv into per-range statistics (censored trials last) and a figure."""
    import csv

    from scenarios.raft import figure16

    runs = tmp_path / "runs.csv"
    with open(runs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "election_timeout_range", "election_ms"])
        for i, v in enumerate([100.0, 200.0, 300.0, ""]):
            w.writerow([i + 1, "150-300", v])
    times = figure16.read_runs(runs)
    (row,) = figure16.summarise(times)
    assert row["trials"] == 4 and row["median_ms"] == 250.0 and row["no_leader"] == 1
    assert row["max_ms"] == float("inf")
    figure16.draw(times, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
