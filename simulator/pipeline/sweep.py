"""Sweeps: a grid of parameter values times a list of seeds, run on local processes or a Dask cluster.

``dsim sweep raft --seeds 1-50 --grid read_mode=log,lease --jobs 2`` runs 100 runs. Grid keys may
be scenario parameters or run options (``rate``, ``node_count``...). Each run writes its own folder
under ``<sweep>/runs/``; the sweep writes ``runs.csv`` (one row per run: seed, the grid values,
valid, headline metrics and every scalar scenario figure) and ``summary.png``. Every combination
is validated before the first run starts, so a typo fails at once and writes nothing.

Where the runs happen is an executor's business (:mod:`.executor`); a sweep's rows and digests do
not depend on it. A sweep folder whose runs did not all finish is completed by running only what
:func:`finished_rows` does not find done (``dsim sweep --resume DIR``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any, Callable

from ..engine.errors import UsageError
from .config import RUN_OPTIONS, RunConfig
from .executor import Task, open_executor, row_for, run_one  # noqa: F401 - run_one and row_for: where callers found them

HEADLINE = ("ops_ok", "ops_fail", "ops_info", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms",
            "latency_mean_ms", "throughput_ops_s", "availability", "recovery_max_s", "checker_seconds", "wall_seconds")


MAX_RUNS = 100_000  # seeds times grid points: more only fills memory with configurations


def parse_seeds(text: str) -> list[int]:
    """``"1-100"``, ``"3,5,9"`` or a mix (``"1-3,10"``)."""
    from ..engine.rng import MAX_SEED

    bad = UsageError(f"bad value {text!r} for --seeds: expected a range like 1-100 or a list like 1,2,5 "
                     f"(seeds from 0 to {MAX_SEED}, at most {MAX_RUNS:,} of them, no empty items)")

    def seed(part: str) -> int:
        part = part.strip()
        if not part.isascii() or not part.isdigit() or len(part) > 19 or int(part) > MAX_SEED:
            raise bad
        return int(part)

    seeds: list[int] = []
    for part in str(text).split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            lo_i, hi_i = seed(lo), seed(hi)
            if lo_i > hi_i or hi_i - lo_i >= MAX_RUNS:
                raise bad
            seeds.extend(range(lo_i, hi_i + 1))
        else:
            seeds.append(seed(part))
        if len(seeds) > MAX_RUNS:
            raise bad
    return list(dict.fromkeys(seeds))


def parse_grid(items: tuple[str, ...]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_") if key.strip() in ("node-count", "time-limit") else key.strip()
        vals = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(vals):
            raise UsageError(f"bad value {item!r} for --grid: expected key=v1,v2 (no empty values)")
        if key in grid:
            raise UsageError(f"bad value {item!r} for --grid: {key!r} is already swept; expected each key once")
        grid[key] = list(dict.fromkeys(vals))
    n = 1
    for vals in grid.values():
        n *= len(vals)
        if n > MAX_RUNS:
            raise UsageError(f"bad value {' '.join(items)!r} for --grid: expected at most {MAX_RUNS:,} grid points")
    return grid


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]


def split_point(point: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A grid point as (run options, scenario parameters)."""
    options, params = {}, {}
    for k, v in point.items():
        if k in RUN_OPTIONS:
            options[k] = _option_value(k, v)
        else:
            params[k] = v
    return options, params


def _option_value(key: str, raw: str) -> Any:
    from .config import parse_number

    if key == "nemesis":
        return raw.replace("+", ",")
    if key in ("latency_dist", "rate_profile", "topology"):
        return raw
    return parse_number(raw, key, integer=key in ("node_count", "concurrency"))


def label(point: dict[str, str]) -> str:
    return "_".join(f"{k}={v}" for k, v in point.items()).replace("/", "-") or "run"


