"""Wiring of the ``twopc`` scenario: a distributed transaction manager running two-phase commit or
Paxos Commit over sharded bank accounts, under coordinator and participant failures.

Nodes: ``rm1..rmS`` (one resource manager per shard, :mod:`.rm`), and the coordinators
``tm1`` (2PC's transaction manager, :mod:`.tm`) or ``tm1..tm(2F+1)`` (Paxos Commit's
acceptors, any of which can lead, :mod:`.paxos`). Clients send each transaction to its
initiating RM (:mod:`.client`). The workload, checkers, figures and faults are in their own
modules; this one registers the scenario and connects them.
"""

from __future__ import annotations

from pathlib import Path

from simulator import Dist, Param, RunData, Scenario, Setup, UsageError, register

from . import checkers as C
from . import faults as F
from . import figures as FIG
from .client import BankClient, Generator
from .paxos import PaxosCoordinator
from .rm_protocols import RmPaxos, RmTwoPhase
from .tm import TransactionManager
from .wiring import Wiring


@register
class TwoPC(Scenario):
    name = "twopc"
    summary = "distributed transactions: two-phase commit vs Paxos Commit, bank transfers and audits"
    params = (
        Param("protocol", "2pc", "commit protocol", type=str, choices=("2pc", "paxos-commit")),
        Param("F", 1, "Paxos Commit: coordinator (acceptor) failures tolerated; 2F+1 coordinators",
              type=int, min=0, max=3),
        Param("shards", 0, "shards, one resource manager each (0: --node-count shards)", type=int, min=0, max=64),
        Param("accounts", 300, "bank accounts, spread round-robin over the shards", type=int, min=2),
        Param("initial_balance", 1000, "starting balance of every account", type=int, min=0),
        Param("max_amount", 100, "a transfer moves 1..max_amount to each credited account", type=int, min=1),
        Param("zipf_s", 0.8, "Zipf exponent of account popularity (0: uniform)", min=0.0, max=5.0),
        Param("transfer_legs", 2, "accounts (on distinct shards) per transfer: its participant count N",
              type=int, min=2, max=64),
        Param("audit_fraction", 0.02, "share of operations that are audits of every balance", min=0.0, max=1.0),
        Param("lock_wait_timeout_ms", 50.0, "an RM waits this long for locks, then votes no", min=0.0),
        Param("vote_timeout_ms", 150.0, "the coordinator waits this long for votes", min=1.0),
        Param("doubt_timeout_ms", 300.0, "a prepared RM asks for the outcome after this long", min=1.0),
        Param("doubt_retry_ms", 150.0, "then asks again this often (Paxos: the next coordinator)", min=1.0),
        Param("recovery_timeout_ms", 50.0, "Paxos Commit: a stalled recovery ballot retries after 1-2x this",
              min=1.0),
        Param("suspect_ms", 2000.0, "Paxos Commit: an unresponsive coordinator is not chosen leader this long",
              min=0.0),
        Param("ack_delay_ms", 100.0, "2PC: RMs batch commit acknowledgements (after one fsync) this long", min=0.0),
        Param("cooperative", False, "2PC: in-doubt RMs also ask the other participants", type=bool),
        Param("fsync_ms", 1.0, "mean forced-write latency (lognormal, cv 0.5); 0 for free", min=0.0),
    )
    bugs = {
        "commit-on-timeout": "the coordinator commits, instead of aborting, when a vote times out",
        "forget-prepared": "an RM does not persist its prepare record, so a crash forgets it",
        "decide-before-log": "2PC: the TM sends Commit before forcing the commit record (then presumes abort "
                             "after a restart)",
        "early-unlock": "an RM releases its locks when it prepares instead of after the outcome",
    }
    checkers = {
        "atomicity": "one decision per transaction, and every participant applies it",
        "conservation": "every committed audit and the final balances sum to the initial total",
        "no-overdraft": "no committed transfer takes an account below zero",
        "durability": "no committed transaction is lost across crashes; balances match durable commits",
        "liveness-after-heal": "after the final heal and quiesce nothing is in doubt or locked; the final audit commits",
    }
    nemeses = ("coordinator-crash", "rm-crash", "isolate-coordinator", "lossy-network", "crash", "pause",
               "partition-random-halves")
    # What `dsim hunt` draws from (node_count is the shard count unless shards is set).
    search = {"node_count": (2, 5), "rate": (50.0, 400.0), "nemesis_interval_s": (0.3, 4.0), "time_limit_s": (5.0, 20.0),
              "cooperative": [False, True]}
    fault_verbs = F.FAULT_VERBS
    custom_nemeses = F.NEMESES
    defaults = {"node_count": 3, "rate": 200.0, "time_limit_s": 20.0, "nemesis": ("coordinator-crash", "rm-crash"),
                "nemesis_interval_s": 2.0, "op_timeout_ms": 2000.0, "quiesce_s": 3.0, "final_timeout_s": 5.0}
    benchmarks = {
        "twopc": {"options": {"time_limit_s": 60.0, "rate": 500.0, "nemesis": ["coordinator-crash"],
                              "nemesis_interval_s": 5.0},
                  "params": {"shards": 5}},
        "twopc-paxos": {"options": {"time_limit_s": 60.0, "rate": 500.0, "nemesis": ["coordinator-crash"],
                                    "nemesis_interval_s": 5.0},
                        "params": {"shards": 5, "protocol": "paxos-commit"}},
    }
    examples = (
        "dsim run twopc --seed 1",
        "dsim run twopc --set protocol=paxos-commit --seed 1",
        "dsim run twopc --nemesis coordinator-crash --set cooperative=true --seed 3",
        "dsim run twopc --bug decide-before-log --nemesis coordinator-crash --seed 1",
    )

    @classmethod
    def validate(cls, params: dict) -> None:
        # a transfer's accounts sit on distinct shards: fewer accounts than legs leave a leg no account to draw
        if params["transfer_legs"] > params["accounts"]:
            raise UsageError(f"bad value {params['transfer_legs']} for transfer_legs: expected at most accounts "
                             f"({params['accounts']}): each leg is a distinct account")

    @classmethod
    def check_fault(cls, n: int, act: dict, hosts: set[str], params: dict) -> None:
        verb = act["action"]
        cls.check_fault_keys(n, act, F.FAULT_VERBS[verb])
        coordinators = sorted((h for h in hosts if h.startswith("tm")), key=lambda h: (len(h), h))
        if act["node"] != "any" and act["node"] not in coordinators:
            raise UsageError(f"bad value {act['node']!r} for node of fault {n} ({verb}): expected a coordinator of this "
                             f"run ({', '.join(coordinators)}) or 'any'")
        if verb == "crash_coordinator" and (not isinstance(act["phase_at"], str) or act["phase_at"] not in F.PHASES):
            raise UsageError(f"bad value {act['phase_at']!r} for phase_at of fault {n} ({verb}): expected one of "
                             f"{', '.join(F.PHASES)}")

    def build(self, sim, cfg) -> Setup:
        p = cfg.params
        protocol = p["protocol"]
        if cfg.bug == "decide-before-log" and protocol != "2pc":
            raise UsageError("bug decide-before-log is a 2PC bug: Paxos Commit's leader logs nothing")
        shards = p["shards"] or cfg.node_count
        if shards < 2:
            raise UsageError(f"twopc needs at least 2 shards, got {shards}")
        if p["transfer_legs"] > shards:
            raise UsageError(f"transfer_legs ({p['transfer_legs']}) cannot exceed shards ({shards})")
        if shards > p["accounts"]:  # accounts go round-robin: a shard past the last account would own none
            name = "shards" if p["shards"] else "node_count (the shard count)"
            raise UsageError(f"bad value {shards} for {name}: expected at most accounts ({p['accounts']}): every shard "
                             "owns at least one account")
        f = p["F"] if protocol == "paxos-commit" else 0
        w = Wiring(
            protocol=protocol, rms=tuple(f"rm{i + 1}" for i in range(shards)),
            coordinators=tuple(f"tm{i + 1}" for i in range(2 * f + 1)), f=f, accounts=p["accounts"],
            initial_balance=p["initial_balance"], lock_wait_timeout_ms=p["lock_wait_timeout_ms"],
            vote_timeout_ms=p["vote_timeout_ms"], doubt_timeout_ms=p["doubt_timeout_ms"],
            doubt_retry_ms=p["doubt_retry_ms"], recovery_timeout_ms=p["recovery_timeout_ms"],
            suspect_ms=p["suspect_ms"], ack_delay_ms=p["ack_delay_ms"], cooperative=p["cooperative"], bug=cfg.bug)
        traps = F.Traps(sim)
        F.install(sim, traps)
        fsync = Dist("lognormal", p["fsync_ms"], cv=0.5) if p["fsync_ms"] > 0 else None
        rm_cls = RmTwoPhase if protocol == "2pc" else RmPaxos
        for rm in w.rms:
            sim.add_node(rm, lambda: rm_cls(w), fsync=fsync)
        for c in w.coordinators:
            if protocol == "2pc":
                sim.add_node(c, lambda: TransactionManager(w, traps), fsync=fsync)
            else:
                sim.add_node(c, lambda c=c: PaxosCoordinator(c, w, traps), fsync=fsync)
        ranking = sim.streams.get("twopc.accounts").permutation(p["accounts"])
        gen = Generator(p["accounts"], shards, p["transfer_legs"], p["zipf_s"], p["audit_fraction"],
                        p["max_amount"], ranking)

        def expose() -> dict:
            rms = {}
            for rm in w.rms:
                host = sim.hosts[rm]
                st = host.storage
                keys = list(st.keys())
                node = host.node
                rms[rm] = {
                    "balances": {a: st.get(f"a/{a}") for a in w.accounts_of(rm)},
                    "committed": {int(k[2:]) for k in keys if k.startswith("o/") and st.get(k) == "C"},
                    "in_doubt": sorted(int(k[2:]) for k in keys if k.startswith("p/")),
                    "locks": node.locks.summary() if node is not None else {"held": [], "waiting": []},
                }
            return {"rms": rms}

        return Setup(servers=list(w.rms + w.coordinators), client=lambda cid: BankClient(w), generate=gen,
                     final=[("audit", None)], expose=expose)

    def check(self, run: RunData):
        return {name: fn(run) for name, fn in C.CHECKS.items()}

    def figures(self, run: RunData) -> dict:
        return FIG.compute(run)

    def plots(self, run: RunData, folder: Path, shade) -> list[str]:
        from .plots import draw

        return draw(run, folder, shade)
