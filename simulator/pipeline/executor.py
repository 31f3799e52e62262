"""Executors: where the runs of a sweep (or a hunt, or a shrink) are carried out.

A caller hands an executor a list of :class:`Task` (a run configuration, its grid point and the
name of its folder) and a folder to put the runs in, and iterates over ``(index, row)`` pairs as
runs finish, in whatever order they finish. Three executors share that one method, ``imap``:

- :class:`LocalExecutor` (``--jobs N``, the default): N forked worker processes on this machine,
  one run per task; ``--jobs 1`` runs in this process.
- :class:`DaskExecutor` with ``--cluster local:N``: a Dask ``LocalCluster`` of N single-threaded
  worker processes.
- :class:`DaskExecutor` with ``--cluster tcp://HOST:PORT``: an existing Dask scheduler and its
  workers, possibly on other machines.

On Dask, runs travel in batches of seeds (one Dask task per batch, so the scheduler's few
milliseconds per task are spread over many runs). A worker runs a batch into a temporary folder
and sends back, with each run's CSV row, the run's folder packed as a gzipped tar; the client
unpacks it under the sweep's folder, so workers need no shared filesystem. With ``shared_out``
the workers write the folders in place instead (a filesystem every worker mounts at the same path);
a ``local:N`` cluster always does, since its workers are on this machine.

Before its first run a Dask worker compares its dsim version, its Python version and the sha256 of
each design's file with the client's, and refuses the batch if any differs: a sweep that mixed
versions would not replay. A worker that dies mid-batch loses only that batch, which the scheduler
gives to another worker; the client takes each task's rows once, from the one result it gets.

The API for callers (``dsim sweep``, ``dsim hunt``, ``dsim shrink``)::

    from simulator.pipeline.executor import Task, open_executor

    with open_executor(jobs=2, cluster=None) as ex:          # or cluster="local:2" / "tcp://host:8786"
        tasks = [Task(cfg.to_dict(), {}, f"run-s{cfg.seed}") for cfg in configs]
        for index, row in ex.imap(tasks, Path("out/runs"), plots=False):
            ...  # row: seed, grid values, valid, digest, exit_status, metrics, "folder": out/runs/<key>

Leaving the loop early (``break``, an exception, Ctrl-C) cancels what has not started; runs in
progress on local processes are stopped and marked incomplete.

The hunt and the shrinker run many short runs in memory and need no folder for most of them; they
use an executor's *call pool* instead, which runs any importable function on one item at a time and
hands back results as they finish, so the caller can keep every worker busy while deciding what to
run next::

    with ex.calls([base_cfg.to_dict()]) as calls:     # the designs workers must have, for the check
        tickets = calls.submit(run_point, [cfg.to_dict() for cfg in first_batch])
        ticket, result = calls.next()                  # any finished call (waits for one)
        map_calls(calls, run_point, items)             # or: all of them, in item order

With ``--jobs 1`` a call runs in this process when :meth:`next` asks for it; with ``--jobs N``, on N
forked processes; on Dask, one task per call (``--batch`` calls per task). Workers of a pool with
more than one worker run checkers on one core (``DSIM_SERIAL_CHECKS``): as many workers as cores
already keep every core busy.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import math
import multiprocessing
import os
import platform
import shutil
import signal
import tarfile
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

from ..engine.errors import UsageError
from .config import RunConfig

INSTALL_HINT = "pip install -e '.[cluster]'"
RUNS_PER_WORKER_BATCHES = 4  # default batches per worker: enough for a dead worker's batch to be caught up by the rest
MAX_BATCH = 50  # runs per batch at most by default: progress moves at least every 50 runs of a worker


class Task(NamedTuple):
    """One run: its configuration (``RunConfig.to_dict()``), its grid point (for the CSV row) and the
    name of its folder under the runs folder (unique within one ``imap`` call)."""

    cfg: dict
    point: dict
    key: str


def row_for(cfg: RunConfig, point: dict[str, str], metrics: dict, manifest_extra: dict) -> dict[str, Any]:
    """A run's CSV row: seed, grid values, verdict, headline metrics, then every scalar scenario figure."""
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


# --- one run, in whatever process carries it out ---------------------------------------------------

_IN_RUN = False  # in a local worker: is a run in progress (then a stop signal must let it save its folder)?
_STOPPING = False  # in a local worker: a stop signal came; start nothing more


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
    """Run one configuration into ``folder``; return its CSV row (a crash is a row with valid unknown)."""
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


