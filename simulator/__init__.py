"""dsim: a deterministic discrete-event simulator for distributed systems.

This module is the public surface. A design (a scenario under ``scenarios/``, or your own file run
as ``dsim run ./mydesign.py``) imports from here, and from ``simulator.checkers`` for the shared
checkers, never from an engine module by its path::

    from simulator import ClientNode, Node, Param, Scenario, Setup, message, register

The light names are imported at once; the heavier ones (``metrics``, ``plots``, ``execute``,
``build_config``, sweeps) load on first use, so importing a design does not import matplotlib.
The layers below this surface are described in docs/architecture.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .checkers import UNKNOWN, CheckResult, compose, merge_valid
from .engine.dists import Dist
from .engine.errors import UsageError
from .engine.kernel import NS_PER_MS, NS_PER_S, Simulation
from .engine.node import ClientNode, Context, Node, Operation, message
from .engine.queueing import ErlangC, erlang_c
from .faults import windows
from .pipeline.scenario import Param, RunData, Scenario, Setup, register
from .workload.history import pairs

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself), imported on first use
_LAZY = {
    "metrics": ("simulator.checkers.metrics", None),
    "plots": ("simulator.reports.plots", None),
    "FakeContext": ("simulator.engine.testing", "FakeContext"),
    "build_config": ("simulator.pipeline.config", "build_config"),
    "RunConfig": ("simulator.pipeline.config", "RunConfig"),
    "execute": ("simulator.pipeline.run", "execute"),
    "Outcome": ("simulator.pipeline.run", "Outcome"),
    "get_scenario": ("simulator.pipeline.scenario", "get"),
    "scenario_names": ("simulator.pipeline.scenario", "names"),
    "run_sweep": ("simulator.pipeline.sweep", "run_sweep"),
    "parse_seeds": ("simulator.pipeline.sweep", "parse_seeds"),
    "write_csv": ("simulator.pipeline.sweep", "write_csv"),
    "Stopwatch": ("simulator.pipeline.stopwatch", "Stopwatch"),
    # argparse for a design's own scripts: bad arguments as one line and exit 2 (see its docstring)
    "scriptargs": ("simulator.pipeline.scriptargs", None),
}

__all__ = [
    "CheckResult", "ClientNode", "Context", "Dist", "ErlangC", "NS_PER_MS", "NS_PER_S", "Node", "Operation",
    "Param", "RunData", "Scenario", "Setup", "Simulation", "UNKNOWN", "UsageError", "compose", "erlang_c",
    "merge_valid", "message", "pairs", "register", "windows", *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