def run_key(cfg: RunConfig, point: dict[str, str]) -> str:
    """The run's folder name under ``runs/``: the grid point's label and the seed."""
    return f"{label(point)}-s{cfg.seed}"


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), to compare with a manifest."""
    import json

    from .results import _json_default

    return json.loads(json.dumps(value, default=_json_default))


def check_record(record: Any, path: Path | str) -> list[str]:
    """A sweep.json (``record``, read from ``path``) validated as strictly as a new sweep's command line,
    before a resumed sweep runs anything: the design known, the seeds and the number of runs within
    what ``--seeds`` and ``--grid`` accept, every config as a replay checks a manifest's (and complete:
    dsim wrote it so), each point's design built once. Returns every run's key (:func:`run_key`), in order."""
    import json

    from ..engine.rng import MAX_SEED
    from . import scenario as registry
    from .config import check_recorded, dry_build

    def bad(value: Any, name: str, expected: str) -> UsageError:
        shown = repr(value)
        if isinstance(value, list) and len(shown) > 80:
            shown = f"[{', '.join(map(repr, value[:3]))}, ...] ({len(value):,} items)"
        elif len(shown) > 80:
            shown = shown[:80] + "..."
        return UsageError(f"bad value {shown} for {name} in {path}: expected {expected}")

    if not isinstance(record, dict):
        raise bad(record, "the record", "an object written by dsim sweep")
    name = record.get("scenario")
    if not isinstance(name, str):
        raise bad(name, "scenario", "a design name (text)")
    try:
        registry.get(name)
    except UsageError as exc:
        raise UsageError(f"{path}: scenario: {exc}") from None
    plots = record.get("plots", False)
    if not isinstance(plots, bool):
        raise bad(plots, "plots", "true or false")
    seeds, points = record.get("seeds"), record.get("points")
    seeds_expected = f"a list of 1 to {MAX_RUNS:,} different integers from 0 to {MAX_SEED}"
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_RUNS:
        raise bad(seeds, "seeds", seeds_expected)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
            raise bad(s, "seeds", seeds_expected)
    if len(set(seeds)) != len(seeds):
        raise bad(next(s for s in seeds if seeds.count(s) > 1), "seeds", seeds_expected)
    if not isinstance(points, list) or not points or len(points) * len(seeds) > MAX_RUNS:
        raise bad(points, "points",
                  f"a list of grid points, at least one, at most {MAX_RUNS:,} runs (points x seeds) in all")
    runs = record.get("runs")
    if runs is not None and (not isinstance(runs, list) or not 1 <= len(runs) <= MAX_RUNS):
        raise bad(runs, "runs", f"a list of 1 to {MAX_RUNS:,} runs")

    checked: dict[str, RunConfig] = {}  # a config less its seed -> it, validated (a point's runs differ by seed)
    last: list = [None, None]  # the config less its seed checked last, and it: runs come point by point

    def config(entry: Any, field: str, seed: int | None) -> tuple[RunConfig, dict[str, str]]:
        if not isinstance(entry, dict) or not isinstance(entry.get("point"), dict) or not isinstance(entry.get("config"), dict):
            raise bad(entry, field, "an object with a point and a config")
        point = entry["point"]
        for k, v in point.items():
            if not isinstance(v, str):
                raise bad(v, f"{field}.point.{k}", "a grid value (text)")
        if "\0" in label(point) or len(label(point).encode()) > 200:
            raise bad(label(point), f"{field}.point", "grid values short enough to name a folder")
        rec = dict(entry["config"]) if seed is None else {**entry["config"], "seed": seed}
        unseeded = {**rec, "seed": 0}
        if unseeded == last[0]:
            known = last[1]
        else:
            known = checked.get(json.dumps(unseeded, sort_keys=True, default=repr))
        if known is not None:
            seed_of = rec.get("seed")
            if isinstance(seed_of, bool) or not isinstance(seed_of, int) or not 0 <= seed_of <= MAX_SEED:
                raise bad(seed_of, f"{field}.config.seed", f"an integer from 0 to {MAX_SEED}")
            last[:] = [unseeded, known]
            return dataclasses.replace(known, seed=seed_of), point
        key = json.dumps(unseeded, sort_keys=True, default=repr)
        try:
            if rec.get("scenario") != name:
                raise UsageError(f"bad value {rec.get('scenario')!r} for scenario: expected {name!r}, the sweep's design")
            cfg = check_recorded(rec)
            rebuilt = _plain(cfg.to_dict())
            for k, v in rebuilt.items():  # a config lacking a parameter would run without it, and crash
                if k != "params" and _plain(rec.get(k)) != v:
                    raise UsageError(f"bad value {rec.get(k)!r} for {k}: expected {v!r}, as dsim sweep records it")
            recorded_params = rec.get("params") or {}
            for k, v in rebuilt["params"].items():
                if _plain(recorded_params.get(k)) != v:
                    raise UsageError(f"bad value {recorded_params.get(k)!r} for params.{k}: expected {v!r}, as dsim sweep records it")
            dry_build(cfg)
        except UsageError as exc:
            raise UsageError(f"{path}: {field}.config: {exc}") from None
        checked[key] = cfg
        last[:] = [unseeded, cfg]
        return cfg, point

    first = [config(p, f"points[{k}]", seeds[0]) for k, p in enumerate(points)]
    if runs is None:
        keys = [f"{lab}-s{seed}" for lab in (label(point) for _, point in first) for seed in seeds]  # as run_key
    else:
        keys = [run_key(*config(r, f"runs[{k}]", None)) for k, r in enumerate(runs)]
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise bad(key, "runs" if runs is not None else "points", "each run (grid point and seed) once")
        seen.add(key)
    return keys


def finished_rows(configs: list[tuple[RunConfig, dict[str, str]]], out: Path) -> dict[int, dict[str, Any]]:
    """For a resumed sweep: index -> CSV row of each run whose folder under ``out/runs`` is complete and
    was run from the very same configuration. Anything else (no folder, running, incomplete, another
    configuration, a damaged file) is left out, to be run again.

    ``configs`` are those of ``out/sweep.json``, which the caller has checked with :func:`check_record`
    (``dsim sweep --resume`` does, before building them)."""
    from .results import read_run

    rows: dict[int, dict[str, Any]] = {}
    for i, (cfg, point) in enumerate(configs):
        key = run_key(cfg, point)
        folder = out / "runs" / key
        if not (folder / "manifest.json").is_file():
            continue
        try:
            run = read_run(folder)
        except UsageError:
            continue
        man, met = run["manifest"], run["metrics"]
        if man.get("status") != "complete" or man.get("config") != _plain(cfg.to_dict()) or not met:
            continue
        rows[i] = row_for(cfg, point, met, {"wall_seconds": man.get("wall_seconds"), "digest": man.get("digest"),
                                            "folder": f"runs/{key}", "exit_status": man.get("exit_status")})
    return rows


def run_sweep(configs: list[tuple[RunConfig, dict[str, str]]], out: Path, jobs: int = 1, plots: bool = False,
              progress: Callable[[int, int, dict], None] | None = None, *, executor: Any = None,
              finished: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Run every configuration; rows come back in (grid point, seed) order whatever the finish order.

    ``executor`` (see :mod:`.executor`) carries the runs out; by default ``jobs`` local processes.
    ``finished`` (from :func:`finished_rows`) are runs already done: they are not run again, and
    ``progress`` counts them as done from the start. Each row's ``folder`` is relative to ``out``
    (``runs/<label>-s<seed>``), so the CSV reads the same wherever the sweep was written.

    Interrupted (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the caller), local workers are
    stopped with SIGTERM, so each run in progress marks its folder incomplete, and it re-raises."""
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict | None] = [None] * len(configs)
    for i, row in (finished or {}).items():
        rows[i] = row
    todo = [i for i in range(len(configs)) if rows[i] is None]
    tasks = [Task(configs[i][0].to_dict(), configs[i][1], run_key(*configs[i])) for i in todo]
    done = len(configs) - len(todo)
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(open_executor(jobs=jobs))
        # closed on the way out whatever happens, so an interrupt stops the workers at once
        finished_runs = stack.enter_context(contextlib.closing(executor.imap(tasks, runs_dir, plots=plots)))
        for j, row in finished_runs:
            i = todo[j]
            if rows[i] is not None:  # never count a run twice
                continue
            row["folder"] = f"runs/{tasks[j].key}"
            rows[i] = row
            done += 1
            if progress:
                progress(done, len(configs), row)
    return [r for r in rows if r is not None]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols and k != "error":
                cols.append(k)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)
