"""Sweeps: a grid of parameter values times a list of seeds, run on local processes.

``dsim sweep raft --seeds 1-50 --grid read_mode=log,lease --jobs 2`` runs 100 runs. Grid keys may
be scenario parameters or run options (``rate``, ``node_count``...). Each run writes its own folder
under ``<sweep>/runs/``; the sweep writes ``runs.csv`` (one row per run: seed, the grid values,
valid, headline metrics and every scalar scenario figure) and ``summary.png``. Every combination
is validated before the first run starts, so a typo fails at once and writes nothing.
"""

from __future__ import annotations

import csv
import itertools
import multiprocessing
import os
import signal
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

from ..engine.errors import UsageError
from .config import RUN_OPTIONS, RunConfig

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


def row_for(cfg: RunConfig, point: dict[str, str], metrics: dict, manifest_extra: dict) -> dict[str, Any]:
    lat = metrics.get("latency_ms") or {}
    ops = metrics.get("ops") or {}
    row: dict[str, Any] = {"seed": cfg.seed, **point, "valid": metrics.get("valid"),
                           "ops_ok": ops.get("ok"), "ops_fail": ops.get("fail"), "ops_info": ops.get("info"),
                           "latency_p50_ms": lat.get("p50"), "latency_p95_ms": lat.get("p95"),
                           "latency_p99_ms": lat.get("p99"), "latency_max_ms": lat.get("max"),
                           "latency_mean_ms": lat.get("mean"), "throughput_ops_s": metrics.get("throughput_ops_s"),
                           "availability": metrics.get("availability"), "recovery_max_s": metrics.get("recovery_max_s"),
                           "checker_seconds": metrics.get("checker_seconds"), **manifest_extra}
    bad = [f"{k}: {v.get('message', '')}" for k, v in (metrics.get("checks") or {}).items() if v.get("valid") is not True]
    row["failed_checks"] = " | ".join(bad)[:500]
    for k, v in (metrics.get("figures") or {}).items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            row.setdefault(k, v)
    return row


_IN_RUN = False  # in a worker: is a run in progress (then a stop signal must let it save its folder)?
_STOPPING = False  # in a worker: a stop signal came; start nothing more


def _worker_stop(signum, frame):
    global _STOPPING
    _STOPPING = True
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C reaches the worker and then the parent's SIGTERM: save once
        signal.signal(sig, signal.SIG_IGN)
    if _IN_RUN:
        raise KeyboardInterrupt  # run_to_folder marks the folder incomplete on the way out
    os._exit(3)  # an idle worker has nothing to save, and must not print a traceback


def _init_worker() -> None:
    signal.signal(signal.SIGINT, _worker_stop)
    signal.signal(signal.SIGTERM, _worker_stop)


def run_one(cfg_dict: dict, point: dict[str, str], folder: str, plots: bool) -> dict[str, Any]:
    """Run one configuration into ``folder`` (in a worker process); return its CSV row."""
    global _IN_RUN
    from .runner import run_to_folder

    cfg = RunConfig.from_dict(cfg_dict)
    try:
        if _STOPPING:  # a worker told to stop must not pick up the next queued run
            os._exit(3)
        _IN_RUN = True
        if cfg.design_path:  # a worker that did not inherit the registry (spawn) loads the design file itself
            from .scenario import load_design

            load_design(cfg.design_path, expect_sha256=cfg.design_sha256)
        outcome, status, wall = run_to_folder(cfg, Path(folder), plots=plots, progress=None)
        return row_for(cfg, point, outcome.metrics, {"wall_seconds": round(wall, 3), "digest": outcome.digest,
                                                     "folder": folder, "exit_status": status})
    except KeyboardInterrupt:
        if _STOPPING:  # a worker: its folder is saved (marked incomplete); leave without a traceback
            os._exit(3)
        raise
    except Exception as exc:  # noqa: BLE001 - one broken run must not sink the sweep
        text = traceback.format_exc()
        try:  # as `dsim run` does: the whole traceback beside the incomplete manifest
            (Path(folder) / "error.txt").write_text(text)
        except OSError:
            pass
        return {"seed": cfg.seed, **point, "valid": "unknown", "folder": folder, "exit_status": 3,
                "failed_checks": f"run crashed: {type(exc).__name__}: {exc}", "error": text[-500:]}
    finally:
        _IN_RUN = False


def run_sweep(configs: list[tuple[RunConfig, dict[str, str]]], out: Path, jobs: int, plots: bool,
              progress: Callable[[int, int, dict], None] | None = None) -> list[dict[str, Any]]:
    """Run every configuration; rows come back in (grid point, seed) order whatever the finish order.

    Interrupted (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the caller), it stops the
    workers with SIGTERM, so each run in progress marks its folder incomplete, and re-raises."""
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(cfg.to_dict(), point, str(runs_dir / f"{label(point)}-s{cfg.seed}"), plots) for cfg, point in configs]
    rows: list[dict | None] = [None] * len(tasks)
    done = 0
    jobs = max(1, min(jobs, len(tasks)))
    if jobs <= 1:
        for i, t in enumerate(tasks):
            rows[i] = run_one(*t)
            done += 1
            if progress:
                progress(done, len(tasks), rows[i])
    else:
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker)
        try:
            futures = {pool.submit(run_one, *t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                rows[futures[fut]] = fut.result()
                done += 1
                if progress:
                    progress(done, len(tasks), rows[futures[fut]])
        except BaseException:
            workers = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in workers:
                try:
                    proc.terminate()
                except (OSError, ValueError, AttributeError):
                    pass
            for proc in workers:
                proc.join(timeout=60)
                if proc.is_alive():
                    proc.kill()
            raise
        pool.shutdown()
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
