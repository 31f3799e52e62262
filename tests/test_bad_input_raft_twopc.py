"""Bad input to the raft and twopc designs: their own fault verbs' arguments in a config file's
``[[faults]]`` (``Scenario.check_fault``) and parameter combinations (``validate`` and ``build``),
refused before any run starts: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import pytest

from simulator import UsageError
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config

from .test_bad_input import TINY, assert_refused, dsim_in, listing


def fault(verb: str, args: str) -> str:
    return f'[[faults]]\nat_s = 0.2\naction = "{verb}"\n{args}\n'


BAD_RAFT_FAULTS = [
    fault("crash_storm", 'events = [[10.0, "n99", 100.0]]'),
    fault("crash_storm", 'events = [[10.0, "c1", 100.0]]'),  # a client, not a server
    fault("crash_storm", 'events = "n1"'),
    fault("crash_storm", 'events = [[10.0, "n1"]]'),
    fault("crash_storm", "events = 5"),
    fault("crash_storm", 'events = [[1e999, "n1", 100.0]]'),
    fault("crash_storm", 'events = [["10", "n1", 100.0]]'),
    fault("crash_storm", 'events = [[-10.0, "n1", -100.0]]'),
    fault("crash_storm", 'events = [[10.0, "n1", 1e300]]'),
    fault("crash_storm", 'events = [[true, "n1", 1.0]]'),
    fault("figure_8", 'tail_ms = "abc"'),
    fault("figure_8", "tail_ms = 1e999"),
    fault("figure_8", "tail_ms = -1000"),
    fault("figure_8", "tail = 10"),
    fault("crash_leader", 'in_heartbeat = "no"'),
    fault("crash_leader", "sync_heartbeat = [1]"),
    fault("crash_leader", "sync_heartbeat = 1"),
    fault("isolate_skewed", 'delta_ms = "x"'),
    fault("isolate_skewed", "delta_ms = 1e999"),
]
NEEDLES_RAFT = ["'n99'", "'c1'", "'n1' for events", "[10.0, 'n1']", "5 for events", "[inf, 'n1', 100.0]",
                "['10', 'n1', 100.0]", "[-10.0, 'n1', -100.0]", "1e+300", "[True, 'n1', 1.0]",
                "'abc' for tail_ms", "inf for tail_ms", "-1000 for tail_ms", "'tail'",
                "'no' for in_heartbeat", "[1] for sync_heartbeat", "1 for sync_heartbeat",
                "'x' for delta_ms", "inf for delta_ms"]

BAD_TWOPC_FAULTS = [
    fault("crash_coordinator", 'node = "any"\nphase_at = "whenever"'),
    fault("crash_coordinator", 'node = "any"\nphase_at = ["before-prepare"]'),
    fault("crash_coordinator", 'node = "any"\nphase_at = 1e999'),
    fault("crash_coordinator", 'node = "zz9"\nphase_at = "mid-decision"'),
    fault("crash_coordinator", 'node = "rm1"\nphase_at = "mid-decision"'),
    fault("crash_coordinator", 'node = "tm1"\nphase_at = "mid-decision"\nwhen = 1'),
    fault("recover_coordinator", 'node = "nobody"'),
]
NEEDLES_TWOPC = ["'whenever' for phase_at", "['before-prepare'] for phase_at", "inf for phase_at", "'zz9' for node",
                 "'rm1' for node", "'when'", "'nobody' for node"]


@pytest.mark.parametrize("scenario, text, needle",
                         [("raft", t, n) for t, n in zip(BAD_RAFT_FAULTS, NEEDLES_RAFT, strict=True)]
                         + [("twopc", t, n) for t, n in zip(BAD_TWOPC_FAULTS, NEEDLES_TWOPC, strict=True)],
                         ids=[t.split("\n", 3)[-1].strip().replace("\n", " ") for t in BAD_RAFT_FAULTS + BAD_TWOPC_FAULTS])
def test_a_bad_design_fault_argument_is_refused_before_the_run(here, capsys, scenario, text, needle):
    """Each bad argument of a raft or twopc fault verb exits 2 in one line naming the value, the fault
    and the argument; no results folder is written."""
    (here / "exp.toml").write_text(text)
    code, _, err = dsim_in(capsys, "run", scenario, "--seed", "1", *TINY, "--no-plots", "--config", here / "exp.toml",
                           "--out", here / "out")
    assert_refused(code, err, needle, "of fault 1")
    assert listing(here) == {"exp.toml"}


def test_good_design_faults_still_pass_the_check():
    """The plans the designs' own files, nemeses and tests use are accepted (and coordinators of Paxos Commit)."""
    raft, twopc = registry.get("raft"), registry.get("twopc")
    hosts = {f"n{i}" for i in range(1, 6)} | {f"c{i}" for i in range(1, 5)}
    for act in ({"at_s": 1.0, "action": "crash_storm", "events": [[64.7, "n2", 40.3], [0, "n5", 0]]},
                {"at_s": 1.0, "action": "crash_storm", "events": []},
                {"at_ns": 5, "action": "figure_8", "tail_ms": 0.0, "nemesis": "figure-8", "phase": "start"},
                {"at_s": 1.0, "action": "figure_8"},
                {"at_s": 1.0, "action": "isolate_skewed", "delta_ms": -512.25},
                {"at_s": 1.0, "action": "crash_leader", "sync_heartbeat": True, "in_heartbeat": False}):
        raft.check_fault(1, act, hosts, {})
    tms = {"rm1", "rm2", "rm3", "tm1", "tm2", "tm3", "c1"}
    for act in ({"at_s": 3, "action": "crash_coordinator", "node": "any", "phase_at": "after-some-votes",
                 "nemesis": "coordinator-crash", "phase": "start"},
                {"at_s": 3, "action": "crash_coordinator", "node": "tm3", "phase_at": "mid-decision"},
                {"at_s": 6, "action": "recover_coordinator", "node": "tm2"}):
        twopc.check_fault(1, act, tms, {})


