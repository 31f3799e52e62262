"""Run configuration: the options every scenario shares, in one place with their defaults.

Precedence, lowest first: these defaults, the scenario's ``defaults``, a ``--config`` TOML file,
command-line flags. Scenario parameters (``--set key=value`` or the TOML table ``[params]``) are
validated by the scenario's :class:`~simulator.pipeline.scenario.Param` list.

A TOML experiment file::

    scenario = "raft"          # optional; must match the command's scenario if given
    seed = 7
    time_limit_s = 30
    rate = 200
    nemesis = ["partition-random-halves", "crash"]
    nemesis_interval_s = 5

    [params]
    read_mode = "lease"

    [[faults]]                 # an explicit fault plan, besides or instead of nemeses
    at_s = 10
    action = "partition"
    groups = [["n1"], ["n2", "n3"]]
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..engine.errors import UsageError
from .scenario import Scenario, design_file

DEFAULTS_HELP = {
    "time_limit_s": "simulated seconds of workload (faults act during it)",
    "rate": "open-loop request rate, operations per simulated second",
    "rate_profile": "open-loop rate over time: constant, ramp:FROM-TO or burst:EVERY_S:FOR_S:FACTOR",
    "concurrency": "closed-loop clients (each waits for its reply); set it to use closed loop",
    "node_count": "server nodes",
    "latency_ms": "mean one-way network latency, ms",
    "latency_dist": "latency distribution: constant, uniform, normal, lognormal, exponential, pareto",
    "nemesis": "fault generators to run (comma-separated)",
    "nemesis_interval_s": "seconds between fault starts and stops",
    "op_timeout_ms": "a client operation not answered in this time is recorded info",
    "quiesce_s": "seconds after the final heal before the final reads",
    "final_timeout_s": "seconds the final operations may take",
    "topology": "lan, regions:N[:INTER_MS], leaf-spine:RACKS or graph:FILE.graphml",
}


@dataclass
class RunConfig:
    scenario: str
    seed: int = 0
    time_limit_s: float = 60.0
    rate: float = 100.0
    rate_profile: str = "constant"
    concurrency: int | None = None
    node_count: int = 5
    latency_ms: float = 1.0
    latency_dist: str = "exponential"
    nemesis: tuple[str, ...] = ()
    nemesis_interval_s: float = 10.0
    op_timeout_ms: float = 1000.0
    quiesce_s: float = 5.0
    final_timeout_s: float = 10.0
    topology: str = "lan"
    params: dict[str, Any] = field(default_factory=dict)
    bug: str | None = None
    faults: list[dict] = field(default_factory=list)
    trace: bool = False
    # A design loaded from a file (``dsim run ./mydesign.py``): its absolute path and sha256, so that
    # replays and sweep workers load the same file and can tell when it has changed.
    design_path: str | None = None
    design_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nemesis"] = list(self.nemesis)
        if self.design_path is None:  # a shipped design's config stays as it was
            del d["design_path"], d["design_sha256"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "nemesis" in d:
            d["nemesis"] = tuple(d["nemesis"])
        return cls(**d)


RUN_OPTIONS = [f.name for f in fields(RunConfig)
               if f.name not in ("scenario", "params", "faults", "bug", "trace", "seed", "design_path", "design_sha256")]


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {str(path)!r} is not valid TOML: {exc}") from None


def _check_option(name: str, value: Any, scenario: type[Scenario] | None = None) -> Any:
    """Validate one run option."""
    from ..engine.dists import KINDS
    from ..faults import NEMESES

    def bad(expected: str):
        return UsageError(f"bad value {value!r} for {name}: expected {expected}")

    if name == "nemesis":
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [str(i).strip() for i in items if str(i).strip()]
        accepted = list(NEMESES) + list(scenario.custom_nemeses if scenario else ())
        for item in items:
            if item not in accepted:
                raise UsageError(f"unknown nemesis {item!r}: accepted: {', '.join(accepted)}")
        return tuple(items)
    if name == "rate_profile":
        from ..workload.clients import rate_profile

        try:
            rate_profile(value, 1.0, 1.0)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return str(value)
    if name == "topology":
        from ..engine.topology import parse

        parse(value)
        return str(value)
    if name == "latency_dist":
        if value not in KINDS:
            raise bad("one of " + ", ".join(KINDS))
        return value
    if name in ("node_count", "concurrency"):
        if value is None and name == "concurrency":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad("an integer >= 1")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("a number")
    value = float(value)
    positive = name in ("time_limit_s", "nemesis_interval_s", "op_timeout_ms")
    if value != value or value < 0 or (positive and value == 0) or value == float("inf"):
        raise bad("a number > 0" if positive else "a number >= 0")
    return value


def build_config(scenario: type[Scenario], *, seed: int, file: dict[str, Any] | None = None,
                 options: dict[str, Any] | None = None, sets: dict[str, Any] | None = None,
                 bug: str | None = None, trace: bool = False) -> RunConfig:
    """Merge defaults, the scenario's defaults, a TOML dict, flags and ``--set`` values; validate all."""
    merged: dict[str, Any] = {}
    merged.update(scenario.defaults)
    file = dict(file or {})
    params_raw: dict[str, Any] = {}
    faults: list[dict] = []
    if file:
        if "scenario" in file and file.pop("scenario") != scenario.name:
            raise UsageError(f"config file is for another scenario; this run is {scenario.name!r}")
        params_raw.update(file.pop("params", {}) or {})
        params_raw.update({t: file.pop(t) for t in scenario.config_tables if t in file})
        faults = list(file.pop("faults", []) or [])
        if "seed" in file:
            file.pop("seed")  # the caller resolves the seed (flag beats file)
        if "bug" in file and bug is None:
            bug = file.pop("bug")
        for key in list(file):
            if key not in RUN_OPTIONS:
                raise UsageError(f"unknown option {key!r} in config file: accepted: {', '.join(RUN_OPTIONS + ['params', 'faults', 'seed', 'scenario', 'bug'])}")
        merged.update(file)
    for key, value in (options or {}).items():
        if value is not None:
            merged[key] = value
    for key in list(merged):
        merged[key] = _check_option(key, merged[key], scenario)
    params = {p.name: p.default for p in scenario.params}
    for key, raw in {**params_raw, **(sets or {})}.items():
        params[key] = scenario.param(key).parse(raw)
    scenario.validate(params)
    if bug is not None and bug not in scenario.bugs:
        accepted = ", ".join(scenario.bugs) or "none (this scenario has no planted bugs)"
        raise UsageError(f"unknown bug {bug!r} for {scenario.name}: accepted: {accepted}")
    from ..faults import validate_plan

    validate_plan(faults, scenario.fault_verbs)
    design_path, design_sha256 = design_file(scenario) or (None, None)
    return RunConfig(scenario=scenario.name, seed=seed, params=params, bug=bug, faults=faults, trace=trace,
                     design_path=design_path, design_sha256=design_sha256, **merged)
