"""Run folders: ``results/<scenario>/<UTC time>-s<seed>/`` with a manifest, metrics, history,
faults, plots and (opt-in) the trace, plus a ``latest`` link beside them.

Every file is written atomically (to a temporary name, then renamed), so a reader never sees half
a file. The manifest is written first with ``"status": "running"`` and rewritten at the end:
``complete``, or ``incomplete`` (interrupted or crashed, with the error), so a folder always says
how far its run got.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ..engine.errors import UsageError
from ..workload.history import write_jsonl
from .config import RunConfig

FILES = ("manifest.json", "metrics.json", "history.jsonl", "faults.jsonl")


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _strict(value: Any) -> Any:
    """``value`` with every infinite or NaN float as None, so the file is JSON any reader takes
    (Python's json writes them as Infinity and NaN, which jq, JavaScript and Go refuse): a cache run
    with no stale read has infinitely many nines of freshness, written null."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar (float32 is no float)
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """``data`` as strict JSON (non-finite numbers as null), written whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as fh:
            json.dump(_strict(data), fh, indent=2, default=_json_default, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        _drop(tmp)
        raise


def write_lines(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_jsonl(tmp, rows)
        os.replace(tmp, path)
    except BaseException:
        _drop(tmp)
        raise


def _drop(tmp: Path) -> None:
    """Remove a half-written temporary file (best effort): a failed write leaves nothing behind."""
    try:
        tmp.unlink()
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("dsim", "simpy", "numpy", "networkx", "matplotlib", "click"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit (``-dirty`` with uncommitted changes); asked once per process."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def new_folder(cfg: RunConfig, out: str | Path | None, base: str | Path = "results") -> Path:
    """The run's folder: ``out`` if given, else a fresh one under ``results/<scenario>/``."""
    if out is not None:
        folder = Path(out)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        folder = Path(base) / cfg.scenario / f"{stamp}-s{cfg.seed}"
        n = 1
        while folder.exists():
            n += 1
            folder = Path(base) / cfg.scenario / f"{stamp}-s{cfg.seed}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def manifest(cfg: RunConfig, status: str, started: str, **extra: Any) -> dict[str, Any]:
    design = {"design_path": cfg.design_path, "design_sha256": cfg.design_sha256} if cfg.design_path else {}
    return {
        "scenario": cfg.scenario,
        "seed": cfg.seed,
        "parameters": cfg.params,
        "bug": cfg.bug,
        "config": cfg.to_dict(),
        "versions": dict(versions()),
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
        "started_utc": started,
        "status": status,
        **design,
        **extra,
    }


def link_latest(folder: Path) -> None:
    """Point ``<folder's parent>/latest`` at ``folder`` (best effort)."""
    latest = folder.parent / "latest"
    try:
        tmp = folder.parent / f".latest-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(folder.name)
        os.replace(tmp, latest)
    except OSError:
        pass


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class RunFolder:
    """Writes one run's files; ``start`` at once, then ``finish`` or ``fail``."""

    def __init__(self, folder: Path, cfg: RunConfig, link: bool = False):
        self.folder = folder
        self.link = link
        self.cfg = cfg
        self.started = utc_now()
        self.t0 = time.perf_counter()

    def start(self) -> None:
        write_json(self.folder / "manifest.json", manifest(self.cfg, "running", self.started))
        if self.link:  # only folders dsim named itself, under results/<scenario>/
            link_latest(self.folder)

    def finish(self, outcome, plots: list[str], exit_status: int) -> None:
        from .. import faults as F

        run = outcome.run
        try:
            write_lines(self.folder / "history.jsonl", run.history)
        except (TypeError, ValueError) as exc:  # a value the design put in the history that JSON cannot hold
            if type(exc) not in (TypeError, ValueError):
                raise
            raise type(exc)(f"cannot write history.jsonl: {exc} (history values must be JSON: "
                            "numbers, text, lists, dicts)") from exc
        write_lines(self.folder / "faults.jsonl", run.faults)
        write_json(self.folder / "metrics.json", outcome.metrics)
        write_json(self.folder / "manifest.json", manifest(
            self.cfg, "complete", self.started, finished_utc=utc_now(),
            wall_seconds=round(time.perf_counter() - self.t0, 3), digest=outcome.digest,
            end_time_s=run.end_ns / 1e9, exit_status=exit_status, valid=outcome.valid,
            fault_windows=[list(w) for w in F.windows(run.faults, run.end_ns)], plots=plots))

    def fail(self, run, error: BaseException) -> None:
        """Save what the run got to, marked incomplete, with the error. Whatever fails here (a
        history that does not encode, a full disk), the manifest is still rewritten last, so the
        folder never stays ``running``; a file that could not be saved is named in it instead."""
        data = None
        try:
            data = run.data() if run is not None and run.sim is not None else None
        except Exception:  # noqa: BLE001 - saving must not raise over the original error
            data = None
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        unsaved: list[str] = []

        def save(name: str, write, *args) -> None:
            try:
                write(self.folder / name, *args)
            except Exception as exc:  # noqa: BLE001 - the original error is the one to report
                unsaved.append(f"{name} ({type(exc).__name__}: {exc})")

        if data is not None:
            save("history.jsonl", write_lines, data.history)
            save("faults.jsonl", write_lines, data.faults)
        save("metrics.json", write_json, {"valid": "unknown", "incomplete": True, "error": reason})
        extra = {"finished_utc": utc_now(), "wall_seconds": round(time.perf_counter() - self.t0, 3), "error": reason,
                 "phase": getattr(run, "phase", None)}
        if data is not None:
            extra["end_time_s"] = data.end_ns / 1e9
        if unsaved:
            extra["unsaved"] = unsaved
        write_json(self.folder / "manifest.json", manifest(self.cfg, "incomplete", self.started, **extra))


def _load_json(folder: Path, name: str) -> Any:
    try:
        with open(folder / name, encoding="utf-8") as fh:
            return json.load(fh)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad_run(folder, f"{name} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise _bad_run(folder, f"cannot read {name} ({exc.strerror})") from None


def _bad_run(folder: str | Path, problem: str) -> UsageError:
    return UsageError(f"bad value {str(folder)!r} for RUN_DIR: {problem}: expected a run folder written by dsim run")


def _number(v: Any, finite: bool = False) -> bool:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return ok and (not finite or math.isfinite(v))


STATUSES = ("running", "complete", "incomplete")  # what RunFolder writes into a manifest


def _verdict(v: Any) -> bool:
    """What a checker and a run's metrics say (CheckResult.valid): true, false or "unknown"."""
    return v is True or v is False or v == "unknown"


def _shown(v: Any) -> str:
    """A value as it stands in the file, short enough for a one-line message."""
    text = json.dumps(v, default=str, ensure_ascii=True) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_shapes(folder: Path, man: Any, met: Any) -> None:
    """The fields show, compare, replay and shrink read, with the types and values they need."""
    def need(cond: bool, problem: str) -> None:
        if not cond:
            raise _bad_run(folder, problem)

    def field(file: str, data: dict, key: str, ok, expected: str, required: bool = False) -> None:
        if key not in data:
            need(not required, f"{file} has no {key!r} ({expected})")
        else:
            need(ok(data[key]), f"{file}'s {key} is {_shown(data[key])}, not {expected}")

    need(isinstance(man, dict), "manifest.json is not a JSON object")
    field("manifest.json", man, "scenario", lambda v: isinstance(v, str), "text", required=True)
    field("manifest.json", man, "seed", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
          "an integer >= 0", required=True)
    field("manifest.json", man, "config", lambda v: isinstance(v, dict), "an object", required=True)
    field("manifest.json", man, "status", lambda v: isinstance(v, str) and v in STATUSES,
          "one of " + ", ".join(STATUSES), required=True)
    nemesis = man["config"].get("nemesis")
    need(nemesis is None or (isinstance(nemesis, list) and all(isinstance(n, str) for n in nemesis)),
         f"manifest.json's config.nemesis is {_shown(nemesis)}, not a list of names")
    field("manifest.json", man, "bug", lambda v: v is None or isinstance(v, str), "text")
    field("manifest.json", man, "digest", lambda v: v is None or isinstance(v, str), "text")
    for key in ("end_time_s", "wall_seconds"):
        field("manifest.json", man, key, lambda v: v is None or (_number(v, finite=True) and v >= 0), "a number >= 0")
    field("manifest.json", man, "versions", lambda v: isinstance(v, dict), "an object")
    field("manifest.json", man, "error", lambda v: v is None or isinstance(v, str), "text")
    if met is None:  # no metrics.json: only a run that never finished has none (read_run sees to it)
        return
    need(isinstance(met, dict), "metrics.json is not a JSON object")
    # a complete run's metrics always carry a verdict; an incomplete run's say "unknown"
    field("metrics.json", met, "valid", _verdict, "true, false or \"unknown\"", required=True)
    for key in ("ops", "latency_ms", "figures", "checks"):
        field("metrics.json", met, key, lambda v: isinstance(v, dict), "an object")
    for key, v in met.get("ops", {}).items():
        need(isinstance(v, int) and not isinstance(v, bool) and v >= 0,
             f"metrics.json's ops.{key} is {_shown(v)}, not a count >= 0")
    for key, v in met.get("latency_ms", {}).items():
        need(v is None or _number(v), f"metrics.json's latency_ms.{key} is {_shown(v)}, not a number")
    for key, v in met.get("checks", {}).items():
        need(isinstance(v, dict), f"metrics.json's checks.{key} is {_shown(v)}, not an object with a verdict")
        need("valid" in v and _verdict(v["valid"]),
             f"metrics.json's checks.{key}.valid is {_shown(v.get('valid'))}, not true, false or \"unknown\"")
    for key in ("throughput_ops_s", "availability"):
        field("metrics.json", met, key, lambda v: v is None or _number(v), "a number")
    recovery = met.get("recovery", [])
    need(recovery is None or (isinstance(recovery, list) and all(
        isinstance(r, dict) and (r.get("recovery_s") is None or _number(r["recovery_s"])) for r in recovery)),
        f"metrics.json's recovery is {_shown(recovery)}, not a list of objects with recovery_s")


def read_run(folder: str | Path) -> dict[str, Any]:
    """manifest and metrics of a run folder (for compare, show, replay); anything else is a UsageError."""
    if "\0" in str(folder) or not str(folder).strip():
        raise _bad_run(folder, "not a folder path")
    folder = Path(folder)
    if not folder.is_dir():
        raise _bad_run(folder, "no such folder" if not folder.exists() else "it is not a folder")
    if not (folder / "manifest.json").is_file():
        raise _bad_run(folder, "it has no manifest.json")
    man = _load_json(folder, "manifest.json")
    metrics = folder / "metrics.json"
    if metrics.exists() or metrics.is_symlink():
        if not metrics.is_file():
            raise _bad_run(folder, "its metrics.json is not a file")
        met = _load_json(folder, "metrics.json")
    else:
        met = None
    _check_shapes(folder, man, met)
    if met is None:
        # a run stopped before its end (interrupted, crashed, or still running) may have no metrics yet;
        # a complete one always has them
        if man["status"] == "complete":
            raise _bad_run(folder, "it has no metrics.json, though manifest.json's status is \"complete\"")
        met = {}
    return {"folder": str(folder), "manifest": man, "metrics": met}