# --- executors -------------------------------------------------------------------------------------


@dataclass
class Stats:
    """What an executor measured: runs done, batches, and seconds workers spent inside batches."""

    runs: int = 0
    batches: int = 0
    busy_s: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)


def _stop_pool(pool: ProcessPoolExecutor, join_s: float) -> None:
    """Cancel what has not started and SIGTERM the workers (a worker's SIGTERM ends its run: a sweep's
    run saves its folder marked incomplete); a worker still alive after ``join_s`` is killed."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            proc.terminate()
    for proc in workers:
        with contextlib.suppress(OSError, ValueError, AttributeError, AssertionError):
            proc.join(timeout=join_s)
            if proc.is_alive():
                proc.kill()


class LocalExecutor:
    """``jobs`` local processes (forked), one run per task; ``jobs=1`` runs in the calling process."""

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, int(jobs))
        self.stats = Stats()
        self.describe = f"{self.jobs} local process{'es' if self.jobs > 1 else ''}"

    @property
    def workers(self) -> int:
        return self.jobs

    def close(self) -> None:
        pass

    def imap(self, tasks: Sequence[Task], runs_dir: Path, *, plots: bool = False) -> Iterator[tuple[int, dict]]:
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        args = [(t.cfg, t.point, str(runs_dir / t.key), plots) for t in tasks]
        for a in args:  # a run re-done (a resumed sweep) starts from an empty folder
            _clear(Path(a[2]))
        jobs = max(1, min(self.jobs, len(args)))
        if jobs <= 1:
            for i, a in enumerate(args):
                t0 = time.perf_counter()
                row = run_one(*a)
                self._count(time.perf_counter() - t0)
                yield i, row
            return
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker)
        try:
            futures = {pool.submit(run_one, *a): i for i, a in enumerate(args)}
            for fut in as_completed(futures):
                row = fut.result()
                self._count(row.get("wall_seconds") or 0.0)
                yield futures[fut], row
        except BaseException:  # Ctrl-C, SIGTERM (as KeyboardInterrupt), the caller leaving the loop
            _stop_pool(pool, join_s=60)  # SIGTERM: each run in progress saves its folder marked incomplete
            raise
        pool.shutdown()

    @contextlib.contextmanager
    def calls(self, cfgs: Sequence[dict] = ()) -> Iterator[LocalCalls]:
        """A pool for ``fn(item)`` calls on this executor's processes (see :class:`LocalCalls`);
        leaving it early (an exception) stops the calls in progress."""
        pool = LocalCalls(self.jobs)
        try:
            yield pool
        finally:
            pool.close(cancel=True)

    def _count(self, busy_s: float) -> None:
        self.stats.runs += 1
        self.stats.batches += 1
        self.stats.busy_s += busy_s
        self.stats.batch_sizes.append(1)


class WorkerMismatch(RuntimeError):
    """A Dask worker's dsim, Python or design file differs from the client's."""


def _dsim_version() -> str:
    try:
        return metadata.version("dsim")
    except metadata.PackageNotFoundError:
        return "not installed"


def design_sha256(cfg: dict) -> str:
    """The sha256 of the file a run's design comes from: the design file run by path, or the module
    that defines a shipped scenario."""
    if cfg.get("design_sha256"):
        return cfg["design_sha256"]
    from . import scenario as registry

    path = inspect.getsourcefile(registry.get(cfg["scenario"]))
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def environment(cfgs: Sequence[dict]) -> dict[str, Any]:
    """What a worker must share with the client: dsim and Python versions, each design file's sha256."""
    designs: dict[str, str] = {}
    for cfg in cfgs:
        name = cfg.get("design_path") or cfg["scenario"]
        if name not in designs:
            designs[name] = design_sha256(cfg)
    return {"dsim": _dsim_version(), "python": platform.python_version(), "designs": designs}


