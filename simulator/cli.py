"""The ``dsim`` command.

    dsim list                                   the designs dsim ships
    dsim describe raft                          parameters, planted bugs, checkers, nemeses
    dsim run queue --seed 7                     one run -> results/queue/<time>-s7/
    dsim run raft --nemesis partition-random-halves,crash --bug stale-read
    dsim replay results/raft/latest             re-run from the manifest; exit 0 if the digest matches
    dsim compare results/raft/A results/raft/B  a table and one comparison figure
    dsim sweep queue --seeds 1-8 --grid servers=1,2 --jobs 2
    dsim hunt raft --bug no-persist-vote --budget 300 --jobs 2   search for a failing run
    dsim shrink results/raft/hunt-.../failures/run00037-vote-once  cut it to a minimal reproducer
    dsim show results/queue/latest              a run folder's summary
    dsim export results/queue/latest            its history as Jepsen EDN

Exit status: 0 every check valid, 1 a check invalid, 2 bad usage or input, 3 unknown or incomplete.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shlex
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import click

from .engine.errors import UsageError
from .engine.rng import MAX_SEED
from .pipeline import scenario as registry
from .pipeline.config import DEFAULTS_HELP, RUN_OPTIONS, RunConfig, build_config, dry_build, load_toml, parse_number
from .pipeline.executor import INSTALL_HINT

RUN_EPILOG = """\b
Examples:
  dsim run queue --seed 7
  dsim run queue --rate 9 --set servers=10 --set service_ms=1000 --latency 0 --time-limit 20000
  dsim run raft --nemesis partition-random-halves,crash --nemesis-interval 5
  dsim run raft --config experiment.toml --bug stale-read --out /tmp/run1
"""


def _fail(message: str) -> "NoReturn":  # noqa: F821
    raise UsageError(message)


def parse_seed(raw, name: str = "--seed") -> int:
    """A command-line string of ASCII digits, or (from a TOML file) an integer, within the seed range."""
    text = raw.strip() if isinstance(raw, str) else None
    if isinstance(raw, int) and not isinstance(raw, bool):
        seed = raw
    elif text and text.isascii() and text.isdigit() and len(text) <= 19:
        seed = int(text)
    else:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        _fail(f"bad value {raw!r} for {name}: expected an integer from 0 to {MAX_SEED}")
    return seed


def parse_sets(items) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"bad value {item!r} for --set: expected key=value")
        if key.strip() in out:
            _fail(f"bad value {item!r} for --set: {key.strip()!r} is already set to {out[key.strip()]!r}; "
                  "expected each key once")
        out[key.strip()] = value.strip()
    return out


def _no_repeated_nemesis(value, option: str, sep: str = ",") -> None:
    """A nemesis list (text split at ``sep``, or a list) that names a nemesis twice is refused; the names
    themselves are checked where the config is built."""
    items = value.split(sep) if isinstance(value, str) else value if isinstance(value, (list, tuple)) else ()
    seen = set()
    for item in items:
        name = item.strip() if isinstance(item, str) else None
        if name and name in seen:
            _fail(f"bad value {value!r} for {option}: {name!r} is named twice; expected each nemesis once")
        seen.add(name)


def _number(kind):
    def convert(ctx, param, value):
        if value is None:
            return None
        return parse_number(value, param.opts[0], integer=kind is int)
    return convert


def _path_errors(fn):
    """``fn(raw, option, ...)`` with an OSError or RuntimeError of the path itself (a name over 255
    bytes, a symlink loop pathlib follows) as the one-line refusal of ``option``'s value."""
    @functools.wraps(fn)
    def checked(raw, option: str = "--out", *args, **kw):
        try:
            return fn(raw, option, *args, **kw)
        except (OSError, RuntimeError) as exc:
            _fail(f"bad value {str(raw)[:80]!r}{'...' if len(str(raw)) > 80 else ''} for {option}: cannot use the path "
                  f"({getattr(exc, 'strerror', None) or exc}); expected a path this machine can write")
    return checked