BAD_SETS = [
    ("raft", ["election_timeout_range=100-inf"], "'100-inf' for election_timeout_range"),
    ("raft", ["election_timeout_range=100-1e300"], "'100-1e300' for election_timeout_range"),
    ("raft", ["election_timeout_range=nan-nan"], "'nan-nan' for election_timeout_range"),
    ("raft", ["keys=1000000000"], "'1000000000' for keys"),
    ("raft", ["lagging_followers=10"], "bad value 10 for lagging_followers"),
    ("raft", ["lagging_followers=3"], "bad value 3 for lagging_followers: expected at most (node_count - 1) // 2 = 2"),
    ("raft", ["read_share=0.9", "cas_share=0.5"], "bad value 1.4 for read_share + cas_share"),
    ("twopc", ["accounts=2", "transfer_legs=3", "shards=3"], "bad value 3 for transfer_legs"),
    ("twopc", ["accounts=2", "shards=64"], "bad value 64 for shards"),
    ("twopc", ["accounts=4", "--node-count", "5"], "bad value 5 for node_count"),
]


@pytest.mark.parametrize("scenario, sets, needle", BAD_SETS, ids=[" ".join(s) for _, s, _ in BAD_SETS])
def test_a_bad_parameter_edge_is_refused_by_run_and_sweep(here, capsys, scenario, sets, needle):
    """Values each fine alone that overflow, hang or mean nothing together exit 2 in one line, for run and
    sweep, before any folder exists (build's refusals included: dry_build runs it first)."""
    args = []
    for s in sets:
        args += [s] if s.startswith("--") or s.isdigit() else ["--set", s]
    for cmd in (["run", scenario, "--seed", "1", *TINY, "--no-plots"], ["sweep", scenario, "--seeds", "1-2", *TINY]):
        code, _, err = dsim_in(capsys, *cmd, *args, "--out", here / "out")
        assert_refused(code, err, needle)
    assert listing(here) == set()


def test_parameter_edges_at_the_library_level():
    """validate() refuses the combinations in build_config, the design's bounds their edges; the edges pass."""
    raft, twopc = registry.get("raft"), registry.get("twopc")
    with pytest.raises(UsageError, match="read_share \\+ cas_share"):
        build_config(raft, seed=1, sets={"read_share": "0.6", "cas_share": "0.5"})
    with pytest.raises(UsageError, match="transfer_legs"):
        build_config(twopc, seed=1, sets={"accounts": "2", "transfer_legs": "3"})
    build_config(raft, seed=1, sets={"read_share": "0.9", "cas_share": "0.1", "keys": "10000",
                                     "election_timeout_range": "150-1e9"})
    build_config(twopc, seed=1, sets={"accounts": "3", "transfer_legs": "3"})
