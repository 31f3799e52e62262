"""What `dsim compare` reads besides run folders: sweep folders and hunt folders, side by side.

A sweep compares as one row per grid point (its seeds pooled): how many runs were valid, invalid
or unknown, and the median and worst of each run's p50, p99 and throughput. A hunt compares as
one row: runs, distinct failures, the run and CPU seconds at which the first failure came,
coverage features reached and unknown runs. Every folder named must be of one kind; a damaged
``runs.csv`` or ``hunt.csv`` is a usage error naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

from ..engine.errors import UsageError

KINDS = {"manifest.json": "run", "sweep.json": "sweep", "hunt.json": "hunt"}
EXPECTED = "expected a run, sweep or hunt folder written by dsim run, dsim sweep or dsim hunt"


def _bad(folder, problem: str) -> UsageError:
    return UsageError(f"bad value {str(folder)!r} for compare: {problem}; {EXPECTED}")


def kind_of(folder: str | Path) -> str:
    """``run``, ``sweep`` or ``hunt``, by the record file the folder holds."""
    if "\0" in str(folder) or not str(folder).strip():
        raise _bad(folder, "not a folder path")
    path = Path(folder)
    if not path.is_dir():
        raise _bad(folder, "no such folder" if not path.exists() else "it is not a folder")
    for name, kind in KINDS.items():
        if (path / name).exists():  # a damaged one (a folder, say) is left to that kind's reader to name
            return kind
    raise _bad(folder, "it has no manifest.json, sweep.json or hunt.json")


def _record(folder: Path, name: str) -> dict:
    try:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _bad(folder, f"{name} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise _bad(folder, f"{name} is not a JSON object")
    return data


def _rows(folder: Path, name: str, need: tuple[str, ...]) -> list[dict]:
    path = folder / name
    if not path.is_file():
        raise _bad(folder, f"it has no {name} (an interrupted sweep or hunt may end without one)")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _bad(folder, f"{name} cannot be read ({exc})") from None
    for i, row in enumerate(rows, 2):
        missing = [k for k in need if row.get(k) is None]
        if missing or None in row:
            raise _bad(folder, f"{name} line {i} lacks {', '.join(missing) or 'nothing but has extra fields'}")
    return rows


def _number(folder: Path, name: str, line: int, key: str, raw: str | None) -> float | None:
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _bad(folder, f"{name} line {line}: {key} is {raw!r}, not a number") from None
    if not math.isfinite(value):
        raise _bad(folder, f"{name} line {line}: {key} is {raw!r}, not a finite number")
    return value


def _verdict(raw: str) -> Any:
    return {"True": True, "False": False}.get(raw, "unknown" if raw in ("unknown", "", "None") else raw)


SWEEP_FIELDS = ("seed", "valid", "latency_p50_ms", "latency_p99_ms", "throughput_ops_s")


def read_sweep(folder: str | Path) -> dict:
    """A sweep folder's grid points, each with its runs' verdicts and headline metrics."""
    folder = Path(folder)
    about = _record(folder, "sweep.json")
    grid = about.get("grid") or []  # one {key: value} per grid point
    keys = list(dict.fromkeys(str(k) for pt in grid if isinstance(pt, dict) for k in pt)) if isinstance(grid, list) else []
    rows = _rows(folder, "runs.csv", SWEEP_FIELDS + tuple(keys))
    points: dict[tuple, list[dict]] = {}
    for line, row in enumerate(rows, 2):
        run = {"valid": _verdict(row["valid"])}
        for key in ("latency_p50_ms", "latency_p99_ms", "throughput_ops_s", "availability"):
            run[key] = _number(folder, "runs.csv", line, key, row.get(key))
        points.setdefault(tuple(row[k] for k in keys), []).append(run)
    return {"folder": str(folder), "scenario": str(about.get("scenario", "?")), "keys": keys, "points": points}


HUNT_FIELDS = ("run", "valid", "checker", "new_features", "cpu_s", "failures_so_far")


def read_hunt(folder: str | Path) -> dict:
    """A hunt folder's runs (in order) and what it says of itself."""
    folder = Path(folder)
    about = _record(folder, "hunt.json")
    rows = _rows(folder, "hunt.csv", HUNT_FIELDS)
    runs = []
    for line, row in enumerate(rows, 2):
        runs.append({"run": _number(folder, "hunt.csv", line, "run", row["run"]) or 0.0,
                     "valid": _verdict(row["valid"]), "checker": row["checker"],
                     "new_features": _number(folder, "hunt.csv", line, "new_features", row["new_features"]) or 0.0,
                     "cpu_s": _number(folder, "hunt.csv", line, "cpu_s", row["cpu_s"]) or 0.0,
                     "failures_so_far": _number(folder, "hunt.csv", line, "failures_so_far",
                                                row["failures_so_far"]) or 0.0})
    return {"folder": str(folder), "scenario": str(about.get("scenario", "?")), "bug": about.get("bug"),
            "seed": about.get("seed"), "status": about.get("status", "complete"), "runs": runs}


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def sweep_rows(label: str, sweep: dict) -> list[dict]:
    """One summary row per grid point of a sweep."""
    out = []
    points = sweep["points"] or {(): []}  # a sweep with no finished run still gets its row, of zeros
    for point, runs in points.items():
        name = label + "".join(f" {k}={v}" for k, v in zip(sweep["keys"], point))
        p50 = [r["latency_p50_ms"] for r in runs if r["latency_p50_ms"] is not None]
        p99 = [r["latency_p99_ms"] for r in runs if r["latency_p99_ms"] is not None]
        tput = [r["throughput_ops_s"] for r in runs if r["throughput_ops_s"] is not None]
        valid = sum(1 for r in runs if r["valid"] is True)
        invalid = sum(1 for r in runs if r["valid"] is False)
        out.append({"label": name, "runs": len(runs), "valid": valid, "invalid": invalid,
                    "unknown": len(runs) - valid - invalid, "p50_ms_median": _median(p50),
                    "p99_ms_median": _median(p99), "p99_ms_worst": max(p99) if p99 else None,
                    "ops_s_median": _median(tput), "p99s": sorted(p99), "throughputs": sorted(tput)})
    return out


def hunt_row(label: str, hunt: dict) -> dict:
    """A hunt's summary: how far it went and when it first found a failure."""
    runs = hunt["runs"]
    first = next((i for i, r in enumerate(runs) if r["valid"] is False), None)
    cpu = [r["cpu_s"] for r in runs]
    return {"label": label, "status": hunt["status"], "runs": len(runs),
            "failures": int(max((r["failures_so_far"] for r in runs), default=0)),
            "first_failure_run": None if first is None else first + 1,
            "first_failure_cpu_s": None if first is None else sum(cpu[:first + 1]),
            "first_checker": None if first is None else runs[first]["checker"],
            "features": int(sum(r["new_features"] for r in runs)), "cpu_s": sum(cpu),
            "unknown": sum(1 for r in runs if r["valid"] not in (True, False, "skipped"))}
