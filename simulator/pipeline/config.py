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

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..engine.errors import UsageError
from .scenario import LOAD_CHECKS, Scenario, design_file

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


MAX_DEPTH = 32  # arrays and tables in a config file: a graph design's deepest is about 4


def _depth(value: Any) -> int:
    """How deeply ``value``'s lists and dicts nest (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, tuple, dict)):
            deepest = max(deepest, d + 1)
            if d + 1 <= MAX_DEPTH:  # deeper is refused whatever lies below
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def load_toml(path: str | Path) -> dict[str, Any]:
    shown = str(path)
    if not shown.strip():
        raise UsageError(f"bad value {shown!r} for --config: expected a TOML file")
    try:
        if Path(path).is_char_device() or Path(path).is_block_device():  # /dev/zero would be read forever
            raise IsADirectoryError  # reported below as what it is
        with open(path, "rb") as fh:
            table = ConfigFile(tomllib.load(fh))
    except FileNotFoundError:
        raise UsageError(f"bad value {shown!r} for --config: the file does not exist; expected a TOML file") from None
    except IsADirectoryError:
        what = "a folder" if Path(path).is_dir() else "a device"
        raise UsageError(f"bad value {shown!r} for --config: it is {what}; expected a TOML file") from None
    except UnicodeDecodeError:
        raise UsageError(f"bad value {shown!r} for --config: not UTF-8 text; expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"bad value {shown!r} for --config: not valid TOML ({exc}); expected a TOML file") from None
    except RecursionError:  # tomllib parses nested arrays by recursion
        raise UsageError(f"bad value {shown!r} for --config: nested deeper than TOML's parser goes; expected "
                         f"arrays and tables at most {MAX_DEPTH} deep") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise UsageError(f"bad value {shown!r} for --config: cannot read it ({getattr(exc, 'strerror', None) or exc}); "
                         "expected a TOML file") from None
    table.source = shown
    if _depth(table) > MAX_DEPTH:  # the checks after this walk values by recursion too
        raise UsageError(f"bad value {shown!r} for --config: arrays or tables nested more than {MAX_DEPTH} deep; "
                         f"expected at most {MAX_DEPTH}")
    if "scenario" in table and not isinstance(table["scenario"], str):
        raise UsageError(f"bad value {table['scenario']!r} for scenario in {shown}: expected a design name (text)")
    return table


class ConfigFile(dict):
    """A ``--config`` TOML file's table; ``source`` is the file as given, for messages."""

    source = "config file"


# Plain ASCII decimal numbers only: float() and int() also take '1_000', Arabic-Indic digits,
# 'nan' and 'infinity', none of which a user means as a run option.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def parse_number(raw: Any, name: str, integer: bool = False) -> int | float:
    """``raw`` (a command-line string) as a finite number, or a UsageError naming ``name``."""
    text = str(raw).strip()
    if integer:
        if not text.isascii() or not _INTEGER.fullmatch(text) or len(text) > 30:
            raise UsageError(f"bad value {raw!r} for {name}: expected an integer")
        return int(text)
    if not text.isascii() or not _NUMBER.fullmatch(text):
        raise UsageError(f"bad value {raw!r} for {name}: expected a number")
    value = float(text)
    if not math.isfinite(value):
        raise UsageError(f"bad value {raw!r} for {name}: expected a finite number")
    return value


# Bounds (inclusive) of the numeric run options. Times become integer nanoseconds: the caps keep
# them, summed, inside int64, and the floors keep them well above a nanosecond (a nemesis interval
# or arrival gap that rounds to 0 ns would loop forever at one instant). Counts are capped where a
# larger value only exhausts memory before the first event.
LIMITS: dict[str, tuple[float, float]] = {
    "time_limit_s": (1e-6, 1e9),
    "rate": (1e-6, 1e7),
    "concurrency": (1, 10_000),
    "node_count": (1, 1_000_000),  # Kademlia-sized designs run 100,000 nodes
    "latency_ms": (0.0, 1e7),
    "nemesis_interval_s": (1e-3, 1e9),
    "op_timeout_ms": (1e-3, 1e12),
    "quiesce_s": (0.0, 1e9),
    "final_timeout_s": (0.0, 1e9),
}
MAX_PARAM = 1e9  # for scenario parameters whose design gave no maximum
MAX_REGIONS = 100
MAX_RACKS = 1000


def _finite_parts(text: str, sep: str) -> list[float]:
    parts = text.split(sep)
    return [parse_number(x, "part") for x in parts]


