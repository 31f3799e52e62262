"""Designs that go wrong while they run: the run is a crash (exit 3, one "run crashed" line naming the
error, the folder marked incomplete with no half-written file), or an unknown verdict, never a hang,
a false VALID, or dsim's exit status chosen by the design.

Each design is the ping example (examples/ping/ping.py) with a line or two changed, written into
tmp_path and run by path with the CLI in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator import CheckResult
from simulator.checkers import MESSAGE_MAX, cap_message
from simulator.checkers.parallel import WORTH_FORKING, available
from simulator.engine import kernel
from simulator.engine.kernel import Simulation, SimulationStuck
from simulator.pipeline import results as results_mod
from tests.test_bad_input import dsim_in

ROOT = Path(__file__).resolve().parent.parent
PING = ROOT / "examples" / "ping" / "ping.py"
SHORT = ["--seed", "1", "--time-limit", "0.2", "--no-plots"]

pytestmark = pytest.mark.usefixtures("clean_registry")  # designs loaded here must not leak into other tests

CHECK_LINE = "    def check(self, run) -> dict[str, CheckResult]:\n"
ON_MESSAGE_LINE = "    def on_message(self, ctx, src, msg):\n        if self.bug"
COMPLETE_LINE = 'ctx.complete(msg.op_id, "ok", msg.seq)'
BUILD_LINE = "    def build(self, sim, cfg) -> Setup:\n"
RETURN_LINE = 'return {"all-answered": availability(run.history, 1.0), "right-seq": right}'


def design(folder: Path, *edits: tuple[str, str], name: str = "mine.py") -> str:
    """The ping design with each (old, new) text replaced (old must be there once); its path."""
    text = PING.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text)
    return str(path)


def in_check(code: str) -> tuple[str, str]:
    """An edit putting ``code`` first in check()."""
    return CHECK_LINE, CHECK_LINE + f"        {code}\n"


def crashed(code: int, out: str, err: str, *needles: str) -> str:
    """Exit 3 and one "run crashed" line on stderr, with no traceback; the line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, (code, err)
    assert len(lines) == 1 and lines[0].startswith("dsim: run crashed: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


def incomplete(folder: Path, *needles: str) -> dict:
    """The folder is marked incomplete, names the error, and holds no temporary file."""
    man = json.loads((folder / "manifest.json").read_text())
    assert man["status"] == "incomplete", man["status"]
    for needle in needles:
        assert needle in man["error"], man["error"]
    assert not list(folder.glob("*.tmp")), list(folder.iterdir())
    met = json.loads((folder / "metrics.json").read_text())
    assert met["valid"] == "unknown" and met["incomplete"] is True
    return man


# ---- 1. a crash while the folder is written still leaves it marked incomplete -------------------------

def test_a_value_json_cannot_hold_in_the_history_leaves_the_folder_incomplete(capsys, tmp_path):
    """complete_objval.py: the history cannot be written; the folder says incomplete, no history.jsonl.tmp."""
    path = design(tmp_path, (COMPLETE_LINE, 'ctx.complete(msg.op_id, "ok", object())'))
    out = tmp_path / "out"
    code, stdout, err = dsim_in(capsys, "run", path, *SHORT, "--out", out)
    crashed(code, stdout, err, "TypeError", "history.jsonl", "not JSON serializable", "results marked incomplete")
    man = incomplete(out, "TypeError")
    assert any(u.startswith("history.jsonl") for u in man["unsaved"]), man
    assert not (out / "history.jsonl").exists()
    code, stdout, err = dsim_in(capsys, "show", out)
    assert "incomplete" in stdout and "running" not in stdout, stdout


def test_fail_marks_the_folder_incomplete_even_when_every_other_file_fails(tmp_path, monkeypatch):
    """RunFolder.fail: history, faults and metrics all fail to write; the manifest still says incomplete."""
    from simulator import build_config, get_scenario
    from simulator.pipeline.run import Run

    cfg = build_config(get_scenario("queue"), seed=1, options={"time_limit_s": 0.1})
    run = Run(cfg)
    run.execute()
    rf = results_mod.RunFolder(tmp_path, cfg)
    rf.start()
    real = results_mod.write_json

    def full_disk(path, *rest):
        if path.name != "manifest.json":
            open(path.with_name(path.name + ".tmp"), "w").close()  # a half-written file, as a failed write leaves
            raise OSError(28, "No space left on device")
        return real(path, *rest)

    monkeypatch.setattr(results_mod, "write_lines", lambda path, rows: full_disk(path))
    monkeypatch.setattr(results_mod, "write_json", full_disk)
    rf.fail(run, RuntimeError("boom"))
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["status"] == "incomplete" and man["error"] == "RuntimeError: boom"
    assert [u.split(" ")[0] for u in man["unsaved"]] == ["history.jsonl", "faults.jsonl", "metrics.json"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    with pytest.raises(TypeError):
        results_mod.write_json(tmp_path / "x.json", {1j: 2})
    with pytest.raises(TypeError):
        results_mod.write_lines(tmp_path / "h.jsonl", [{"value": object()}])
    assert list(tmp_path.iterdir()) == []


# ---- 2. SystemExit from design code is a crash of the design ------------------------------------------

EXITS = [
    (in_check("raise SystemExit(0)"), "SystemExit(0)"),
    (in_check("raise SystemExit(1)"), "SystemExit(1)"),
    (in_check("raise SystemExit(7)"), "SystemExit(7)"),
    (in_check("raise SystemExit('bye text')"), "SystemExit('bye text')"),
    (in_check("import sys; sys.exit()"), "SystemExit()"),
    ((ON_MESSAGE_LINE, ON_MESSAGE_LINE.replace("        if self.bug", "        raise SystemExit(5)\n        if self.bug")),
     "SystemExit(5)"),
    # the second build (the run's own; the first is dsim's dry build before the folder exists)
    ((BUILD_LINE, BUILD_LINE + "        PingDesign.builds = getattr(PingDesign, 'builds', 0) + 1\n"
                               "        if PingDesign.builds > 1:\n            raise SystemExit(4)\n"), "SystemExit(4)"),
    # SystemExit in the first build (dsim's dry build) too: the run's own build reports it
    ((BUILD_LINE, BUILD_LINE + "        raise SystemExit(4)\n"), "SystemExit(4)"),
    # other BaseExceptions: a crash, not a traceback and exit 1
    (in_check("raise GeneratorExit('g')"), "GeneratorExit('g')"),
    ((ON_MESSAGE_LINE, ON_MESSAGE_LINE.replace("        if self.bug", "        class Boom(BaseException):\n"
                                               "            pass\n        raise Boom('b')\n        if self.bug")),
     "Boom('b')"),
]


@pytest.mark.parametrize("serial", ["1", "0"], ids=["serial", "forked"])
@pytest.mark.parametrize("edit, needle", EXITS, ids=[e[1] for e in EXITS])
def test_system_exit_in_design_code_is_a_crash(capsys, tmp_path, monkeypatch, edit, needle, serial):
    """check_exit*.py, onmsg_exit5.py: exit 3 and one line naming SystemExit and its code, whatever the code;
    with a history long enough for the checks to run in a forked child too."""
    monkeypatch.setenv("DSIM_SERIAL_CHECKS", serial)
    if serial == "0" and (not available() or "check" not in edit[0]):
        pytest.skip("only check() runs in the forked child (and only on Linux)")
    path = design(tmp_path, edit)
    out = tmp_path / "out"
    extra = ["--rate", "40000", "--time-limit", "0.3"] if serial == "0" else []
    code, stdout, err = dsim_in(capsys, "run", path, *SHORT, *extra, "--out", out)
    crashed(code, stdout, err, "DesignExit", needle, "results marked incomplete")
    incomplete(out, needle)
    if serial == "0":
        assert (out / "history.jsonl").read_text().count("\n") >= WORTH_FORKING


def test_a_keyboard_interrupt_in_check_is_still_an_interrupt(capsys, tmp_path):
    path = design(tmp_path, in_check("raise KeyboardInterrupt"))
    out = tmp_path / "out"
    code, _, err = dsim_in(capsys, "run", path, *SHORT, "--out", out)
    assert code == 3 and err.strip().startswith("dsim: interrupted"), err
    assert json.loads((out / "manifest.json").read_text())["error"] == "interrupted"


def test_system_exit_in_a_sweep_run_is_that_run_crashing(capsys, tmp_path):
    path = design(tmp_path, in_check("raise SystemExit(7)"))
    code, stdout, err = dsim_in(capsys, "sweep", path, "--seeds", "1-2", "--time-limit", "0.2", "--out", tmp_path / "sw")
    assert code == 3, (code, err)
    assert stdout.count("DesignExit: the design raised SystemExit(7)") == 2, stdout


# ---- 3. a 0-delay loop is a crash, not a hang ---------------------------------------------------------

def test_a_timer_rearmed_at_0_ms_fails_instead_of_hanging(capsys, tmp_path, monkeypatch):
    """timer_zero_loop.py (the bound lowered so the test is quick; the real one is 20 million events)."""
    monkeypatch.setattr(kernel, "SAME_INSTANT_LIMIT", 300_000)
    path = design(tmp_path, (ON_MESSAGE_LINE, "    def on_start(self, ctx):\n        ctx.set_timer('z', 0.0)\n\n"
                                              "    def on_timer(self, ctx, name):\n        ctx.set_timer(name, 0.0)\n\n"
                                              + ON_MESSAGE_LINE))
    out = tmp_path / "out"
    code, stdout, err = dsim_in(capsys, "run", path, *SHORT, "--out", out)
    line = crashed(code, stdout, err, "SimulationStuck", "stuck at t=0 ns", "events ran at that one instant",
                   "0 delay that re-arms itself")
    assert len(line) < 300, line
    incomplete(out, "SimulationStuck")


def test_the_same_instant_guard_names_a_later_instant_and_leaves_bursts_alone(monkeypatch):
    monkeypatch.setattr(kernel, "SAME_INSTANT_LIMIT", 200_000)
    sim = Simulation(1)
    fired = [0]

    def burst(left, _b):  # 150,000 events at one instant, then time moves on: fine
        fired[0] += 1
        if left:
            sim.schedule(0, burst, left - 1)
        else:
            sim.schedule(1_000, loop, None)

    def loop(_a, _b):
        sim.schedule(0, loop, None)

    sim.schedule(5, burst, 150_000)
    with pytest.raises(SimulationStuck) as info:
        sim.run(10**9)
    assert fired[0] == 150_001
    assert info.value.now_ns == 1_005 and info.value.events >= 200_000
    assert "stuck at t=1005 ns" in str(info.value)
    assert not any(item[3] is None for item in sim._queue if len(item) == 5), "the run's end marker was left behind"


# ---- 4. a declared checker that gives no result is unknown, not valid --------------------------------

@pytest.mark.parametrize("edit, missing", [
    ((CHECK_LINE, CHECK_LINE.replace("def check(", "def check_(")), ["all-answered", "right-seq"]),  # missing_check.py
    ((RETURN_LINE, 'return {"right-seq": right}'), ["all-answered"]),  # check_missing.py
], ids=["no-check", "one-left-out"])
def test_a_declared_checker_with_no_result_makes_the_run_unknown(capsys, tmp_path, edit, missing):
    path = design(tmp_path, edit)
    out = tmp_path / "out"
    code, stdout, err = dsim_in(capsys, "run", path, *SHORT, "--out", out)
    assert code == 3, (code, stdout, err)
    assert "VALID" not in stdout.replace("UNKNOWN", ""), stdout
    met = json.loads((out / "metrics.json").read_text())
    assert met["valid"] == "unknown"
    for name in missing:
        assert met["checks"][name] == {"valid": "unknown", "message": "check() gave no result for it"}
        assert f"{name}: check() gave no result for it" in stdout, stdout


def test_every_declared_checker_given_keeps_the_verdict(capsys, tmp_path):
    path = design(tmp_path)
    code, stdout, err = dsim_in(capsys, "run", path, *SHORT, "--out", tmp_path / "out")
    assert code == 0 and "no result" not in stdout, (stdout, err)


# ---- 5. a checker's message is capped where it is made -----------------------------------------------

def test_a_huge_checker_message_is_capped_in_the_summary_and_metrics(capsys, tmp_path):
    """send_huge.py, in small: a 100,000-character message is kept to its first 2,000 characters."""
    path = design(tmp_path, (RETURN_LINE, 'return {"all-answered": CheckResult(False, "x" * 100_000), "right-seq": right}'))
    out = tmp_path / "out"
    code, stdout, err = dsim_in(capsys, "run", path, *SHORT, "--out", out)
    assert code == 1, (code, err)
    assert max(len(line) for line in stdout.splitlines()) < MESSAGE_MAX + 200
    assert f"... ({100_000 - MESSAGE_MAX:,} more characters)" in stdout
    message = json.loads((out / "metrics.json").read_text())["checks"]["all-answered"]["message"]
    assert message == "x" * MESSAGE_MAX + "... (98,000 more characters)"


def test_cap_message():
    assert cap_message("short") == "short"
    assert cap_message("a" * MESSAGE_MAX) == "a" * MESSAGE_MAX
    assert CheckResult("unknown", "b" * (MESSAGE_MAX + 1)).message == "b" * MESSAGE_MAX + "... (1 more characters)"
