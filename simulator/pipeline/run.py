"""One run, start to finish: configuration in, history and trace out, verdicts and figures after.

Phases (simulated time):

1. ``0 .. time_limit``: the workload runs; nemesis and planned faults act.
2. ``time_limit``: the final heal (network healed, nodes restarted and resumed, clocks reset);
   the workload stops starting operations.
3. ``+ quiesce_s``: the scenario's final operations (reads of every key, say) run on fresh
   processes; the run ends when they have all ended or ``final_timeout_s`` has passed.

Then the scenario's checkers read a :class:`RunData`, and the metrics are computed from the
history. Nothing here writes files: :mod:`simulator.pipeline.results` does, from the :class:`Run`, even
when the run stopped half-way.
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..checkers import CheckResult, merge_valid
from ..checkers import metrics as M
from ..checkers.parallel import WORTH_FORKING, fork_call
from ..engine import topology
from ..engine.dists import Dist
from ..engine.kernel import NS_PER_MS, NS_PER_S, Simulation
from ..faults import Injector, nemesis_plan
from ..workload.clients import Workload, rate_profile
from . import scenario as registry
from .config import RunConfig
from .scenario import RunData, Setup

Progress = Callable[[float, float], None]  # (simulated seconds done, simulated seconds planned)

GC_YOUNG_THRESHOLD = 500_000


@contextlib.contextmanager
def relaxed_gc():
    """Collect the youngest generation every 500,000 allocations instead of every 700.

    A run allocates events, messages and history entries by the hundred thousand, almost none in
    reference cycles (they are freed by reference counting as soon as they are done with). With
    Python's default threshold the cyclic collector scans the young objects every 700 allocations
    and finds nothing; this costs about a tenth of a Raft run. At 50,000 the cache preset still
    spent about 6% of its time in young collections that scanned what the run keeps (history
    values, records, rows) and found a few hundred objects of cycles each (a crashed node's
    state); at 500,000 half as much, and the cycles waiting for a sweep stay a few MiB. Cyclic
    garbage still gets collected, just in larger sweeps. The previous thresholds come back
    afterwards."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_YOUNG_THRESHOLD), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class DesignExit(RuntimeError):
    """The design's code raised SystemExit, GeneratorExit or another BaseException that is not an
    Exception during a run (in build, a handler, check, ...): a crash of the design, reported as one
    (exit 3, the folder marked incomplete), never dsim's own exit status or a traceback."""

    def __init__(self, exc: BaseException):
        self.code = getattr(exc, "code", None)
        shown = (repr(exc.code) if isinstance(exc, SystemExit) else ", ".join(map(repr, exc.args))) if exc.args else ""
        super().__init__(f"the design raised {type(exc).__name__}({shown}) during the run; "
                         + ("a design must not exit the process" if isinstance(exc, SystemExit)
                            else "a design must raise only Exceptions"))


def design_exit(exc: BaseException) -> BaseException:
    """``exc``, with a BaseException from design code that is neither an Exception nor Ctrl-C (which
    means interrupted) turned into :class:`DesignExit`."""
    if not isinstance(exc, (Exception, KeyboardInterrupt)):
        crash = DesignExit(exc)
        crash.__cause__ = exc
        return crash
    return exc


NO_RESULT = "check() gave no result for it"


def _with_declared(checks: dict[str, CheckResult], declared) -> dict[str, CheckResult]:
    """``checks`` plus an unknown verdict for every checker the design declares but ``check()`` left
    out: a checker that never ran must not let the run count as valid."""
    missing = [name for name in declared if name not in checks]
    if not missing:
        return checks
    out = dict(checks)
    for name in missing:
        out[name] = CheckResult("unknown", NO_RESULT)
    return out


@dataclass
class Outcome:
    valid: bool | str
    checks: dict[str, CheckResult]
    metrics: dict[str, Any]
    digest: str
    run: RunData
    wall_seconds: float


