"""Fault search: ``dsim hunt`` looks for a failing run without being told which nemesis to use.

Swarm search (as FoundationDB's simulation and swarm testing do): every run draws its own
configuration from the hunt's seed, so that each run leaves out some fault kinds and stresses the
others harder:

- a seed;
- a random subset of the design's nemeses (kernel and custom ones; sometimes none at all);
- every run option and scenario parameter that the design's :attr:`Scenario.search` declares a
  range for (``nemesis_interval_s``, ``rate``, ``node_count``, ``time_limit_s``, parameters).

Anything the user gave on the command line (``--nemesis``, ``--set k=v``, ``--rate``...) is fixed and
not searched. A design that declares no ranges is searched over seeds and nemeses only.

Coverage guidance, kept simple: each run reports *features*, the kinds of observation it recorded
and the checker details it produced, each bucketed by the log2 of its count (``leader:3`` means
4-7 leader observations; ``vote-once.votes:5``). A run that reached a feature no earlier run reached
joins the *corpus*. Later runs are, half of the time, a *mutation* of a corpus entry (a fresh seed
and one or two dimensions re-drawn; entries that found more new features are picked more often)
rather than a fresh draw.

Runs go to an executor (:func:`~simulator.pipeline.executor.open_executor`: ``--jobs N`` local
processes or ``--cluster`` Dask, as ``dsim sweep``) through a sliding window: run ``i`` is planned
from the corpus as it stood once runs ``1 .. i - WINDOW`` were folded in, and results are folded in
run order, whatever order they finish in. Up to :data:`WINDOW` runs are in flight, so one long run
does not idle the other workers, and the sequence of configurations (and the rows, and the failures
found) depends on the hunt seed only, never on ``--jobs``, ``--cluster`` or which worker finished
first.

Every failing run is run a second time, into its own folder, and the two digests are compared
(the determinism self-check madsim and FoundationDB run).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engine.errors import UsageError
from .config import RUN_OPTIONS, RunConfig, build_config
from .scenario import Scenario

WINDOW = 16  # run i is planned from the results of runs 0 .. i-WINDOW: fixed, so the executor never changes
# the sequence, and up to WINDOW runs are in flight (one slow run idles no worker until WINDOW-1 others are done)
P_MUTATE = 0.5  # share of runs that mutate a corpus entry, once the corpus has one
P_NO_NEMESIS = 0.1  # share of fresh draws with no nemesis at all (bugs that need no faults)
MAX_KINDS = 4  # at most this many nemeses in one run: fewer kinds, more cycles of each
HOST_TIME_DETAILS = ("seconds", "wall_s", "cpu_s")  # checker details measured on the host's clock: not features
SEARCHABLE_OPTIONS = ("node_count", "rate", "nemesis_interval_s", "time_limit_s", "latency_ms", "op_timeout_ms")


# ---- budget ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """A number of runs, or seconds of wall time."""

    runs: int | None = None
    wall_s: float | None = None

    def __str__(self) -> str:
        return f"{self.runs} runs" if self.runs is not None else f"{self.wall_s:g} s wall"


_UNITS = {"s": 1, "m": 60, "h": 3600}
MAX_BUDGET_RUNS = 1_000_000


def parse_budget(raw: str, option: str = "--budget") -> Budget:
    """``"200"`` (runs) or ``"90s"``, ``"10m"``, ``"2h"`` (wall time)."""
    text = str(raw).strip().lower()
    bad = UsageError(f"bad value {raw!r} for {option}: expected a number of runs (200) or a wall time (90s, 10m, 2h)")
    if text.isascii() and text.isdigit() and len(text) <= 7:
        n = int(text)
        if not 1 <= n <= MAX_BUDGET_RUNS:
            raise bad
        return Budget(runs=n)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", text)
    if not m or not text.isascii():
        raise bad
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0 < seconds <= 30 * 86400:
        raise bad
    return Budget(wall_s=seconds)


# ---- the search space -----------------------------------------------------------------------------

def check_search(scenario: type[Scenario]) -> dict[str, Any]:
    """The design's ``search`` ranges, checked: each key a searchable run option or a parameter,
    each value ``(low, high)`` numbers or a non-empty list of values."""
    out = {}
    names = {p.name for p in scenario.params}
    for key, spec in dict(getattr(scenario, "search", {}) or {}).items():
        if key not in SEARCHABLE_OPTIONS and key not in names:
            raise UsageError(f"{scenario.name}.search names {key!r}: expected a parameter or one of "
                             f"{', '.join(SEARCHABLE_OPTIONS)}")
        if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, (int, float)) for x in spec) \
                and spec[0] <= spec[1]:
            out[key] = spec
        elif isinstance(spec, list) and spec:
            out[key] = list(spec)
        else:
            raise UsageError(f"{scenario.name}.search[{key!r}] is {spec!r}: expected (low, high) or a list of values")
        if key in scenario.unused_options:  # every draw but the default would be refused
            raise UsageError(f"{scenario.name}.search names {key!r}, which {scenario.name} does not use "
                             "(unused_options): expected a parameter or a run option it reads")
        for value in out[key]:  # a range's two ends, or every listed value: each one the design accepts
            _check_search_value(scenario, key, value, spec)
    return out


def _check_search_value(scenario: type[Scenario], key: str, value: Any, spec: Any) -> None:
    """Refuse a ``search`` value the design or dsim would refuse in every run it drew (a hunt of them
    all skipped read as 'no failure'), or that the draws cannot hold (inf, beyond int64)."""
    from .config import _check_option

    try:
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise UsageError("not a finite number")
        if isinstance(value, int) and not -2**62 <= value <= 2**62:
            raise UsageError("beyond what a draw can hold")
        if key in SEARCHABLE_OPTIONS:
            checked = _check_option(key, value, scenario)
            if isinstance(spec, tuple) and isinstance(checked, int) and not isinstance(value, int):
                raise UsageError("an integer option needs integer ends")
        else:
            scenario.param(key).parse(value)
    except UsageError as exc:
        raise UsageError(f"{scenario.name}.search[{key!r}] is {spec!r}: {value!r} is refused ({exc}); expected values "
                         f"the design accepts") from None


@dataclass
class Space:
    """What a hunt searches: the nemeses it may pick and the ranges it draws from, on top of a base
    configuration (the user's fixed options)."""

    scenario: type[Scenario]
    base: RunConfig
    nemeses: tuple[str, ...]  # empty when the user fixed --nemesis
    ranges: dict[str, Any]  # the dimensions the user did not fix

    @classmethod
    def of(cls, scenario: type[Scenario], base: RunConfig, fixed: set[str]) -> "Space":
        nemeses = () if "nemesis" in fixed else tuple(dict.fromkeys(
            [*scenario.nemeses, *scenario.custom_nemeses]))
        ranges = {k: v for k, v in check_search(scenario).items() if k not in fixed}
        return cls(scenario, base, nemeses, ranges)

    def dimensions(self) -> list[str]:
        # a one-value list is a setting for the hunt's runs (a checker budget, say), not a dimension to mutate
        return (["nemesis"] if self.nemeses else []) + [k for k, v in self.ranges.items()
                                                         if not (isinstance(v, list) and len(v) == 1)]

    # A configuration is a plain dict: seed, nemesis (a tuple), and one entry per range.
    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        point: dict[str, Any] = {"seed": int(rng.integers(2**31))}
        if self.nemeses:
            point["nemesis"] = self._draw_nemeses(rng)
        for key in self.ranges:
            point[key] = self._draw(key, rng)
        return point

    def mutate(self, parent: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """A fresh seed, and one or two dimensions of ``parent`` drawn again (a nemesis added or dropped)."""
        child = dict(parent)
        child["seed"] = int(rng.integers(2**31))
        dims = self.dimensions()
        if not dims:
            return child
        for i in rng.choice(len(dims), size=min(len(dims), int(rng.integers(1, 3))), replace=False):
            key = dims[int(i)]
            if key == "nemesis":
                current = list(child.get("nemesis", ()))
                spare = [n for n in self.nemeses if n not in current]
                if current and (not spare or rng.random() < 0.5 or len(current) >= MAX_KINDS):
                    current.pop(int(rng.integers(len(current))))
                elif spare:
                    current.append(spare[int(rng.integers(len(spare)))])
                child["nemesis"] = tuple(n for n in self.nemeses if n in current)
            else:
                child[key] = self._draw(key, rng)
        return child

    def _draw_nemeses(self, rng: np.random.Generator) -> tuple[str, ...]:
        if rng.random() < P_NO_NEMESIS:
            return ()
        k = int(rng.integers(1, min(MAX_KINDS, len(self.nemeses)) + 1))
        picked = set(int(i) for i in rng.choice(len(self.nemeses), size=k, replace=False))
        return tuple(n for i, n in enumerate(self.nemeses) if i in picked)

    def _draw(self, key: str, rng: np.random.Generator) -> Any:
        spec = self.ranges[key]
        if isinstance(spec, list):
            return spec[int(rng.integers(len(spec)))]
        lo, hi = spec
        if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool):
            return int(rng.integers(lo, hi + 1))
        if lo > 0 and hi / lo >= 10:  # a wide range: log-uniform, so small values get their share
            return float(round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 4))
        return float(round(rng.uniform(lo, hi), 4))

    def config(self, point: dict[str, Any]) -> RunConfig:
        """The run configuration of ``point``: the base with the point's values put in, validated."""
        base = self.base
        options = {k: getattr(base, k) for k in RUN_OPTIONS}
        sets = dict(base.params)
        for key, value in point.items():
            if key == "seed":
                continue
            if key in RUN_OPTIONS:
                options[key] = value
            else:
                sets[key] = value
        return build_config(self.scenario, seed=point["seed"], file={"faults": list(base.faults)}, options=options,
                            sets=sets, bug=base.bug)