def _check_environment(expect: dict[str, Any], cfgs: Sequence[dict]) -> None:
    try:
        from distributed import get_worker

        where = f"Dask worker {get_worker().address}"
    except (ImportError, ValueError):
        where = f"worker on {platform.node()}"
    problems = []
    if _dsim_version() != expect["dsim"]:
        problems.append(f"dsim {_dsim_version()} (client: {expect['dsim']})")
    if platform.python_version() != expect["python"]:
        problems.append(f"Python {platform.python_version()} (client: {expect['python']})")
    for cfg in cfgs:
        name = cfg.get("design_path") or cfg["scenario"]
        want = expect["designs"].get(name)
        try:
            if cfg.get("design_path"):
                have = hashlib.sha256(Path(cfg["design_path"]).read_bytes()).hexdigest()
            else:
                have = design_sha256(cfg)
        except (OSError, UsageError) as exc:
            have = f"unreadable ({getattr(exc, 'strerror', None) or exc})"
        if have != want:
            problems.append(f"design {name} sha256 {have[:12]} (client: {str(want)[:12]})")
            break
    if problems:
        raise WorkerMismatch(f"{where} refuses the sweep: it has {'; '.join(problems)}; "
                             f"install the same dsim, Python and design files on every machine ({INSTALL_HINT})")


def pack(folder: Path) -> bytes:
    """A run folder's files as a gzipped tar (names relative to the folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buf.getvalue()


def unpack(blob: bytes, folder: Path) -> None:
    """Write a packed run folder to ``folder``, replacing what was there, all at once (a reader sees the
    old folder or the new one, never half of one)."""
    tmp = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    _clear(tmp)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(tmp, filter="data")
    _clear(folder)
    os.replace(tmp, folder)


def _clear(folder: Path) -> None:
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def _stop_profiler() -> None:
    """Stop the Dask worker's statistical profiler: every 10 ms it walks the running thread's stack,
    and a simulation's stacks are deep (raft runs took 2.4 s rather than 1.7 s in one measurement on
    a busy machine). Nothing of ours reads the profile. (A LocalCluster's workers start without it;
    this covers workers started by hand.)"""
    with contextlib.suppress(Exception):
        from distributed import get_worker

        callbacks = get_worker().periodic_callbacks
        for name in ("profile", "profile-cycle"):
            if name in callbacks:
                callbacks[name].stop()


def run_batch(items: list[tuple[int, dict, dict, str]], plots: bool, expect: dict[str, Any],
              shared_dir: str | None) -> dict[str, Any]:
    """On a Dask worker: check the environment, run each item, return rows and packed folders.

    ``items`` are (index, cfg, point, key). Returns ``{"results": [(index, row, packed or None)],
    "busy_s": seconds spent}``."""
    t0 = time.perf_counter()
    _check_environment(expect, [it[1] for it in items])
    _stop_profiler()
    results = []
    with tempfile.TemporaryDirectory(prefix="dsim-batch-") as tmp:
        for index, cfg, point, key in items:
            folder = Path(shared_dir) / key if shared_dir else Path(tmp) / key
            _clear(folder)  # a batch retried after a dead worker starts each run afresh
            row = run_one(cfg, point, str(folder), plots)
            blob = None
            if not shared_dir:
                blob = pack(folder)
                shutil.rmtree(folder, ignore_errors=True)
            results.append((index, row, blob))
    return {"results": results, "busy_s": time.perf_counter() - t0}


def default_batch(n_tasks: int, workers: int) -> int:
    """Runs per Dask task: about RUNS_PER_WORKER_BATCHES batches per worker, at most MAX_BATCH runs.

    A Dask task costs the scheduler and the wire a few milliseconds; a run of a shipped design takes
    from tens of milliseconds to seconds, so a batch of even a handful of runs keeps scheduling under
    1% of the batch (``benchmarks/sweep.py`` measures it). More batches than workers lets the others
    catch up when a worker is slow or dies."""
    return max(1, min(MAX_BATCH, math.ceil(n_tasks / (max(1, workers) * RUNS_PER_WORKER_BATCHES))))


def batch_sizes(n_tasks: int, workers: int, batch: int | None = None) -> list[int]:
    """The runs of each Dask task in order: ``batch`` each if given, else shrinking batches.

    Each default batch is :func:`default_batch` of the runs still unbatched, so batches start at
    about n / (4 workers) and end at single runs. Equal batches left a worker idle for up to one
    batch at the end (48 raft runs in batches of 6 on 2 workers: 1.54x of --jobs 1 against 1.81x
    for --jobs 2); the shrinking ones end together, at a few more Dask round trips."""
    if batch:
        return [min(batch, n_tasks - k) for k in range(0, n_tasks, batch)]
    sizes, left = [], n_tasks
    while left > 0:
        sizes.append(default_batch(left, workers))
        left -= sizes[-1]
    return sizes


def parse_cluster(text: str) -> tuple[str, int | str]:
    """``local:N`` -> ("local", N); ``tcp://HOST:PORT`` -> ("tcp", address). Anything else is a UsageError."""
    raw = str(text).strip()
    bad = UsageError(f"bad value {text!r} for --cluster: expected local:N (N Dask workers on this machine, 1 to 64) "
                     "or tcp://HOST:PORT (a running Dask scheduler)")
    if raw.startswith("local:"):
        n = raw[len("local:"):]
        if not (n.isascii() and n.isdigit() and len(n) < 4 and 1 <= int(n) <= 64):
            raise bad
        return "local", int(n)
    if raw.startswith("tcp://"):
        host, sep, port = raw[len("tcp://"):].rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536) or "/" in host:
            raise bad
        # a host name (letters, digits, '.', '-', '_') or an IPv6 address in brackets: no spaces, no stray brackets
        v6 = host.startswith("[") and host.endswith("]") and len(host) > 2 and \
            all(ch in "0123456789abcdefABCDEF:." for ch in host[1:-1])
        if not v6 and not all(ch.isascii() and (ch.isalnum() or ch in ".-_") for ch in host):
            raise bad
        return "tcp", raw
    raise bad


