"""Bad arguments to the repository's own scripts (a design's tools under scenarios/, benchmarks/):
one line on stderr naming the bad value, exit status 2, no traceback, nothing printed or written
before it. Each script's ``main(argv)`` runs in-process (a benchmark loaded from its file), in an
empty working folder that must stay empty; benchmarks/kit.py registers a design when imported, so
it runs in a subprocess."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from simulator import UsageError
from simulator import scriptargs as A

ROOT = Path(__file__).resolve().parent.parent
SEED = "expected an integer from 0 to 9223372036854775807"


@cache
def bench(name: str):
    """benchmarks/NAME.py as a module (not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script(name: str):
    if name.startswith("benchmarks/"):
        return bench(name.removeprefix("benchmarks/")).main
    module = {"memory": "scenarios.kademlia.memory", "scaling": "scenarios.kademlia.scaling",
              "figure16": "scenarios.raft.figure16", "replay": "scenarios.cache.replay"}[name]
    return importlib.import_module(module).main


def call(capsys, name: str, *args) -> tuple[int, str, str]:
    """Run ``main([ARGS])`` of script ``name``; return (exit status, stdout, stderr)."""
    try:
        code = script(name)([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, out: str, err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and ": error: " in lines[0], err
    assert needle in lines[0], err
    assert out == "", out  # refused before any output


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working folder (a default results folder or figure would show), and inputs beside it."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "folder").mkdir()
    (inputs / "binary.csv").write_bytes(b"\x00\xff\xfe\x01 not text \x9c")
    (inputs / "empty.bin").write_bytes(b"")
    (inputs / "no-columns.csv").write_text("a,b\n1,2\n")
    (inputs / "bad-numbers.csv").write_text("election_timeout_range,election_ms\n150-155,abc\n")
    (inputs / "other-ranges.csv").write_text("election_timeout_range,election_ms\n1-2,5\n")
    (inputs / "sets-only.csv").write_text("time,key,size,op\n0,a,1,set\n1,a,1,delete\n")
    (inputs / "a-file").write_text("x")
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    yield inputs
    assert not any(here.iterdir()), sorted(p.name for p in here.iterdir())


CASES = [
    # scenarios/kademlia/memory.py
    ("memory", ["--nodes", "abc"], "bad value 'abc' for --nodes"),
    ("memory", ["--nodes", "1.5"], "bad value '1.5' for --nodes"),
    ("memory", ["--nodes", ""], "bad value '' for --nodes"),
    ("memory", ["--nodes", "1"], "bad value 1 for --nodes"),
    ("memory", ["--seed", "abc"], "bad value 'abc' for --seed: " + SEED),
    ("memory", ["--seed", "-1"], "bad value '-1' for --seed: " + SEED),
    ("memory", ["--seed", "99999999999999999999999"], "bad value '99999999999999999999999' for --seed"),
    ("memory", ["--tables", "foo"], "bad value 'foo' for --tables: expected one of joins, oracle"),
    ("memory", ["--bogus"], "bad value '--bogus'"),
    ("memory", ["--settle-s", "nan"], "bad value 'nan' for --settle-s"),
    ("memory", ["--settle-s", "inf"], "bad value 'inf' for --settle-s"),
    ("memory", ["--settle-s", "-1"], "bad value '-1' for --settle-s"),
    ("memory", ["--every-s", "-1"], "bad value '-1' for --every-s"),
    ("memory", ["--every-s", "nan"], "bad value 'nan' for --every-s"),
    # scenarios/kademlia/scaling.py
    ("scaling", ["--sizes", "100000000"], "bad value '100000000' for --sizes"),
    ("scaling", ["--sizes", "50,,60"], "bad value '50,,60' for --sizes"),
    ("scaling", ["--sizes", "60,50"], "bad value '60,50' for --sizes: expected increasing integers"),
    ("scaling", ["--seed", "-1"], "bad value '-1' for --seed"),
    ("scaling", ["--lookup-s", "nan"], "bad value 'nan' for --lookup-s"),
    ("scaling", ["--lookup-s", "inf"], "bad value 'inf' for --lookup-s"),
    ("scaling", ["--lookup-s", "0"], "bad value '0' for --lookup-s: expected a finite number above 0"),
    ("scaling", ["--lookup-s", "-1"], "bad value '-1' for --lookup-s"),
    ("scaling", ["--out", "/nonexistent/x.png"], "no folder '/nonexistent'"),
    ("scaling", ["--out", "x.txt"], "bad value 'x.txt' for --out: expected a file name ending .png, .pdf, .svg"),
    ("scaling", ["--out", "{in}/folder"], "it is a folder"),
    ("scaling", ["--out", ""], "bad value '' for --out: expected a file path"),
    # scenarios/raft/figure16.py
    ("figure16", ["--runs", "/nonexistent.csv"], "bad value '/nonexistent.csv' for --runs: no such file"),
    ("figure16", ["--runs", "{in}/binary.csv"], "for --runs: cannot read it as CSV (not UTF-8 text)"),
    ("figure16", ["--runs", "{in}/folder"], "for --runs: not a regular file"),
    ("figure16", ["--runs", "{in}/no-columns.csv"], "for --runs: no election_timeout_range and election_ms columns"),
    ("figure16", ["--runs", "{in}/bad-numbers.csv"], "for --runs: no election_timeout_range and election_ms columns"),
    ("figure16", ["--runs", "{in}/other-ranges.csv"], "for --runs: no trials of the ranges"),
    ("figure16", ["--trials", "1", "--cluster", "foo"], "bad value 'foo' for --cluster"),
    ("figure16", ["--trials", "1", "--set", "zz=1"], "unknown parameter 'zz' for raft"),
    ("figure16", ["--trials", "1", "--set", "vote_request_delay_ms=abc"], "bad value 'abc' for vote_request_delay_ms"),
    ("figure16", ["--set", "=1"], "bad value '=1' for --set: expected KEY=VALUE"),
    ("figure16", ["--trials", "0"], "bad value '0' for --trials"),
    ("figure16", ["--trials", "100000"], "bad value '100000' for --trials: expected an integer from 1 to 10,000"),
    ("figure16", ["--jobs", "0"], "bad value '0' for --jobs"),
    ("figure16", ["--trials", "1", "--out", "{in}/a-file"], "for --out: it exists and is not a folder"),
    ("figure16", ["--trials", "1", "--out", ""], "bad value '' for --out"),
    # scenarios/cache/replay.py
    ("replay", ["--sizes", "5-1", "--requests", "10"], "bad value '5-1' for --sizes"),
    ("replay", ["--sizes", "0", "--requests", "10"], "bad value '0' for --sizes"),
    ("replay", ["{in}/empty.bin", "--format", "oracleGeneral"], "for TRACE: expected a trace with at least one request"),
    ("replay", ["{in}/sets-only.csv"], "it has only sets and deletes"),
    ("replay", ["{in}/folder"], "for TRACE: expected an existing trace file"),
    ("replay", [""], "bad value '' for TRACE"),
    ("replay", ["--requests", "abc"], "bad value 'abc' for --requests"),
    ("replay", ["--requests", "0"], "bad value '0' for --requests"),
    ("replay", ["--seed", "-1", "--requests", "10"], "bad value '-1' for --seed"),
    ("replay", ["--zipf", "100,1.2.3", "--requests", "10"], "bad value '100,1.2.3' for --zipf"),
    ("replay", ["--policy", "", "--requests", "10"], "bad value '' for --policy"),
    ("replay", ["--capacity-objects", ",", "--requests", "10"], "bad value ',' for --capacity-objects"),
    ("replay", ["--out", "/nonexistent/x.csv", "--requests", "10"], "no folder '/nonexistent'"),
    ("replay", ["--out", "{in}/folder", "--requests", "10"], "for --out: it is a folder"),
    ("replay", ["--plot", "x.txt", "--requests", "10"], "bad value 'x.txt' for --plot"),
    ("replay", ["--bogus"], "--bogus"),
    ("replay", ["a", "b"], "unexpected extra argument (b)"),
    # benchmarks/
    ("benchmarks/scenarios", ["--seed", "-1"], "bad value '-1' for --seed"),
    ("benchmarks/scenarios", ["raft", "--time-limit", "nan"], "bad value 'nan' for --time-limit"),
    ("benchmarks/scenarios", ["raft", "--repeat", "0"], "bad value '0' for --repeat"),
    ("benchmarks/scenarios", ["nosuch"], "bad value 'nosuch' for BENCH"),
    ("benchmarks/history", ["--seed", "-1"], "bad value '-1' for --seed"),
    ("benchmarks/history", ["--design", "nosuch"], "bad value 'nosuch' for --design"),
    ("benchmarks/history", ["--time-limit", "nan"], "bad value 'nan' for --time-limit"),
    ("benchmarks/history", ["--repeat", "0"], "bad value '0' for --repeat"),
    ("benchmarks/hunt", ["--seed", "-1"], "bad value '-1' for --seed"),
    ("benchmarks/hunt", ["--budget", "0"], "bad value '0' for --budget"),
    ("benchmarks/hunt", ["--jobs", "-1"], "bad value '-1' for --jobs"),
    ("benchmarks/hunt", ["--designs", "queue,,raft"], "bad value 'queue,,raft' for --designs"),
    ("benchmarks/hunt", ["--bugs", "raft:nosuch"], "bad value 'raft:nosuch' for --bugs"),
    ("benchmarks/hunt", ["--out", "{in}/a-file"], "for --out: it exists and is not a folder"),
    ("benchmarks/hunt", ["--speedup", "--cluster", "foo"], "bad value 'foo' for --cluster"),
    ("benchmarks/peers", ["--seed", "-1"], "bad value '-1' for --seed"),
    ("benchmarks/peers", ["--time-limit", "nan"], "bad value 'nan' for --time-limit"),
    ("benchmarks/peers", ["--time-limit", "0"], "bad value '0' for --time-limit"),
    ("benchmarks/peers", ["--repeat", "-1"], "bad value '-1' for --repeat"),
    ("benchmarks/kernel", ["--sim-ms", "-1"], "bad value '-1' for --sim-ms"),
    ("benchmarks/kernel", ["--sim-ms", "nan"], "bad value 'nan' for --sim-ms"),
    ("benchmarks/kernel", ["--idle", "-1"], "bad value '-1' for --idle"),
    ("benchmarks/kernel", ["--workload", "hop,,hop"], "bad value '' in 'hop,,hop' for --workload"),
    ("benchmarks/kernel", ["--workload", "hop,hop"], "bad value 'hop,hop' for --workload"),
    ("benchmarks/kernel", ["--nodes", "0"], "bad value '0' for --nodes"),
    ("benchmarks/sweep", ["--runs", "0"], "bad value '0' for --runs"),
    ("benchmarks/sweep", ["--runs", "200000"], "bad value '200000' for --runs: expected an integer from 1 to 2,000"),
    ("benchmarks/sweep", ["--workers", "0"], "bad value '0' for --workers"),
    ("benchmarks/sweep", ["--workers", "-1"], "bad value '-1' for --workers"),
]


@pytest.mark.parametrize("name,args,needle", CASES, ids=[f"{n}:{' '.join(a)}" for n, a, _ in CASES])
def test_bad_argument_is_one_line_and_exit_2(work, capsys, name, args, needle):
    code, out, err = call(capsys, name, *[a.replace("{in}", str(work)) for a in args])
    assert_refused(code, out, err, needle)


@pytest.mark.parametrize("args,needle", [(["--rate", "nan"], "bad value 'nan' for --rate"),
                                         (["--rate", "1e12"], "bad value '1e12' for --rate"),
                                         (["--rate", "0"], "bad value '0' for --rate"),
                                         (["--time-limit", "-1"], "bad value '-1' for --time-limit"),
                                         (["--seed", "-1"], "bad value '-1' for --seed")])
def test_kit_benchmark_refuses_in_one_line(tmp_path, args, needle):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kit.py"), *args], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path, check=False)
    assert_refused(p.returncode, p.stdout, p.stderr, needle)


@pytest.mark.parametrize("name", ["memory", "scaling", "figure16", "replay", "benchmarks/kernel", "benchmarks/sweep"])
def test_help_still_works(capsys, name):
    code, out, err = call(capsys, name, "--help")
    assert code == 0 and "usage" in out.lower() and err == ""


def test_figure16_relative_out_goes_where_it_was_started(work, capsys, monkeypatch):
    """The sweep runs from the repository root: figure16 hands it an absolute folder, so a relative
    --out lands in the working folder (checked here without running a sweep)."""
    from scenarios.raft import figure16

    seen = {}

    def fake_sweep(trials, jobs, out, cluster=None, sets=()):
        seen["out"] = out
        raise SystemExit(0)

    monkeypatch.setattr(figure16, "run_sweep", fake_sweep)
    with pytest.raises(SystemExit):
        figure16.main(["--trials", "1", "--out", "rel"])
    assert seen["out"].is_absolute() and seen["out"] == Path.cwd() / "rel" / "sweep"
    (Path.cwd() / "rel").rmdir()  # made before the (faked) sweep; the fixture wants the folder empty
    capsys.readouterr()


def test_scriptargs_checks():
    """The checks alone: values accepted and refused, each refusal naming the option and the value."""
    assert A.integer(1, 5).value(" 3 ", "--n") == 3
    assert A.number(0, None, lo_open=True).value("1e3", "--x") == 1000.0
    assert A.integers(2, 10, increasing=True).value("2,5,9", "--s") == [2, 5, 9]
    assert A.names(("a", "b")).value("b,a", "--w") == ["b", "a"]
    assert A.seed.value("0", "--seed") == 0
    for check, text in ((A.integer(1, 5), "6"), (A.integer(1, 5), "1.0"), (A.number(0, 1), "nan"),
                        (A.number(0, 1), "-inf"), (A.number(0, 1, lo_open=True), "0"), (A.integers(2, 10), "3,3"),
                        (A.names(("a",)), "a,,a"), (A.seed, "9223372036854775808"), (A.seed, "+1"),
                        (A.out_file((".png",)), "x.jpg"), (A.text_file, "/nonexistent"), (A.cluster, "local:0")):
        with pytest.raises(UsageError, match=r"bad value .* for --opt"):
            check.value(text, "--opt")


def test_parser_errors_are_one_line(capsys):
    ap = A.Parser(prog="p")
    ap.add_argument("--n", type=A.integer(1, 5))
    ap.add_argument("--c", choices=("x", "y"))
    ap.add_argument("pos", nargs="?", type=A.integer(0, 1))
    for args, needle in ((["--n", "9"], "bad value '9' for --n: expected an integer from 1 to 5"),
                         (["--c", "z"], "bad value 'z' for --c: expected one of x, y"),
                         (["7"], "bad value '7' for pos"),
                         (["--n"], "argument --n: expected one argument"),
                         (["--zz"], "bad value '--zz': unrecognized arguments")):
        assert ap.parse(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("p: error: ") and needle in err, err
    assert isinstance(ap.parse(["--n", "2"]), argparse.Namespace)