def _check_rate_profile(value: Any) -> str:
    from ..workload.clients import PROFILE_HELP, rate_profile

    if not isinstance(value, str):
        raise UsageError(f"bad value {value!r} for rate_profile: expected {PROFILE_HELP}")
    try:
        rate_profile(value, 1.0, 1.0)
        kind, _, rest = value.strip().partition(":")
        hi_rate = LIMITS["rate"][1]
        if kind == "ramp":
            for x in _finite_parts(rest, "-"):
                if x > hi_rate:
                    raise ValueError
        elif kind == "burst":
            every, length, factor = _finite_parts(rest, ":")
            if every > LIMITS["time_limit_s"][1] or length < 1e-6 or factor > 1e6:
                raise ValueError
    except (ValueError, UsageError):
        raise UsageError(f"bad value {value!r} for rate_profile: expected {PROFILE_HELP}") from None
    return value


def _check_topology(value: Any) -> str:
    from ..engine.topology import SPEC_HELP, parse

    if not isinstance(value, str):
        raise UsageError(f"bad value {value!r} for topology: expected {SPEC_HELP}")
    kind, _, rest = value.strip().partition(":")
    bad = UsageError(f"bad value {value!r} for topology: expected {SPEC_HELP} (at most {MAX_REGIONS} regions, "
                     f"{MAX_RACKS} racks, finite latencies from 0 to {LIMITS['latency_ms'][1]:g} ms)")
    try:
        if kind == "regions":
            parts = rest.split(":")
            if parse_number(parts[0], "regions", integer=True) > MAX_REGIONS:
                raise bad
            if len(parts) > 2 or (len(parts) == 2 and parse_number(parts[1], "inter") > LIMITS["latency_ms"][1]):
                raise bad
        elif kind == "leaf-spine":
            if parse_number(rest, "racks", integer=True) > MAX_RACKS:
                raise bad
    except UsageError:
        raise bad from None
    graph = parse(value)  # after the size checks: a million regions would fill memory first
    if graph is not None:
        if graph.number_of_nodes() == 0:
            raise bad
        for _, _, data in graph.edges(data=True):
            try:
                ms = float(data.get("latency_ms", 0.0))
            except (TypeError, ValueError):
                raise bad from None
            if not 0 <= ms <= LIMITS["latency_ms"][1]:
                raise bad
    return value


