"""Shrinking: ``dsim shrink RUN_DIR`` cuts a failing run down to a small reproducer that still fails
with the same checker.

Steps, each candidate an ordinary deterministic run (``--jobs`` of them at a time), within a
budget of runs:

1. *Explicit plan.* The nemesis is turned into the fault plan it produced (built exactly as
   :class:`~simulator.pipeline.run.Run` builds it: the same seed, the same ``faults`` stream), so
   each fault action can be kept or dropped on its own. Nemesis actions keep their ``nemesis`` and
   ``phase`` labels, so the explicit run's trace is the nemesis run's.
2. *Delta debugging* (Zeller and Hildebrandt's ddmin) over the fault actions: the result is
   1-minimal, i.e. dropping any one remaining action makes the failure go away.
   It works on whole fault cycles (a start with its stop) first, then on single actions.
3. *Smaller everything else*, each kept only if the run still fails: a shorter time limit (just
   after the instants the checker's message names, or a fraction of the limit; faults after it
   dropped), a lower rate, fewer nodes, parameters back at their defaults. The shorter time limit
   is tried first (its runs are cheap and drop every later fault at once). After ddmin, the
   remaining faults and the time limit move earlier together, past the quiet stretch before the
   first fault. The steps repeat while anything still shrinks.

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
from .config import RUN_OPTIONS, RunConfig, build_config, check_recorded
from .hunt import LocalPool, run_point


MAX_ROUNDS = 4  # passes over every step; each pass after the first only runs if the one before shrank something


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


def load_failure(run_dir: str | Path) -> Failure:
    """A complete, invalid run folder: its configuration and the checker that failed."""
    from . import scenario as registry
    from .results import _bad_run, read_run

    r = read_run(run_dir)
    man, met = r["manifest"], r["metrics"]
    if man.get("status") != "complete" or met.get("valid") is not False:
        raise _bad_run(run_dir, f"its run is {man.get('status')} with verdict {met.get('valid')!r}; "
                                "shrink needs a complete run that failed a check")
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
    return Failure(Path(run_dir), cfg, bad[0][0], str(bad[0][1].get("message", "")), float(man.get("end_time_s") or 0), ops)


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
    """Runs candidates (``jobs`` at a time) within ``budget`` runs; remembers every one for shrink.csv."""

    failure: Failure
    jobs: int = 1
    budget: int = 150
    rows: list[dict[str, Any]] = field(default_factory=list)
    pool: LocalPool | None = None
    tried: dict[str, bool] = field(default_factory=dict)  # a candidate already run is not run again

    @property
    def spent(self) -> int:
        return len(self.rows)

    def fails(self, step: str, cfgs: list[RunConfig]) -> list[bool]:
        """Whether each candidate still fails with the same checker (False once the budget is spent)."""
        keys = [json.dumps(c.to_dict(), sort_keys=True, default=str) for c in cfgs]
        fresh = [i for i, k in enumerate(keys) if k not in self.tried]
        fresh = [i for n, i in enumerate(fresh) if keys[i] not in {keys[j] for j in fresh[:n]}]
        todo = [cfgs[i] for i in fresh[:max(0, self.budget - self.spent)]]
        outs = self.pool.map(run_point, [c.to_dict() for c in todo]) if todo else []
        for cfg, got in zip(todo, outs):
            bad = got["valid"] is False and self.failure.checker in got.get("failed", [])
            self.rows.append({"candidate": self.spent + 1, "step": step, "faults": len(cfg.faults),
                              "time_limit_s": cfg.time_limit_s, "rate": cfg.rate, "node_count": cfg.node_count,
                              "params": json.dumps({k: v for k, v in cfg.params.items() if v != _default(cfg, k)}),
                              "still_fails": bad, "checker": got["checker"], "message": got["message"][:200],
                              "wall_s": round(got["wall_s"], 3)})
            self.tried[json.dumps(cfg.to_dict(), sort_keys=True, default=str)] = bad
        return [self.tried.get(k, False) for k in keys]  # a candidate past the budget counts as passing

    def first(self, step: str, cfgs: list[RunConfig]) -> RunConfig | None:
        """The first candidate (in the order given) that still fails, tried ``jobs`` at a time."""
        for i in range(0, len(cfgs), self.jobs):
            got = self.fails(step, cfgs[i:i + self.jobs])
            for cfg, bad in zip(cfgs[i:i + self.jobs], got):
                if bad:
                    return cfg
        return None

    def ddmin_faults(self, cfg: RunConfig) -> RunConfig:
        """ddmin over whole fault cycles (a start with its stop) first, which is cheap, then over
        the single actions left."""
        plan = cfg.faults
        groups = cycles(plan)
        keep = ddmin(list(range(len(groups))),
                     lambda cands: self.fails("ddmin fault cycles", [
                         replace(cfg, faults=[plan[i] for g in sorted(c) for i in groups[g]]) for c in cands]),
                     chunk=self.jobs)
        plan = [plan[i] for g in sorted(keep) for i in groups[g]]
        plan.sort(key=lambda a: a["at_s"])
        keep = ddmin(list(range(len(plan))),
                     lambda cands: self.fails("ddmin faults", [replace(cfg, faults=[plan[i] for i in c]) for c in cands]),
                     chunk=self.jobs)
        return replace(cfg, faults=[plan[i] for i in keep])

    def shorter(self, cfg: RunConfig) -> RunConfig:
        """The shortest of a few time limits that still fails (faults after it dropped): just after
        the instants the checker's message names, and fractions of the current limit."""
        limit = cfg.time_limit_s
        named = named_times_s(self.failure.message)
        marks = [t + d for t in named[-2:] for d in (0.05, 0.25, 1.0)] if named else []
        cands = sorted({round(x, 3) for x in (*marks, limit / 8, limit / 4, limit / 2, limit * 3 / 4, limit * 7 / 8)
                        if 0.1 <= x < limit})
        found = self.first("shorter time limit", [
            replace(cfg, time_limit_s=x, faults=[a for a in cfg.faults if a["at_s"] < x]) for x in cands])
        return found or cfg

    def earlier(self, cfg: RunConfig) -> RunConfig:
        """Every fault and the time limit moved earlier together (the biggest move that still fails):
        the quiet stretch before the first fault is rarely what the failure needs."""
        if not cfg.faults:
            return cfg
        first = min(a["at_s"] for a in cfg.faults)
        shifts = sorted({round(x, 4) for x in (first - 0.05, first * 3 / 4, first / 2, first / 4) if x >= 0.05},
                        reverse=True)
        cands = [replace(cfg, time_limit_s=round(cfg.time_limit_s - d, 4),
                         faults=[{**a, "at_s": round(a["at_s"] - d, 4)} for a in cfg.faults])
                 for d in shifts if cfg.time_limit_s - d >= 0.1]
        return self.first("faults earlier", cands) or cfg

    def slower(self, cfg: RunConfig) -> RunConfig:
        cands = [round(cfg.rate * f, 4) for f in (1 / 8, 1 / 4, 1 / 2)]
        found = self.first("lower rate", [replace(cfg, rate=x) for x in cands if x >= 1e-3 and x < cfg.rate])
        return found or cfg

    def fewer_nodes(self, cfg: RunConfig) -> RunConfig:
        cands = [replace(cfg, node_count=n) for n in range(1, cfg.node_count)]
        found = self.first("fewer nodes", [c for c in cands if _valid(c)])
        return found or cfg

    def simpler_params(self, cfg: RunConfig) -> RunConfig:
        for name in [k for k in cfg.params if cfg.params[k] != _default(cfg, k)]:
            cand = replace(cfg, params={**cfg.params, name: _default(cfg, name)})
            if _valid(cand) and self.fails(f"default {name}", [cand])[0]:
                cfg = cand
        return cfg


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
    except UsageError:
        return False
    return True


