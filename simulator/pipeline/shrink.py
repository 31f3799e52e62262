"""Shrinking: ``dsim shrink RUN_DIR`` cuts a failing run down to a small reproducer that still fails
with the same checker.

Steps, each candidate an ordinary deterministic run on an executor (``--jobs`` local processes
or ``--cluster`` Dask, as ``dsim sweep``), within a budget of runs:

1. *Explicit plan.* The nemesis is turned into the fault plan it produced (built exactly as
   :class:`~simulator.pipeline.run.Run` builds it: the same seed, the same ``faults`` stream), so
   each fault action can be kept or dropped on its own. Nemesis actions keep their ``nemesis`` and
   ``phase`` labels, so the explicit run's trace is the nemesis run's.
2. *Delta debugging* (Zeller and Hildebrandt's ddmin) over the fault actions: the result is
   1-minimal, i.e. dropping any one remaining action makes the failure go away. It works on whole
   fault kinds (every action of one nemesis) first, then on fault cycles (a start with its stop),
   then on single actions, and (after the time cuts below) on the events of each compound action
   left (a crash storm's crashes):
   each level is cheap once the one above has thrown out most of the plan. Before the first ddmin,
   once, *fresh plans*: the nemeses the plan still uses, drawn again with other seeds for a quarter
   and a half of the time limit and written out; ddmin's result depends on where it starts, and a
   plan drawn for a short run starts smaller than the tail cut from a long one.
   *Simplification by replacement* (:func:`replacements`), before ddmin and again after the events:
   the whole plan replaced by one basic fault (a crash and restart, an isolate and heal, a pause and
   resume) of one node a remaining fault touched, over that fault's window, for a partition of random
   halves, a crash storm or a pause whose effect on one node is what the failure needs. After ddmin,
   compound actions are first written out as the crashes and restarts they are counted as
   (:func:`write_out`) and ddmin runs over those, so a restart the final heal stands in for can go.
   *Declared parameter values* (:meth:`Shrinker.retuned`), once, before the first ddmin when more
   than :data:`SMALL_PLAN` actions are left: the same plan with one parameter set to another value
   the design declares for the search; a failure that needs many actions to line up a coincidence
   (a split vote) may fail with few once a declared value makes the coincidence the rule.
3. *Less time, from both ends*, each kept only if the run still fails:
   - a shorter time limit (just after the instants the checker's message names, at the last fault
     action, which the final heal then replaces, or a fraction of the limit; faults from it on
     dropped), tried first: cheap runs, and every later fault goes at once;
   - after ddmin, the remaining faults and the time limit moved earlier together, past the quiet
     stretch before the first fault;
   - time and rate cut together (the limit divided by 2, 4 or 8, the rate multiplied by as much,
     faults at the same share of the run, and the workload's own time scales, the parameters a design
     declares ``Param(..., time_scale=True)`` such as email's campaign gap, divided as well): failures
     that need many operations or a workload event (a campaign backlog) keep them;
   - once, when nothing else cut the time: other seeds (drawn from the run's own) at a half and a
     quarter of the limit, for failures that need the workload to line up (a campaign, a backlog).
4. *Smaller everything else*: a lower rate (kept only if the run has fewer operations), fewer
   nodes, parameters back at their defaults.

Fault actions are counted by :func:`fault_actions`: one per plan entry, two per event of a compound
action (a crash storm's crash and its restart), as they would be written out.

The steps repeat while anything still shrinks. Candidates are consumed in a fixed order (see
:class:`Shrinker`), so the reproducer and ``shrink.csv`` (less wall times) are the same on any executor.

Outputs, in the shrink folder: ``shrunk.toml`` (an experiment file: ``dsim run SCENARIO --config
shrunk.toml`` fails the same way), ``shrink.csv`` (every candidate tried) and ``run/`` (the shrunk
run's folder, traced, with its ``spacetime.svg``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..engine.errors import UsageError
from ..faults.plan import VERBS
from .config import RUN_OPTIONS, RunConfig, build_config, check_recorded, dry_build
from .executor import map_calls
from .hunt import run_point


MAX_ROUNDS = 4  # passes over every step; each pass after the first only runs if the one before shrank something
# Fault actions past which a plan, after the first cuts and replacements, is taken to rest on a coincidence
# its many actions line up (the target for a reproducer is at most 3); see Shrinker.retuned.
SMALL_PLAN = 3
RESEEDS = 4  # other seeds tried at each shorter time limit, once, when nothing else cut the time


# ---- ddmin ----------------------------------------------------------------------------------------

def ddmin(items: Sequence, fails_many: Callable[[list[list]], list[bool]], chunk: int = 1) -> list:
    """A 1-minimal sub-list of ``items`` that still fails.

    ``fails_many(candidates)`` tests candidate sub-lists (in parallel, say) and returns whether each
    still fails; it is given at most ``chunk`` at a time, in ddmin's order, and the first failing one
    is taken, so the result does not depend on ``chunk``. ``items`` itself is assumed to fail."""
    items = list(items)

    def first_failing(cands: list[list]) -> int | None:
        for i in range(0, len(cands), max(1, chunk)):
            got = fails_many(cands[i:i + max(1, chunk)])
            for j, bad in enumerate(got):
                if bad:
                    return i + j
        return None

    if items and first_failing([[]]) is not None:
        return []
    n = 2
    while len(items) >= 2:
        size = math.ceil(len(items) / n)
        parts = [items[i:i + size] for i in range(0, len(items), size)]
        complements = [[x for k, p in enumerate(parts) if k != j for x in p] for j in range(len(parts))]
        cands = parts + (complements if len(parts) > 2 else [])
        hit = first_failing(cands)
        if hit is not None and hit < len(parts):
            items, n = parts[hit], 2
        elif hit is not None:
            items, n = complements[hit - len(parts)], max(n - 1, 2)
        elif n >= len(items):
            break
        else:
            n = min(len(items), 2 * n)
    return items


# ---- the failing run ------------------------------------------------------------------------------

@dataclass
class Failure:
    folder: Path
    cfg: RunConfig
    checker: str
    message: str
    end_time_s: float
    ops: int
    # parameters the user chose, which the declared-parameter step leaves alone: a hunt's fixed options
    # (hunt.json beside failures/), or, for any other run, the parameters it sets away from their defaults
    fixed: frozenset[str] = frozenset()


def load_failure(run_dir: str | Path) -> Failure:
    """A complete, invalid run folder: its configuration and the checker that failed."""
    from . import scenario as registry
    from .results import _bad_run, read_run

    r = read_run(run_dir)
    man, met = r["manifest"], r["metrics"]
    # read_run has checked status (running, complete or incomplete) and valid (true, false or "unknown")
    if man["status"] != "complete":
        raise _bad_run(run_dir, f"its run is {man['status']} (manifest.json's status), not complete; "
                                "shrink needs a complete run that failed a check")
    if met["valid"] is not False:
        got = "valid (every check passed)" if met["valid"] is True else "unknown (no check failed)"
        raise _bad_run(run_dir, f"its run is {got}; shrink needs a complete run that failed a check")
    conf = man["config"]
    if conf.get("design_path") is not None:
        registry.load_design(conf["design_path"], expect_sha256=conf.get("design_sha256"))
    try:
        cfg = check_recorded(conf)
    except UsageError as exc:
        raise UsageError(f"bad value {str(run_dir)!r} for RUN_DIR: manifest.json's config: {exc}") from None
    bad = [(k, v) for k, v in (met.get("checks") or {}).items() if isinstance(v, dict) and v.get("valid") is False]
    if not bad:
        raise _bad_run(run_dir, "metrics.json names no failing checker")
    ops = int(sum(v for k, v in (met.get("ops") or {}).items() if k in ("ok", "fail", "info") and isinstance(v, int)))
    return Failure(Path(run_dir), cfg, bad[0][0], str(bad[0][1].get("message", "")), float(man.get("end_time_s") or 0), ops,
                   _user_fixed(Path(run_dir), cfg))


def _user_fixed(folder: Path, cfg: RunConfig) -> frozenset[str]:
    """What the user fixed for ``folder``'s run: the hunt's ``fixed`` list when the folder is one of a hunt's
    failures, else every parameter set away from its default (nothing tells a run's own choices apart)."""
    hunt = folder.resolve().parent.parent / "hunt.json"
    if folder.resolve().parent.name == "failures" and hunt.is_file():
        try:
            fixed = json.loads(hunt.read_text()).get("fixed")
        except (OSError, ValueError, AttributeError):
            fixed = None
        if isinstance(fixed, list) and all(isinstance(x, str) for x in fixed):
            return frozenset(fixed)
    return frozenset(k for k, v in cfg.params.items() if v != _default(cfg, k))


def explicit_plan(cfg: RunConfig) -> list[dict]:
    """The fault plan a run of ``cfg`` schedules (its own faults plus what its nemesis generates),
    each action with ``at_s``, built as the run builds it."""
    from ..engine.dists import Dist
    from ..engine.kernel import NS_PER_S, Simulation
    from ..faults import Injector, nemesis_plan
    from . import scenario as registry

    sim = Simulation(cfg.seed, latency=Dist(cfg.latency_dist, cfg.latency_ms))
    Injector(sim, [])
    scen = registry.for_config(cfg)()
    setup = scen.build(sim, cfg)
    plan = [dict(a) for a in cfg.faults]
    plan += nemesis_plan(tuple(cfg.nemesis), setup.servers, sim.streams.get("faults"),
                         int(cfg.nemesis_interval_s * NS_PER_S), int(cfg.time_limit_s * NS_PER_S),
                         custom=scen.custom_nemeses)
    out = []
    for act in plan:
        act = dict(act)
        if "at_ns" in act:
            act = {"at_s": act.pop("at_ns") / 1e9, **act}
        out.append(act)
    return sorted(out, key=lambda a: a["at_s"])  # stable, as the injector sorts them


# ---- the shrinker ---------------------------------------------------------------------------------

@dataclass
class Shrinker:
    """Runs candidates on ``calls`` (an executor's call pool, ``width`` at a time) within ``budget``
    runs, and remembers every one for shrink.csv.

    Candidates are *consumed* in order, as though tried one at a time: each counts against the
    budget and gets its row when its turn comes, and the first that still fails ends a step. The
    runs themselves go ahead ``width`` at a time (the candidates after the one that fails are run for
    nothing, but kept: a later step may ask for them). So shrink.csv (less its wall times), the runs
    spent and the reproducer are the same on any executor, with any number of workers."""

    failure: Failure
    calls: Any = None
    width: int = 1
    budget: int = 150
    rows: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)  # candidate -> run_point's result (run ahead or consumed)
    recorded: set[str] = field(default_factory=set)  # candidates consumed (each one row, one run of the budget)

    @property
    def spent(self) -> int:
        return len(self.rows)

    def still_fails(self, key: str) -> bool:
        got = self.results[key]
        return got["valid"] is False and self.failure.checker in got.get("failed", [])

    def first_index(self, step: str, cfgs: list[RunConfig]) -> int | None:
        """The position of the first candidate that still fails with the same checker, or None (also
        once the budget is spent: a candidate past it counts as passing)."""
        keys = [_key(c) for c in cfgs]
        for i, (cfg, key) in enumerate(zip(cfgs, keys)):
            if key not in self.recorded:
                if self.spent >= self.budget:
                    return None
                if key not in self.results:
                    self._run_ahead(cfgs[i:], keys[i:])
                self._record(step, cfg, key)
            if self.still_fails(key):
                return i
        return None

    def _run_ahead(self, cfgs: list[RunConfig], keys: list[str]) -> None:
        room = min(self.width, self.budget - self.spent)
        todo: dict[str, RunConfig] = {}
        for cfg, key in zip(cfgs, keys):
            if len(todo) >= room:
                break
            if key not in self.results and key not in self.recorded and key not in todo:
                todo[key] = cfg
        outs = map_calls(self.calls, run_point, [c.to_dict() for c in todo.values()])
        self.results.update(zip(todo, outs))

    def _record(self, step: str, cfg: RunConfig, key: str) -> None:
        got = self.results[key]
        self.recorded.add(key)
        self.rows.append({"candidate": self.spent + 1, "step": step, "faults": fault_actions(cfg.faults),
                          "time_limit_s": cfg.time_limit_s, "rate": cfg.rate, "node_count": cfg.node_count,
                          "params": json.dumps({k: v for k, v in cfg.params.items() if v != _default(cfg, k)}),
                          "still_fails": self.still_fails(key), "checker": got["checker"],
                          "message": got["message"][:200], "wall_s": round(got["wall_s"], 3)})

    def fails(self, step: str, cfg: RunConfig) -> bool:
        return self.first_index(step, [cfg]) is not None

    def first(self, step: str, cfgs: list[RunConfig]) -> RunConfig | None:
        """The first candidate (in the order given) that still fails."""
        i = self.first_index(step, cfgs)
        return None if i is None else cfgs[i]

    def _ddmin(self, step: str, items: list, make: Callable[[list], RunConfig]) -> list:
        def fails_many(cands: list[list]) -> list[bool]:
            hit = self.first_index(step, [make(c) for c in cands])
            return [i == hit for i in range(len(cands))]

        return ddmin(items, fails_many, chunk=len(items) * 2 + 2)  # every candidate of a round at once

    def ddmin_faults(self, cfg: RunConfig) -> RunConfig:
        """ddmin over whole fault kinds (every action of one nemesis, or one verb) first, then over
        fault cycles (a start with its stop), then over the single actions left: each level is cheap
        once the one above has thrown out most of the plan."""
        plan = cfg.faults
        kinds = fault_kinds(plan)
        if len(kinds) > 1:
            keep = self._ddmin("ddmin fault kinds", list(range(len(kinds))),
                               lambda c: replace(cfg, faults=[plan[i] for i in sorted(j for g in c for j in kinds[g])]))
            plan = [plan[i] for i in sorted(j for g in keep for j in kinds[g])]
        groups = cycles(plan)
        keep = self._ddmin("ddmin fault cycles", list(range(len(groups))),
                           lambda c: replace(cfg, faults=[plan[i] for i in sorted(j for g in c for j in groups[g])]))
        plan = [plan[i] for i in sorted(j for g in keep for j in groups[g])]
        keep = self._ddmin("ddmin faults", list(range(len(plan))),
                           lambda c: replace(cfg, faults=[plan[i] for i in sorted(c)]))
        return replace(cfg, faults=[plan[i] for i in sorted(keep)])

    def ddmin_events(self, cfg: RunConfig) -> RunConfig:
        """ddmin over the events of each compound action (a crash storm's crashes), one action at a
        time: what fault_actions counts. Done after the time cuts, on a shorter run. (One ddmin over
        every action and event together spent raft no-persist-vote's whole budget: 232 -> 36.)"""
        plan = list(cfg.faults)
        for i, act in enumerate(plan):
            events = act.get("events")
            if isinstance(events, list) and len(events) > 1:
                def make(c, i=i, act=act, events=events):
                    return replace(cfg, faults=[*plan[:i], {**act, "events": [events[j] for j in sorted(c)]}, *plan[i + 1:]])

                keep = self._ddmin("ddmin events", list(range(len(events))), make)
                if keep:  # an empty storm is no simpler than dropping the action, which ddmin refused
                    plan[i] = {**act, "events": [events[j] for j in sorted(keep)]}
        return replace(cfg, faults=plan)

    def shorter(self, cfg: RunConfig) -> RunConfig:
        """The shortest of a few time limits that still fails (faults after it dropped): just after
        the instants the checker's message names, and fractions of the current limit."""
        limit = cfg.time_limit_s
        got = self.results.get(_key(cfg))  # the instants the latest failure names: earlier rounds moved them
        named = named_times_s(got["message"] if got and got.get("message") else self.failure.message)
        marks = [t + d for t in sorted(named)[-2:] for d in (0.05, 0.25, 1.0)] if named else []
        # the instant of the last fault action: it goes, and the final heal, which ends every fault,
        # takes its place (a pause whose resume is the end of the run)
        last = [max(a["at_s"] for a in cfg.faults)] if cfg.faults else []
        cands = sorted({x for x in (*(round(x, 3) for x in (*marks, limit / 8, limit / 4, limit / 2, limit * 3 / 4,
                                                           limit * 7 / 8)), *last) if 0.1 <= x < limit})
        found = self.first("shorter time limit", [_cut(cfg, x) for x in cands])
        return found or cfg

    def compressed(self, cfg: RunConfig) -> RunConfig:
        """Time and rate cut together: the same operations (rate up by the factor the time limit comes
        down), every fault at the same share of the run and the workload's own time scales (parameters
        declared ``time_scale``: a campaign's mean gap, a daily curve's period) divided as well, in less
        simulated time. Failures that need many operations (a 1% double delivery, a backlog) or a
        workload event (a campaign) keep them and lose the time."""
        scales = _time_scales(cfg)
        cands = []
        # the workload's time scales left alone first (the same workload, faster), then divided too
        for scaled in ((False, True) if scales else (False,)):
            for f in (8, 4, 2):
                limit = round(cfg.time_limit_s / f, 4)
                if limit < 0.1:
                    continue
                params = {**cfg.params, **{k: _scaled(v, f) for k, v in scales.items()}} if scaled else cfg.params
                cands.append(replace(cfg, time_limit_s=limit, rate=round(cfg.rate * f, 4),
                                     nemesis_interval_s=max(round(cfg.nemesis_interval_s / f, 4), 0.001),
                                     faults=[{**a, "at_s": round(a["at_s"] / f, 4)} for a in cfg.faults], params=params))
        return self.first("less time, higher rate", [c for c in cands if _valid(c)]) or cfg

    def earlier(self, cfg: RunConfig) -> RunConfig:
        """Every fault and the time limit moved earlier together (the biggest move that still fails):
        the quiet stretch before the first fault is rarely what the failure needs."""
        if not cfg.faults:
            return cfg
        first = min(a["at_s"] for a in cfg.faults)
        shifts = sorted({round(x, 4) for x in (first - 0.05, first * 7 / 8, first * 3 / 4, first / 2, first / 4,
                                                first / 8, first / 16) if x >= 0.05}, reverse=True)
        cands = [replace(cfg, time_limit_s=round(cfg.time_limit_s - d, 4),
                         faults=[{**a, "at_s": round(a["at_s"] - d, 4)} for a in cfg.faults])
                 for d in shifts if cfg.time_limit_s - d >= 0.1]
        return self.first("faults earlier", cands) or cfg

    def slower(self, cfg: RunConfig) -> RunConfig:
        """A lower rate, kept only if the run then has fewer operations (a design whose workload does
        not follow ``rate`` would otherwise "shrink" it for ever)."""
        cands = [round(cfg.rate * f, 4) for f in (1 / 8, 1 / 4, 1 / 2)]
        found = self.first("lower rate", [replace(cfg, rate=x) for x in cands if x >= 1e-3 and x < cfg.rate])
        if found is None or self.ops(found) >= self.ops(cfg) >= 0:
            return cfg
        return found

    def ops(self, cfg: RunConfig) -> int:
        """Operations of a candidate already run (-1 if not run)."""
        got = self.results.get(_key(cfg))
        return int(got.get("ops", -1)) if got else -1

    def reseeded(self, cfg: RunConfig) -> RunConfig:
        """Other seeds at a half and a quarter of the time limit (faults after it dropped), shortest
        first: when the failure needs the workload to line up (a campaign arriving, a backlog), another
        seed may line it up sooner. Seeds are drawn from the run's own seed, so the shrink repeats."""
        import numpy as np

        rng = np.random.default_rng([cfg.seed, 0x5EED])
        seeds = [int(x) for x in rng.integers(2**31, size=RESEEDS)]
        cands = [replace(_cut(cfg, round(cfg.time_limit_s * f, 4)), seed=seed)
                 for f in (1 / 4, 1 / 2) for seed in seeds if cfg.time_limit_s * f >= 0.1]
        return self.first("another seed, less time", cands) or cfg

    def redrawn(self, cfg: RunConfig) -> RunConfig:
        """Fresh fault plans in a quarter and a half of the time limit, shortest first: the nemeses the
        plan still uses, drawn again with other seeds (from the run's own, so the shrink repeats) and
        written out. ddmin's result depends on where it starts, and a plan drawn for a shorter run has
        fewer actions to start from (and costs less to shrink) than the tail cut from a long one."""
        import numpy as np

        kinds = tuple(dict.fromkeys(a["nemesis"] for a in cfg.faults if a.get("nemesis")))
        if not kinds:
            return cfg
        rng = np.random.default_rng([cfg.seed, 0xD2A3])
        seeds = [int(x) for x in rng.integers(2**31, size=RESEEDS)]
        cands = []
        for f in (1 / 4, 1 / 2):
            limit = round(cfg.time_limit_s * f, 4)
            if limit < 0.1:
                continue
            for seed in seeds:
                drawn = replace(cfg, seed=seed, time_limit_s=limit, nemesis=kinds,
                                faults=[a for a in cfg.faults if not a.get("nemesis") and a["at_s"] < limit])
                cands.append(replace(drawn, nemesis=(), faults=explicit_plan(drawn)))
        return self.first("fresh plan, less time", [c for c in cands if _valid(c)]) or cfg

    def retuned(self, cfg: RunConfig) -> RunConfig:
        """The same plan with one parameter set to another value the design declares for the search
        (``Scenario.search``: each value of a list, each end of a range), in the order declared. A
        failure that still needs many fault actions after the first cuts usually needs them to line up
        a coincidence (two servers timing out within a network latency of each other, say), and every
        action ddmin drops moves the timing that lined it up; a value the design offers for the search
        may make the coincidence the rule (a narrower timeout range), after which ddmin and the
        replacements cut freely. Kept only if the run still fails the same way; the new value is
        written to ``shrunk.toml`` like any parameter (and ``simpler_params`` tries the default again
        later). Parameters the user fixed (``Failure.fixed``) are left alone."""
        from . import scenario as registry
        from .hunt import check_search

        scen = registry.for_config(cfg)
        names = {p.name for p in scen.params}
        cands = []
        for name, spec in check_search(scen).items():
            if name not in names or name in self.failure.fixed or (isinstance(spec, list) and len(spec) == 1):
                continue  # run options (rate, nodes, time) have steps of their own; one value is a setting
            for value in (list(spec) if isinstance(spec, list) else dict.fromkeys(spec)):
                if value != cfg.params.get(name):
                    cands.append(replace(cfg, params={**cfg.params, name: value}))
        return self.first("declared parameter value", [c for c in cands if _valid(c)]) or cfg

    def fewer_nodes(self, cfg: RunConfig) -> RunConfig:
        from . import scenario as registry

        if "node_count" in registry.for_config(cfg).unused_options:
            return cfg
        cands = [replace(cfg, node_count=n) for n in range(1, cfg.node_count)]
        found = self.first("fewer nodes", [c for c in cands if _valid(c)])
        return found or cfg

    def simpler_params(self, cfg: RunConfig) -> RunConfig:
        for name in [k for k in cfg.params if cfg.params[k] != _default(cfg, k)]:
            cand = replace(cfg, params={**cfg.params, name: _default(cfg, name)})
            if _valid(cand) and self.fails(f"default {name}", cand):
                cfg = cand
        return cfg

    def simplified(self, cfg: RunConfig) -> RunConfig:
        """Compound actions written out, ddmin over the plain actions that makes, then replacement
        (:meth:`replaced`); the next round's steps take on what a replacement leaves."""
        if fault_actions(cfg.faults) <= 1:
            return cfg
        out = self.written_out(cfg)
        if out is not cfg:
            cfg = self.ddmin_faults(out)
        return self.replaced(cfg)

    def written_out(self, cfg: RunConfig) -> RunConfig:
        """The plan with every compound action written out as the crashes and restarts
        :func:`fault_actions` counts it as (see :func:`write_out`), kept if the run still fails: the
        same faults, the same count, but ddmin can then drop a restart the failure does not need
        (the final heal restarts the node) or a crash its neighbours do not."""
        plan = write_out(cfg.faults)
        if plan is None:
            return cfg
        return self.first("written out", [replace(cfg, faults=plan)]) or cfg

    def replaced(self, cfg: RunConfig) -> RunConfig:
        """Simplification by replacement: the whole plan replaced by one fault of the basic vocabulary
        (a crash and restart, an isolate and heal, a pause and resume) aimed at one node a remaining
        action touched, over that action's window (see :func:`replacements`). ddmin only recombines the
        actions the nemesis drew; a partition of random halves, a crash storm or a pause whose effect
        one isolated or crashed node has takes one or two actions this way. Kept only if the run still
        fails the same way, with fewer fault actions by construction."""
        got = self.results.get(_key(cfg))
        message = got["message"] if got and got.get("message") else self.failure.message
        cands = [replace(cfg, faults=p) for p in replacements(cfg.faults, cfg.time_limit_s, message)]
        return self.first("replaced by simpler faults", [c for c in cands if _valid(c)]) or cfg


