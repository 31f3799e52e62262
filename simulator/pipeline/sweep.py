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


def finished_rows(configs: list[tuple[RunConfig, dict[str, str]]], out: Path) -> dict[int, dict[str, Any]]:
    """For a resumed sweep: index -> CSV row of each run whose folder under ``out/runs`` is complete and
    was run from the very same configuration. Anything else (no folder, running, incomplete, another
    configuration, a damaged file) is left out, to be run again."""
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
