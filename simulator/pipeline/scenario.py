"""The scenario contract and registry: what a design provides so that ``dsim`` can run it.

A scenario is a small registered class (in ``scenarios/<name>/``)::

    @register
    class Queue(Scenario):
        name = "queue"                        # a letter, then letters, digits, '-', '_': it names results/NAME/
        summary = "clients -> one service node with c cores: an M/M/c queue"
        params = (Param("servers", 1, "cores of the service node", type=int, min=1), ...)
        bugs = {"name": "what the planted bug does"}
        checkers = {"name": "what the checker verifies"}
        nemeses = ("crash", "pause")          # the nemeses that make sense for it
        exposes = {"name": "--bug name --seed 1 --nemesis crash"}  # a run that catches each bug
        defaults = {"rate": 50, "node_count": 1}  # its own defaults for the run options
        search = {"rate": (10.0, 200.0)}      # ranges `dsim hunt` draws from (optional)

        def build(self, sim, cfg) -> Setup:   # add server nodes, say how clients talk
        def prepare(self, run) -> None        # work check and figures share, memoised on run (optional)
        def check(self, run) -> dict[str, CheckResult]
        def figures(self, run) -> dict        # scenario figures for metrics.json (optional)
        def plots(self, run, folder, shade) -> list[str]   # extra PNGs (optional)

A design loaded from a file or an entry point is checked when it loads (:func:`check_name`,
:func:`check_shape`): a bad name, an attribute of the wrong shape, a default its own parameter or
run option refuses, or a nemesis no one provides is one line naming the file, before anything runs.

Data flows one way: ``build`` wires nodes, the run produces a :class:`RunData`, and ``check``,
``figures`` and ``plots`` read only that.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import math
import os
import pkgutil
import re
import shlex
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..checkers import CheckResult
from ..engine.errors import UsageError
from ..faults.plan import check_keys

if TYPE_CHECKING:
    import numpy as np

    from ..engine.kernel import Simulation
    from ..engine.node import ClientNode


@dataclass(frozen=True)
class Param:
    """A scenario parameter: name (with its unit in it), default, help, and what is accepted.

    ``time_scale=True`` marks a time scale of the *workload* (a period, a mean gap between arrivals,
    in simulated time), not of the system under test: ``dsim shrink`` divides it by the factor it
    divides the time limit by, so the same events come sooner in a shorter run."""

    name: str
    default: Any
    help: str
    type: type = float
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    time_scale: bool = False

    def parse(self, raw: Any) -> Any:
        """``raw`` (a string from ``--set`` or a TOML value) as this parameter's type, validated."""
        accepted = self.accepted()
        try:
            if self.type in (int, float) and isinstance(raw, str) and "_" in raw:
                raise ValueError  # Python reads 1_000 as 1000; the run options (parse_number) refuse it too
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
    tables: dict = field(default_factory=dict)  # kind -> rows of ctx.record_row

    def records_of(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind]

    def table(self, kind: str) -> list[tuple]:
        """The rows ``ctx.record_row(kind, row)`` kept, in the order they were made: each
        ``(time_ns, node, *row)`` (an empty list if none was)."""
        return self.tables.get(kind, [])


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
    # Planted bug -> the ``dsim run`` options that expose it (the run exits 1) at the design's
    # defaults, e.g. "--bug stale-read --seed 1 --nemesis partition-random-halves". A bug not
    # listed is exposed by "--bug NAME --seed 1". ``dsim describe`` shows each as a full command and
    # tests/test_bug_commands.py runs them all; see :func:`bug_commands`.
    exposes: ClassVar[dict[str, str]] = {}
    # Ranges ``dsim hunt`` draws each run's configuration from (optional): a run option
    # (node_count, rate, nemesis_interval_s, time_limit_s, latency_ms, op_timeout_ms) or a parameter
    # -> ``(low, high)`` (integers when both are; log-uniform when high >= 10 x low) or a list of
    # values, e.g. ``{"node_count": (3, 7), "nemesis_interval_s": (0.5, 5.0), "read_mode": ["log", "lease"]}``.
    # A design that declares none is searched over seeds and nemeses only (simulator/pipeline/hunt.py).
    search: ClassVar[dict[str, Any]] = {}
    # Top-level tables of a config file that are parameters (``[components]`` as ``[params.components]``).
    config_tables: ClassVar[tuple[str, ...]] = ()
    # Run options the design does not read (``("node_count",)`` where its parameters size the
    # cluster): a value other than the default is refused, rather than recorded and ignored.
    unused_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        """Check the parameters together once each is valid alone; raise UsageError (one line)."""

    @staticmethod
    def check_fault_keys(n: int, act: dict[str, Any], args: tuple[str, ...]) -> None:
        """Refuse (one line) a key of fault ``n`` that is neither what every planned fault may carry
        (action, at_s, at_ns, and nemesis and phase, which generated plans add) nor one of ``args``,
        the verb's own arguments: for a design's :meth:`check_fault` (the shared verbs' check)."""
        check_keys(n, act, args)

    @classmethod
    def check_fault(cls, n: int, act: dict[str, Any], hosts: set[str], params: dict[str, Any]) -> None:
        """Check fault ``n`` (1-based) of a config file's plan, ``act``, one of this design's own
        ``fault_verbs``: its arguments' types and ranges, and the hosts it names among ``hosts`` (the
        run's nodes and clients). Raise UsageError (one line naming the fault, the argument and the
        value). Called before the run starts (``config.dry_build``), once the design has built."""

    def build(self, sim: "Simulation", cfg) -> Setup:
        raise NotImplementedError

    def check(self, run: RunData) -> dict[str, CheckResult]:
        return {}

    def prepare(self, run: RunData) -> None:
        """Compute once what both ``check`` and ``figures`` read (memoised on ``run``). A long run
        calls it before forking its checks, so the child inherits the result instead of both
        processes computing it; a short run does not call it (each reader computes on demand)."""

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