def _time_scales(cfg: RunConfig) -> dict[str, Any]:
    """The run's values of the parameters its design declares ``time_scale`` (numbers only)."""
    from . import scenario as registry

    return {p.name: cfg.params[p.name] for p in registry.for_config(cfg).params
            if getattr(p, "time_scale", False) and p.name in cfg.params
            and isinstance(cfg.params[p.name], (int, float)) and not isinstance(cfg.params[p.name], bool)}


def _scaled(value: int | float, f: int) -> int | float:
    if isinstance(value, int):
        return max(1, round(value / f)) if value > 0 else value  # 0 often means "none": it stays none
    return round(value / f, 4)


def _key(cfg: RunConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, default=str)


def _cut(cfg: RunConfig, limit_s: float) -> RunConfig:
    return replace(cfg, time_limit_s=limit_s, faults=[a for a in cfg.faults if a["at_s"] < limit_s])


def fault_actions(plan: list[dict]) -> int:
    """The fault actions ``plan`` applies: one per entry, except that an entry carrying a list of timed
    ``events`` (raft's crash storm: each event crashes a node and restarts it later) counts two per event,
    as a crash and its restart written out would. This is the count shrinking is judged by."""
    return sum(2 * len(a["events"]) if isinstance(a.get("events"), list) and a["events"] else 1 for a in plan)


