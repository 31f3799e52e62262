"""twopc seeded runs: verdicts, each planted bug caught, determinism, the paper's normal-case costs,
and blocking under a coordinator crash (2PC blocks, Paxos Commit does not)."""

from __future__ import annotations

import pytest

from scenarios.twopc.checkers import liveness
from simulator.checkers import CheckResult
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.run import execute
from simulator.pipeline.scenario import RunData, UsageError

SC = registry.get("twopc")


def run(seed=1, bug=None, file=None, **options_and_params):
    params = {k: v for k, v in options_and_params.items() if any(p.name == k for p in SC.params)}
    options = {k: v for k, v in options_and_params.items() if k not in params}
    cfg = build_config(SC, seed=seed, options={"time_limit_s": 10, **options}, sets=params, bug=bug, file=file)
    return execute(cfg)


def failed(out) -> dict[str, str]:
    return {k: v.message for k, v in out.checks.items() if v.valid is not True}


@pytest.mark.parametrize("protocol", ["2pc", "paxos-commit"])
def test_default_nemesis_run_is_valid(protocol):
    """Under the default nemesis (coordinator and RM crashes) a run is valid and commits work."""
    out = run(protocol=protocol)
    assert out.valid is True, failed(out)
    fig = out.metrics["figures"]
    assert fig["committed"] > 500 and fig["coordinator_crashes"] >= 1


@pytest.mark.parametrize("protocol", ["2pc", "paxos-commit"])
def test_same_seed_same_digest(protocol):
    """Two runs of one seed (with faults) give one trace digest and the same figures."""
    a = run(seed=5, protocol=protocol, time_limit_s=5)
    b = run(seed=5, protocol=protocol, time_limit_s=5)
    assert a.digest == b.digest and a.metrics["figures"] == b.metrics["figures"]


# ---- planted bugs -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["2pc", "paxos-commit"])
def test_commit_on_timeout_is_caught(protocol):
    """A coordinator that commits on a vote timeout commits work a crashed RM never prepared: atomicity fails."""
    out = run(seed=1, bug="commit-on-timeout", protocol=protocol, nemesis=("rm-crash",))
    assert out.checks["atomicity"].valid is False
    assert "never applied it" in out.checks["atomicity"].message
    assert out.checks["durability"].valid is False


@pytest.mark.parametrize("protocol", ["2pc", "paxos-commit"])
def test_forget_prepared_is_caught(protocol):
    """An RM that forgets its prepared transactions in a crash loses committed work: durability fails."""
    out = run(seed=1, bug="forget-prepared", protocol=protocol, nemesis=("rm-crash",))
    assert out.checks["durability"].valid is False
    assert "is lost at rm" in out.checks["durability"].message
    assert out.checks["conservation"].valid is False


def test_decide_before_log_is_caught():
    """A TM that sends Commit before logging it, crashing in between, presumes abort after its restart:
    one transaction gets two decisions."""
    out = run(seed=1, bug="decide-before-log", nemesis=("coordinator-crash",))
    assert out.checks["atomicity"].valid is False
    assert "was decided commit" in out.checks["atomicity"].message and "and abort" in out.checks["atomicity"].message


def test_decide_before_log_is_refused_for_paxos_commit():
    """decide-before-log is a 2PC bug: asking for it under Paxos Commit is a usage error."""
    with pytest.raises(UsageError):
        run(bug="decide-before-log", protocol="paxos-commit")


@pytest.mark.parametrize("protocol", ["2pc", "paxos-commit"])
def test_early_unlock_is_caught(protocol):
    """Locks released at prepare let audits see half-applied transfers and debits overdraw: conservation fails."""
    out = run(seed=1, bug="early-unlock", protocol=protocol, nemesis=())
    assert out.checks["conservation"].valid is False
    assert "audit" in out.checks["conservation"].message
    assert out.checks["no-overdraft"].valid is False


def test_liveness_checker_flags_work_left_in_doubt():
    """The liveness checker fails when an RM still holds an old transaction in doubt after the quiesce."""
    cfg = build_config(SC, seed=1)
    history = [{"index": 0, "time": 0, "type": "invoke", "process": 0, "f": "transfer", "value": None}]
    exposed = {"rms": {"rm1": {"in_doubt": [0], "locks": {"held": [0], "waiting": []}, "balances": {},
                               "committed": set()}}}
    data = RunData(cfg=cfg, history=history, records=[], faults=[], exposed=exposed, end_ns=int(30e9),
                   heal_ns=int(20e9), network={})
    res = liveness(data)
    assert isinstance(res, CheckResult) and res.valid is False and "in doubt" in res.message


# ---- the paper's figures --------------------------------------------------------------------------
def cost_run(protocol, n, f=1, seed=3):
    return run(seed=seed, protocol=protocol, F=f, shards=n, transfer_legs=n, accounts=1000, zipf_s=0.0,
               audit_fraction=0.0, initial_balance=10**9, nemesis=(), rate=20.0, time_limit_s=5)