def named_times_s(message: str) -> list[float]:
    """The instants a checker's message names ("at 3421.813 ms", "by tm1 at 5.802 s", "from t=16.6 s"), in
    seconds; durations ("in the 1000 ms") are not instants."""
    return [float(v) / (1000 if unit == "ms" else 1) for v, unit in re.findall(r"(?:\bat |\bt=)(\d+(?:\.\d+)?) (ms|s)\b", message)]


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
    faults_before: int
    rows: list[dict[str, Any]]


def shrink(failure: Failure, jobs: int = 1, budget: int = 150) -> ShrinkResult:
    """Shrink ``failure`` within ``budget`` runs; see the module docstring for the steps."""
    with LocalPool(jobs) as pool:
        s = Shrinker(failure, jobs=jobs, budget=budget, pool=pool)
        cfg = replace(failure.cfg, trace=False)
        plan = explicit_plan(cfg)
        explicit = replace(cfg, nemesis=(), faults=plan)
        faults_before = len(plan)
        if s.fails("explicit plan", [explicit])[0]:
            cfg, is_explicit = explicit, True
        else:  # a nemesis that watches the run (a staged one) may not survive being written out
            is_explicit = False
        for _ in range(MAX_ROUNDS):  # until nothing shrinks further (or the budget is spent)
            before = cfg
            cfg = s.shorter(cfg)  # first: cheap runs, and every fault after the failure goes at once
            if is_explicit and cfg.faults:
                cfg = s.ddmin_faults(cfg)
                cfg = s.earlier(cfg)
            cfg = s.slower(cfg)
            cfg = s.fewer_nodes(cfg)
            cfg = s.simpler_params(cfg)
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
