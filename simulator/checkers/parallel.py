"""Run one function in a forked child process while the parent goes on: the second core at work.

A run's checkers read the finished history in one child, and its trace digest is made in another,
while the parent computes the metrics and figures from the same history; on a Raft run of 60,000
operations that turns about two seconds of finishing into one. A child is a ``fork`` of the parent, so it sees the history
without copying it, and sends back only the pickled result.

``fork_call(fn)`` returns a ``wait()`` that gives ``(result, seconds fn took)``, or None when the
child could not deliver (an exception in ``fn``, a result that does not pickle, a killed child):
the caller then simply calls ``fn`` itself, so errors surface in the parent with their traceback.
``fork_call`` itself returns None except on Linux (Windows has no ``fork``; on macOS a forked child
must not touch system frameworks that numpy may have loaded), and when the environment sets
``DSIM_SERIAL_CHECKS=1``.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import time
import warnings
from typing import Any, Callable

WORTH_FORKING = 20_000  # history events or operations below which a fork costs more than it saves


def available() -> bool:
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get("DSIM_SERIAL_CHECKS", "") in ("", "0"))


def fork_call(fn: Callable[[], Any]) -> Callable[[], tuple[Any, float] | None] | None:
    if not available():
        return None
    r, w = os.pipe()
    try:
        with warnings.catch_warnings():  # 3.12+: numpy's idle BLAS threads; the child runs pure Python
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: compute, send, and leave without running the parent's exit handlers
        try:
            # No cyclic collection in a child that lives for one call and leaves by os._exit: a
            # collection walks every object the parent made (copying their pages) and finds nothing.
            gc.disable()
            os.close(r)
            try:
                t0 = time.perf_counter()
                result = fn()
                payload = pickle.dumps((True, result, time.perf_counter() - t0), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:  # noqa: BLE001 - the parent re-runs fn and sees the error itself
                payload = pickle.dumps((False, None, 0.0))
            with os.fdopen(w, "wb") as fh:
                fh.write(payload)
        finally:
            os._exit(0)
    os.close(w)

    def wait() -> tuple[Any, float] | None:
        try:
            with os.fdopen(r, "rb") as fh:
                data = fh.read()
        finally:
            os.waitpid(pid, 0)
        try:
            ok, result, seconds = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a truncated payload: the child died
            return None
        return (result, seconds) if ok else None

    return wait