@_path_errors
def _new_folder_path(raw: str | None, option: str = "--out") -> Path | None:
    """A folder to create for results: absent, or an empty folder; refused before anything is written."""
    if raw is None:
        return None
    if not raw.strip() or "\0" in raw:
        _fail(f"bad value {raw!r} for {option}: expected a folder path")
    path = Path(raw)
    if any(len(os.fsencode(part)) > 255 for part in path.parts):  # found before any parent folder is made
        raise OSError(36, "File name too long")
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            _fail(f"bad value {raw!r} for {option}: it exists and is not a folder; expected a new or empty folder")
        if any(path.iterdir()):
            _fail(f"bad value {raw!r} for {option}: the folder exists and is not empty; expected a new or empty folder")
    else:
        parent = next((p for p in path.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            _fail(f"bad value {raw!r} for {option}: cannot create it there; expected a folder path that can be created")
    run = next((p for p in path.absolute().parents if (p / "manifest.json").is_file()), None)
    if run is not None:  # results written into a run folder would change what replay and show read there
        _fail(f"bad value {raw!r} for {option}: it lies inside the run folder {str(run)!r}; expected a folder outside "
              "any run folder")
    return path


def _make_dir(path: Path, option: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        _fail(f"bad value {str(path)!r} for {option}: cannot create the folder ({getattr(exc, 'strerror', None) or exc}); "
              "expected a folder path that can be created")
    _writable(path, option)
    return path


def _writable(folder: Path, option: str) -> None:
    """An existing folder may still refuse files (immutable, a read-only mount): found now, not mid-run."""
    probe = folder / f".dsim-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        _fail(f"bad value {str(folder)!r} for {option}: cannot write in the folder ({exc.strerror or exc}); "
              "expected a folder dsim can write")


@_path_errors
def _out_file(raw: str, option: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """A file to (over)write: in an existing folder, not itself a folder, with an accepted suffix."""
    path = Path(raw)
    path.resolve()  # a symlink loop: RuntimeError, refused by _path_errors
    if not raw.strip() or "\0" in raw:
        _fail(f"bad value {raw!r} for {option}: expected a file path")
    if suffixes and path.suffix.lower() not in suffixes:
        _fail(f"bad value {raw!r} for {option}: expected a file name ending {', '.join(suffixes)}")
    if path.is_dir():
        _fail(f"bad value {raw!r} for {option}: it is a folder; expected a file path")
    if path.exists() and not path.is_file():  # the write renames over it: never over a device or pipe
        _fail(f"bad value {raw!r} for {option}: not a regular file; expected a file path")
    if not path.parent.is_dir():
        _fail(f"bad value {raw!r} for {option}: no folder {str(path.parent)!r}; expected a file in an existing folder")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        _fail(f"bad value {raw!r} for {option}: not writable; expected a file path that can be written")
    return path


def _write_atomically(path: Path, write, option: str = "--out") -> None:
    """``write(tmp)`` then rename, so a failed write leaves no half file (the suffix stays, for matplotlib)."""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _fail(f"bad value {str(path)!r} for {option}: cannot write it ({exc.strerror or exc}); expected a writable file path")


class _StatusFile:
    """A sweep's, hunt's or shrink's record (sweep.json, hunt.json, shrink.json), like a run's manifest:
    written ``running`` when made; ``incomplete`` with the error if the ``with`` block around the work
    raises (interrupted, killed or crashed), so such a folder never looks finished; ``complete`` at
    :meth:`done`. A resumed record keeps its first start and command and adds ``resumed_utc``."""

    ENDED = ("status", "error", "ended_utc", "resumed_utc")  # how the last attempt ended: not carried over

    def __init__(self, path: Path, about: dict, resumed: bool = False):
        from .pipeline.results import utc_now, write_json

        self.path = path
        about = {k: v for k, v in about.items() if k not in self.ENDED}
        start = {"resumed_utc": utc_now()} if resumed else {"started_utc": utc_now(), "command": " ".join(sys.argv)}
        self.about = {**about, "status": "running", **start}
        write_json(path, self.about)

    def _write(self, **fields) -> None:
        from .pipeline.results import utc_now, write_json

        write_json(self.path, {**self.about, **fields, "ended_utc": utc_now()})

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is not None:
            self._write(status="incomplete",
                        error="interrupted" if issubclass(kind, KeyboardInterrupt) else f"{kind.__name__}: {exc}")
        return False

    def done(self, **extra) -> None:
        self._write(status="complete", **extra)


@contextlib.contextmanager
def _sigterm_interrupts():
    """While a run or sweep works, SIGTERM interrupts it like Ctrl-C (the default would kill the process
    and leave the manifest saying ``running``). Signals after the first are ignored while the folder is
    saved: `timeout`, and Ctrl-C at a terminal, signal the whole process group, often twice."""
    stops = (signal.SIGINT, signal.SIGTERM)
    hit = []

    def handler(signum, frame):
        for sig in stops:
            signal.signal(sig, signal.SIG_IGN)
        hit.append(signum)
        raise KeyboardInterrupt

    try:
        old = {sig: signal.signal(sig, handler) for sig in stops}
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        yield
        return
    try:
        yield
    finally:
        if not hit:  # once interrupted, the process is on its way out: more signals would end it
            for sig, previous in old.items():  # with 130 or 143 before it says so with exit 3
                signal.signal(sig, previous)


def run_options(f):
    """The options `run` and `sweep` share."""
    opts = [
        click.option("--time-limit", "time_limit_s", callback=_number(float), help="Simulated seconds of workload [scenario default]."),
        click.option("--rate", callback=_number(float), help="Open-loop rate, operations per simulated second."),
        click.option("--rate-profile", "rate_profile", help="constant, ramp:FROM-TO or burst:EVERY_S:FOR_S:FACTOR."),
        click.option("--concurrency", callback=_number(int), help="Closed-loop clients (use closed loop)."),
        click.option("--node-count", "node_count", callback=_number(int), help="Server nodes."),
        click.option("--latency", "latency_ms", callback=_number(float), help="Mean one-way network latency, ms."),
        click.option("--latency-dist", "latency_dist", help="constant, uniform, normal, lognormal, exponential or pareto."),
        click.option("--topology", help="lan, regions:N[:INTER_MS], leaf-spine:RACKS or graph:FILE.graphml."),
        click.option("--nemesis", help="Fault generators, comma-separated (see `dsim describe`)."),
        click.option("--nemesis-interval", "nemesis_interval_s", callback=_number(float), help="Seconds between fault start and stop."),
        click.option("--op-timeout", "op_timeout_ms", callback=_number(float), help="Client operation timeout, ms (then recorded info)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A scenario parameter (repeatable)."),
        click.option("--config", "config_file", help="A TOML experiment file."),
        click.option("--bug", help="Plant a bug (see `dsim describe`)."),
        click.option("--trace", is_flag=True, help="Also write trace.jsonl (every delivery, drop and timer)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _collect_options(kw) -> dict:
    return {k: kw.get(k) for k in ("time_limit_s", "rate", "rate_profile", "concurrency", "node_count", "latency_ms", "latency_dist",
                                   "topology", "nemesis", "nemesis_interval_s", "op_timeout_ms")}


def _check_nemesis_options(kw, file) -> None:
    """--nemesis and the config file's nemesis, each naming a nemesis at most once."""
    if kw.get("nemesis") is not None:
        _no_repeated_nemesis(kw["nemesis"], "--nemesis")
    if isinstance(file, dict) and file.get("nemesis") is not None:
        _no_repeated_nemesis(file["nemesis"], "nemesis in the config file")


def _make_config(name, seed_raw, kw, file=None) -> tuple[RunConfig, bool]:
    """The run's config, and whether its seed was drawn at random (to be said once all input is good)."""
    scen = registry.resolve(name)
    if file is None and kw.get("config_file") is not None:
        file = load_toml(kw["config_file"])
    _check_nemesis_options(kw, file)
    if seed_raw is not None:
        seed = parse_seed(seed_raw)
    elif file and "seed" in file:
        seed = parse_seed(file["seed"], "seed in the config file")
    else:
        seed = None
    cfg = build_config(scen, seed=seed if seed is not None else 0, file=file, options=_collect_options(kw),
                       sets=parse_sets(kw.get("sets", ())), bug=kw.get("bug"), trace=bool(kw.get("trace")))
    if seed is None:
        cfg.seed = secrets.randbelow(2**31)
    return cfg, seed is None


def _read_run(folder) -> dict:
    """A run folder's manifest and metrics; a folder that is not one (or a damaged one) is a usage error."""
    from .pipeline.results import read_run

    return read_run(folder)


_HISTORY_TYPES = ("invoke", "ok", "fail", "info")


def _read_history(folder, required: bool) -> list[dict]:
    """A run folder's history.jsonl, every line checked for the fields export and compare read."""
    hp = Path(folder) / "history.jsonl"
    where = f"bad value {str(folder)!r} for RUN_DIR"
    expected = "expected a run folder written by dsim run"
    if not hp.is_file():
        if required:
            _fail(f"{where}: it has no history.jsonl: {expected}")
        return []
    out = []
    try:
        with open(hp, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    op = json.loads(line)
                except (ValueError, RecursionError):
                    _fail(f"{where}: history.jsonl line {n} is not JSON (truncated?): {expected}")
                if not (isinstance(op, dict) and op.get("type") in _HISTORY_TYPES and isinstance(op.get("f"), str)
                        and all(isinstance(op.get(k), int) and not isinstance(op.get(k), bool)
                                for k in ("index", "time", "process"))):
                    _fail(f"{where}: history.jsonl line {n} is not an operation (index, time, type, process, f): {expected}")
                out.append(op)
    except UnicodeDecodeError:
        _fail(f"{where}: history.jsonl is not UTF-8 text: {expected}")
    except OSError as exc:
        _fail(f"{where}: cannot read history.jsonl ({exc.strerror}): {expected}")
    return out


def _err(text: str) -> None:
    click.echo(text, err=True)


class Progress:
    """A live progress line for one run on a terminal: simulated seconds done of the run's total, the
    rate (simulated per wall second) and the ETA, drawn by tqdm; silent when stderr is not a terminal."""

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None

    def __call__(self, done: float, total: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total, 1), desc=self.label, unit=" sim s", file=sys.stderr, dynamic_ncols=True,
                            leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:,.1f}/{total:,.1f} simulated s "
                                                    "[{elapsed}<{remaining}, {rate_fmt}]")
        self.bar.update(round(min(done, total), 1) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _fmt(v, unit="") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not abs(v) < 1e15:  # a damaged file's 1e308 (or inf) would print 300 digits
            return f"{v:.4g}{unit}"
        return f"{v:,.3f}{unit}" if abs(v) < 100 else f"{v:,.1f}{unit}"
    return f"{v}{unit}"


def print_summary(man: dict, met: dict, folder: str | None) -> None:
    ops = met.get("ops", {})
    lat = met.get("latency_ms", {})
    cfg = man.get("config", {})
    click.echo(f"{man['scenario']} seed {man['seed']}" + (f", bug {man['bug']}" if man.get("bug") else "")
               + (f", nemesis {','.join(cfg.get('nemesis') or [])}" if cfg.get("nemesis") else "")
               + f": {_fmt(man.get('end_time_s'))} simulated s in {_fmt(man.get('wall_seconds'))} s wall")
    lost, why = (f", {ops['lost']} lost", "; lost: never ended") if ops.get("lost") else ("", "")
    click.echo(f"  operations  {ops.get('ok', 0)} ok, {ops.get('fail', 0)} fail, {ops.get('info', 0)} info{lost} "
               f"(availability {_fmt(met.get('availability'))}{why})")
    click.echo(f"  latency ms  p50 {_fmt(lat.get('p50'))}  p95 {_fmt(lat.get('p95'))}  p99 {_fmt(lat.get('p99'))}  "
               f"p99.9 {_fmt(lat.get('p999'))}  max {_fmt(lat.get('max'))}  mean {_fmt(lat.get('mean'))}")
    click.echo(f"  throughput  {_fmt(met.get('throughput_ops_s'))} ok ops/s")
    if met.get("recovery"):
        rec = [r["recovery_s"] for r in met["recovery"] if r.get("recovery_s") is not None]
        if rec:
            click.echo(f"  recovery    {len(rec)} healed faults, slowest back to ok after {max(rec):.3f} s")
    figs = {k: v for k, v in (met.get("figures") or {}).items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    if figs:
        shown = list(figs.items())[:8]
        click.echo("  figures     " + ", ".join(f"{k} {_fmt(v)}" for k, v in shown))
    for name, chk in (met.get("checks") or {}).items():
        v = chk.get("valid")
        mark = {True: "valid  ", False: "INVALID"}.get(v, "unknown")
        click.echo(f"  {mark}  {name}" + (f": {chk['message']}" if chk.get("message") else ""))
    verdict = {True: "VALID", False: "INVALID"}.get(met.get("valid"), "UNKNOWN")
    click.echo(f"  verdict     {verdict}   digest {str(man.get('digest', '-'))[:16]}")
    if folder:
        click.echo(f"  results     {folder}")


class _OnceCommand(click.Command):
    """A command that refuses ``--bug`` or ``--nemesis`` given twice. click keeps the last of
    ``--bug a --bug b`` and drops the first without a word, which reads as two bugs planted (or two
    nemeses run). Other options keep click's last-one-wins, which scripts use to override."""

    ONCE = {"bug": "a run plants one bug", "nemesis": "name several comma-separated: --nemesis a,b"}

    def parse_args(self, ctx, args):
        try:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        except click.UsageError:
            order = []  # click's own message, from the real parse below
        seen: set[str] = set()
        for param in order:
            if isinstance(param, click.Option) and param.name in self.ONCE:
                if param.name in seen:
                    _fail(f"bad value: {max(param.opts, key=len)} is given more than once: expected it once "
                          f"({self.ONCE[param.name]})")
                seen.add(param.name)
        return super().parse_args(ctx, args)


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM before a command had a folder to save: click would print an empty line first."""


class _Group(click.Group):
    command_class = _OnceCommand

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="dsim", prog_name="dsim")
def cli():
    """dsim: run distributed-system designs under faults, deterministically, and get verdicts.

    \b
    Start with:
      dsim list
      dsim describe queue
      dsim run queue --seed 7
    """


@cli.command("list")
def list_cmd():
    """The scenarios dsim ships and those installed packages add (entry points `dsim.scenarios`)."""
    names = registry.names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        origin = registry.origin(name)
        came = "" if origin == registry.SHIPPED else f"(from {origin}) "
        click.echo(f"{name:{width}s}  {came}{registry.get(name).summary}")
    for name, error in registry.failures().items():
        click.echo(f"{name}: failed to load: {error}")


@cli.command()
@click.argument("scenario")
def describe(scenario):
    """Parameters (with defaults and units), planted bugs, checkers and nemeses of SCENARIO (a name or ./design.py)."""
    scen = registry.resolve(scenario)
    click.echo(f"{scen.name}: {scen.summary}\n")
    doc = (sys.modules[scen.__module__].__doc__ or "").strip()
    if doc:
        click.echo(doc + "\n")
    click.echo("Parameters (--set NAME=VALUE):")
    for p in scen.params:
        click.echo(f"  {p.name:24s} default {p.default!r:12s} {p.help} [{p.accepted()}]")
    click.echo("\nRun options (scenario defaults marked *):")
    base = RunConfig(scenario=scen.name)
    for key in RUN_OPTIONS:
        val = scen.defaults.get(key, getattr(base, key))
        if key in scen.unused_options:
            click.echo(f"  {key:22s}  {'-':14s} not used by {scen.name} (its own parameters size it, if any)")
            continue
        mark = "*" if key in scen.defaults else " "
        click.echo(f"  {key:22s}{mark} {val!r:14s} {DEFAULTS_HELP.get(key, '')}")
    click.echo("\nPlanted bugs (--bug NAME), each with a run that exposes it (exits 1):")
    commands = registry.bug_commands(scen, scenario if registry.is_design_path(scenario) else None)
    for k, v in scen.bugs.items():
        click.echo(f"  {k:24s} {v}\n  {'':24s} exposed by: {registry.bug_command_line(commands[k])}")
    if not scen.bugs:
        click.echo("  (none)")
    click.echo("\nCheckers:")
    for k, v in scen.checkers.items():
        click.echo(f"  {k:24s} {v}")
    click.echo("\nNemeses that suit it (--nemesis a,b): " + (", ".join(scen.nemeses) or "(none)"))
    if scen.custom_nemeses:
        click.echo("Its own nemeses: " + ", ".join(scen.custom_nemeses))
    if scen.examples:
        click.echo("\nExamples:")
        for e in scen.examples:
            click.echo(f"  {e}")


@cli.command(epilog=RUN_EPILOG)
@click.argument("scenario")
@click.option("--seed", help="Master seed (default: a random one, printed).")
@run_options
@click.option("--out", help="Results folder (default results/SCENARIO/TIME-sSEED).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def run(scenario, seed, out, no_plots, **kw):
    """Run SCENARIO (a name, or a design file ./mydesign.py) once and write its results folder."""
    from .pipeline.results import new_folder
    from .pipeline.runner import run_to_folder

    cfg, random_seed = _make_config(scenario, seed, kw)
    dry_build(cfg)
    _new_folder_path(out)
    try:
        folder = new_folder(cfg, out)
    except (OSError, ValueError) as exc:
        _fail(f"bad value {out or 'results'!r} for --out: cannot create the run folder ({getattr(exc, 'strerror', None) or exc}); "
              "expected a folder path that can be created")
    _writable(folder, "--out")
    if random_seed:
        _err(f"no --seed given: using seed {cfg.seed} (replay it with --seed {cfg.seed})")
    progress = Progress(f"{cfg.scenario} seed {cfg.seed}")
    try:
        with _sigterm_interrupts():
            outcome, status, _ = run_to_folder(cfg, folder, plots=not no_plots, progress=progress, link_latest=out is None)
    except KeyboardInterrupt:
        progress.close()
        _err(f"dsim: interrupted; partial results (marked incomplete) in {folder}")
        sys.exit(3)
    except Exception as exc:  # a crash inside a scenario or the kernel: keep the folder, say where
        progress.close()
        (folder / "error.txt").write_text(traceback.format_exc())
        _err(f"dsim: run crashed: {type(exc).__name__}: {exc} (traceback in {folder / 'error.txt'}; results marked incomplete)")
        sys.exit(3)
    progress.close()
    from .pipeline.results import read_run

    r = read_run(folder)
    print_summary(r["manifest"], r["metrics"], str(folder))
    sys.exit(status)


def _check_exposes(cls) -> None:
    """A design's ``exposes`` as `dsim run` options (scenario.LOAD_CHECKS, for designs from files and
    entry points): `describe` prints each as the command that exposes its bug, and a test runs it."""
    for bug, opts in cls.exposes.items():
        argv = shlex.split(opts)

        def bad(why: str) -> UsageError:
            return UsageError(f"bad value {opts!r} for exposes[{bug!r}]: {why}; expected `dsim run` options that "
                              f"plant {bug!r}, e.g. '--seed 1 --nemesis crash'")

        try:
            found, rest, _ = run.make_parser(click.Context(run, info_name="run")).parse_args(args=list(argv))
        except click.UsageError as exc:
            raise bad(exc.format_message()) from None
        found = {k: v for k, v in found.items() if isinstance(v, (str, tuple, bool))}  # not click's "unset"
        if rest or "scenario" in found:  # describe puts the design's own name there
            raise bad(f"{(rest or [found.get('scenario')])[0]!r} is not an option")
        if found.get("bug") not in (None, bug):
            raise bad(f"it plants {found['bug']!r}")
        if "out" in found:
            raise bad("it names --out (its run writes under results/)")
        if "seed" in found:
            try:
                parse_seed(found["seed"])
            except UsageError as exc:
                raise bad(str(exc)) from None


registry.LOAD_CHECKS.append(_check_exposes)


@cli.command()
@click.argument("run_dir")
def replay(run_dir):
    """Re-run RUN_DIR from its manifest; exit 0 only if the trace digest is identical."""
    from .pipeline.config import check_recorded
    from .pipeline.run import execute

    man = _read_run(run_dir)["manifest"]
    if not man.get("digest"):
        _fail(f"bad value {run_dir!r} for RUN_DIR: no digest (its run is {man.get('status', 'unknown')}): "
              "expected a complete run folder")
    conf = man["config"]
    if isinstance(conf, dict) and conf.get("design_path") is not None:  # a design file: refuse one that changed or is gone
        if not isinstance(conf["design_path"], str) or not isinstance(conf.get("design_sha256"), str):
            _fail(f"bad value {run_dir!r} for RUN_DIR: manifest.json's config: design_path and design_sha256 must be text")
        registry.load_design(conf["design_path"], expect_sha256=conf["design_sha256"])
    try:
        cfg = check_recorded(conf)
    except UsageError as exc:
        _fail(f"bad value {run_dir!r} for RUN_DIR: manifest.json's config: {exc}")
    t0 = time.perf_counter()
    progress = Progress(f"replay {cfg.scenario} seed {cfg.seed}")
    out = execute(cfg, progress=progress)
    progress.close()
    same = out.digest == man["digest"]
    click.echo(f"replay of {run_dir}: {'identical' if same else 'DIFFERENT'} digest ({time.perf_counter() - t0:.2f} s wall)")
    click.echo(f"  recorded {man['digest']}")
    click.echo(f"  replayed {out.digest}")
    if not same:
        v = man.get("versions", {})
        from .pipeline.results import git_commit
        from .pipeline.results import versions as now_versions

        if v and v != now_versions():
            click.echo("  note: package versions differ from the recorded run's")
        then, now = man.get("git_commit"), git_commit()
        if isinstance(then, str) and now is not None and then != now:
            # a digest is promised equal for the same seed, parameters and versions; a change to
            # dsim or a design between the two commits may change the run
            click.echo(f"  note: recorded at commit {then[:12]}, replayed at {now[:12]}: "
                       "the code changed in between, which can change the digest")
    sys.exit(0 if same else 1)


@cli.command(epilog="""\b
Examples:
  dsim compare results/raft/RUN-A results/raft/RUN-B          # runs: latency CDFs, throughput, verdicts
  dsim compare results/raft/sweep-A results/raft/sweep-B      # sweeps: a row per grid point, seeds pooled
  dsim compare results/raft/hunt-A results/raft/hunt-B        # hunts: failures and coverage against runs, CPU s
""")
@click.argument("run_dirs", nargs=-1, required=True, metavar="FOLDERS...")
@click.option("--out", "out_file", help="Figure path, .png, .pdf or .svg (default results/compare-TIME.png).")
def compare(run_dirs, out_file):
    """Compare runs, sweeps or hunts side by side: a table here and one figure.

    Runs: overlaid latency CDFs, throughput and verdicts. Sweeps: per grid point, verdict counts
    and the spread over seeds of each run's p99 and throughput. Hunts: runs, distinct failures,
    when the first came (runs and CPU seconds) and coverage reached. All folders must be of one
    kind.
    """
    from .pipeline import compare as C
    from .reports import plots as P

    kinds = {d: C.kind_of(d) for d in run_dirs}
    if len(set(kinds.values())) > 1:
        _fail("bad value for compare: " + ", ".join(f"{d!r} is a {k}" for d, k in kinds.items())
              + "; expected folders of one kind (runs, sweeps or hunts)")
    kind = next(iter(kinds.values()))
    target = _out_file(out_file, suffixes=(".png", ".pdf", ".svg")) if out_file is not None else None
    if target is not None:  # compare reads the folders: it must not write over their own figures
        inside = next((d for d in run_dirs if Path(d).resolve() in target.resolve().parents), None)
        if inside is not None:
            _fail(f"bad value {out_file!r} for --out: it lies inside the compared folder {str(inside)!r}; expected a "
                  "file outside the folders compared")
    labels = _labels(run_dirs)
    # every folder is read (and a damaged one refused) before anything is written
    if kind == "sweep":
        sweeps = [C.read_sweep(d) for d in run_dirs]
    elif kind == "hunt":
        hunts = [(label, C.read_hunt(d)) for d, label in zip(run_dirs, labels)]
    else:
        runs, hists = [], []
        for d, label in zip(run_dirs, labels):
            r = _read_run(d)
            man = r["manifest"]
            r["label"] = f"{man['scenario']} s{man['seed']}" + (f" {man['bug']}" if man.get("bug") else "") + f" ({label})"
            runs.append(r)
            hists.append(_read_history(d, required=False))
    if target is None:
        _make_dir(Path("results"), "the default figure folder")
        out_file = f"results/compare-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}.png"
        target = _out_file(out_file, suffixes=(".png", ".pdf", ".svg"))
    if kind == "sweep":
        points = [pt for s, label in zip(sweeps, labels) for pt in C.sweep_rows(label, s)]
        _write_atomically(target, lambda tmp: P.compare_sweeps(points, tmp))
        _table(("sweep point", "runs", "valid", "invalid", "unknown", "p50 ms (median)", "p99 ms (median)",
                "p99 ms (worst)", "ops/s (median)"),
               [(p["label"], p["runs"], p["valid"], p["invalid"], p["unknown"], _fmt(p["p50_ms_median"]),
                 _fmt(p["p99_ms_median"]), _fmt(p["p99_ms_worst"]), _fmt(p["ops_s_median"])) for p in points])
        click.echo(f"figure: {out_file}")
        return
    if kind == "hunt":
        rows = [C.hunt_row(label, h) for label, h in hunts]
        _write_atomically(target, lambda tmp: P.compare_hunts([(label, h["runs"]) for label, h in hunts], tmp))
        _table(("hunt", "status", "runs", "failures", "first failure", "CPU s to it", "checker", "features",
                "unknown runs", "CPU s"),
               [(r["label"], r["status"], r["runs"], r["failures"],
                 "-" if r["first_failure_run"] is None else f"run {r['first_failure_run']}",
                 _fmt(r["first_failure_cpu_s"]), r["first_checker"] or "-", r["features"], r["unknown"],
                 _fmt(r["cpu_s"])) for r in rows])
        click.echo(f"figure: {out_file}")
        return
    cols = ("run", "valid", "ok", "info", "p50 ms", "p99 ms", "max ms", "ops/s", "avail")
    rows = []
    for r in runs:
        m = r["metrics"]
        lat = m.get("latency_ms", {})
        ops = m.get("ops", {})
        status = r["manifest"]["status"]  # an interrupted or crashed run shows as such, with what it has
        verdict = {True: "valid", False: "INVALID"}.get(m.get("valid"), "unknown") if status == "complete" else status
        rows.append((r["label"], verdict, _fmt(ops.get("ok")), _fmt(ops.get("info")), _fmt(lat.get("p50")),
                     _fmt(lat.get("p99")), _fmt(lat.get("max")), _fmt(m.get("throughput_ops_s")), _fmt(m.get("availability"))))
    _write_atomically(target, lambda tmp: P.compare(runs, hists, tmp))
    _table(cols, rows)
    click.echo(f"figure: {out_file}")


def _labels(folders) -> list[str]:
    """Each folder's name, or its path where two names are the same."""
    names = [Path(x).resolve().name for x in folders]
    return names if len(set(names)) == len(names) else [str(x) for x in folders]


def _table(cols, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    for row in (cols, *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


@cli.command()
@click.argument("run_dir")
@click.option("--out", "out_file", help="Output file (default RUN_DIR/history.edn).")
def export(run_dir, out_file):
    """Write RUN_DIR's history in Jepsen's EDN shape, for Knossos or Elle to cross-check."""
    from .pipeline.results import FILES
    from .workload.history import to_edn

    _read_run(run_dir)
    history = _read_history(run_dir, required=True)
    target = _out_file(out_file if out_file is not None else str(Path(run_dir) / "history.edn"))
    if target.resolve().parent == Path(run_dir).resolve() and target.name in FILES:
        _fail(f"bad value {out_file!r} for --out: it is one of the run's own files; expected another file path")
    try:
        text = to_edn(history)
    except RecursionError:
        _fail(f"bad value {run_dir!r} for RUN_DIR: history.jsonl holds values nested too deep: expected a run folder written by dsim run")
    _write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    click.echo(f"wrote {target}")


@cli.command(epilog="""\b
Examples:
  dsim show results/queue/latest
  dsim show results/raft/latest --spacetime                 # a run made with --trace
  dsim show results/raft/latest --spacetime --from 5.1 --to 5.3
""")
@click.argument("run_dir")
@click.option("--spacetime", is_flag=True, help="Also draw RUN_DIR/spacetime.svg, a Lamport diagram (needs a --trace run).")
@click.option("--from", "from_s", callback=_number(float), help="Draw from this simulated second on.")
@click.option("--to", "to_s", callback=_number(float), help="Draw up to this simulated second.")
def show(run_dir, spacetime, from_s, to_s):
    """Print the summary of a run folder; with --spacetime, draw its messages as spacetime.svg."""
    r = _read_run(run_dir)
    if r["manifest"].get("status") != "complete":
        error = r["manifest"].get("error")
        click.echo(f"{run_dir}: run {r['manifest']['status']}" + (f": {error}" if error else ""))
        sys.exit(3)
    if (from_s is not None or to_s is not None) and not spacetime:
        _fail("bad value --from/--to for show: expected them with --spacetime")
    if spacetime:
        _draw_spacetime(run_dir, from_s, to_s)
    print_summary(r["manifest"], r["metrics"], run_dir)


def _draw_spacetime(run_dir: str, from_s, to_s) -> None:
    from .reports import spacetime as ST

    for name, v in (("--from", from_s), ("--to", to_s)):  # 1e9 s: the longest run (and inside int64 ns)
        if v is not None and not (0 <= v <= 1e9 and (name == "--from" or v > 0)):
            _fail(f"bad value {v!r} for {name}: expected simulated seconds {'from 0' if name == '--from' else 'above 0'} "
                  "to 1e9")
    if from_s is not None and to_s is not None and to_s <= from_s:
        _fail(f"bad value {to_s!r} for --to: expected a time after --from {from_s!r}")
    if not (Path(run_dir) / "trace.jsonl").is_file():
        _fail(f"bad value {run_dir!r} for RUN_DIR: it has no trace.jsonl: expected a run made with --trace "
              f"(dsim run ... --trace), or a shrunk run (dsim shrink)")
    try:
        drawing = ST.load(run_dir)
    except (OSError, ValueError) as exc:
        _fail(f"bad value {run_dir!r} for RUN_DIR: cannot read its trace ({exc}): expected a run folder written by dsim run --trace")
    end_ns = max((e["time_ns"] for e in drawing.events), default=0)
    if from_s is not None and from_s * 1e9 > end_ns:
        _fail(f"bad value {from_s!r} for --from: expected a time within the run's trace (0 to {end_ns / 1e9:g} s)")
    drawing = drawing.window(None if from_s is None else int(from_s * 1e9), None if to_s is None else int(to_s * 1e9))
    if not drawing.fits():
        _fail(f"{drawing.size_note()}; pick a shorter window with --from S --to S")
    target = Path(run_dir) / "spacetime.svg"
    _write_atomically(target, lambda tmp: drawing.write(tmp))
    click.echo(f"wrote {target} ({len(drawing.messages())} messages, {len(drawing.nodes())} nodes{drawing.span_text()})")


@cli.command(epilog="""\b
Examples:
  dsim sweep queue --seeds 1-8 --jobs 2
  dsim sweep queue --seeds 1-20 --grid servers=1,2,4 --grid rate=50,80
  dsim sweep raft --seeds 1-50 --nemesis partition-random-halves,crash --jobs 2
  dsim sweep raft --seeds 1-1000 --cluster local:2 --out results/raft/big
  dsim sweep raft --seeds 1-1000 --cluster tcp://HOST:8786 --out results/raft/big
  dsim sweep --resume results/raft/big          run what an interrupted sweep left undone
""")
@click.argument("scenario", required=False)
@click.option("--seeds", default="1-10", show_default=True, help="Seeds: a range 1-100, a list 1,5,9, or both.")
@click.option("--grid", multiple=True, metavar="KEY=V1,V2", help="Values to sweep (repeatable); a parameter or run option.")
@click.option("--jobs", default="1", show_default=True, help="Parallel worker processes on this machine.")
@click.option("--cluster", metavar="local:N|tcp://HOST:PORT",
              help=f"Run on Dask instead: a LocalCluster of N workers, or a running scheduler ({INSTALL_HINT}).")
@click.option("--batch", metavar="RUNS", help="Runs per Dask task [about 4 tasks per worker, at most 50 runs].")
@click.option("--shared-out", is_flag=True, help="Dask workers write run folders in place (--out on a filesystem they all share; implied by local:N).")
@click.option("--resume", metavar="DIR", help="Complete the sweep in DIR: skip finished runs, re-run the rest (its settings come from DIR).")
@run_options
@click.option("--out", help="Sweep folder (default results/SCENARIO/sweep-TIME).")
@click.option("--plots/--no-plots", "run_plots", default=False, show_default=True, help="Draw each run's plots too.")
def sweep(scenario, seeds, grid, jobs, cluster, batch, shared_out, resume, out, run_plots, **kw):
    """Run SCENARIO (a name or ./design.py) for every seed and grid point; write runs.csv and summary.png."""
    from .pipeline.sweep import finished_rows, run_sweep, write_csv
    from .reports import plots as P

    max_jobs = max(8, 4 * (os.cpu_count() or 1))  # every worker is forked at once: a typo must not fork thousands
    text = jobs.strip()
    if not (text.isascii() and text.isdigit() and len(text) < 6 and 1 <= int(text) <= max_jobs):
        _fail(f"bad value {jobs!r} for --jobs: expected an integer from 1 to {max_jobs}")
    n_jobs = int(text)
    n_batch = _parse_cluster_options(n_jobs, jobs, cluster, batch, MAX_BATCH_RUNS, shared_out)
    if resume is not None:
        if scenario is not None or out is not None:
            _fail(f"bad value {scenario or out!r} with --resume: expected only --resume DIR (the sweep's settings are in DIR)")
        ctx = click.get_current_context()
        given = [p for p in ctx.command.params if p.name not in ("resume", "jobs", "cluster", "batch", "shared_out")
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if given:  # they would be ignored: the runs are DIR's
            opt = "/".join(given[0].opts + given[0].secondary_opts)
            _fail(f"bad value {opt} with --resume: expected only --resume DIR and how to run it (--jobs, --cluster, "
                  "--batch, --shared-out); the sweep's settings are in DIR")
        folder, scenario, seed_list, points, configs, run_plots = _resumed_sweep(resume)
    else:
        if scenario is None:
            _fail("missing SCENARIO: expected a design name or file (dsim sweep queue --seeds 1-8), or --resume DIR")
        scenario, seed_list, points, configs = _sweep_configs(scenario, seeds, grid, kw)
        _new_folder_path(out)
        folder = Path(out) if out else Path("results") / scenario / f"sweep-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"
    finished = finished_rows(configs, folder) if resume is not None else {}
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(_open_executor(n_jobs, cluster, n_batch, shared_out))
        if resume is None:
            _make_dir(folder, "--out")
            about = {**_sweep_record(scenario, seed_list, points, configs, run_plots), "executor": executor.describe}
        else:
            about = json.loads((folder / "sweep.json").read_text())
        record = _StatusFile(folder / "sweep.json", about, resumed=resume is not None)
        progress = stack.enter_context(SweepProgress(f"sweep {scenario}", len(configs), finished.values(), executor))
        try:
            with record, _sigterm_interrupts():
                rows = run_sweep(configs, folder, n_jobs, run_plots, progress, executor=executor, finished=finished)
        except KeyboardInterrupt:
            progress.close()
            _err(f"dsim: sweep interrupted; finished runs are in {folder / 'runs'} (runs in progress marked incomplete, or not written); "
                 f"complete it with: dsim sweep --resume {folder}")
            sys.exit(3)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a worker killed from outside, a lost scheduler: say so in one line
            progress.close()
            _err(f"dsim: sweep stopped: {type(exc).__name__}: {exc}; finished runs are in {folder / 'runs'}; "
                 f"complete it with: dsim sweep --resume {folder}")
            sys.exit(3)
    write_csv(folder / "runs.csv", rows)
    keys = list(points[0].keys()) if points and points[0] else []
    P.summary(rows, keys, folder / "summary.png", f"{scenario}: {len(seed_list)} seeds x {len(points)} grid points")
    n_valid = sum(1 for r in rows if r.get("valid") is True)
    n_bad = sum(1 for r in rows if r.get("valid") is False)
    again = f" ({len(rows) - len(finished)} run now, {len(finished)} found finished)" if resume is not None else ""
    click.echo(f"sweep {scenario}: {len(rows)} runs in {time.perf_counter() - t0:,.1f} s: {n_valid} valid, {n_bad} invalid, "
               f"{len(rows) - n_valid - n_bad} unknown{again}")
    for r in rows:
        if r.get("valid") is not True:
            click.echo(f"  seed {r['seed']} {' '.join(f'{k}={r[k]}' for k in keys)}: {r.get('valid')}: {r.get('failed_checks', '')[:200]}")
    click.echo(f"  {folder / 'runs.csv'}\n  {folder / 'summary.png'}")
    record.done()
    worst = 1 if n_bad else (3 if len(rows) - n_valid else 0)
    sys.exit(worst)


MAX_BATCH_RUNS = 100_000


def _sweep_configs(scenario: str, seeds: str, grid, kw) -> tuple[str, list[int], list[dict], list]:
    """Every run's config of a new sweep, validated before anything runs (a typo writes nothing)."""
    from .pipeline.sweep import MAX_RUNS, combinations, label, parse_grid, parse_seeds, split_point

    scen = registry.resolve(scenario)
    seed_list = parse_seeds(seeds)
    swept = parse_grid(grid)
    sets = parse_sets(kw.get("sets", ()))
    base_opts = _collect_options(kw)
    for key, values in swept.items():  # a value both swept and fixed: which one the runs got would be a guess
        if key in sets:
            _fail(f"bad value {key + '=' + sets[key]!r} for --set: {key!r} is also swept by --grid; "
                  "expected a parameter either set or swept, not both")
        if base_opts.get(key) is not None:
            flag = next((p.opts[0] for p in sweep.params if p.name == key), key)
            _fail(f"bad value {kw[key]!r} for {flag}: {key!r} is also swept by --grid; "
                  "expected an option either given or swept, not both")
        if key == "nemesis":
            for v in values:
                _no_repeated_nemesis(v, "--grid nemesis", sep="+")
    points = combinations(swept)
    if len(points) * len(seed_list) > MAX_RUNS:
        _fail(f"bad value {seeds!r} for --seeds: with {len(points)} grid points, expected at most {MAX_RUNS:,} runs in all")
    file = load_toml(kw["config_file"]) if kw.get("config_file") is not None else None
    _check_nemesis_options(kw, file)
    configs = []
    for point in points:  # validate everything before running anything
        options, params = split_point(point)
        merged = {k: v for k, v in base_opts.items() if v is not None}
        merged.update(options)
        for seed in seed_list:
            cfg = build_config(scen, seed=seed, file=file if file else None, options=merged,
                               sets={**sets, **params}, bug=kw.get("bug"),
                               trace=bool(kw.get("trace")))
            configs.append((cfg, point))
            if seed == seed_list[0]:  # what build refuses depends on the parameters, not the seed
                dry_build(cfg)
        if len(label(point).encode()) > 200:  # it names each run's folder
            _fail(f"bad value {label(point)!r} for --grid: expected values short enough to name a folder")
    # a design file's path names it no further (results/NAME/, labels)
    return scen.name, seed_list, points, configs


def _sweep_record(scenario: str, seeds: list[int], points: list[dict], configs: list, plots: bool) -> dict:
    """sweep.json: what the sweep is, enough for --resume to rebuild every run's config. A grid point's
    runs differ by their seed only, so one config per point is kept (and every run's, should one not).
    Its start, command and status are added by _StatusFile."""
    per_point = []
    exact = True
    for k, point in enumerate(points):
        first = configs[k * len(seeds)][0].to_dict()
        per_point.append({"point": dict(point), "config": first})
        for cfg, _ in configs[k * len(seeds):(k + 1) * len(seeds)]:
            exact = exact and cfg.to_dict() == {**first, "seed": cfg.seed}
    record = {"scenario": scenario, "seeds": seeds, "grid": [dict(p) for p in points], "plots": plots,
              "points": per_point}
    if not exact:
        record["runs"] = [{"point": dict(p), "config": c.to_dict()} for c, p in configs]
    return record


def _resumed_sweep(raw: str):
    """(folder, scenario, seeds, points, configs, plots) of the sweep folder ``raw`` (from its sweep.json)."""
    folder = Path(raw)
    where = f"bad value {raw!r} for --resume"
    try:
        record = json.loads((folder / "sweep.json").read_text())
    except FileNotFoundError:
        _fail(f"{where}: it has no sweep.json; expected a sweep folder written by dsim sweep")
    except (OSError, ValueError) as exc:
        _fail(f"{where}: cannot read its sweep.json ({getattr(exc, 'strerror', None) or exc}); expected a sweep folder written by dsim sweep")
    from .pipeline.sweep import check_record

    check_record(record, folder / "sweep.json")  # the whole record, before a config is built or anything runs
    for name, is_kind in (("runs.csv", Path.is_file), ("summary.png", Path.is_file), ("runs", Path.is_dir)):
        if (folder / name).exists() and not is_kind(folder / name):  # the sweep writes it: found at the end, too late
            _fail(f"{where}: its {name} is not a {'file' if is_kind is Path.is_file else 'folder'}; expected a sweep "
                  "folder written by dsim sweep")
    try:
        seeds = [int(s) for s in record["seeds"]]
        points = [{str(k): str(v) for k, v in p["point"].items()} for p in record["points"]]
        if "runs" in record:
            configs = [(RunConfig.from_dict(r["config"]), {str(k): str(v) for k, v in r["point"].items()})
                       for r in record["runs"]]
        else:
            configs = [(RunConfig.from_dict({**p["config"], "seed": seed}), point)
                       for p, point in zip(record["points"], points) for seed in seeds]
        scenario = str(record["scenario"])
        plots = bool(record.get("plots", False))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _fail(f"{where}: its sweep.json lacks the runs' configs ({type(exc).__name__}: {exc}); expected one written "
              "by this dsim's sweep")
    if configs:
        registry.for_config(configs[0][0])  # a design file that is gone or changed: one line, before anything runs
    return folder, scenario, seeds, points, configs, plots


@contextlib.contextmanager
def _open_executor(jobs: int, cluster: str | None, batch: int | None, shared_out: bool):
    from .pipeline.executor import open_executor

    if cluster is not None and sys.stderr.isatty():  # a LocalCluster takes seconds to start: say why nothing moves
        _err(f"dsim: starting {'a Dask LocalCluster' if cluster.startswith('local:') else 'the Dask client for ' + cluster} ...")
    with open_executor(jobs=jobs, cluster=cluster, batch=batch, shared_out=shared_out) as ex:
        yield ex


class SweepProgress:
    """A live progress line on a terminal for a sweep: runs done of total, verdicts so far, rate, ETA and
    workers (tqdm draws it; it is silent when stderr is not a terminal, so piped output stays clean)."""

    def __init__(self, label: str, total: int, finished_rows, executor, enabled: bool | None = None):
        from tqdm import tqdm

        self.counts = {"valid": 0, "invalid": 0, "unknown": 0}
        for row in finished_rows:
            self._count(row)
        self.executor = executor
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        initial = sum(self.counts.values())
        self.bar = tqdm(total=total, initial=initial, desc=label, unit="run", file=sys.stderr, disable=not self.enabled,
                        dynamic_ncols=True, smoothing=0.1, leave=False)
        self.workers = executor.workers if self.enabled else 0
        self.workers_at = time.perf_counter()
        self._postfix()

    def _count(self, row: dict) -> None:
        v = row.get("valid")
        self.counts["valid" if v is True else "invalid" if v is False else "unknown"] += 1

    def _postfix(self) -> None:
        if self.enabled:
            self.bar.set_postfix_str(f"{self.counts['valid']} valid, {self.counts['invalid']} invalid, "
                                     f"{self.counts['unknown']} unknown, {self.workers} workers", refresh=False)

    def __call__(self, done: int, total: int, row: dict) -> None:
        self._count(row)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.workers_at > 2.0:  # a cluster's workers come and go; asking costs a round trip
            self.workers, self.workers_at = self.executor.workers, now
        self._postfix()
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _parse_cluster_options(n_jobs: int, jobs: str, cluster: str | None, batch: str | None, max_batch: int = 100,
                           shared_out: bool = False) -> int | None:
    """--cluster, --batch and --shared-out of sweep, hunt and shrink; the batch size or None."""
    from .pipeline.executor import parse_cluster, require_distributed

    n_batch = None
    if batch is not None:
        b = batch.strip()
        if not (b.isascii() and b.isdigit() and len(b) <= len(str(max_batch)) and 1 <= int(b) <= max_batch):
            _fail(f"bad value {batch!r} for --batch: expected an integer from 1 to {max_batch:,}")
        n_batch = int(b)
    if cluster is not None:
        parse_cluster(cluster)
        if n_jobs != 1:
            _fail(f"bad value {jobs!r} for --jobs with --cluster: expected one of them (--jobs N for local processes, "
                  "--cluster for Dask)")
        require_distributed()
    elif batch is not None or shared_out:
        _fail(f"bad value {'--batch' if batch is not None else '--shared-out'!r} without --cluster: "
              "expected it with --cluster local:N or tcp://HOST:PORT")
    return n_batch


def _parse_jobs(raw: str) -> int:
    max_jobs = max(8, 4 * (os.cpu_count() or 1))  # every worker is forked at once: a typo must not fork thousands
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit() and len(text) < 6 and 1 <= int(text) <= max_jobs):
        _fail(f"bad value {raw!r} for --jobs: expected an integer from 1 to {max_jobs}")
    return int(text)


@cli.command(epilog="""\b
Examples:
  dsim hunt raft --bug no-persist-vote --budget 300 --jobs 2
  dsim hunt twopc --bug decide-before-log --budget 10m
  dsim hunt email --budget 50 --until all --out /tmp/email-hunt
  dsim hunt raft --nemesis crash-storm --set pre_vote=true --budget 100
  dsim hunt raft --budget 1000 --cluster local:2          # on Dask: the same hunt.csv as --jobs 1
  dsim hunt raft --budget 5000 --cluster tcp://HOST:8786
""")
@click.argument("scenario")
@click.option("--seed", help="Seed of the hunt: every run's configuration is drawn from it (default: random, printed).")
@click.option("--budget", default="200", show_default=True, help="Runs (200) or wall time (90s, 10m, 2h).")
@click.option("--jobs", default="1", show_default=True, help="Parallel worker processes on this machine.")
@click.option("--cluster", metavar="local:N|tcp://HOST:PORT",
              help=f"Run on Dask instead: a LocalCluster of N workers, or a running scheduler ({INSTALL_HINT}).")
@click.option("--batch", metavar="RUNS", help="Runs per Dask task [1].")
@click.option("--until", type=click.Choice(["first", "all"]), default="first", show_default=True,
              help="Stop at the first failure, or collect every distinct one (by checker and message shape).")
@run_options
@click.option("--out", help="Hunt folder (default results/SCENARIO/hunt-TIME).")
def hunt(scenario, seed, budget, jobs, cluster, batch, until, out, **kw):
    """Search for a failing run of SCENARIO (a name or ./design.py) without naming a nemesis.

    Each run draws its own seed, nemesis subset and the values of the ranges the design declares
    (Scenario.search); options given here are fixed. Runs that reach new observation kinds or checker
    details are kept and mutated more often. Each failure is run again into its own folder and the
    digests compared. Writes hunt.csv and hunt.png. Exit 1: a failure found; 0: none in the budget.
    """
    from .pipeline import hunt as H
    from .pipeline.sweep import write_csv
    from .reports import plots as P

    n_jobs = _parse_jobs(jobs)
    n_batch = _parse_cluster_options(n_jobs, jobs, cluster, batch)
    spent = H.parse_budget(budget)
    hunt_seed = parse_seed(seed, "--seed") if seed is not None else None
    scen = registry.resolve(scenario)
    file = load_toml(kw["config_file"]) if kw.get("config_file") is not None else None
    base, _ = _make_config(scenario, "0", kw, file=file if file else None)
    dry_build(base)
    if base.trace:
        _fail("bad value --trace for hunt: expected no --trace (a failure's folder can be traced with dsim run --trace)")
    fixed = {k for k, v in _collect_options(kw).items() if v is not None}
    fixed |= set(parse_sets(kw.get("sets", ())))
    if file:
        fixed |= {k for k in file if k in RUN_OPTIONS} | set(file.get("params", {}) or {})
    space = H.Space.of(scen, base, fixed)
    _new_folder_path(out)
    folder = Path(out) if out else Path("results") / scen.name / f"hunt-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"
    _make_dir(folder, "--out")
    if hunt_seed is None:
        hunt_seed = secrets.randbelow(2**31)
        _err(f"no --seed given: hunt seed {hunt_seed} (repeat this hunt with --seed {hunt_seed})")
    record = _StatusFile(folder / "hunt.json", {
        "scenario": scen.name, "seed": hunt_seed, "budget": str(spent), "jobs": n_jobs, "cluster": cluster,
        "window": H.WINDOW, "until": until, "fixed": sorted(fixed), "nemeses": list(space.nemeses),
        "ranges": {k: list(v) for k, v in space.ranges.items()}, "bug": base.bug})
    tty = sys.stderr.isatty()

    def progress(done, result):
        if tty:
            sys.stderr.write(f"\rhunt {scen.name}: {done} runs, {len(result.findings)} failures, "
                             f"{result.cpu_s:,.0f} CPU s   ")
            sys.stderr.flush()

    result = H.HuntResult()
    try:
        with record, _sigterm_interrupts(), _open_executor(n_jobs, cluster, n_batch, False) as executor:
            H.run_hunt(space, hunt_seed, spent, n_jobs, until, folder, progress, executor=executor, result=result)
            where = executor.describe
    except KeyboardInterrupt:
        write_csv(folder / "hunt.csv", result.rows)  # the runs finished before it, as a whole hunt writes them
        found = (f"{len(result.findings)} failures found so far are in {folder / 'failures'}" if result.findings
                 else "no failure found so far")
        _err(f"{chr(10) if tty else ''}dsim: hunt interrupted (hunt.json marked incomplete); {len(result.rows)} runs "
             f"in {folder / 'hunt.csv'}; {found}")
        sys.exit(3)
    if tty:
        sys.stderr.write("\r" + " " * 70 + "\r")
    write_csv(folder / "hunt.csv", result.rows)
    record.done()
    P.hunt(result.rows, folder / "hunt.png", f"dsim hunt {scen.name}" + (f" --bug {base.bug}" if base.bug else "")
           + f" (seed {hunt_seed})")
    n = len(result.rows)
    head = f"hunt {scen.name} (seed {hunt_seed}, budget {spent}, {where})"
    for f in result.findings:
        click.echo(f"{head}: found {f.checker} after {f.runs_so_far} runs ({f.cpu_so_far_s:,.1f} CPU s): {f.folder}/")
        click.echo(f"  configuration  {H.describe_point(f.point)}")
        click.echo(f"  message        {f.message[:300]}")
        same = "identical" if f.deterministic else "DIFFERENT (the run is not deterministic: a bug of dsim or the design)"
        click.echo(f"  second run     digest {same} ({f.replay_digest[:16]})")
        click.echo(f"  replay         dsim replay {f.folder}")
        click.echo(f"  shrink         dsim shrink {f.folder}")
        head = "  also"
    unknown = [r for r in result.rows if r["valid"] not in (True, False, "skipped")]
    skipped = sum(1 for r in result.rows if r["valid"] == "skipped")
    if not result.findings:
        click.echo(f"{head}: no failure in {n} runs ({result.cpu_s:,.1f} CPU s, {result.wall_s:,.0f} s wall)")
    click.echo(f"  covered        {n} runs, {len(result.features)} coverage features, {len(result.corpus)} configurations kept"
               + (f", {skipped} drawn configurations refused by the design" if skipped else ""))
    for line in H.coverage_summary(space, result.rows):
        click.echo(f"                 {line}")
    if unknown:
        click.echo(f"  unknown        {len(unknown)} runs ended unknown (e.g. run {unknown[0]['run']}: "
                   f"{unknown[0]['message'][:160] or unknown[0]['checker'] or 'no checker named'})")
    click.echo(f"  {folder / 'hunt.csv'}\n  {folder / 'hunt.png'}")
    sys.exit(1 if result.findings else (3 if unknown else 0))


@cli.command(epilog="""\b
Examples:
  dsim shrink results/raft/hunt-20260101T000000/failures/run00037-vote-once
  dsim shrink results/twopc/latest --jobs 2 --budget 100 --out /tmp/twopc-shrunk
  dsim run raft --config /tmp/raft-shrunk/shrunk.toml     # the reproducer fails again
  dsim shrink results/raft/latest --cluster local:2        # on Dask: the same reproducer
""")
@click.argument("run_dir")
@click.option("--budget", default="150", show_default=True, help="Most candidate runs to try.")
@click.option("--jobs", default="1", show_default=True, help="Parallel worker processes on this machine.")
@click.option("--cluster", metavar="local:N|tcp://HOST:PORT",
              help=f"Run on Dask instead: a LocalCluster of N workers, or a running scheduler ({INSTALL_HINT}).")
@click.option("--out", help="Shrink folder (default RUN_DIR-shrunk).")
def shrink(run_dir, budget, jobs, cluster, out):
    """Cut the failing run RUN_DIR to a small reproducer that fails with the same checker.

    The nemesis becomes the explicit fault plan it produced; delta debugging keeps a 1-minimal set
    of fault actions; then a shorter time limit, a lower rate, fewer nodes and default parameters are
    kept where the run still fails. Writes shrunk.toml (for dsim run --config), shrink.csv and run/
    (the shrunk run's folder, traced, with spacetime.svg).
    """
    from .pipeline import shrink as S
    from .pipeline.runner import run_to_folder
    from .pipeline.sweep import write_csv

    n_jobs = _parse_jobs(jobs)
    _parse_cluster_options(n_jobs, jobs, cluster, None)
    text = str(budget).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 7 and int(text) >= 1):
        _fail(f"bad value {budget!r} for --budget: expected a number of runs from 1 to 9999999")
    failure = S.load_failure(run_dir)
    target = out if out is not None else str(Path(run_dir.rstrip("/")) ) + "-shrunk"
    _new_folder_path(target)
    folder = _make_dir(Path(target), "--out")
    record = _StatusFile(folder / "shrink.json", {"run_dir": str(run_dir), "checker": failure.checker,
                                                   "budget": int(text), "jobs": n_jobs, "cluster": cluster})
    t0 = time.perf_counter()
    try:
        with record, _sigterm_interrupts(), _open_executor(n_jobs, cluster, None, False) as executor:
            result = S.shrink(failure, n_jobs, int(text), executor=executor)
    except KeyboardInterrupt:
        _err(f"dsim: shrink interrupted ({folder / 'shrink.json'} marked incomplete)")
        sys.exit(3)
    write_csv(folder / "shrink.csv", result.rows)
    cfg = result.after
    scen_arg = cfg.design_path or cfg.scenario
    header = [f"dsim shrink of {run_dir}: fails {failure.checker}",
              f"dsim run {scen_arg} --config {folder / 'shrunk.toml'}"]
    (folder / "shrunk.toml").write_text(S.to_toml(cfg, header), encoding="utf-8")
    traced = S.replace(cfg, trace=True)
    outcome, status, _ = run_to_folder(traced, folder / "run", plots=True)
    failed_again = failure.checker in [k for k, v in outcome.checks.items() if v.valid is False]
    from .pipeline.results import read_run

    man = read_run(folder / "run")["manifest"]
    ops_after = int(sum(v for k, v in (outcome.metrics.get("ops") or {}).items() if k in ("ok", "fail", "info")))
    svg = ""
    try:
        from .reports import spacetime as ST

        drawing = ST.load(folder / "run").focus()  # the window around the failure, if the whole run is too big
        drawing.write(folder / "run" / "spacetime.svg")
        svg = f"{folder / 'run' / 'spacetime.svg'} ({len(drawing.messages())} messages{drawing.span_text()})"
    except (OSError, ValueError) as exc:
        svg = f"(spacetime.svg not drawn: {exc})"
    nodes_before, nodes_after = failure.cfg.node_count, cfg.node_count
    click.echo(f"shrink {run_dir}: {failure.checker} " + ("still fails" if failed_again else "NO LONGER FAILS")
               + f" after {len(result.rows)} candidate runs ({time.perf_counter() - t0:,.1f} s wall)")
    how = "explicit fault actions" if result.explicit else "fault actions (the nemesis could not be written out: kept as is)"
    click.echo(f"  {'':14s} {'before':>10s} {'after':>10s}")
    click.echo(f"  {'faults':14s} {result.faults_before:>10d} {result.faults_after:>10d}   {how}")
    click.echo(f"  {'simulated s':14s} {failure.end_time_s:>10.3f} {float(man.get('end_time_s') or 0):>10.3f}   "
               f"(time limit {failure.cfg.time_limit_s:g} -> {cfg.time_limit_s:g} s)")
    click.echo(f"  {'operations':14s} {failure.ops:>10d} {ops_after:>10d}   (rate {failure.cfg.rate:g} -> {cfg.rate:g} ops/s)")
    click.echo(f"  {'nodes':14s} {nodes_before:>10d} {nodes_after:>10d}")
    changed = {k: v for k, v in cfg.params.items() if failure.cfg.params.get(k) != v}
    if changed:
        click.echo("  parameters     changed: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    click.echo(f"  message        {next((v.message for v in outcome.checks.values() if v.valid is False), '')[:300]}")
    click.echo(f"  {folder / 'shrunk.toml'}\n  {folder / 'shrink.csv'}\n  {folder / 'run'}  (digest {outcome.digest[:16]})")
    if svg:
        click.echo(f"  {svg}")
    click.echo(f"  run it again   dsim run {scen_arg} --config {folder / 'shrunk.toml'}")
    click.echo(f"  replay         dsim replay {folder / 'run'}")
    record.done(still_fails=failed_again)
    sys.exit(1 if failed_again else 3)


def main(argv=None) -> None:
    """Entry point: one-line errors with exit status 2 for bad usage or input."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # click would print the whole help as the error
        _err(f"dsim: error: no command given: accepted: {', '.join(sorted(cli.commands))} (dsim --help shows them)")
        sys.exit(2)
    try:
        cli.main(args=args, prog_name="dsim", standalone_mode=False)
    except UsageError as exc:
        _err(f"dsim: error: {exc}")
        sys.exit(2)
    except click.UsageError as exc:
        name = getattr(exc, "command_name", None)  # click's NoSuchCommand (8.4+)
        if isinstance(name, str):
            near = getattr(exc, "possibilities", None)
            _err(f"dsim: error: no command {name!r}: accepted: {', '.join(sorted(cli.commands))}"
                 + (f" (did you mean {near[0]!r}?)" if near else " (dsim --help shows them)"))
        else:
            _err(f"dsim: error: {exc.format_message()}")
        sys.exit(2)
    except (click.exceptions.Abort, _Interrupted):
        _err("dsim: aborted")
        sys.exit(3)
    except KeyboardInterrupt:
        _err("dsim: interrupted")
        sys.exit(3)
    except click.ClickException as exc:
        _err(f"dsim: error: {exc.format_message()}")
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - a bug of dsim's own: one line, exit 3; DSIM_DEBUG=1 shows the traceback
        if os.environ.get("DSIM_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off"):
            raise
        _err(f"dsim: internal error: {type(exc).__name__}: {exc} (set DSIM_DEBUG=1 for the traceback)")
        sys.exit(3)
    sys.exit(0)


if __name__ == "__main__":
    main()
