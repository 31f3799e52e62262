"""Bad design files (`dsim run|describe ./mine.py`): one line on stderr naming the file and what is wrong,
exit 2, no traceback, nothing printed before it and no results folder written.

Each design is the ping example (examples/ping/ping.py) with one class attribute overridden at the end
of its class body, or a file that raises at import. Most cases run the CLI in-process; the real Ctrl-C
case runs the console script and sends it SIGINT while the design imports."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator import UsageError
from simulator.pipeline import scenario as registry
from tests.test_bad_input import TINY, assert_refused, dsim_in

ROOT = Path(__file__).resolve().parent.parent
PING = ROOT / "examples" / "ping" / "ping.py"


pytestmark = pytest.mark.usefixtures("clean_registry")  # designs loaded here must not leak into other tests


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """An empty working folder two levels down, so results/ or a name like ../../escape would show."""
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    return work


def design(folder: Path, *lines: str, name: str = "mine.py") -> str:
    """The ping design with ``lines`` appended to its class body (they override what it set); its path."""
    text = PING.read_text()
    assert text.endswith("\n") and text.rstrip().splitlines()[-1].startswith("        ")  # ends inside the class
    path = folder / name
    path.write_text(text + "".join(f"    {line}\n" for line in lines))
    return str(path)


def refused(capsys, here: Path, path: str, needle: str, commands=("describe", "run")) -> None:
    """Each command on ``path`` exits 2 with one line naming the file and ``needle``, printing and writing nothing."""
    for command in commands:
        extra = ["--seed", "1", *TINY, "--no-plots"] if command == "run" else []
        code, out, err = dsim_in(capsys, command, path, *extra)
        assert_refused(code, err, needle)
        assert f"cannot load design {path}: " in err, err
        assert out == "", out
        assert not any(here.parent.parent.parent.rglob("results")), "a results folder was written"


# ---- files that raise at import --------------------------------------------------------------------

RAISES = [
    ("raise GeneratorExit\n", "GeneratorExit"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("raise SystemExit(0)\n", "SystemExit: 0"),
    ("import sys\nsys.exit('bye now')\n", "SystemExit: bye now"),
    ("class Odd(BaseException):\n    pass\nraise Odd('odd\\nthing')\n", "Odd: odd thing"),
    ("raise StopIteration\n", "StopIteration"),
    ("x = 1\n\0\n", "SyntaxError: source code string cannot contain null bytes"),
]


@pytest.mark.parametrize("source, needle", RAISES, ids=[r[1].split(":")[0] for r in RAISES])
def test_a_file_that_raises_any_exception_at_import_is_one_line(capsys, here, source, needle):
    """Any exception the file's import raises, BaseException ones included, is one line naming it: exit 2."""
    path = here / "mine.py"
    path.write_text(source)
    refused(capsys, here, str(path), needle)