# ---- simplification by replacement ---------------------------------------------------------------

# The verb that ends each fault of the basic vocabulary (simulator/faults/plan.py VERBS); the final heal
# ends them all, so a fault with no end in the plan lasts to the end of the run's main phase.
UNDO = {"crash": "restart", "pause": "resume", "isolate": "heal", "partition": "heal", "partition_oneway": "heal",
        "block": "heal", "slow": "reset_links", "flaky": "reset_links", "set_loss": "reset_links",
        "set_duplicate": "reset_links", "clock_bump": "clock_reset", "clock_drift": "clock_reset",
        "clock_strobe": "clock_reset"}
# What a remaining fault is replaced by, aimed at one node it touched, simplest effect first: a node
# gone (and back), a node cut off (and healed), a node stopped (and resumed).
SIMPLE_FAULTS = (("crash", "restart"), ("isolate", "heal"), ("pause", "resume"))
MAX_REPLACEMENTS = 16  # replacement candidates tried per pass (the runs they may cost)


def _event(ev: Any) -> tuple[float, str, float] | None:
    """A compound action's event ``[at_ms, node, down_ms]`` (a crash storm's), or None for another shape."""
    if (isinstance(ev, (list, tuple)) and len(ev) == 3 and isinstance(ev[1], str)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (ev[0], ev[2]))):
        return float(ev[0]), ev[1], float(ev[2])
    return None