class Run:
    """A run in progress; its attributes are what results can save if it stops early."""

    def __init__(self, cfg: RunConfig, trace_file=None):
        self.cfg = cfg
        self.scenario = registry.for_config(cfg)()
        self.trace_file = trace_file
        self.sim: Simulation | None = None
        self.workload: Workload | None = None
        self.injector: Injector | None = None
        self.setup: Setup | None = None
        self.main_end_ns = int(cfg.time_limit_s * NS_PER_S)
        self.heal_ns = self.main_end_ns
        self.wall_start = time.perf_counter()
        self.phase = "building"

    def execute(self, progress: Progress | None = None) -> Outcome:
        try:
            with relaxed_gc():
                return self._execute(progress)
        except BaseException as exc:  # design code exiting (SystemExit, GeneratorExit, ...): its crash, not ours
            crash = design_exit(exc)
            if crash is exc:
                raise
            raise crash from exc

    def _execute(self, progress: Progress | None) -> Outcome:
        cfg = self.cfg
        sim = self.sim = Simulation(cfg.seed, latency=Dist(cfg.latency_dist, cfg.latency_ms), trace_file=self.trace_file)
        self.injector = Injector(sim, [])
        setup = self.setup = self.scenario.build(sim, cfg)
        self.injector.servers = list(setup.servers)
        n_clients = setup.clients or cfg.concurrency or 4
        client_ids = [f"c{i + 1}" for i in range(n_clients)]
        for cid in client_ids:
            sim.add_node(cid, (lambda c=cid: setup.client(c)), is_client=True, **setup.client_options)
        self.placement = topology.apply(sim, cfg.topology, list(sim.hosts))
        rate_at = setup.rate_at or rate_profile(cfg.rate_profile, cfg.rate, cfg.time_limit_s)
        self.workload = Workload(sim, client_ids, setup.generate, op_timeout_ns=int(cfg.op_timeout_ms * NS_PER_MS),
                                 rate=cfg.rate, concurrency=cfg.concurrency, rate_at=rate_at)
        plan = list(cfg.faults)
        plan += nemesis_plan(tuple(cfg.nemesis), setup.servers, sim.streams.get("faults"),
                             int(cfg.nemesis_interval_s * NS_PER_S), self.main_end_ns,
                             custom=self.scenario.custom_nemeses)
        self.injector.schedule(plan)

        self.phase = "main"
        sim.run(0)  # boot every node at time 0
        self.workload.start(self.main_end_ns)
        total_s = cfg.time_limit_s + cfg.quiesce_s + cfg.final_timeout_s
        self._run_to(self.main_end_ns, progress, total_s)

        self.phase = "quiesce"
        self.injector.apply({"action": "final_heal"})
        self._run_to(self.main_end_ns + int(cfg.quiesce_s * NS_PER_S), progress, total_s)

        self.phase = "final"
        deadline = sim.now + int(cfg.final_timeout_s * NS_PER_S)
        self.workload.run_final(list(setup.final), sim.stop, timeout_ns=deadline - sim.now)
        if setup.final:
            sim.run(deadline + 1)  # final ops timing out at the deadline are recorded info
        self.phase = "checking"
        if progress:
            progress(sim.now / NS_PER_S, sim.now / NS_PER_S)
        return self.finish()

    def _run_to(self, until_ns: int, progress: Progress | None, total_s: float) -> None:
        sim = self.sim
        if progress is None:
            sim.run(until_ns)
            return
        step = max(NS_PER_S // 10, (until_ns - sim.now) // 100)
        while sim.now < until_ns:  # chunks do not change event order (see Simulation.run)
            sim.run(min(until_ns, sim.now + step))
            progress(sim.now / NS_PER_S, total_s)

    def data(self) -> RunData:
        sim = self.sim
        exposed = {}
        if self.setup is not None and self.setup.expose is not None and self.phase == "checking":
            exposed = self.setup.expose()
        hosts = {}
        if sim is not None:
            for hid in sorted(sim.hosts):
                h = sim.hosts[hid]
                if not h.is_client and (h.dropped_inbox or h.dropped_down):
                    hosts[hid] = {"dropped_inbox": h.dropped_inbox, "dropped_down": h.dropped_down}
        return RunData(cfg=self.cfg, history=self.workload.history if self.workload else [],
                       records=sim.records if sim else [], faults=self.injector.applied if self.injector else [],
                       exposed=exposed, end_ns=sim.now if sim else 0, heal_ns=self.heal_ns,
                       network=sim.network.stats() if sim else {}, hosts=hosts,
                       tables=sim.tables if sim else {})

    def finish(self) -> Outcome:
        run = self.data()

        def check() -> dict[str, CheckResult]:
            return dict(self.scenario.check(run))

        # A long history is checked in one forked child and digested in another while this process
        # computes the metrics and figures (simulator.checkers.parallel): the digest marshals and
        # hashes every observation and event, as long as the checks on a million-request run, and
        # the three then share the cores. The results are the same either way.
        long = len(run.history) >= WORTH_FORKING
        if long:
            # Nothing the run made is garbage yet: the collector need not walk it again (a full
            # collection over a million-request run's objects took seconds), and no collection in
            # the parent touches every object's header, copying the pages the children share.
            gc.freeze()
        try:
            wait_digest = fork_call(self.sim.digest) if long else None
            # Work the checks and the figures share (the scenario's ``prepare(run)``,
            # memoised on the run: the cache's staleness of every read) is done once, before the
            # checks' child is forked, rather than once in each process; its time counts as the
            # checks'.
            prepare_s = 0.0
            if long:
                t0 = time.perf_counter()
                self.scenario.prepare(run)
                prepare_s = time.perf_counter() - t0
            wait = fork_call(check) if long else None
            m = M.summarise(run.history, run.faults, self.main_end_ns)
            figures = self.scenario.figures(run)
            got_digest = wait_digest() if wait_digest is not None else None
            digest = got_digest[0] if got_digest is not None else self.sim.digest()
            got = wait() if wait is not None else None
        finally:
            if long:
                gc.unfreeze()
        if got is None:
            t0 = time.perf_counter()
            checks = check()
            check_s = time.perf_counter() - t0
        else:
            checks, check_s = got
        check_s += prepare_s
        checks = _with_declared(checks, self.scenario.checkers)
        valid = merge_valid(c.valid for c in checks.values())
        out_metrics = {"valid": valid, "checks": {k: v.to_dict() for k, v in checks.items()}, **m,
                       "network": run.network, "hosts": run.hosts, "checker_seconds": round(check_s, 4),
                       "figures": figures}
        self.phase = "done"
        return Outcome(valid, checks, out_metrics, digest, run, time.perf_counter() - self.wall_start)


def execute(cfg: RunConfig, progress: Progress | None = None) -> Outcome:
    """Run ``cfg`` in memory (no files) and return its outcome."""
    return Run(cfg).execute(progress)


def exit_status(valid: bool | str) -> int:
    """0 valid, 1 invalid, 3 unknown (2 is for usage errors)."""
    return 0 if valid is True else (1 if valid is False else 3)
