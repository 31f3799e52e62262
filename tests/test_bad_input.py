"""Bad input to every `dsim` command: one line on stderr, exit 2, no traceback, nothing written.

Most cases run the CLI in-process through ``simulator.cli.main`` (fast); a few run the real
console script, and the signal test sends SIGTERM to a real run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from simulator.cli import main

TINY = ["--time-limit", "0.2"]


def dsim_in(capsys, *args) -> tuple[int, str, str]:
    """Run `dsim ARGS` in-process; return (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out, err = capsys.readouterr()
    return code, out, err


def dsim_proc(*args, cwd, timeout=120) -> subprocess.CompletedProcess:
    """Run the real console script (or `python -m simulator.cli`) in a subprocess."""
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_refused(code: int, err: str, *needles: str | None) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("dsim: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        if needle is not None:
            assert needle in lines[0], err


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- command lines ------------------------------------------------------------------------------

RUN = ["run", "queue", "--seed", "1", *TINY, "--no-plots"]
SWEEP = ["sweep", "queue", "--seeds", "1", *TINY]

BAD_COMMAND_LINES = [
    (RUN + ["--nemesis", "crash,,"], "'crash,,'"),
    (RUN + ["--nemesis", ",crash"], "',crash'"),
    (RUN + ["--nemesis", ""], "''"),
    (RUN + ["--nemesis", " , "], "' , '"),
    (RUN + ["--nemesis", "crash,bogus"], "'bogus'"),
    (RUN + ["--rate", "nan"], "'nan'"),
    (RUN + ["--rate", "inf"], "'inf'"),
    (RUN + ["--rate", "-inf"], "'-inf'"),
    (RUN + ["--rate", "-1"], "rate"),
    (RUN + ["--rate", "0"], "rate"),
    (RUN + ["--rate", "1e300"], "rate"),
    (RUN + ["--rate", "1_0"], "'1_0'"),
    (RUN + ["--rate", "\u0663"], "--rate"),
    (RUN + ["--rate", ""], "--rate"),
    (RUN + ["--rate", "0x10"], "'0x10'"),
    (RUN + ["--time-limit", "0"], "time_limit_s"),
    (RUN + ["--time-limit", "-5"], "time_limit_s"),
    (RUN + ["--time-limit", "1e400"], "'1e400'"),
    (RUN + ["--time-limit", "1e300"], "time_limit_s"),
    (RUN + ["--time-limit", "1e-300"], "time_limit_s"),
    (RUN + ["--latency", "-3"], "latency_ms"),
    (RUN + ["--latency", "1e300"], "latency_ms"),
    (RUN + ["--op-timeout", "0"], "op_timeout_ms"),
    (RUN + ["--op-timeout", "nan"], "'nan'"),
    (RUN + ["--nemesis-interval", "0"], "nemesis_interval_s"),
    (RUN + ["--nemesis-interval", "1e-300"], "nemesis_interval_s"),
    (RUN + ["--node-count", "0"], "node_count"),
    (RUN + ["--node-count", "2.5"], "'2.5'"),
    (RUN + ["--node-count", "10" * 40], "--node-count"),
    (RUN + ["--concurrency", "-1"], "concurrency"),
    (RUN + ["--concurrency", "100000000000"], "concurrency"),
    (["run", "queue", "--seed", "-1", *TINY], "'-1'"),
    (["run", "queue", "--seed", str(2**64), *TINY], str(2**64)),
    (["run", "queue", "--seed", "1_000", *TINY], "'1_000'"),
    (["run", "queue", "--seed", "\u0663", *TINY], "--seed"),
    (["run", "queue", "--seed", "", *TINY], "--seed"),
    (RUN + ["--set", "servers=nan"], "'nan'"),
    (RUN + ["--set", "servers=1e400"], "'1e400'"),
    (RUN + ["--set", "service_ms=inf"], "'inf'"),
    (RUN + ["--set", "servers="], "servers"),
    (RUN + ["--set", "=1"], "'=1'"),
    (RUN + ["--set", "service_ms=1e300"], "'1e300'"),
    (["run", "twopc", "--seed", "1", *TINY, "--set", "transfer_legs=5"], "transfer_legs"),
    (["run", "twopc", *TINY, "--set", "transfer_legs=5"], "transfer_legs"),  # no seed: no "using seed" line either
    (["run", "raft", "--seed", "1", *TINY, "--set", "election_timeout_max_ms=1"], "election timeout"),
    (["run", "raft", "--seed", "1", *TINY, "--set", "link_latency_ms=1e300"], "link_latency_ms"),
    (["sweep", "twopc", "--seeds", "1-2", *TINY, "--grid", "transfer_legs=2,5"], "transfer_legs"),
    (RUN + ["--nemesis", "crash", "--nemesis-interval", "0.001", "--time-limit", "10000"], "nemesis_interval_s"),
    (RUN + ["--rate", "1e6", "--rate-profile", "burst:1:0.5:100"], "'burst:1:0.5:100'"),
    (RUN + ["--rate-profile", "ramp:nan-5"], "'ramp:nan-5'"),
    (RUN + ["--rate-profile", "burst:inf:1:2"], "'burst:inf:1:2'"),
    (RUN + ["--rate-profile", "burst:1:1:1e300"], "'burst:1:1:1e300'"),
    (RUN + ["--rate-profile", "ramp:1-1e300"], "'ramp:1-1e300'"),
    (RUN + ["--topology", "regions:2:nan"], "'regions:2:nan'"),
    (RUN + ["--topology", "regions:1000000"], "'regions:1000000'"),
    (RUN + ["--topology", "leaf-spine:99999999"], "'leaf-spine:99999999'"),
    (RUN + ["--latency-dist", "bogus"], "'bogus'"),
    (RUN + ["--bug", ""], "''"),
    (["run", "queue", "--seed", "1", "--nemesis"], "--nemesis"),
    (["run"], None),
    (["sweep", "queue", "--seeds", "1,,2", *TINY], "'1,,2'"),
    (["sweep", "queue", "--seeds", ",", *TINY], "','"),
    (["sweep", "queue", "--seeds", "", *TINY], "--seeds"),
    (["sweep", "queue", "--seeds", "1-", *TINY], "'1-'"),
    (["sweep", "queue", "--seeds", "-3", *TINY], "'-3'"),
    (["sweep", "queue", "--seeds", "1-1000000000000", *TINY], "'1-1000000000000'"),
    (["sweep", "queue", "--seeds", str(2**64), *TINY], str(2**64)),
    (["sweep", "queue", "--seeds", "\u0663", *TINY], "--seeds"),
    (SWEEP + ["--grid", "servers=1,,2"], "'servers=1,,2'"),
    (SWEEP + ["--grid", "servers=1,"], "'servers=1,'"),
    (SWEEP + ["--grid", "servers"], "'servers'"),
    (SWEEP + ["--grid", "servers="], "'servers='"),
    (SWEEP + ["--grid", "=1"], "'=1'"),
    (SWEEP + ["--grid", "nosuch=1"], "'nosuch'"),
    (SWEEP + ["--grid", "rate=nan"], "'nan'"),
    (SWEEP + ["--grid", "rate=1_0"], "'1_0'"),
    (SWEEP + ["--grid", "nemesis=crash++pause"], "nemesis"),
    (SWEEP + ["--grid", "servers=1", "--grid", "servers=2"], "'servers=2'"),
    (SWEEP + ["--grid", "service_ms=1." + "1" * 300], "--grid"),
    (SWEEP + ["--jobs", "0"], "'0'"),
    (SWEEP + ["--jobs", "-1"], "'-1'"),
    (SWEEP + ["--jobs", "100000"], "'100000'"),
    (SWEEP + ["--jobs", "\u0663"], "--jobs"),
    (SWEEP + ["--jobs", "1.5"], "'1.5'"),
    (SWEEP + ["--nemesis", "crash,,"], "'crash,,'"),
    (SWEEP + ["--rate", "nan"], "'nan'"),
    (["sweep", "nosuch", "--seeds", "1"], "'nosuch'"),
]


@pytest.mark.parametrize("args, needle", BAD_COMMAND_LINES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_COMMAND_LINES])
def test_bad_command_line_is_refused_in_one_line(here, capsys, args, needle):
    """Each bad command line exits 2 with one `dsim: error:` line naming the bad value, and writes nothing."""
    out = ["--out", here / "out"] if len(args) > 2 else []
    code, _, err = dsim_in(capsys, *args[:2], *out, *args[2:])
    assert_refused(code, err, needle)
    assert listing(here) == set()


def test_out_naming_an_existing_file_or_unmakeable_folder_is_refused(here, capsys):
    """`--out` that is a file, lies under a file, is empty, or is a non-empty folder is refused for run and sweep."""
    afile = here / "afile"
    afile.write_text("keep me")
    full = here / "full"
    full.mkdir()
    (full / "x").write_text("x")
    before = listing(here)
    for cmd in (RUN, SWEEP):
        for out in (afile, afile / "sub", "", full):
            code, _, err = dsim_in(capsys, *cmd, "--out", out)
            assert_refused(code, err, "--out")
    assert listing(here) == before and afile.read_text() == "keep me"


# ---- TOML files ---------------------------------------------------------------------------------

BAD_TOML = [
    ('rate = "5"', "rate"),
    ("rate = nan", "rate"),
    ("rate = -1", "rate"),
    ("time_limit_s = inf", "time_limit_s"),
    ("time_limit_s = true", "time_limit_s"),
    ("node_count = 3.0", "node_count"),
    ("node_count = true", "node_count"),
    ("concurrency = 0", "concurrency"),
    ("latency_ms = [1, 2]", "latency_ms"),
    ("op_timeout_ms = {a = 1}", "op_timeout_ms"),
    ("nemesis = 5", "nemesis"),
    ('nemesis = ["crash", ""]', "nemesis"),
    ('nemesis = "crash,,"', "nemesis"),
    ("nemesis = [1, 2]", "nemesis"),
    ('nemesis = {crash = true}', "nemesis"),
    ("latency_dist = 3", "latency_dist"),
    ("topology = 3", "topology"),
    ("rate_profile = 3", "rate_profile"),
    ("quiesce_s = -1", "quiesce_s"),
    ("final_timeout_s = nan", "final_timeout_s"),
    ("no_such_key = 1", "'no_such_key'"),
    ("params = 5", "params"),
    ("params = [1]", "params"),
    ("[params]\nservers = nan", "servers"),
    ('[params]\nservers = "many"', "servers"),
    ("[params]\nservers = [1]", "servers"),
    ("[params]\nservers = {a = 1}", "servers"),
    ("[params]\nservers = true", "servers"),
    ("[params]\nservice_ms = inf", "service_ms"),
    ("[params]\nnosuch = 1", "'nosuch'"),
    ("faults = 5", "faults"),
    ("faults = [1]", "fault"),
    ('[[faults]]\naction = "heal"\nat_s = nan', "fault"),
    ('[[faults]]\naction = "heal"\nat_s = inf', "fault"),
    ('[[faults]]\naction = "heal"\nat_s = "1"', "fault"),
    ('[[faults]]\naction = "nope"\nat_s = 1', "'nope'"),
    ("seed = -1", "seed"),
    ('seed = "7"', "seed"),
    ("seed = true", "seed"),
    ("seed = 1.5", "seed"),
    (f"seed = {2**63}", "seed"),
    ("bug = 5", "bug"),
    ('bug = "nope"', "'nope'"),
    ('scenario = "raft"', "scenario"),
    ('[[faults]]\naction = "crash"\nat_s = 0.1\nnode = 5', "node"),
    ('[[faults]]\naction = "partition"\nat_s = 0.1\ngroups = "abc"', "groups"),
    ('[[faults]]\naction = "slow"\nat_s = 0.1\nfactor = "x"', "factor"),
    ('[[faults]]\naction = "set_loss"\nat_s = 0.1\np = 7', "for p"),
    ('[[faults]]\naction = "flaky"\nat_s = 0.1\npairs = [[1, 2]]\np = 0.5', "pairs"),
    ('[[faults]]\naction = "clock_strobe"\nat_s = 0.1\nnode = "n1"\ndelta_ms = 1\nperiod_ms = 0\nduration_ms = 5',
     "period_ms"),
    ('[[faults]]\naction = "heal"\nat_ns = 1.5', "fault"),
    ('[[faults]]\naction = "crash"\nat_s = 0.1\nnode = "n99"', "'n99'"),
    ('[[faults]]\naction = "partition"\nat_s = 0.1\ngroups = [["n1"], ["nope"]]', "'nope'"),
    ("rate = [1,\n", "--config"),
    ("= 1", "--config"),
]


@pytest.mark.parametrize("text, needle", BAD_TOML, ids=[t.replace("\n", " ") for t, _ in BAD_TOML])
def test_bad_toml_is_refused_by_run_and_sweep(here, capsys, text, needle):
    """A TOML file with a bad value, key or syntax exits 2 in one line for run and sweep, and writes nothing."""
    cfg = here / "exp.toml"
    cfg.write_text(text + "\n")
    for cmd in (["run", "queue", *TINY, "--no-plots"], ["sweep", "queue", "--seeds", "1", *TINY]):
        code, _, err = dsim_in(capsys, *cmd, "--config", cfg, "--out", here / "out")
        assert_refused(code, err, needle)
    assert listing(here) == {"exp.toml"}


def test_unreadable_toml_files_are_refused(here, capsys):
    """A --config that is missing, a folder, not UTF-8, or binary exits 2 in one line naming it."""
    (here / "adir").mkdir()
    (here / "latin1.toml").write_bytes(b'bug = "caf\xe9"\n')
    (here / "binary.toml").write_bytes(bytes(range(256)))
    before = listing(here)
    for name in ("missing.toml", "adir", "latin1.toml", "binary.toml"):
        code, _, err = dsim_in(capsys, *RUN, "--config", here / name, "--out", here / "out")
        assert_refused(code, err, name)
    assert listing(here) == before


# ---- run folders --------------------------------------------------------------------------------

def _manifest_edit(edit):
    def apply(folder: Path) -> None:
        man = json.loads((folder / "manifest.json").read_text())
        edit(man)
        (folder / "manifest.json").write_text(json.dumps(man))
    return apply


def _write(name: str, text: str):
    def apply(folder: Path) -> None:
        (folder / name).write_text(text)
    return apply


def _history_edit(edit):
    def apply(folder: Path) -> None:
        lines = (folder / "history.jsonl").read_text().splitlines(keepends=True)
        (folder / "history.jsonl").write_text("".join(edit(lines)))
    return apply


def _remove(name: str):
    return lambda folder: (folder / name).unlink()


def _set_config(key, value):
    return _manifest_edit(lambda m: m["config"].__setitem__(key, value))


BAD_FOLDERS = {
    "manifest not json": _write("manifest.json", "{not json"),
    "manifest empty": _write("manifest.json", ""),
    "manifest truncated": lambda f: (f / "manifest.json").write_text((f / "manifest.json").read_text()[:40]),
    "manifest a list": _write("manifest.json", "[1, 2]"),
    "manifest a string": _write("manifest.json", '"hello"'),
    "manifest null": _write("manifest.json", "null"),
    "manifest deep": _write("manifest.json", "[" * 100000 + "]" * 100000),
    "manifest missing": _remove("manifest.json"),
    "manifest a folder": lambda f: ((f / "manifest.json").unlink(), (f / "manifest.json").mkdir()),
    "manifest not utf8": lambda f: (f / "manifest.json").write_bytes(b'{"scenario": "\xff"}'),
    "no config": _manifest_edit(lambda m: m.pop("config")),
    "no seed": _manifest_edit(lambda m: m.pop("seed")),
    "no scenario": _manifest_edit(lambda m: m.pop("scenario")),
    "seed a string": _manifest_edit(lambda m: m.__setitem__("seed", "2")),
    "seed negative": _manifest_edit(lambda m: m.__setitem__("seed", -2)),
    "config a list": _manifest_edit(lambda m: m.__setitem__("config", [])),
    "scenario a number": _manifest_edit(lambda m: m.__setitem__("scenario", 5)),
    "digest a number": _manifest_edit(lambda m: m.__setitem__("digest", 5)),
    "end_time_s infinite": _manifest_edit(lambda m: m.__setitem__("end_time_s", float("inf"))),
    "config.nemesis numbers": _set_config("nemesis", [1]),
    "metrics not json": _write("metrics.json", "{not json"),
    "metrics a list": _write("metrics.json", "[]"),
    "metrics ops a number": _write("metrics.json", '{"ops": 5}'),
    "metrics latency a list": _write("metrics.json", '{"latency_ms": [1]}'),
    "metrics checks strings": _write("metrics.json", '{"checks": {"a": "b"}}'),
    "metrics recovery strings": _write("metrics.json", '{"recovery": ["x"]}'),
    "metrics recovery no number": _write("metrics.json", '{"recovery": [{"recovery_s": "x"}]}'),
}

HISTORY_DAMAGE = {
    "history corrupt line": _history_edit(lambda ls: ls[:1] + ["{oops\n"] + ls[1:]),
    "history truncated last line": _history_edit(lambda ls: ls[:-1] + [ls[-1][: len(ls[-1]) // 2]]),
    "history line a list": _history_edit(lambda ls: ls + ["[1, 2]\n"]),
    "history line a number": _history_edit(lambda ls: ls + ["7\n"]),
    "history line missing keys": _history_edit(lambda ls: ls + ['{"type": "ok"}\n']),
    "history bad type": _history_edit(lambda ls: ls + [ls[0].replace('"invoke"', '"weird"')]),
    "history time a string": _history_edit(lambda ls: ls + [ls[0].replace('"time":', '"time":"x","was":')]),
    "history not utf8": lambda f: (f / "history.jsonl").write_bytes(b"\xff\xfe\n"),
    "history deep value": _history_edit(
        lambda ls: ls + ['{"index":0,"time":0,"type":"ok","process":0,"f":"x","value":' + "[" * 100000 + "]" * 100000 + "}\n"]),
}

REPLAY_ONLY = {
    "config time a string": _set_config("time_limit_s", "5"),
    "config rate nan": _set_config("rate", float("nan")),
    "config node_count zero": _set_config("node_count", 0),
    "config unknown scenario": _set_config("scenario", "nosuch"),
    "config params a list": _set_config("params", [1]),
    "config bad param": _set_config("params", {"servers": "many"}),
    "config faults a number": _set_config("faults", 5),
    "config bug unknown": _set_config("bug", "nope"),
    "config seed missing": _manifest_edit(lambda m: m["config"].pop("seed")),
    "config rate null": _set_config("rate", None),
    "no digest": _manifest_edit(lambda m: m.pop("digest")),
}


def _damaged(good_run: Path, here: Path, damage) -> Path:
    folder = here / "run"
    shutil.copytree(good_run, folder)
    damage(folder)
    return folder


def _commands(folder: Path, here: Path) -> list[list]:
    return [["replay", folder], ["show", folder], ["compare", folder, folder, "--out", here / "c.png"],
            ["export", folder, "--out", here / "h.edn"]]


@pytest.mark.parametrize("damage", list(BAD_FOLDERS), ids=list(BAD_FOLDERS))
def test_damaged_run_folder_is_refused_by_every_reader(good_run, here, capsys, damage):
    """replay, show, compare and export refuse a run folder with a damaged manifest or metrics in one line, exit 2."""
    folder = _damaged(good_run, here, BAD_FOLDERS[damage])
    before = listing(here)
    for args in _commands(folder, here):
        code, _, err = dsim_in(capsys, *args)
        # compare also takes sweep and hunt folders, so a folder with no manifest is none of the three to it
        no_kind = args[0] == "compare" and not (folder / "manifest.json").exists()
        assert_refused(code, err, "for compare: it has no manifest.json, sweep.json or hunt.json" if no_kind else "RUN_DIR")
    assert listing(here) == before


@pytest.mark.parametrize("damage", list(HISTORY_DAMAGE), ids=list(HISTORY_DAMAGE))
def test_damaged_history_is_refused_by_compare_and_export(good_run, here, capsys, damage):
    """compare and export refuse a history.jsonl with a corrupt, truncated or non-operation line, exit 2, nothing written."""
    folder = _damaged(good_run, here, HISTORY_DAMAGE[damage])
    before = listing(here)
    for args in _commands(folder, here)[2:]:
        code, _, err = dsim_in(capsys, *args)
        assert_refused(code, err, "history.jsonl")
    assert listing(here) == before


@pytest.mark.parametrize("damage", list(REPLAY_ONLY), ids=list(REPLAY_ONLY))
def test_replay_refuses_a_bad_recorded_config(good_run, here, capsys, damage):
    """replay refuses a manifest whose recorded config would not pass as a command line, in one line, exit 2."""
    folder = _damaged(good_run, here, REPLAY_ONLY[damage])
    code, _, err = dsim_in(capsys, "replay", folder)
    assert_refused(code, err, "RUN_DIR")


def test_missing_empty_and_file_run_folders_are_refused(here, capsys):
    """A RUN_DIR that is missing, an empty folder, or a file is refused by every reader in one line."""
    (here / "empty").mkdir()
    (here / "afile").write_text("x")
    before = listing(here)
    for name in ("missing", "empty", "afile", ""):
        for args in _commands(here / name if name else "", here):
            code, _, err = dsim_in(capsys, *args)
            assert_refused(code, err)
    assert listing(here) == before


def test_bad_output_paths_of_compare_and_export(good_run, here, capsys):
    """compare/export --out into a missing folder, onto a folder or a pipe, or (compare) with an unknown suffix is refused."""
    folder = _damaged(good_run, here, lambda f: None)
    (here / "adir").mkdir()
    os.mkfifo(here / "fifo.png")
    before = listing(here)
    for out in (here / "nowhere" / "x.png", here / "adir", here / "x.xyz", here / "noext", "", here / "fifo.png"):
        code, _, err = dsim_in(capsys, "compare", folder, "--out", out)
        assert_refused(code, err, "--out")
    for out in (here / "nowhere" / "h.edn", here / "adir", "", folder / "history.jsonl", folder / "manifest.json",
                here / "fifo.png"):
        code, _, err = dsim_in(capsys, "export", folder, "--out", out)
        assert_refused(code, err, "--out")
    assert listing(here) == before


def test_readers_accept_the_good_folder(good_run, here, capsys):
    """The undamaged copy passes every reader (so the refusals above are about the damage)."""
    folder = _damaged(good_run, here, lambda f: None)
    for args in _commands(folder, here):
        code, _, err = dsim_in(capsys, *args)
        assert code == 0, err


# ---- real subprocesses ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["run", "queue", "--nemesis", "crash,,", "--seed", "1"],
    ["run", "queue", "--seed", "1", "--rate", "nan"],
    ["sweep", "queue", "--seeds", "1,,2"],
])
def test_console_script_refuses_in_one_line(tmp_path, args):
    """The installed `dsim` refuses bad input with exit 2, one line, and no results/ folder in its working folder."""
    res = dsim_proc(*args, cwd=tmp_path)
    assert_refused(res.returncode, res.stderr)
    assert list(tmp_path.iterdir()) == []


def test_console_script_refuses_corrupt_manifest(tmp_path):
    """`dsim replay DIR` on a manifest reading `{not json` exits 2 in one line, as a real process."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text("{not json")
    res = dsim_proc("replay", tmp_path / "r", cwd=tmp_path)
    assert_refused(res.returncode, res.stderr, "manifest.json")


def _wait_for(path: Path, proc: subprocess.Popen, limit_s: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit_s, "the run never wrote its manifest"
        time.sleep(0.05)


def _signalled(tmp_path, args: list, ready: list[Path], sig, settle_s: float, times: int = 1) -> tuple[int, str]:
    """Start the real `dsim ARGS`, wait until every path in ``ready`` exists and ``settle_s`` more, send ``sig``
    (``times`` times, 5 ms apart, as `timeout` and a terminal's process group do): (exit status, stderr)."""
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    proc = subprocess.Popen([*cmd, *map(str, args)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for path in ready:
            _wait_for(path, proc)
        time.sleep(settle_s)
        for _ in range(times):
            if proc.poll() is None:
                proc.send_signal(sig)
                time.sleep(0.005)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("sig, times", [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 40)])
def test_signal_leaves_the_run_folder_marked_incomplete(tmp_path, sig, times):
    """A long `dsim run` sent SIGTERM or SIGINT (once, or a burst: more signals while it saves must not end it
    with 143) exits 3 and leaves its folder with the manifest marked incomplete."""
    out = tmp_path / "r"
    code, err = _signalled(tmp_path, ["run", "queue", "--time-limit", "100000", "--seed", "1", "--out", out,
                                      "--no-plots"], [out / "manifest.json"], sig, 0.3, times)  # into the simulation
    assert code == 3, err
    assert "Traceback" not in err and "incomplete" in err
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and man["error"] == "interrupted"


def test_sigterm_stops_a_parallel_sweep_and_marks_runs_incomplete(tmp_path):
    """A `dsim sweep --jobs 2` sent SIGTERM exits 3 without a traceback; runs in progress are marked incomplete."""
    out = tmp_path / "s"
    code, err = _signalled(tmp_path, ["sweep", "queue", "--seeds", "1-4", "--jobs", "2", "--time-limit", "100000",
                                      "--out", out],
                           [out / "runs" / "run-s1" / "manifest.json", out / "runs" / "run-s2" / "manifest.json"],
                           signal.SIGTERM, 0.3)
    assert code == 3, err
    assert "Traceback" not in err
    for run in (out / "runs").iterdir():
        assert json.loads((run / "manifest.json").read_text())["status"] == "incomplete"
    about = json.loads((out / "sweep.json").read_text())
    assert about["status"] == "incomplete" and about["error"] == "interrupted"


def test_sigterm_marks_a_hunt_folder_incomplete(tmp_path):
    """A `dsim hunt` sent SIGTERM exits 3 without a traceback, and its hunt.json says incomplete, not running."""
    out = tmp_path / "h"
    code, err = _signalled(tmp_path, ["hunt", "queue", "--budget", "100000", "--seed", "1", "--out", out],
                           [out / "hunt.json"], signal.SIGTERM, 1.0)  # into the runs
    assert code == 3, err
    assert "Traceback" not in err and "incomplete" in err
    about = json.loads((out / "hunt.json").read_text())
    assert about["status"] == "incomplete" and about["error"] == "interrupted"
    rows = (out / "hunt.csv").read_text().splitlines()  # the runs finished before the signal
    assert rows[0].startswith("run,") and len(rows) > 1 and f"{len(rows) - 1} runs in" in err


def test_a_crashing_hunt_marks_its_folder_incomplete_with_the_error(here, capsys, monkeypatch):
    """A hunt whose search raises exits 3 without a traceback, and hunt.json says incomplete, naming the error."""
    from simulator.pipeline import hunt as H

    def boom(*args, **kwargs):
        raise RuntimeError("planted crash")

    monkeypatch.setattr(H, "run_hunt", boom)
    code, out, err = dsim_in(capsys, "hunt", "queue", "--budget", "2", "--seed", "1", "--out", here / "h")
    assert code == 3 and "Traceback" not in err + out, err
    about = json.loads((here / "h" / "hunt.json").read_text())
    assert about["status"] == "incomplete" and about["error"] == "RuntimeError: planted crash"


def test_crash_in_a_design_during_a_sweep_leaves_error_txt(here, capsys, monkeypatch):
    """A handler that raises inside a sweep run leaves that run's error.txt and exits 3 without a traceback."""
    from scenarios.queue import scenario as q

    def boom(self, ctx, src, msg):
        raise RuntimeError("planted crash")

    monkeypatch.setattr(q.Server, "on_message", boom)
    code, out, err = dsim_in(capsys, "sweep", "queue", "--seeds", "1-2", *TINY, "--out", here / "s")
    assert code == 3 and "Traceback" not in err + out, err
    for seed in (1, 2):
        run = here / "s" / "runs" / f"run-s{seed}"
        assert "planted crash" in (run / "error.txt").read_text()
        assert json.loads((run / "manifest.json").read_text())["status"] == "incomplete"


# ---- fuzzing --------------------------------------------------------------------------------------

WEIRD = ["", " ", ",", ",,", "crash,,", ",crash", "crash,,pause", "nan", "-nan", "inf", "-inf", "1e400", "-1e400",
         "1e-400", "0", "-0", "-1", "1", "2", "0.5", "3.7", "1_0", "\u0663", "\uff11", "0x1f", "1e3", str(2**64),
         str(2**63), "9" * 50, "\u00e9t\u00e9", "\U0001f600", "\x00", "a=b", "k=1,,2", "servers=1,2", "servers=",
         "servers", "=1", "rate=nan", "nemesis=crash+pause", "1-3", "3-1", "1-", "-", "ramp:1-5", "ramp:nan-1",
         "burst:1:0.5:2", "regions:2", "regions:2:nan", "leaf-spine:2", "graph:nope.graphml", "lan", "constant",
         "crash", "pause", "partition-random-halves", "exponential", "pareto", "double-serve", "--seed", "--rate"]
OPTIONS = ["--seed", "--rate", "--rate-profile", "--concurrency", "--node-count", "--latency", "--latency-dist",
           "--topology", "--nemesis", "--nemesis-interval", "--op-timeout", "--set", "--bug", "--trace", "--time-limit"]
SWEEP_ONLY = ["--seeds", "--grid", "--jobs"]
small_numbers = st.one_of(st.integers(-3, 40).map(str), st.floats(-5, 60, allow_nan=False).map(repr))
values = st.one_of(st.sampled_from(WEIRD), st.text(max_size=12), small_numbers)


GOOD = {"--seed": ["1", "7"], "--rate": ["20", "50.5"], "--rate-profile": ["constant", "ramp:1-50", "burst:0.1:0.05:2"],
        "--concurrency": ["1", "3"], "--node-count": ["1", "3"], "--latency": ["0", "1.5"],
        "--latency-dist": ["constant", "pareto", "uniform"], "--topology": ["lan", "regions:2", "leaf-spine:2"],
        "--nemesis": ["crash", "pause,crash", "slow-link"], "--nemesis-interval": ["0.05", "1"],
        "--op-timeout": ["5", "1000"], "--set": ["servers=2", "service_ms=5"], "--bug": ["double-serve", "lose-requests"],
        "--trace": [], "--time-limit": ["0.1"], "--grid": ["servers=1,2", "rate=10,20", "nemesis=crash+pause,pause"],
        "--jobs": ["1"], "--seeds": ["1", "1-2"]}


def _pair(name):
    if name == "--trace":
        return st.just([name])
    return st.one_of(st.sampled_from(GOOD[name]), values).map(lambda v: [name, v])


def _options(names):
    """Mostly well-formed options with a weird value here and there, so valid runs get fuzzed too."""
    return st.lists(st.sampled_from(names).flatmap(_pair), max_size=4).map(lambda pairs: [x for p in pairs for x in p])


TOML_KEYS = ["rate", "time_limit_s", "node_count", "concurrency", "latency_ms", "latency_dist", "nemesis",
             "nemesis_interval_s", "op_timeout_ms", "quiesce_s", "final_timeout_s", "topology", "rate_profile", "seed",
             "bug", "scenario", "params", "faults", "servers", "nosuch", "\u00e9"]
TOML_VALUES = ["nan", "inf", "-inf", "0", "-1", "1", "2", "0.5", "true", '"5"', '""', '"crash,,"', '["crash", ""]',
               '["crash"]', "[]", "[1]", "{a = 1}", "{servers = 2}", "{servers = nan}", '"queue"', '"raft"',
               f"{2**63}", "1979-05-27", '"lan"', '"ramp:1-5"', '[{at_s = 1, action = "heal"}]',
               '[{at_s = nan, action = "heal"}]', "[[1]]"]
toml_docs = st.one_of(
    st.lists(st.tuples(st.sampled_from(TOML_KEYS), st.one_of(st.sampled_from(TOML_VALUES), st.text(max_size=8))),
             max_size=4).map(lambda kv: "\n".join(f"{k} = {v}" for k, v in kv)),
    st.text(max_size=60),
)


def _fuzz(capsys, tmp_path, args, toml: str | None) -> None:
    work = tmp_path / f"w{time.monotonic_ns()}"
    work.mkdir()
    extra = []
    if toml is not None:
        (work / "f.toml").write_text(toml, encoding="utf-8", errors="surrogatepass")
        extra = ["--config", work / "f.toml"]
    old = os.getcwd()
    os.chdir(work)
    try:  # the last --time-limit wins: every valid draw stays tiny
        code, out, err = dsim_in(capsys, *args, *extra, "--time-limit", "0.2")
    finally:
        os.chdir(old)
    event(f"exit {code}")
    assert code in (0, 1, 2, 3), (args, code, err)
    assert "Traceback" not in err + out and "internal error" not in err, (args, err)
    if code == 2:
        assert_refused(code, err)
        assert sorted(p.name for p in work.iterdir()) == (["f.toml"] if toml is not None else []), args


FUZZ = settings(max_examples=int(os.environ.get("DSIM_FUZZ_EXAMPLES", "70")), deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(opts=_options(OPTIONS), toml=st.one_of(st.none(), toml_docs))
def test_fuzzed_run_options_never_traceback(capsys, tmp_path, opts, toml):
    """Random option strings and TOML documents given to `dsim run` end in status 0-3, never a traceback."""
    _fuzz(capsys, tmp_path, ["run", "queue", *opts, "--no-plots"], toml)


@FUZZ
@given(opts=_options(OPTIONS[1:] + SWEEP_ONLY), toml=st.one_of(st.none(), toml_docs),
       seeds=st.one_of(st.sampled_from(["1", "1,,2", "", ",", "2-1", "1-", "x", "\u0663", str(2**64), "1 - 2"]),
                       st.text(max_size=6).filter(lambda s: "-" not in s and "," not in s)))
def test_fuzzed_sweep_options_never_traceback(capsys, tmp_path, opts, toml, seeds):
    """Random options, seeds, grids and TOML documents given to `dsim sweep` end in status 0-3, never a traceback."""
    # a valid --jobs above 1 only costs forks; a valid --seeds list is at most a few runs
    opts = [("1" if prev == "--jobs" and x.strip().isdigit() else x) for prev, x in zip([""] + opts, opts)]
    _fuzz(capsys, tmp_path, ["sweep", "queue", "--seeds", seeds, *opts], toml)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
MANIFEST_KEYS = ["scenario", "seed", "config", "digest", "status", "bug", "end_time_s", "wall_seconds", "versions"]
CONFIG_KEYS = ["scenario", "seed", "time_limit_s", "rate", "nemesis", "params", "faults", "bug", "trace", "topology",
               "concurrency", "node_count", "latency_ms", "op_timeout_ms"]
METRICS_KEYS = ["ops", "latency_ms", "checks", "figures", "recovery", "valid", "throughput_ops_s", "availability"]


@FUZZ
@given(man=st.dictionaries(st.sampled_from(MANIFEST_KEYS), json_values, max_size=2),
       cfg=st.dictionaries(st.sampled_from(CONFIG_KEYS), json_values, max_size=2),
       met=st.dictionaries(st.sampled_from(METRICS_KEYS), json_values, max_size=2),
       line=st.one_of(st.none(), json_values.map(json.dumps), st.text(max_size=20)))
def test_fuzzed_run_folders_never_traceback(good_run, capsys, tmp_path, man, cfg, met, line):
    """Run folders with random values in manifest, config, metrics and history give status 0-3, never a traceback."""
    folder = tmp_path / f"r{time.monotonic_ns()}"
    shutil.copytree(good_run, folder)
    m = json.loads((folder / "manifest.json").read_text())
    m.update(man)
    if isinstance(m.get("config"), dict):
        m["config"].update(cfg)
        m["config"]["time_limit_s"] = 0.2 if "time_limit_s" not in cfg else m["config"]["time_limit_s"]
    (folder / "manifest.json").write_text(json.dumps(m))
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.update(met)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if line is not None:
        with open(folder / "history.jsonl", "a", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(line + "\n")
    for args in (["show", folder], ["compare", folder, "--out", tmp_path / "c.png"], ["export", folder, "--out", tmp_path / "h.edn"],
                 ["replay", folder]):
        code, out, err = dsim_in(capsys, *args)
        assert code in (0, 1, 2, 3), (args, code, err)
        assert "Traceback" not in err + out and "internal error" not in err, (args, err)