def _check_option(name: str, value: Any, scenario: type[Scenario] | None = None) -> Any:
    """Validate one run option."""
    from ..engine.dists import KINDS
    from ..faults import NEMESES

    def bad(expected: str):
        return UsageError(f"bad value {value!r} for {name}: expected {expected}")

    if name == "nemesis":
        accepted = list(NEMESES) + list(scenario.custom_nemeses if scenario else ())
        expected = "nemesis names separated by commas, none empty: " + ", ".join(accepted)
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, (list, tuple)) and all(isinstance(i, str) for i in value):
            items = list(value)
        else:
            raise bad(expected)
        items = [i.strip() for i in items]
        if any(not i for i in items):  # 'crash,,' is a typo, not 'crash'; '' is no list at all
            raise bad(expected)
        for item in items:
            if item not in accepted:
                raise UsageError(f"unknown nemesis {item!r}: accepted: {', '.join(accepted)}")
        for i, item in enumerate(items):
            if item in items[:i]:
                raise UsageError(f"bad value {value!r} for {name}: {item!r} is named twice; expected each nemesis once")
        return tuple(items)
    if name == "rate_profile":
        return _check_rate_profile(value)
    if name == "topology":
        return _check_topology(value)
    if name == "latency_dist":
        if not isinstance(value, str) or value not in KINDS:
            raise bad("one of " + ", ".join(KINDS))
        return value
    lo, hi = LIMITS.get(name, (0.0, 1e9))
    if name in ("node_count", "concurrency"):
        if value is None and name == "concurrency":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise bad(f"an integer from {lo:,} to {hi:,}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"a number from {lo:g} to {hi:g}")
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise bad(f"a number from {lo:g} to {hi:g}")
    return value


def check_design(cls: type[Scenario]) -> None:
    """A loaded design's defaults, checked as a config file's would be, and each parameter's default
    against the parameter itself (one line each); run by the loader (``scenario.LOAD_CHECKS``)."""
    for p in cls.params:
        _check_param_default(p)
    checked = {}
    for key, value in cls.defaults.items():
        if key not in RUN_OPTIONS:
            raise UsageError(f"unknown option {key!r} in defaults: accepted: {', '.join(RUN_OPTIONS)}")
        try:
            checked[key] = _check_option(key, value, cls)
        except UsageError as exc:
            raise UsageError(f"defaults: {exc}") from None
    try:
        _check_together(checked)
    except UsageError as exc:
        raise UsageError(f"defaults: {exc}") from None


def _check_param_default(p) -> None:
    """A parameter's default must be a value the parameter itself accepts."""
    value = p.default
    ok = True
    if p.type is bool:
        ok = isinstance(value, bool)
    elif p.type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif p.type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif p.type is str:
        ok = isinstance(value, str)
    else:  # a type of the design's own (a TOML table, say): its parse is the design's business
        return
    if ok and p.choices:
        ok = value in p.choices
    if ok and p.type in (int, float):
        ok = (p.min is None or value >= p.min) and (p.max is None or value <= p.max) and \
            (p.max is not None or abs(value) <= MAX_PARAM)
    if not ok:
        raise UsageError(f"bad value {value!r} for the default of parameter {p.name}: expected {p.accepted()}")


LOAD_CHECKS.append(check_design)


MAX_NEMESIS_CYCLES = 1_000_000  # the nemesis plan is built as a list before the run starts


def _check_together(merged: dict[str, Any]) -> None:
    """Limits on combinations of options, each fine alone."""
    limit_s = merged.get("time_limit_s", RunConfig.time_limit_s)
    interval_s = merged.get("nemesis_interval_s", RunConfig.nemesis_interval_s)
    if merged.get("nemesis") and limit_s / interval_s > MAX_NEMESIS_CYCLES:
        raise UsageError(f"bad value {interval_s!r} for nemesis_interval_s: expected at least time_limit_s / "
                         f"{MAX_NEMESIS_CYCLES:,} = {limit_s / MAX_NEMESIS_CYCLES:g} s (at most a million nemesis cycles)")
    profile = merged.get("rate_profile", "constant").strip()  # as the parser reads it
    if profile.startswith("burst:"):
        factor = float(profile.split(":")[3])
        rate = merged.get("rate", RunConfig.rate)
        if rate * factor > LIMITS["rate"][1]:
            raise UsageError(f"bad value {profile!r} for rate_profile: expected a burst rate (rate x factor) of at most "
                             f"{LIMITS['rate'][1]:g} ops/s")


def _check_fault(n: int, act: dict) -> None:
    """The argument types of a planned fault, which validate_plan leaves to the injector (a crash mid-run)."""
    # validate_plan checked the action and the time (at_s or at_ns, in range, an integer for at_ns)

    def bad(arg: str, expected: str) -> UsageError:
        return UsageError(f"bad value {act.get(arg)!r} for {arg} of fault {n} ({act['action']}): expected {expected}")

    def number(arg: str, lo: float, hi: float) -> float:
        v = act.get(arg)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise bad(arg, f"a number from {lo:g} to {hi:g}")
        return float(v)

    def names(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    def plain(v: Any) -> bool:  # what a manifest's JSON keeps: TOML's dates and times are not
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(plain(x) for x in v.values())
        return isinstance(v, (str, int, float))

    for arg in act:
        if not plain(act[arg]):
            raise bad(arg, "numbers, text, true or false, or lists of them (not a date or time)")
        if arg in ("node",) and not isinstance(act[arg], str):
            raise bad(arg, "a node name")
        if arg in ("srcs", "dsts") and not names(act[arg]):
            raise bad(arg, "a list of node names")
        if arg == "groups" and not (isinstance(act[arg], list) and all(names(g) for g in act[arg])):
            raise bad(arg, "a list of lists of node names")
        if arg == "groups":  # a partition: sides that exist, each node on one side once
            flat = [x for g in act[arg] for x in g]
            if len(set(flat)) != len(flat):
                raise bad(arg, "groups of node names, each node in one group once")
        if arg == "dsts" and names(act.get("srcs")) and set(act["srcs"]) & set(act[arg]):
            raise bad(arg, "node names none of which is in srcs (a node is not cut from itself)")
        if arg == "pairs" and not (isinstance(act[arg], list) and all(names(p) and len(p) == 2 for p in act[arg])):
            raise bad(arg, "a list of [node, node] pairs")
        if arg == "pairs" and any(p[0] == p[1] for p in act[arg]):
            raise bad(arg, "a list of [node, node] pairs of two different nodes")
        if arg == "p":
            number(arg, 0.0, 1.0)
        if arg == "factor":
            number(arg, 1e-6, 1e6)
        if arg == "ppm":  # a clock at -1e6 ppm stands still: the injector needs more than that
            number(arg, -1e6, 1e6)
            if act[arg] <= -1e6:
                raise bad(arg, "a number of ppm above -1,000,000 and at most 1,000,000")
        if arg == "delta_ms":
            number(arg, -1e12, 1e12)
        if arg == "lose_unsynced" and not isinstance(act[arg], bool):
            raise bad(arg, "true or false")
        if arg == "nemesis" and not isinstance(act[arg], str):  # it labels the fault's window on the plots
            raise bad(arg, "a nemesis name (text)")
        if arg == "phase" and act[arg] not in ("start", "stop"):
            raise bad(arg, "'start' or 'stop'")
    if act["action"] == "clock_strobe":
        period = number("period_ms", 1e-3, 1e12)
        if number("duration_ms", 0.0, 1e12) / period > 1e6:  # every period is an event
            raise bad("duration_ms", "at most a million periods")


def build_config(scenario: type[Scenario], *, seed: int, file: dict[str, Any] | None = None,
                 options: dict[str, Any] | None = None, sets: dict[str, Any] | None = None,
                 bug: str | None = None, trace: bool = False) -> RunConfig:
    """Merge defaults, the scenario's defaults, a TOML dict, flags and ``--set`` values; validate all."""
    merged: dict[str, Any] = {}
    merged.update(scenario.defaults)
    file_in, file = file, dict(file or {})
    params_raw: dict[str, Any] = {}
    faults: list[dict] = []
    if file:
        source = getattr(file_in, "source", "config file")
        if "scenario" in file and file["scenario"] != scenario.name:
            raise UsageError(f"bad value {file['scenario']!r} for scenario in {source}: expected {scenario.name!r}, "
                             "this run's design (the file is for another one)")
        file.pop("scenario", None)
        table = file.pop("params", {})
        if not isinstance(table, dict):
            raise UsageError(f"bad value {table!r} for params in config file: expected a table ([params])")
        params_raw.update(table)
        for t in scenario.config_tables:
            if t in file and t in table:  # which one the run would get is a guess
                raise UsageError(f"bad value [{t}] in config file: [params.{t}] is given too; expected one of them")
        params_raw.update({t: file.pop(t) for t in scenario.config_tables if t in file})
        plan = file.pop("faults", [])
        if not isinstance(plan, list):
            raise UsageError(f"bad value {plan!r} for faults in config file: expected an array of tables ([[faults]])")
        faults = list(plan)
        if "seed" in file:  # the caller resolves the seed (flag beats file), but a bad one is still refused
            from ..engine.rng import MAX_SEED

            file_seed = file.pop("seed")
            if isinstance(file_seed, bool) or not isinstance(file_seed, int) or not 0 <= file_seed <= MAX_SEED:
                raise UsageError(f"bad value {file_seed!r} for seed in config file: expected an integer from 0 to {MAX_SEED}")
        if "bug" in file:
            file_bug = file.pop("bug")
            if not isinstance(file_bug, str):
                raise UsageError(f"bad value {file_bug!r} for bug in config file: expected a bug name (text)")
            bug = file_bug if bug is None else bug
        for key in list(file):
            if key not in RUN_OPTIONS:
                raise UsageError(f"unknown option {key!r} in config file: accepted: {', '.join(RUN_OPTIONS + ['params', 'faults', 'seed', 'scenario', 'bug'])}")
        for key in file:  # even those a flag overrides: the file is input too
            file[key] = _check_option(key, file[key], scenario)
        merged.update(file)
    for key, value in (options or {}).items():
        if value is not None:
            merged[key] = value
    for key in list(merged):
        merged[key] = _check_option(key, merged[key], scenario)
    for key in scenario.unused_options:
        default = scenario.defaults.get(key, getattr(RunConfig, key, None))
        if key in merged and merged[key] != default:
            raise UsageError(f"bad value {merged[key]!r} for {key}: {scenario.name} does not use it (its own "
                             f"parameters size it, if any: dsim describe {scenario.name}); expected it left out")
    _check_together(merged)
    params = {p.name: p.default for p in scenario.params}
    for key, raw in {**params_raw, **(sets or {})}.items():
        param = scenario.param(key)
        if param.type in (int, float, bool, str) and (isinstance(raw, (dict, list, tuple)) or raw is None):
            raise UsageError(f"bad value {raw!r} for {key}: expected {param.accepted()}")  # str() would make text of them
        params[key] = value = param.parse(raw)
        # A bound for parameters whose design set none: 1e300 ms overflows integer nanoseconds
        if param.type in (int, float) and param.max is None and abs(value) > MAX_PARAM:
            raise UsageError(f"bad value {raw!r} for {key}: expected {param.accepted()} and at most {MAX_PARAM:g}")
    scenario.validate(params)
    if bug is not None and bug not in scenario.bugs:
        accepted = ", ".join(scenario.bugs) or "none (this scenario has no planted bugs)"
        raise UsageError(f"unknown bug {bug!r} for {scenario.name}: accepted: {accepted}")
    from ..faults import validate_plan

    validate_plan(faults, scenario.fault_verbs)
    for i, act in enumerate(faults):
        _check_fault(i + 1, act)
    design_path, design_sha256 = design_file(scenario) or (None, None)
    return RunConfig(scenario=scenario.name, seed=seed, params=params, bug=bug, faults=faults, trace=trace,
                     design_path=design_path, design_sha256=design_sha256, **merged)


def check_recorded(d: Any) -> RunConfig:
    """A manifest's ``config``, validated as strictly as a fresh command line, as a RunConfig.

    It is built the way the run's own config was (the same merge, the same parsing), so a manifest
    dsim wrote gives back the configuration it recorded; one missing a parameter gets its default."""
    from ..engine.rng import MAX_SEED
    from . import scenario as registry

    if not isinstance(d, dict):
        raise UsageError("config is not an object")
    name = d.get("scenario")
    if not isinstance(name, str):
        raise UsageError(f"bad value {name!r} for scenario: expected a scenario name")
    scen = registry.get(name)
    seed = d.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"bad value {seed!r} for seed: expected an integer from 0 to {MAX_SEED}")
    options = {}
    for key in RUN_OPTIONS:
        if key in d:
            if d[key] is None and key != "concurrency":
                raise UsageError(f"bad value None for {key}: expected a value")
            options[key] = d[key]
    params, faults, bug, trace = d.get("params", {}), d.get("faults", []), d.get("bug"), d.get("trace", False)
    if not isinstance(params, dict):
        raise UsageError(f"bad value {params!r} for params: expected an object")
    if bug is not None and not isinstance(bug, str):
        raise UsageError(f"bad value {bug!r} for bug: expected a bug name")
    if not isinstance(trace, bool):
        raise UsageError(f"bad value {trace!r} for trace: expected true or false")
    return build_config(scen, seed=seed, file={"faults": faults}, options=options, sets=params, bug=bug, trace=trace)


def dry_build(cfg: RunConfig) -> None:
    """Build the design once, without running it, before any folder exists: a design refuses its own
    bad parameter combinations (a UsageError) in ``build``, and planned faults must name its hosts.
    Any other failure is left for the real run to report as a crash, with its folder."""
    from ..engine.dists import Dist
    from ..engine.kernel import Simulation
    from ..faults import Injector
    from . import scenario as registry

    try:
        sim = Simulation(cfg.seed, latency=Dist(cfg.latency_dist, cfg.latency_ms))
        Injector(sim, [])
        setup = registry.for_config(cfg)().build(sim, cfg)
        hosts = set(sim.hosts) | {f"c{i + 1}" for i in range(setup.clients or cfg.concurrency or 4)}
    except UsageError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - not bad input: the run reports it (a SystemExit or GeneratorExit as a crash)
        return
    design = registry.for_config(cfg)
    for i, act in enumerate(cfg.faults):  # build_config checked the types of these
        if act["action"] in design.fault_verbs:  # a design's own verb reads its arguments its own way (twopc: node="any")
            design.check_fault(i + 1, act, hosts, cfg.params)
            continue
        named = [act["node"]] if "node" in act else []
        named += list(act.get("srcs", [])) + list(act.get("dsts", []))
        named += [n for group in act.get("groups", []) for n in group] + [n for pair in act.get("pairs", []) for n in pair]
        for n in named:
            if n not in hosts:
                shown = sorted(hosts)
                raise UsageError(f"bad value {n!r} in fault {i + 1} ({act['action']}): expected a host of this run: "
                                 f"{', '.join(shown[:12])}{' ...' if len(shown) > 12 else ''}")