@pytest.mark.parametrize("n", [3, 5])
def test_two_phase_commit_costs_match_gray_and_lamport(n):
    """Failure-free 2PC with N participants: 3N-1 messages, 4 message delays, N+1 forced writes (Section 3.2)."""
    out = cost_run("2pc", n)
    cost = out.metrics["figures"]["cost_by_participants"][str(n)]
    txs = out.metrics["ops"]["ok"]  # every transaction commits, the final audit (also N participants) too
    assert out.metrics["ops"]["fail"] == 0 and txs - 1 <= cost["transactions"] <= txs and txs > 50
    assert (cost["messages"], cost["message_delays"], cost["forced_writes"]) == (3 * n - 1, 4, n + 1)
    # the network's own count: per transaction 3N-1 protocol messages, the client's request and
    # reply, plus the RMs' batched acknowledgements (at most one per participant)
    extra = out.run.network["sent"] - txs * (3 * n - 1 + 2)
    assert 0 < extra <= txs * n


@pytest.mark.parametrize("n,f", [(3, 1), (5, 1), (3, 2)])
def test_paxos_commit_costs_match_gray_and_lamport(n, f):
    """Failure-free Paxos Commit: (N+1)(F+3)-4 messages, 5 message delays, N+F+1 forced writes (Section 4.3),
    and the network's own message count agrees exactly."""
    out = cost_run("paxos-commit", n, f)
    cost = out.metrics["figures"]["cost_by_participants"][str(n)]
    txs = out.metrics["ops"]["ok"]
    assert out.metrics["ops"]["fail"] == 0 and txs - 1 <= cost["transactions"] <= txs and txs > 50
    assert (cost["messages"], cost["message_delays"], cost["forced_writes"]) == ((n + 1) * (f + 3) - 4, 5, n + f + 1)
    assert out.run.network["sent"] == txs * ((n + 1) * (f + 3) - 4 + 2)


# ---- blocking -------------------------------------------------------------------------------------
CRASH_PLAN = {"faults": [{"at_s": 3, "action": "crash_coordinator", "node": "any", "phase_at": "after-some-votes",
                          "nemesis": "coordinator-crash", "phase": "start"},
                         {"at_s": 6, "action": "recover_coordinator", "node": "any", "nemesis": "coordinator-crash",
                          "phase": "stop"}]}


def test_two_phase_commit_blocks_until_the_coordinator_returns():
    """A TM crash leaves prepared RMs in doubt, holding locks, for about as long as the TM is down."""
    out = run(seed=2, file=CRASH_PLAN, nemesis=())
    fig = out.metrics["figures"]
    assert out.valid is True, failed(out)
    assert fig["coordinator_crashes"] == 1
    assert fig["time_in_doubt_ms"]["max"] > 2500
    assert fig["in_doubt_beyond_detection"] > 50


def test_paxos_commit_does_not_block_on_a_leader_crash():
    """With F=1 a leader crash leaves nobody in doubt beyond the failure-detection bound."""
    out = run(seed=2, file=CRASH_PLAN, nemesis=(), protocol="paxos-commit")
    fig = out.metrics["figures"]
    assert out.valid is True, failed(out)
    assert fig["coordinator_crashes"] == 1
    assert fig["in_doubt_beyond_detection"] == 0
    assert fig["time_in_doubt_ms"]["max"] <= fig["failure_detection_ms"]


def test_cooperative_termination_unblocks_a_tm_crash_before_prepare():
    """When the TM dies before sending Prepare, peers that never voted abort on request: the initiators
    are not blocked until the TM returns."""
    plan = {"faults": [dict(CRASH_PLAN["faults"][0], phase_at="before-prepare"), CRASH_PLAN["faults"][1]]}
    blocked = run(seed=2, file=plan, nemesis=())
    coop = run(seed=2, file=plan, nemesis=(), cooperative=True)
    assert blocked.valid is True and coop.valid is True, (failed(blocked), failed(coop))
    assert blocked.metrics["figures"]["time_in_doubt_ms"]["max"] > 2500
    assert coop.metrics["figures"]["time_in_doubt_ms"]["max"] < 1000


# ---- the command line -----------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["2pc", "paxos-commit"])
def test_dsim_run_twopc_exits_zero(tmp_path, protocol):
    """`dsim run twopc --set protocol=P --seed 1` exits 0 and leaves the twopc figures in metrics.json."""
    import json

    from click.testing import CliRunner

    from simulator.cli import main

    class Main:
        name = "dsim"

        def main(self, args=None, **_):
            main(list(args or []))

    out = tmp_path / protocol
    res = CliRunner().invoke(Main(), ["run", "twopc", "--seed", "1", "--time-limit", "5", "--set",
                                      f"protocol={protocol}", "--out", str(out)])
    assert res.exit_code == 0, res.output
    figures = json.loads((out / "metrics.json").read_text())["figures"]
    assert figures["protocol"] == protocol and figures["committed"] > 0
    assert (out / "twopc-in-doubt.png").exists() and (out / "twopc-times.png").exists()