def bug_commands(scenario: type[Scenario], target: str | None = None) -> dict[str, list[str]]:
    """Planted bug -> the ``dsim`` argv (``["run", NAME, "--bug", BUG, ...]``) that exposes it:
    ``scenario.exposes[bug]``, or ``--bug BUG --seed 1``; ``--bug BUG`` is added when missing.
    ``target`` is how the command names the design (a design file's path; default its name)."""
    out = {}
    for bug in scenario.bugs:
        opts = shlex.split(scenario.exposes.get(bug, f"--bug {bug} --seed 1"))
        if "--bug" not in opts:
            opts = ["--bug", bug, *opts]
        out[bug] = ["run", target or scenario.name, *opts]
    return out


def bug_command_line(argv: list[str]) -> str:
    """The shell line for an argv of :func:`bug_commands`."""
    return "dsim " + shlex.join(argv)


_REGISTRY: dict[str, type[Scenario]] = {}
_ORIGIN: dict[str, str] = {}  # name -> where it came from: "scenarios", "DIST VERSION" or a design file's path
_FAILED: dict[str, str] = {}  # a design or entry point that did not import -> "ExcType: message"
_DESIGNS: dict[str, tuple[str, str]] = {}  # name -> (absolute path, sha256) of a design loaded from a file
_BY_PATH: dict[str, tuple[str, type[Scenario]]] = {}  # absolute path -> (sha256, its scenario), loaded already
_LOADED = False
_capture: list[type[Scenario]] | None = None  # set while a design file or entry point imports
SHIPPED = "scenarios"
ENTRY_POINT_GROUP = "dsim.scenarios"


def register(cls: type[Scenario]) -> type[Scenario]:
    if _capture is not None:  # the loader checks the name and files it once the import has finished
        _capture.append(cls)
        return cls
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"scenario name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    _ORIGIN.setdefault(cls.name, SHIPPED if cls.__module__.split(".")[0] == SHIPPED else cls.__module__)
    return cls


def _one_line(exc: BaseException) -> str:
    """``ExcType: message`` on one line, the way ``dsim`` reports a design that does not load."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}" + (f" (line {exc.lineno})" if exc.lineno else "")
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Interrupted(Exception):
    """A real Ctrl-C (SIGINT) arrived while a design file imported."""


def _interruptible(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run so that a real Ctrl-C during it can be told from a KeyboardInterrupt the file raises
    itself: while it runs, SIGINT (when Python's own handler is installed, in the main thread) marks
    the interrupt as real, and a real one leaves as KeyboardInterrupt, not as a bad design."""

    def run() -> Any:
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return fn()
        seen = []

        def on_sigint(signum, frame):
            seen.append(signum)
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_sigint)
        try:
            return fn()
        except KeyboardInterrupt:
            if seen:
                raise _Interrupted from None
            raise
        finally:
            if signal.getsignal(signal.SIGINT) is on_sigint:  # unless the file installed its own
                signal.signal(signal.SIGINT, signal.default_int_handler)

    return run