def write_out(plan: list[dict]) -> list[dict] | None:
    """``plan`` with each compound action whose ``events`` are ``[at_ms, node, down_ms]`` (raft's crash
    storm) written out as a plain ``crash`` of the node at the action's time plus ``at_ms`` and a
    ``restart`` ``down_ms`` later: the actions :func:`fault_actions` counts it as. None when the plan has
    no such action (or one of another shape: it is left alone)."""
    out, changed = [], False
    for act in plan:
        events = act.get("events")
        parsed = [_event(e) for e in events] if isinstance(events, list) and events else []
        if not parsed or any(e is None for e in parsed):
            out.append(act)
            continue
        changed = True
        for at_ms, node, down_ms in parsed:
            t = float(act["at_s"]) + at_ms / 1000
            out += [{"at_s": round(t, 6), "action": "crash", "node": node},
                    {"at_s": round(t + down_ms / 1000, 6), "action": "restart", "node": node}]
    return sorted(out, key=lambda a: a["at_s"]) if changed else None


@dataclass(frozen=True)
class Episode:
    """One fault of a plan as a window: when it starts, when the plan ends it (None: at the final heal)
    and the nodes it touches, the most singled-out first (the smaller side of a partition)."""

    start_s: float
    stop_s: float | None
    nodes: tuple[str, ...]