def require_distributed():
    """Dask's ``distributed`` module, or a UsageError saying how to install the ``cluster`` extra."""
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--cluster needs Dask's distributed package, which is not installed: {INSTALL_HINT}") from None
    return distributed


class DaskExecutor:
    """Runs batches of tasks on a Dask cluster: a LocalCluster (``local:N``) or a scheduler's address."""

    def __init__(self, cluster: str, batch: int | None = None, shared_out: bool = False):
        kind, where = parse_cluster(cluster)
        distributed = require_distributed()
        self.batch = batch
        # A LocalCluster's workers share this machine's filesystem: packing, sending and unpacking each
        # folder would only compete with the workers for the same cores.
        self.shared_out = shared_out or kind == "local"
        self.stats = Stats()
        self._cluster = None
        import logging

        for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
            logging.getLogger(name).setLevel(logging.ERROR)  # its INFO lines would bury the sweep's output
        try:
            if kind == "local":
                import dask

                with dask.config.set({"distributed.worker.profile.enabled": False}):  # see _stop_profiler
                    self._cluster = distributed.LocalCluster(n_workers=where, threads_per_worker=1, processes=True,
                                                             dashboard_address=None, silence_logs=logging.ERROR)
                self.client = distributed.Client(self._cluster)
                self.describe = f"Dask LocalCluster of {where} workers"
            else:
                self.client = distributed.Client(where, timeout="15s")
                self.describe = f"Dask scheduler {where}"
        except (OSError, TimeoutError) as exc:
            self.close()
            raise UsageError(f"bad value {cluster!r} for --cluster: cannot reach the Dask scheduler ({exc}); "
                             "expected the address `dask scheduler` printed") from None
        except Exception as exc:  # noqa: BLE001 - something else answered (its bytes read as a huge frame: MemoryError)
            self.close()
            if kind != "tcp":
                raise
            raise UsageError(f"bad value {cluster!r} for --cluster: what answered there is not a Dask scheduler "
                             f"({type(exc).__name__}: {str(exc)[:80]}); expected the address `dask scheduler` printed") \
                from None
        if kind == "tcp" and not self.workers:
            try:
                self.client.wait_for_workers(1, timeout=30)
            except (OSError, TimeoutError):
                self.close()
                raise UsageError(f"bad value {cluster!r} for --cluster: the scheduler has no workers; "
                                 "expected `dask worker` processes started against it") from None

    @property
    def workers(self) -> int:
        try:
            return len(self.client.scheduler_info(n_workers=-1)["workers"])
        except TypeError:  # older distributed: no n_workers argument
            return len(self.client.scheduler_info()["workers"])
        except Exception:  # noqa: BLE001 - a lost scheduler: the sweep's own loop reports it
            return 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if getattr(self, "client", None) is not None:
                self.client.close()
        with contextlib.suppress(Exception):
            if self._cluster is not None:
                self._cluster.close()

    @contextlib.contextmanager
    def calls(self, cfgs: Sequence[dict] = ()) -> Iterator["DaskCalls"]:
        """A pool for ``fn(item)`` calls on the cluster (see :class:`DaskCalls`); ``cfgs`` name the
        designs whose files every worker must have as the client has them."""
        pool = DaskCalls(self, list(cfgs))
        try:
            yield pool
        finally:
            pool.close(cancel=True)

    def imap(self, tasks: Sequence[Task], runs_dir: Path, *, plots: bool = False) -> Iterator[tuple[int, dict]]:
        import uuid

        from distributed import as_completed as dask_completed

        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        if not tasks:
            return
        expect = environment([t.cfg for t in tasks])
        shared = str(runs_dir.resolve()) if self.shared_out else None
        items = [(i, t.cfg, t.point, t.key) for i, t in enumerate(tasks)]
        batches, k = [], 0
        for size in batch_sizes(len(items), self.workers, self.batch):
            batches.append(items[k:k + size])
            k += size
        tag = uuid.uuid4().hex[:8]
        futures = [self.client.submit(run_batch, b, plots, expect, shared, key=f"dsim-batch-{tag}-{n}",
                                      pure=False, retries=1)
                   for n, b in enumerate(batches)]
        seen: set[int] = set()
        try:
            for fut in dask_completed(futures):
                try:
                    out = fut.result()
                except WorkerMismatch as exc:
                    raise UsageError(str(exc)) from None
                self.stats.batches += 1
                self.stats.busy_s += out["busy_s"]
                self.stats.batch_sizes.append(len(out["results"]))
                for index, row, blob in out["results"]:
                    if index in seen:  # a batch retried after a worker died: its runs count once
                        continue
                    seen.add(index)
                    folder = runs_dir / tasks[index].key
                    if blob is not None:
                        unpack(blob, folder)
                    row["folder"] = str(folder)
                    self.stats.runs += 1
                    yield index, row
        finally:
            with contextlib.suppress(Exception):
                self.client.cancel([f for f in futures if not f.done()])