# A design's name names its results folder (results/NAME/...): a letter, then letters, digits, '-', '_'.
NAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
NAME_ACCEPTED = "a name of at most 64 characters: a letter, then letters, digits, '-' or '_'"
_METHODS = ("build", "check", "prepare", "figures", "plots", "validate", "check_fault")
# More checks of a loaded design, added by the layer that knows what they check (config.py: the
# design's defaults as run options, its parameters' defaults), so this module imports none of it.
LOAD_CHECKS: list[Callable[[type[Scenario]], None]] = []


def check_name(cls: type[Scenario]) -> None:
    """Refuse a scenario name that cannot be a results folder's name (one line)."""
    if not isinstance(cls.name, str) or not NAME_RULE.fullmatch(cls.name):
        raise UsageError(f"bad value {cls.name!r} for name: expected {NAME_ACCEPTED}")


def check_shape(cls: type[Scenario]) -> None:
    """Refuse (one line) a scenario whose class attributes ``dsim`` could not use: those it iterates
    (params, bugs, checkers, nemeses, ...) of the wrong shape, ``defaults`` naming an unknown run
    option or holding a bad value, a parameter default its own parameter refuses, a nemesis no one
    provides. Run on a design loaded from a file or an entry point, before anything is printed."""
    def bad(attr: str, value: Any, expected: str) -> UsageError:
        return UsageError(f"bad value {value!r} for {attr}: expected {expected}")

    def is_seq(v: Any) -> bool:
        return isinstance(v, (tuple, list))

    def is_texts(v: Any) -> bool:
        return is_seq(v) and all(isinstance(x, str) for x in v)

    def text_dict(attr: str, what: str) -> dict:
        value = getattr(cls, attr)
        if not isinstance(value, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
            raise bad(attr, value, f"a dict of {what} -> description (text)")
        return value

    if not isinstance(cls.summary, str):
        raise bad("summary", cls.summary, "text")
    for method in _METHODS:
        if not callable(getattr(cls, method, None)):
            raise bad(method, getattr(cls, method, None), "a method")
    if cls.build is Scenario.build:
        raise UsageError("it does not define build(self, sim, cfg); a scenario must")
    # parameters
    if not is_seq(cls.params) or not all(isinstance(p, Param) for p in cls.params):
        raise bad("params", cls.params, "a tuple of Param(...)")
    seen: set[str] = set()
    for p in cls.params:
        if not isinstance(p.name, str) or not p.name or "=" in p.name or p.name != "".join(p.name.split()):
            raise bad("a parameter's name", p.name, "text without spaces or '='")
        if p.name in seen:
            raise UsageError(f"parameter {p.name!r} is declared twice in params")
        seen.add(p.name)
        if not isinstance(p.help, str):
            raise bad(f"the help of parameter {p.name}", p.help, "text")
        try:
            p.accepted()  # describe and every refusal of a value show it
        except Exception:  # noqa: BLE001
            ok = False
        else:
            ok = callable(p.type) and is_seq(p.choices) and all(
                b is None or (isinstance(b, (int, float)) and not isinstance(b, bool)) for b in (p.min, p.max))
        if not ok:
            raise UsageError(f"bad Param {p.name!r}: expected type a type or function, choices a tuple, "
                             "min and max numbers or None")
    if not is_texts(cls.unused_options):
        raise bad("unused_options", cls.unused_options, "a tuple of run option names")
    # the dicts and lists describe, run and hunt iterate
    bugs = text_dict("bugs", "bug name")
    text_dict("checkers", "checker name")
    examples = cls.examples
    if not is_texts(examples):
        raise bad("examples", examples, "a tuple of text")
    custom = cls.custom_nemeses
    if not isinstance(custom, dict) or not all(isinstance(k, str) and k and callable(v) for k, v in custom.items()):
        raise bad("custom_nemeses", custom, "a dict of nemesis name -> function")
    verbs = cls.fault_verbs
    if not isinstance(verbs, dict) or not all(isinstance(k, str) and k and is_texts(v) for k, v in verbs.items()):
        raise bad("fault_verbs", verbs, "a dict of verb -> tuple of argument names")
    from ..faults import NEMESES

    known = [*NEMESES, *custom]
    if not is_texts(cls.nemeses):
        raise bad("nemeses", cls.nemeses, "a tuple of nemesis names")
    for n in cls.nemeses:
        if n not in known:
            raise UsageError(f"unknown nemesis {n!r} in nemeses: accepted: {', '.join(known)}")
    exposes = cls.exposes
    if not isinstance(exposes, dict):
        raise bad("exposes", exposes, "a dict of bug name -> dsim run options")
    for bug, opts in exposes.items():
        if bug not in bugs:
            raise UsageError(f"unknown bug {bug!r} in exposes: accepted: {', '.join(bugs) or 'none (bugs is empty)'}")
        try:
            shlex.split(opts)
        except (AttributeError, TypeError, ValueError):
            raise bad(f"exposes[{bug!r}]", opts, "dsim run options (text such as '--seed 1 --nemesis crash')") from None
    if not is_texts(cls.config_tables) or any(t not in seen for t in cls.config_tables):
        raise bad("config_tables", cls.config_tables, f"a tuple of parameter names ({', '.join(seen) or 'none'})")
    benchmarks = cls.benchmarks
    if not isinstance(benchmarks, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) and all(isinstance(x, dict) for x in v.values())
            for k, v in benchmarks.items()):
        raise bad("benchmarks", benchmarks, 'a dict of name -> {"options": {...}, "params": {...}}')
    if not isinstance(cls.search, dict):  # its ranges are checked where a hunt reads them (hunt.check_search)
        raise bad("search", cls.search, "a dict of option or parameter -> (low, high) or a list of values")
    if not isinstance(cls.defaults, dict):
        raise bad("defaults", cls.defaults, "a dict of run option -> value")
    for check in LOAD_CHECKS:  # what the layers above know: the run options, the parameters' bounds
        check(cls)