def _touched(act: dict) -> list[str]:
    """The nodes an action names, the most singled-out first."""
    out: list[str] = []
    if isinstance(act.get("node"), str):
        out.append(act["node"])
    groups = act.get("groups")
    if isinstance(groups, list):
        sized = sorted((g for g in groups if isinstance(g, list)), key=len)  # stable: equal sizes keep their order
        out += [n for g in sized[:-1] for n in g if isinstance(n, str)] if len(sized) > 1 else []
    for key in ("dsts", "srcs"):  # a one-way cut singles out its destinations
        if isinstance(act.get(key), list):
            out += [n for n in act[key] if isinstance(n, str)]
    if isinstance(act.get("pairs"), list):
        out += [n for p in act["pairs"] if isinstance(p, (list, tuple)) for n in p if isinstance(n, str)]
    return list(dict.fromkeys(out))


def episodes(plan: list[dict]) -> list[Episode]:
    """The faults of ``plan`` as windows, in plan order: each starting action of the basic vocabulary
    with the first later action that ends it (``restart`` for a crash of the same node, ``heal`` for a
    partition, ...), and each event of a compound action (``[at_ms, node, down_ms]``). Actions that name
    no node (a slow network, a design's own staged verbs) make no episode: there is nothing to aim at."""
    out: list[Episode] = []
    for i, act in enumerate(plan):
        events = act.get("events")
        if isinstance(events, list):
            for ev in map(_event, events):
                if ev is not None:
                    t = float(act["at_s"]) + ev[0] / 1000
                    out.append(Episode(round(t, 6), round(t + ev[2] / 1000, 6), (ev[1],)))
            continue
        undo = UNDO.get(act.get("action"))
        nodes = tuple(_touched(act))
        if undo is None or not nodes:
            continue
        stop = next((b["at_s"] for b in plan[i + 1:] if b.get("action") == undo
                     and (b.get("node") is None or b.get("node") == act.get("node"))), None)
        out.append(Episode(float(act["at_s"]), None if stop is None else float(stop), nodes))
    return out


