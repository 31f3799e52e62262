"""The scenario contract and registry: what a design provides so that ``dsim`` can run it.

A scenario is a small registered class (in ``scenarios/<name>/``)::

    @register
    class Queue(Scenario):
        name = "queue"
        summary = "clients -> one service node with c cores: an M/M/c queue"
        params = (Param("servers", 1, "cores of the service node", type=int, min=1), ...)
        bugs = {"name": "what the planted bug does"}
        checkers = {"name": "what the checker verifies"}
        nemeses = ("crash", "pause")          # the nemeses that make sense for it
        defaults = {"rate": 50, "node_count": 1}  # its own defaults for the run options

        def build(self, sim, cfg) -> Setup:   # add server nodes, say how clients talk
        def check(self, run) -> dict[str, CheckResult]
        def figures(self, run) -> dict        # scenario figures for metrics.json (optional)
        def plots(self, run, folder, shade) -> list[str]   # extra PNGs (optional)

Data flows one way: ``build`` wires nodes, the run produces a :class:`RunData`, and ``check``,
``figures`` and ``plots`` read only that.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..checkers import CheckResult
from ..engine.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from ..engine.kernel import Simulation
    from ..engine.node import ClientNode


@dataclass(frozen=True)
class Param:
    """A scenario parameter: name (with its unit in it), default, help, and what is accepted."""

    name: str
    default: Any
    help: str
    type: type = float
    choices: tuple = ()
    min: float | None = None
    max: float | None = None

    def parse(self, raw: Any) -> Any:
        """``raw`` (a string from ``--set`` or a TOML value) as this parameter's type, validated."""
        accepted = self.accepted()
        try:
            if self.type is bool:
                if isinstance(raw, bool):
                    value = raw
                elif str(raw).lower() in ("1", "true", "yes", "on"):
                    value = True
                elif str(raw).lower() in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError
            elif self.type is int:
                if isinstance(raw, float) and raw.is_integer():
                    raw = int(raw)
                if isinstance(raw, bool) or (isinstance(raw, float)):
                    raise ValueError
                value = int(str(raw), 10)
            elif self.type is float:
                if isinstance(raw, bool):
                    raise ValueError
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = self.type(raw)
        except (TypeError, ValueError):
            raise UsageError(f"bad value {raw!r} for {self.name}: expected {accepted}") from None
        if self.choices and value not in self.choices:
            raise UsageError(f"bad value {raw!r} for {self.name}: expected {accepted}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise UsageError(f"bad value {raw!r} for {self.name}: expected {accepted}")
        return value

    def accepted(self) -> str:
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        kind = {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(self.type, self.type.__name__)
        if self.min is not None and self.max is not None:
            return f"{kind} from {self.min} to {self.max}"
        if self.min is not None:
            return f"{kind} >= {self.min}"
        if self.max is not None:
            return f"{kind} <= {self.max}"
        return kind


@dataclass
class Setup:
    """What ``Scenario.build`` returns.

    servers   the ids of the nodes faults may hit (the nemesis targets), in a fixed order
    client    ``client(client_id) -> ClientNode``: builds the node behind each client endpoint
    generate  ``generate(rng) -> (f, value)``: the next operation of the main workload
    final     operations run once after the final heal and quiesce (e.g. a read of every key)
    expose    called after the run: the final state checkers may look at (e.g. each node's log)
    clients   how many client endpoints (default: the run's concurrency, or 4 for open loop)
    client_options  keyword arguments for the client hosts (``cores``, ``service``...)
    """

    servers: list[str]
    client: Callable[[str], "ClientNode"]
    generate: Callable[["np.random.Generator"], tuple[str, Any]]
    final: list[tuple[str, Any]] = field(default_factory=list)
    expose: Callable[[], dict] | None = None
    clients: int | None = None
    client_options: dict[str, Any] = field(default_factory=dict)
    rate_at: Callable[[float], float] | None = None  # open-loop rate profile: ops/s at time t (s)


@dataclass
class RunData:
    """Everything a run leaves for checkers, metrics and plots."""

    cfg: Any  # simulator.pipeline.config.RunConfig
    history: list[dict]
    records: list[dict]
    faults: list[dict]
    exposed: dict
    end_ns: int
    heal_ns: int
    network: dict
    hosts: dict = field(default_factory=dict)

    def records_of(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind]


class Scenario:
    """Base class; see the module docstring."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    bugs: ClassVar[dict[str, str]] = {}
    checkers: ClassVar[dict[str, str]] = {}
    nemeses: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    examples: ClassVar[tuple[str, ...]] = ()
    # Scenario-specific fault verbs usable in fault plans: verb -> required argument names.
    # Apply them by ``sim.faults.register(verb, fn)`` inside ``build``.
    fault_verbs: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Scenario-specific nemeses: name -> fn(servers, rng, interval_ns) -> (start actions, stop actions).
    custom_nemeses: ClassVar[dict[str, Callable]] = {}
    # Named benchmark presets for benchmarks/scenarios.py: name -> {"options": {...}, "params": {...}}.
    benchmarks: ClassVar[dict[str, dict[str, Any]]] = {}
    # Top-level tables of a config file that are parameters (``[components]`` as ``[params.components]``).
    config_tables: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        """Check the parameters together once each is valid alone; raise UsageError (one line)."""

    def build(self, sim: "Simulation", cfg) -> Setup:
        raise NotImplementedError

    def check(self, run: RunData) -> dict[str, CheckResult]:
        return {}

    def figures(self, run: RunData) -> dict[str, Any]:
        return {}

    def plots(self, run: RunData, folder: "Path", shade: Callable) -> list[str]:
        return []

    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        raise UsageError(f"unknown parameter {name!r} for {cls.name}: accepted: {', '.join(p.name for p in cls.params) or 'none'}")


_REGISTRY: dict[str, type[Scenario]] = {}
_LOADED = False


def register(cls: type[Scenario]) -> type[Scenario]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"scenario name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    import scenarios

    for mod in sorted(pkgutil.iter_modules(scenarios.__path__), key=lambda m: m.name):
        if mod.ispkg:
            importlib.import_module(f"scenarios.{mod.name}")
    _LOADED = True


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> type[Scenario]:
    _load_all()
    if name not in _REGISTRY:
        raise UsageError(f"unknown scenario {name!r}: accepted: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