def _importing(fn: Callable[[], Any]) -> list[type[Scenario]]:
    """Run ``fn`` (an import) and return the scenarios it registered, without filing them yet."""
    global _capture
    outer, _capture = _capture, []
    try:
        fn()
        return _capture
    finally:
        _capture = outer


def _described(name: str) -> str:
    where = _ORIGIN.get(name, SHIPPED)
    if where == SHIPPED:
        return "a design dsim ships"
    return where if os.path.isabs(where) else f"package {where}"


def _file(found: list[type[Scenario]], origin: str) -> None:
    """File the scenarios one shipped package or entry point registered; a taken name is an error."""
    for cls in found:
        if not cls.name:
            raise ValueError(f"{cls.__name__} has no name")
        if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
            raise ValueError(f"scenario name {cls.name!r} is taken (by {_described(cls.name)})")
    for cls in found:
        _REGISTRY[cls.name] = cls
        _ORIGIN[cls.name] = origin


def _load_all() -> None:
    """Import the shipped designs, then the installed packages' entry points; a design that does
    not import is noted in ``failures()`` and the others still load."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import scenarios

    for mod in sorted(pkgutil.iter_modules(scenarios.__path__), key=lambda m: m.name):
        if mod.ispkg:
            try:
                _file(_importing(functools.partial(importlib.import_module, f"{SHIPPED}.{mod.name}")), SHIPPED)
            except Exception as exc:  # noqa: BLE001 - one broken design must not hide the others
                _FAILED[mod.name] = _one_line(exc)
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
        try:
            found = _importing(ep.load)
            if not found:  # imported before (so registered then): claim what its module defines
                found = [c for c in _REGISTRY.values() if c.__module__ == ep.module or c.__module__.startswith(ep.module + ".")]
            if not found:
                raise LookupError(f"{ep.value} registers no scenario")
            for cls in found:
                check_name(cls)
                check_shape(cls)
            _file(found, origin)
        except UsageError as exc:  # a scenario of the wrong shape: said as the design file's would be
            _FAILED[ep.name] = " ".join(str(exc).split())
        except Exception as exc:  # noqa: BLE001
            _FAILED[ep.name] = _one_line(exc)


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def origin(name: str) -> str:
    """Where scenario ``name`` came from: ``scenarios`` (shipped), ``DIST VERSION`` (an installed
    package's entry point) or the absolute path of a design file."""
    _load_all()
    return _ORIGIN.get(name, SHIPPED)


def failures() -> dict[str, str]:
    """Designs and entry points that failed to import: name -> ``ExcType: message``."""
    _load_all()
    return dict(_FAILED)


def get(name: str) -> type[Scenario]:
    _load_all()
    if name not in _REGISTRY:
        if name in _FAILED:
            raise UsageError(f"scenario {name!r} failed to load: {_FAILED[name]}")
        raise UsageError(f"unknown scenario {name!r}: accepted: {', '.join(sorted(_REGISTRY))} or a design file (./NAME.py)")
    return _REGISTRY[name]


def is_design_path(arg: str) -> bool:
    """Whether a scenario argument names a design file (``./mydesign.py``) rather than a scenario."""
    return str(arg).endswith(".py")


def sha256_of(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve(arg: str) -> type[Scenario]:
    """A scenario argument of the command line: a registered name or the path of a design file."""
    return load_design(arg) if is_design_path(arg) else get(arg)


def load_design(path: str | os.PathLike, expect_sha256: str | None = None) -> type[Scenario]:
    """Import the design file ``path`` and return the one scenario it registers.

    The file is compiled from the very bytes whose sha256 is recorded (and, given
    ``expect_sha256``, checked), under a module name made from its path and content, so it cannot
    collide with any other module; no ``__pycache__`` is written beside it. Loading the same file
    twice is a no-op. Every failure is a one-line :class:`UsageError` naming the file.
    """
    _load_all()
    shown = str(path)
    absolute = os.path.abspath(path)
    try:
        data = Path(absolute).read_bytes()
    except FileNotFoundError:
        if expect_sha256 is not None:
            raise UsageError(f"design file {absolute} of this run is gone") from None
        raise UsageError(f"cannot load design {shown}: FileNotFoundError: no such file") from None
    except OSError as exc:
        raise UsageError(f"cannot load design {shown}: {_one_line(exc)}") from None
    sha = hashlib.sha256(data).hexdigest()
    if expect_sha256 is not None and sha != expect_sha256:
        raise UsageError(f"design file {absolute} changed since the run (sha256 {expect_sha256[:12]} -> {sha[:12]})")
    if absolute in _BY_PATH and _BY_PATH[absolute][0] == sha:
        return _BY_PATH[absolute][1]
    modname = f"_dsim_design_{hashlib.sha256(absolute.encode()).hexdigest()[:12]}_{sha[:12]}"
    spec = importlib.util.spec_from_file_location(modname, absolute)
    module = importlib.util.module_from_spec(spec)

    def run_file() -> None:
        code = compile(data, absolute, "exec", dont_inherit=True)
        sys.modules[modname] = module  # dataclasses and `dsim describe` look the module up by name
        exec(code, module.__dict__)  # noqa: S102 - running the user's design is the point

    try:
        found = _importing(_interruptible(run_file))
    except _Interrupted:  # a real Ctrl-C while it imported: an interrupt, not a bad design
        sys.modules.pop(modname, None)
        raise KeyboardInterrupt from None
    except BaseException as exc:  # noqa: BLE001 - any failure of the user's file (SystemExit, a KeyboardInterrupt
        sys.modules.pop(modname, None)  # it raises itself, GeneratorExit...) is one line naming it
        raise UsageError(f"cannot load design {shown}: {_one_line(exc)}") from None
    if len(found) != 1:
        sys.modules.pop(modname, None)
        said = "no scenario" if not found else f"{len(found)} scenarios ({', '.join(str(c.name) for c in found)})"
        raise UsageError(f"cannot load design {shown}: it registers {said}; a design file must @register exactly one Scenario")
    cls = found[0]
    try:
        check_name(cls)
        taken = _REGISTRY.get(cls.name)
        if taken is not None and cls.name not in _DESIGNS:
            raise UsageError(f"its scenario name {cls.name!r} is taken (by {_described(cls.name)}); rename it")
        check_shape(cls)
    except UsageError as exc:
        sys.modules.pop(modname, None)
        raise UsageError(f"cannot load design {shown}: {' '.join(str(exc).split())}") from None
    # Another design file of the same name (or this one, edited) gives way: the file asked for wins.
    _REGISTRY[cls.name] = cls
    _ORIGIN[cls.name] = absolute
    _DESIGNS[cls.name] = (absolute, sha)
    _BY_PATH[absolute] = (sha, cls)
    return cls


def design_file(scenario: type[Scenario]) -> tuple[str, str] | None:
    """(absolute path, sha256) of the design file ``scenario`` was loaded from, or None."""
    found = _DESIGNS.get(scenario.name)
    if found is None or _REGISTRY.get(scenario.name) is not scenario:
        return None
    return found


def for_config(cfg: Any) -> type[Scenario]:
    """The scenario of a run configuration, loading (and checking) its design file if it has one."""
    if getattr(cfg, "design_path", None):
        return load_design(cfg.design_path, expect_sha256=cfg.design_sha256)
    return get(cfg.scenario)