# --- calls: any function, one item at a time (the hunt's and the shrinker's runs) ---------------------

def _init_call_worker(serial_checks: bool) -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and stops the workers itself
    # (SIGTERM, which must simply end a worker: it holds no folder to save, only a run in memory).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if serial_checks:
        _serial_checks_on()


def _serial_checks_on() -> None:
    """One core per worker: a run's checkers do not fork a second process (``checkers.parallel``).
    With as many workers as cores, a forked checker would only compete with the other workers."""
    os.environ["DSIM_SERIAL_CHECKS"] = "1"


class LocalCalls:
    """``fn(item)`` calls on the local executor's processes (``jobs=1``: in this process, one at a
    time, when :meth:`next` is called). Tickets number the calls from 0 in submission order."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self._todo: list[tuple[int, Any, Any]] = []  # jobs=1: (ticket, fn, item) not run yet
        self._futures: dict[Any, int] = {}
        self._next_ticket = 0
        self._pool = None
        if self.jobs > 1:
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=_init_call_worker,
                                             initargs=(True,))

    def __len__(self) -> int:
        return len(self._todo) + len(self._futures)

    def submit(self, fn, items: Sequence) -> list[int]:
        tickets = []
        for item in items:
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            tickets.append(ticket)
            if self._pool is None:
                self._todo.append((ticket, fn, item))
            else:
                self._futures[self._pool.submit(fn, item)] = ticket
        return tickets

    def next(self) -> tuple[int, Any]:
        """A finished call ``(ticket, result)``, waiting for one if need be (the lowest ticket among those done)."""
        if self._pool is None:
            ticket, fn, item = self._todo.pop(0)
            return ticket, fn(item)
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        fut = min(done, key=self._futures.__getitem__)
        return self._futures.pop(fut), fut.result()

    def close(self, cancel: bool = False) -> None:
        self._todo.clear()
        if self._pool is None:
            return
        if cancel:  # the runs in progress are in memory only: nothing to save
            _stop_pool(self._pool, join_s=10)
            # join the pool's manager thread too, or at exit it writes to the pipe it has closed
            with contextlib.suppress(Exception):
                self._pool.shutdown(wait=True)
        else:
            self._pool.shutdown(wait=True)
        self._futures.clear()
        self._pool = None


def run_calls(fn, items: list, expect: dict[str, Any], cfgs: list[dict], serial_checks: bool) -> dict[str, Any]:
    """On a Dask worker: check the environment, then ``fn(item)`` for each item."""
    t0 = time.perf_counter()
    _check_environment(expect, cfgs)
    _stop_profiler()
    before = os.environ.get("DSIM_SERIAL_CHECKS")
    if serial_checks:
        _serial_checks_on()
    try:
        results = [fn(item) for item in items]
    finally:
        if serial_checks:
            if before is None:
                os.environ.pop("DSIM_SERIAL_CHECKS", None)
            else:
                os.environ["DSIM_SERIAL_CHECKS"] = before
    return {"results": results, "busy_s": time.perf_counter() - t0}


class DaskCalls:
    """``fn(item)`` calls on a Dask cluster, ``batch`` items to a Dask task (default 1: a hunt's or a
    shrink's run takes from a tenth of a second to seconds, against Dask's few milliseconds a task)."""

    def __init__(self, ex: "DaskExecutor", cfgs: list[dict]):
        from distributed import as_completed as dask_completed

        self.ex = ex
        self.cfgs = list(cfgs)
        self.expect = environment(self.cfgs)
        self.serial_checks = ex.workers > 1
        self._done = dask_completed([])
        self._futures: dict[Any, list[int]] = {}
        self._ready: list[tuple[int, Any]] = []
        self._pending: list[tuple[int, Any, Any]] = []  # (ticket, fn, item) waiting for a batch to fill
        self._next_ticket = 0
        import uuid

        self._tag = uuid.uuid4().hex[:8]

    def __len__(self) -> int:
        return len(self._ready) + len(self._pending) + sum(len(t) for t in self._futures.values())

    def submit(self, fn, items: Sequence) -> list[int]:
        """Queue the calls; full batches leave at once, a partial one when a worker would idle (:meth:`next`)."""
        items = list(items)
        tickets = list(range(self._next_ticket, self._next_ticket + len(items)))
        self._next_ticket += len(items)
        self._pending.extend((t, fn, x) for t, x in zip(tickets, items))
        self._flush(partial=False)
        return tickets

    def _flush(self, partial: bool) -> None:
        size = max(1, self.ex.batch or 1)
        while len(self._pending) >= size or (partial and self._pending):
            group, self._pending = self._pending[:size], self._pending[size:]
            fn = group[0][1]
            if any(g[1] is not fn for g in group):  # one function a task
                self._pending = [g for g in group if g[1] is not fn] + self._pending
                group = [g for g in group if g[1] is fn]
            fut = self.ex.client.submit(run_calls, fn, [g[2] for g in group], self.expect, self.cfgs,
                                        self.serial_checks, key=f"dsim-calls-{self._tag}-{group[0][0]}",
                                        pure=False, retries=1)
            self._futures[fut] = [g[0] for g in group]
            self._done.add(fut)
            partial = partial and len(self._futures) < max(1, self.ex.workers)

    def next(self) -> tuple[int, Any]:
        while not self._ready:
            if self._pending and len(self._futures) < max(1, self.ex.workers):
                self._flush(partial=True)  # a worker would wait for a batch to fill: send what there is
            fut = next(self._done)
            tickets = self._futures.pop(fut)
            try:
                out = fut.result()
            except WorkerMismatch as exc:
                raise UsageError(str(exc)) from None
            self.ex.stats.batches += 1
            self.ex.stats.busy_s += out["busy_s"]
            self.ex.stats.batch_sizes.append(len(tickets))
            self.ex.stats.runs += len(tickets)
            self._ready.extend(zip(tickets, out["results"]))
        return self._ready.pop(0)

    def close(self, cancel: bool = False) -> None:
        with contextlib.suppress(Exception):
            self.ex.client.cancel(list(self._futures))
        self._futures.clear()
        self._ready.clear()
        self._pending.clear()


def map_calls(calls, fn, items: Sequence) -> list:
    """``[fn(x) for x in items]`` on ``calls`` (a :meth:`calls` pool), results in item order."""
    tickets = calls.submit(fn, items)
    got: dict[int, Any] = {}
    while len(got) < len(tickets):
        ticket, result = calls.next()
        got[ticket] = result
    return [got[t] for t in tickets]


@contextlib.contextmanager
def open_executor(jobs: int = 1, cluster: str | None = None, batch: int | None = None,
                  shared_out: bool = False) -> Iterator[LocalExecutor | DaskExecutor]:
    """The executor for ``--jobs`` / ``--cluster`` (``cluster`` wins when given), closed on the way out."""
    ex: LocalExecutor | DaskExecutor = DaskExecutor(cluster, batch, shared_out) if cluster else LocalExecutor(jobs)
    try:
        yield ex
    finally:
        ex.close()