def describe_point(point: dict[str, Any]) -> str:
    parts = [f"seed {point['seed']}"]
    if "nemesis" in point:
        parts.append("nemesis " + (",".join(point["nemesis"]) or "none"))
    parts += [f"{k}={v}" for k, v in point.items() if k not in ("seed", "nemesis")]
    return ", ".join(parts)


# ---- coverage -------------------------------------------------------------------------------------

def _bucket(n: float) -> int:
    return int(math.log2(n + 1)) if n > 0 else 0


def features(records: list[dict], checks: dict[str, Any], tables: dict[str, list] | None = None) -> set[str]:
    """What a run reached: observation kinds (records and ``record_row`` tables) and numeric
    checker details, bucketed by log2 of the count; checkers that did not pass, by name."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    for kind, rows in (tables or {}).items():
        counts[kind] = counts.get(kind, 0) + len(rows)
    out = {f"{k}:{_bucket(n)}" for k, n in counts.items()}
    for name, res in checks.items():
        if res.valid is not True:
            out.add(f"{name}:not-valid")
        for key, value in (res.details or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if key in HOST_TIME_DETAILS or key.endswith(("_seconds", "_wall_s")):
                continue  # host time (how long a search took) is no coverage, and differs from run to run
            out.add(f"{name}.{key}:{_bucket(abs(value))}")
    return out


def signature(checker: str, message: str) -> str:
    """What makes two failures the same for ``--until all``: the checker and the shape of the
    message's first clause (up to a colon; numbers and node names blanked), so that "4 delivered
    more than once: 172 x2, ..." and "1 delivered more than once: 188 x2" count once."""
    shape = re.sub(r"\b[a-z]*\d+(\.\d+)?\b", "#", (message or "").split(":")[0])
    return f"{checker}: {' '.join(shape.split())[:120]}"