def replacements(plan: list[dict], limit_s: float, message: str = "") -> list[list[dict]]:
    """Plans of one basic fault (:data:`SIMPLE_FAULTS`) standing in for the whole of ``plan``: for each
    episode (see :func:`episodes`) and each node it touches, that node crashed, isolated or paused over
    the episode's window (one action when the window lasts to the end of the run: the final heal ends
    it). Only plans with fewer fault actions than ``plan``; nodes the checker's ``message`` names first
    (the node that voted twice), then in plan order, at most :data:`MAX_REPLACEMENTS`. Design-agnostic:
    the candidates use the kernel's verbs and the nodes and instants the plan itself holds."""
    count = fault_actions(plan)
    cands: list[tuple[tuple, list[dict]]] = []
    seen: set[str] = set()
    for k, ep in enumerate(episodes(plan)):
        if ep.start_s >= limit_s:
            continue
        for j, node in enumerate(ep.nodes):
            named = re.search(rf"(?<![\w-]){re.escape(node)}(?![\w-])", message)
            mention = named.start() if named else len(message)  # the node a message names first, first
            for v, (verb, undo) in enumerate(SIMPLE_FAULTS):
                new = [{"at_s": ep.start_s, "action": verb, "node": node}]
                if ep.stop_s is not None and ep.stop_s < limit_s:
                    new.append({"at_s": ep.stop_s, "action": undo, **({"node": node} if "node" in VERBS[undo] else {})})
                key = json.dumps(new)
                if fault_actions(new) >= count or key in seen:
                    continue
                seen.add(key)
                cands.append(((len(new), mention, -ep.start_s, k, j, v), new))
    cands.sort(key=lambda c: c[0])
    return [new for _, new in cands[:MAX_REPLACEMENTS]]


