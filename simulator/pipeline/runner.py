"""Run a configuration into a results folder: the shared path of ``dsim run`` and sweep workers.

The folder gets its manifest first (status ``running``); then either every file of a complete run,
or, if the run is interrupted or crashes, what it had (history, faults) with the manifest marked
``incomplete`` and the error named. The exception is re-raised for the caller to report.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..checkers.parallel import fork_call
from ..faults import windows
from .config import RunConfig
from .results import RunFolder
from .run import Outcome, Progress, Run, design_exit, exit_status


def run_to_folder(cfg: RunConfig, folder: Path, *, plots: bool = True, progress: Progress | None = None,
                  link_latest: bool = False) -> tuple[Outcome, int, float]:
    folder.mkdir(parents=True, exist_ok=True)
    rf = RunFolder(folder, cfg, link=link_latest)
    rf.start()
    trace_fh = open(folder / "trace.jsonl", "w") if cfg.trace else None
    run = Run(cfg, trace_file=trace_fh)
    t0 = time.perf_counter()
    try:
        outcome = run.execute(progress)
        if trace_fh is not None:
            run.sim.digest()  # flushes the last trace block to the file
        names: list[str] = []
        if plots:
            from ..reports import plots as P  # here, not at the top: matplotlib's import is 0.35 s of a --no-plots run

            data = outcome.run
            sub = f"{cfg.scenario}, seed {cfg.seed}" + (f", bug {cfg.bug}" if cfg.bug else "") + \
                  (f", nemesis {','.join(cfg.nemesis)}" if cfg.nemesis else "")
            wins = windows(data.faults, data.end_ns)

            def standard() -> list[str]:
                return P.standard(data.history, data.end_ns, folder, wins, sub)

            # The standard plots are drawn in a forked child while the design's own are drawn here:
            # matplotlib's layout and PNG encoding take a second or more either side, and the
            # second core is otherwise idle by now. Without fork (or if the child fails) the
            # parent draws them itself, after its own.
            wait = fork_call(standard)
            try:
                own = run.scenario.plots(data, folder, P.shader(wins)) or []
            finally:
                got = wait() if wait is not None else None
            names = (got[0] if got is not None else standard()) + own
        status = exit_status(outcome.valid)
        rf.finish(outcome, names, status)
        return outcome, status, time.perf_counter() - t0
    except BaseException as exc:
        crash = design_exit(exc)  # SystemExit from the design's own plots (execute turns the rest)
        rf.fail(run, crash)
        if crash is not exc:
            raise crash from exc
        raise
    finally:
        if trace_fh is not None:
            trace_fh.close()