# ---- one run, in a worker -------------------------------------------------------------------------

def run_point(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in memory (no folder); its verdict, features, digest and CPU time."""
    from .run import execute

    cfg = RunConfig.from_dict(cfg_dict)
    if cfg.design_path:  # a worker started by spawn has not loaded the design file
        from .scenario import load_design

        load_design(cfg.design_path, expect_sha256=cfg.design_sha256)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        out = execute(cfg)
    except UsageError as exc:  # the design refuses this combination in build()
        return _skipped(str(exc))
    except Exception as exc:  # noqa: BLE001 - a crashing run is a finding too, reported as unknown
        return {"valid": "unknown", "checker": "crash", "message": f"run crashed: {type(exc).__name__}: {exc}",
                "features": [f"crash:{type(exc).__name__}"], "digest": "", "cpu_s": time.process_time() - cpu0,
                "wall_s": time.perf_counter() - wall0}
    bad = [(name, r) for name, r in out.checks.items() if r.valid is False]
    checker, message = (bad[0][0], bad[0][1].message) if bad else ("", "")
    if not bad and out.valid is not True:  # unknown: name the checkers that could not decide, and why
        unsure = [(name, r) for name, r in out.checks.items() if r.valid is not True]
        checker = ",".join(name for name, _ in unsure)
        message = "; ".join(f"{name}: {r.message or 'unknown (no reason given)'}" for name, r in unsure)
    ops = (getattr(out, "metrics", None) or {}).get("ops") or {}
    return {"valid": out.valid, "checker": checker, "message": message, "failed": [n for n, _ in bad],
            "ops": int(sum(v for k, v in ops.items() if k in ("ok", "fail", "info") and isinstance(v, (int, float)))),
            "features": sorted(features(out.run.records, out.checks, getattr(out.run, "tables", None))),
            "digest": out.digest,
            "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}


def _skipped(why: str) -> dict[str, Any]:
    return {"valid": "skipped", "checker": "", "message": why, "features": [], "digest": "", "cpu_s": 0.0,
            "wall_s": 0.0}


# ---- the hunt -------------------------------------------------------------------------------------

@dataclass
class Finding:
    index: int  # run number (1-based)
    checker: str
    message: str
    point: dict[str, Any]
    cfg: RunConfig
    digest: str
    folder: Path | None = None
    replay_digest: str = ""
    runs_so_far: int = 0
    cpu_so_far_s: float = 0.0

    @property
    def deterministic(self) -> bool:
        return bool(self.digest) and self.digest == self.replay_digest


@dataclass
class HuntResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    corpus: list[dict[str, Any]] = field(default_factory=list)
    features: set[str] = field(default_factory=set)
    cpu_s: float = 0.0
    wall_s: float = 0.0


class Hunt:
    """One hunt: the space, its seed, and the corpus it grows. ``plan(n)`` gives the next ``n``
    configurations; ``learn`` feeds back their results (in the same order)."""

    def __init__(self, space: Space, seed: int):
        self.space = space
        self.seed = seed
        self.corpus: list[tuple[dict[str, Any], int]] = []  # (point, new features it found)
        self.seen: set[str] = set()
        self.next_index = 0

    def plan(self, n: int) -> list[tuple[dict[str, Any], str]]:
        """The next ``n`` configurations, each with how it was made (``fresh`` or ``mutant of #k``)."""
        out = []
        for _ in range(n):
            rng = np.random.default_rng([self.seed, self.next_index])
            self.next_index += 1
            if self.corpus and rng.random() < P_MUTATE:
                weights = np.array([w for _, w in self.corpus], dtype=float)
                pick = int(rng.choice(len(self.corpus), p=weights / weights.sum()))
                out.append((self.space.mutate(self.corpus[pick][0], rng), f"mutant of corpus {pick + 1}"))
            else:
                out.append((self.space.draw(rng), "fresh"))
        return out

    def learn(self, point: dict[str, Any], feats: list[str]) -> int:
        new = [f for f in feats if f not in self.seen]
        self.seen.update(new)
        if new:
            self.corpus.append((point, len(new)))
        return len(new)


def run_hunt(space: Space, seed: int, budget: Budget, jobs: int, until: str, out: Path,
             progress: Callable[[int, HuntResult], None] | None = None, *, cluster: str | None = None,
             executor: Any = None, result: HuntResult | None = None) -> HuntResult:
    """Search until a failure (``until="first"``) or the budget is spent; write each failure's folder
    (a second run, its digest compared) under ``out/failures/``.

    Runs go to ``executor`` (or one opened from ``jobs`` / ``cluster``, see
    :func:`~simulator.pipeline.executor.open_executor`). Run ``i`` is planned once the results of
    runs ``0 .. i - WINDOW`` are folded in (in run order), and from those alone, so the sequence of
    configurations, the rows and the findings do not depend on the executor, while up to ``WINDOW``
    runs keep every worker busy. Rows and findings go into ``result`` (a new one if None) as they
    come, so a caller interrupted midway still holds those of the runs folded in."""
    from .executor import Task, open_executor

    if executor is None:
        with open_executor(jobs=jobs, cluster=cluster) as ex:
            return run_hunt(space, seed, budget, jobs, until, out, progress, executor=ex, result=result)
    hunt = Hunt(space, seed)
    result = HuntResult() if result is None else result
    signatures: set[str] = set()
    t0 = time.perf_counter()
    planned: dict[int, tuple[dict[str, Any], str, RunConfig | None, str]] = {}  # run -> point, how, cfg, refusal
    results: dict[int, dict[str, Any]] = {}  # finished, not yet folded in
    tickets: dict[int, int] = {}  # executor ticket -> run
    planned_n = 0  # runs planned so far (run numbers 0 .. planned_n - 1)

    def spent() -> bool:
        if budget.runs is not None and planned_n >= budget.runs:
            return True
        return budget.wall_s is not None and time.perf_counter() - t0 >= budget.wall_s

    def plan_next(calls) -> None:
        """Plan run ``planned_n`` from the corpus as it stands, and start it (a refused one is done at once)."""
        nonlocal planned_n
        (point, how), = hunt.plan(1)
        try:
            cfg, why = space.config(point), ""
        except UsageError as exc:  # a drawn combination the design refuses: noted, not run
            cfg, why = None, str(exc)
        run = planned_n
        planned[run] = (point, how, cfg, why)
        planned_n += 1
        if cfg is None:
            results[run] = _skipped(why)
        else:
            tickets[calls.submit(run_point, [cfg.to_dict()])[0]] = run

    def second_run(cfg: RunConfig, folder: Path) -> str:
        for _, row in executor.imap([Task(cfg.to_dict(), {}, folder.name)], folder.parent, plots=True):
            return str(row.get("digest") or "")
        return ""

    with executor.calls([space.base.to_dict()]) as calls:
        while planned_n < WINDOW and not spent():
            plan_next(calls)
        folded = 0
        stop = False
        while folded < planned_n and not stop:
            while folded not in results:
                ticket, got = calls.next()
                results[tickets.pop(ticket)] = got
            got = results.pop(folded)
            point, how, cfg, _ = planned.pop(folded)
            folded += 1
            index = folded  # runs are numbered from 1 in hunt.csv
            result.cpu_s += got["cpu_s"]
            new = hunt.learn(point, got["features"])
            row = {"run": index, "how": how, **{k: (",".join(v) if k == "nemesis" else v) for k, v in point.items()},
                   "valid": got["valid"], "checker": got["checker"], "message": got["message"][:200],
                   "new_features": new, "wall_s": round(got["wall_s"], 3), "cpu_s": round(got["cpu_s"], 3),
                   "digest": got["digest"][:16]}
            if got["valid"] is False:
                sig = signature(got["checker"], got["message"])
                if sig not in signatures:
                    signatures.add(sig)
                    f = Finding(index, got["checker"], got["message"], point, cfg, got["digest"],
                                runs_so_far=index, cpu_so_far_s=result.cpu_s)
                    f.folder = out / "failures" / f"run{index:05d}-{got['checker']}"
                    f.replay_digest = second_run(cfg, f.folder)
                    result.findings.append(f)
                    row["folder"] = str(f.folder)
                    row["digest_matched"] = f.deterministic
                    stop = until == "first"
            row["failures_so_far"] = len(result.findings)
            result.rows.append(row)
            if progress:
                progress(index, result)
            if not stop and not spent():  # the corpus now holds runs 0 .. folded-1: run folded-1+WINDOW may start
                plan_next(calls)
    result.corpus = [p for p, _ in hunt.corpus]
    result.features = hunt.seen
    result.wall_s = time.perf_counter() - t0
    return result


def coverage_summary(space: Space, rows: list[dict[str, Any]]) -> list[str]:
    """Lines saying which configurations the hunt covered: runs per nemesis and each range's span."""
    lines = []
    if space.nemeses:
        used = {n: 0 for n in space.nemeses}
        none = 0
        for r in rows:
            kinds = [k for k in str(r.get("nemesis", "")).split(",") if k]
            none += not kinds
            for k in kinds:
                used[k] = used.get(k, 0) + 1
        lines.append("nemeses (runs each): " + ", ".join(f"{k} {v}" for k, v in used.items()) + f", none {none}")
    for key in space.ranges:
        vals = [r[key] for r in rows if key in r]
        if not vals:
            continue
        if all(isinstance(v, (int, float)) for v in vals):
            lines.append(f"{key}: {min(vals):g} to {max(vals):g} ({len(set(vals))} values)")
        else:
            lines.append(f"{key}: " + ", ".join(sorted({str(v) if v != "" else "(default)" for v in vals})))
    return lines