def fault_kinds(plan: list[dict]) -> list[list[int]]:
    """Indexes of ``plan`` grouped by kind: the nemesis that made an action, or else its verb."""
    kinds: dict[str, list[int]] = {}
    for i, act in enumerate(plan):
        kinds.setdefault(str(act.get("nemesis") or act.get("action")), []).append(i)
    return list(kinds.values())


def _default(cfg: RunConfig, name: str) -> Any:
    from . import scenario as registry

    for p in registry.for_config(cfg).params:
        if p.name == name:
            return p.default
    return None


def _valid(cfg: RunConfig) -> bool:
    """Whether a candidate is a configuration the design accepts (checked as a config file would be)."""
    from . import scenario as registry

    try:
        scen = registry.for_config(cfg)
        build_config(scen, seed=cfg.seed, file={"faults": list(cfg.faults)},
                     options={k: getattr(cfg, k) for k in RUN_OPTIONS}, sets=dict(cfg.params), bug=cfg.bug)
        scen.validate(cfg.params)
        dry_build(cfg)  # the design's own refusals, and faults naming hosts the candidate no longer has
    except UsageError:
        return False
    return True


def named_times_s(message: str) -> list[float]:
    """The instants a checker's message names ("at 3421.813 ms", "by tm1 at 5.802 s", "from t=16.6 s", the
    end of an operation "6813.347-6820.604 ms"), in seconds; durations ("in the 1000 ms") are not instants."""
    return [float(v) / (1000 if unit == "ms" else 1)
            for v, unit in re.findall(r"(?:\bat |\bt=|\d-)(\d+(?:\.\d+)?) (ms|s)\b", message)]