def test_a_real_ctrl_c_while_a_design_imports_is_still_an_interrupt(tmp_path):
    """SIGINT during a slow import is an interrupt (exit 3), not a bad design: told apart from `raise KeyboardInterrupt`."""
    marker = tmp_path / "importing"
    (tmp_path / "slow.py").write_text(f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(30)\n")
    # Python's own SIGINT handler, as in a terminal (a shell's background job would start with SIGINT ignored)
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from simulator.cli import main; main(sys.argv[1:])")
    proc = subprocess.Popen([sys.executable, "-c", code, "describe", "./slow.py"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "cannot load design" not in err and "Traceback" not in err, err


# ---- the scenario's name (it names the results folder) ---------------------------------------------

@pytest.mark.parametrize("value", [5, None, "", "../../escape", "my design", "ping/x", "1abc", "-x", ".hidden",
                                   "a" * 65, "caf\u00e9", "x\n"])
def test_a_name_that_cannot_be_a_folder_name_is_refused_before_anything_runs(capsys, here, value):
    """`name` must be a letter, then letters, digits, '-' or '_': refused at load, naming the value and the rule."""
    path = design(here, f"name = {value!r}")
    refused(capsys, here, path, f"bad value {value!r} for name: expected a name")
    assert not (here.parent.parent / "escape").exists() and not (here.parent / "escape").exists()


@pytest.mark.parametrize("value", ["my_design-2", "Ping2", "p"])
def test_safe_names_still_run(capsys, here, value):
    """Names like the shipped ones (rate-limiter, reverse-proxy), with '_' or capitals, load and run as before."""
    path = design(here, f"name = {value!r}")
    code, _, err = dsim_in(capsys, "run", path, "--seed", "1", *TINY, "--no-plots")
    assert code == 0, err
    assert (here / "results" / value / "latest" / "manifest.json").is_file()


# ---- defaults ----------------------------------------------------------------------------------------

BAD_DEFAULTS = [
    ({"bogus": 1, "time_limit_s": 1.0}, "unknown option 'bogus' in defaults: accepted: time_limit_s, rate"),
    ({1: 2}, "unknown option 1 in defaults"),
    ({"rate": "fast"}, "defaults: bad value 'fast' for rate: expected a number"),
    ({"time_limit_s": -10.0}, "defaults: bad value -10.0 for time_limit_s"),
    ({"node_count": 2.5}, "defaults: bad value 2.5 for node_count: expected an integer"),
    ({"node_count": True}, "defaults: bad value True for node_count"),
    ({"nemesis": ("crash", "nonexistent-nemesis")}, "unknown nemesis 'nonexistent-nemesis'"),
    ({"latency_dist": "gaussian"}, "defaults: bad value 'gaussian' for latency_dist"),
    ({"topology": "mesh"}, "'mesh'"),
    ({"nemesis": "crash", "nemesis_interval_s": 1e-6, "time_limit_s": 1e6}, "defaults: bad value 1e-06 for nemesis_interval_s"),
]


@pytest.mark.parametrize("value, needle", BAD_DEFAULTS, ids=[str(i) for i in range(len(BAD_DEFAULTS))])
def test_bad_defaults_are_refused_at_load(capsys, here, value, needle):
    """A design's defaults name run options and hold values a config file could: else one line at load."""
    refused(capsys, here, design(here, f"defaults = {value!r}"), needle)


def test_not_a_dict_of_defaults_is_refused(capsys, here):
    refused(capsys, here, design(here, "defaults = [('rate', 5)]"), "bad value [('rate', 5)] for defaults: expected a dict")


# ---- parameters -------------------------------------------------------------------------------------

BAD_PARAMS = [
    ('Param("share", "abc", "a share")', "bad value 'abc' for the default of parameter share: expected a number"),
    ('Param("share", float("nan"), "a share")', "bad value nan for the default of parameter share"),
    ('Param("share", True, "a share")', "bad value True for the default of parameter share"),
    ('Param("share", 2.0, "a share", min=0.0, max=1.0)',
     "bad value 2.0 for the default of parameter share: expected a number from 0.0 to 1.0"),
    ('Param("n", 1.5, "a count", type=int)', "bad value 1.5 for the default of parameter n: expected an integer"),
    ('Param("n", 0, "a count", type=int, min=1)', "bad value 0 for the default of parameter n: expected an integer >= 1"),
    ('Param("n", 10**12, "a count", type=int)', "for the default of parameter n"),
    ('Param("on", "yes", "a switch", type=bool)', "bad value 'yes' for the default of parameter on: expected true or false"),
    ('Param("mode", 5, "a mode", type=str)', "bad value 5 for the default of parameter mode: expected text"),
    ('Param("mode", "c", "a mode", type=str, choices=("a", "b"))',
     "bad value 'c' for the default of parameter mode: expected one of a, b"),
    ('Param("a=b", 1.0, "x")', "bad value 'a=b' for a parameter's name"),
    ('Param("a b", 1.0, "x")', "bad value 'a b' for a parameter's name"),
    ('Param(5, 1.0, "x")', "bad value 5 for a parameter's name"),
    ('Param("x", 1.0, None)', "bad value None for the help of parameter x"),
    ('Param("x", 1.0, "x", type=5)', "bad Param 'x'"),
    ('Param("x", 1.0, "x", min="0")', "bad Param 'x'"),
    ('Param("x", 1.0, "x", choices=None)', "bad Param 'x'"),
]


@pytest.mark.parametrize("param, needle", BAD_PARAMS, ids=[str(i) for i in range(len(BAD_PARAMS))])
def test_a_parameter_its_own_default_breaks_is_refused_at_load(capsys, here, param, needle):
    """Each Param's default must be a value the parameter accepts; its name, help and bounds must be usable."""
    path = design(here, f"params = params + ({param},)" if "share" not in param else
                  f"params = ({param}, Param('bug_share', 0.01, 'x', min=0.0, max=1.0))")
    refused(capsys, here, path, needle)


def test_a_parameter_declared_twice_is_refused(capsys, here):
    path = design(here, "params = (Param('bug_share', 0.01, 'x'), Param('bug_share', 0.5, 'y'))")
    refused(capsys, here, path, "parameter 'bug_share' is declared twice in params")


def test_params_not_a_tuple_of_param_is_refused(capsys, here):
    refused(capsys, here, design(here, "params = ('bug_share',)"), "bad value ('bug_share',) for params: expected a tuple of Param")
    refused(capsys, here, design(here, "params = None", name="two.py"), "bad value None for params")


def test_good_parameter_defaults_still_load(capsys, here):
    """An int default for a float parameter, and parameters of every plain type at their bounds, are fine."""
    path = design(here, "params = params + (Param('gap_ms', 1, 'g'), Param('n', 1, 'n', type=int, min=1), "
                        "Param('on', False, 'o', type=bool), Param('mode', 'a', 'm', type=str, choices=('a', 'b')))")
    code, out, err = dsim_in(capsys, "describe", path)
    assert code == 0 and err == "", err
    assert "gap_ms" in out and "mode" in out


# ---- the attributes describe, run and hunt iterate -----------------------------------------------------

BAD_SHAPES = [
    ("bugs = None", "bad value None for bugs: expected a dict of bug name -> description"),
    ("bugs = ['drop-pong']", "for bugs: expected a dict"),
    ("bugs = {'drop-pong': 5}", "for bugs: expected a dict"),
    ("checkers = None", "bad value None for checkers: expected a dict"),
    ("nemeses = None", "bad value None for nemeses: expected a tuple of nemesis names"),
    ("nemeses = 'crash'", "bad value 'crash' for nemeses"),
    ("nemeses = ('nonexistent-nemesis',)", "unknown nemesis 'nonexistent-nemesis' in nemeses: accepted: "),
    ("examples = None", "bad value None for examples"),
    ("examples = 'dsim run x'", "bad value 'dsim run x' for examples"),
    ("custom_nemeses = None", "bad value None for custom_nemeses"),
    ("custom_nemeses = {'mine': 5}", "for custom_nemeses: expected a dict of nemesis name -> function"),
    ("fault_verbs = None", "bad value None for fault_verbs"),
    ("fault_verbs = {'poke': 'node'}", "for fault_verbs"),
    ("exposes = None", "bad value None for exposes"),
    ("exposes = {'no-such-bug': '--seed 1'}", "unknown bug 'no-such-bug' in exposes: accepted: drop-pong, wrong-seq"),
    ("exposes = {'drop-pong': 5}", "bad value 5 for exposes['drop-pong']"),
    ("exposes = {'drop-pong': '--seed \"1'}", "for exposes['drop-pong']"),
    ("benchmarks = None", "bad value None for benchmarks"),
    ("benchmarks = {'b': 5}", "for benchmarks"),
    ("search = None", "bad value None for search"),
    ("config_tables = ('nope',)", "bad value ('nope',) for config_tables: expected a tuple of parameter names"),
    ("config_tables = 'bug_share'", "for config_tables"),
    ("summary = None", "bad value None for summary: expected text"),
    ("build = 5", "bad value 5 for build: expected a method"),
    ("check = None", "bad value None for check: expected a method"),
    ("del build", "it does not define build(self, sim, cfg)"),
]


@pytest.mark.parametrize("line, needle", BAD_SHAPES, ids=[s[0] for s in BAD_SHAPES])
def test_an_attribute_of_the_wrong_shape_is_refused_before_anything_is_printed(capsys, here, line, needle):
    """bugs = None used to print half of `describe`, then crash: now one line at load, for describe and run alike."""
    refused(capsys, here, design(here, line), needle)


@pytest.mark.parametrize("line, needle", [("search = {'bogus': (1, 2)}", "search names 'bogus'"),
                                         ("search = {'rate': 'fast'}", "search['rate'] is 'fast'")])
def test_bad_search_ranges_are_refused_by_the_hunt_that_reads_them(capsys, here, line, needle, tmp_path):
    """The search ranges are checked where a hunt reads them (hunt.check_search): one line, exit 2, no hunt folder."""
    path = design(here, line)
    code, out, err = dsim_in(capsys, "hunt", path, "--seed", "1", "--budget", "2", "--time-limit", "0.2",
                             "--out", str(tmp_path / "hunt"))
    assert_refused(code, err, needle)
    assert not (tmp_path / "hunt").exists()


def test_a_design_may_suit_its_own_nemeses(capsys, here):
    """A nemesis of its own (custom_nemeses) may be listed in nemeses and named in defaults."""
    path = design(here, "custom_nemeses = {'poke': lambda servers, rng, interval_ns: ([], [])}",
                  "nemeses = ('crash', 'poke')", "defaults = {**defaults, 'nemesis': ('poke',)}")
    code, out, err = dsim_in(capsys, "describe", path)
    assert code == 0 and err == "", err
    assert "crash, poke" in out


# ---- library level and the shipped designs -----------------------------------------------------------

def test_load_design_raises_one_line_usage_error(here):
    path = design(here, "bugs = None")
    with pytest.raises(UsageError) as info:
        registry.load_design(path)
    assert str(info.value) == f"cannot load design {path}: bad value None for bugs: expected a dict of bug name -> description (text)"
    assert not any(c for c in registry._BY_PATH if c == path)  # nothing filed: the next load checks again


@pytest.mark.parametrize("name", ["queue", "raft", "twopc", "email", "graph", "rate-limiter", "kademlia",
                                  "reverse-proxy", "cache", "commerce"])
def test_every_shipped_design_passes_the_checks_a_design_file_gets(name):
    """The shipped designs would load as design files too: their name, shape, defaults and parameters pass."""
    scen = registry.get(name)
    registry.check_name(scen)
    registry.check_shape(scen)


def test_the_ping_example_passes_and_loads_once(here):
    first = registry.load_design(PING)
    assert registry.load_design(PING) is first and first.name == "ping"