def cycles(plan: list[dict]) -> list[list[int]]:
    """Indexes of ``plan`` grouped into fault cycles: a nemesis start action with the stop actions
    that end it; an action of no nemesis is a group of its own."""
    groups: list[list[int]] = []
    open_: dict[str, int] = {}  # nemesis -> its latest group
    for i, act in enumerate(plan):
        label, phase = act.get("nemesis"), act.get("phase")
        if label and phase == "stop" and label in open_:
            groups[open_[label]].append(i)
        elif label and phase == "start" and label in open_ and plan[groups[open_[label]][0]]["at_s"] == act["at_s"]:
            groups[open_[label]].append(i)  # one start made of several actions
        else:
            groups.append([i])
            if label:
                open_[label] = len(groups) - 1
    return groups


@dataclass
class ShrinkResult:
    before: RunConfig
    after: RunConfig
    explicit: bool  # whether the nemesis could be replaced by its explicit plan
    faults_before: int  # fault actions (see fault_actions) of the nemesis's plan
    rows: list[dict[str, Any]]

    @property
    def faults_after(self) -> int:
        return fault_actions(self.after.faults) if self.explicit else self.faults_before


def shrink(failure: Failure, jobs: int = 1, budget: int = 150, *, cluster: str | None = None,
           executor: Any = None) -> ShrinkResult:
    """Shrink ``failure`` within ``budget`` runs on ``executor`` (or one opened from ``jobs`` /
    ``cluster``); see the module docstring for the steps. The result does not depend on the executor."""
    from .executor import open_executor

    if executor is None:
        with open_executor(jobs=jobs, cluster=cluster) as ex:
            return shrink(failure, jobs, budget, executor=ex)
    with executor.calls([failure.cfg.to_dict()]) as calls:
        s = Shrinker(failure, calls=calls, width=max(1, executor.workers), budget=budget)
        cfg = replace(failure.cfg, trace=False)
        plan = explicit_plan(cfg)
        explicit = replace(cfg, nemesis=(), faults=plan)
        faults_before = fault_actions(plan)
        if s.fails("explicit plan", explicit):
            cfg, is_explicit = explicit, True
        else:  # a nemesis that watches the run (a staged one) may not survive being written out
            is_explicit = False
        reseeded = redrawn = retuned = False
        for _ in range(MAX_ROUNDS):  # until nothing shrinks further (or the budget is spent)
            before = cfg
            cfg = s.shorter(cfg)  # first: cheap runs, and every fault after the failure goes at once
            if is_explicit and cfg.faults:
                if not redrawn and failure.cfg.nemesis:
                    redrawn = True  # once: it costs 2 x RESEEDS runs
                    cfg = s.redrawn(cfg)
                if fault_actions(cfg.faults) > 2:
                    cfg = s.replaced(cfg)  # before ddmin: when one simple fault will do, ddmin has little left to cut
                if not retuned and fault_actions(cfg.faults) > SMALL_PLAN:
                    retuned = True  # once: it costs a run per declared value
                    cfg = s.retuned(cfg)
                cfg = s.ddmin_faults(cfg)
                cfg = s.earlier(cfg)
            cfg = s.compressed(cfg)
            if is_explicit:
                cfg = s.ddmin_events(cfg)
                cfg = s.simplified(cfg)
            cfg = s.slower(cfg)
            cfg = s.fewer_nodes(cfg)
            cfg = s.simpler_params(cfg)
            if cfg.time_limit_s == before.time_limit_s and not reseeded:
                reseeded = True  # once: it costs 2 x RESEEDS runs
                cfg = s.reseeded(cfg)
            if cfg == before or s.spent >= budget:
                break
        return ShrinkResult(failure.cfg, cfg, is_explicit, faults_before, s.rows)


# ---- the experiment file --------------------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"cannot write {v!r} to TOML")


def to_toml(cfg: RunConfig, header: list[str]) -> str:
    """``cfg`` as an experiment file ``dsim run --config`` reads back to the same configuration
    (parameters at their defaults are left out)."""
    lines = [f"# {h}" for h in header]
    lines.append(f"scenario = {_toml_value(cfg.scenario)}")
    lines.append(f"seed = {cfg.seed}")
    if cfg.bug:
        lines.append(f"bug = {_toml_value(cfg.bug)}")
    for key in RUN_OPTIONS:
        value = getattr(cfg, key)
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(list(value) if key == 'nemesis' else value)}")
    params = {k: v for k, v in cfg.params.items() if v != _default(cfg, k)}
    if params:
        lines += ["", "[params]"] + [f"{k} = {_toml_value(v)}" for k, v in params.items()]
    for act in cfg.faults:
        lines += ["", "[[faults]]"] + [f"{k} = {_toml_value(v)}" for k, v in act.items()]
    return "\n".join(lines) + "\n"
