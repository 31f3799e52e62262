"""Bad arguments to the designs' own figure and comparison scripts (scenarios/*/policies, capacity,
validation, compare, availsim, readme_figures): one line on stderr naming the bad value, exit
status 2, no traceback, nothing printed or written before it. Each script's ``main(argv)`` runs
in-process, in an empty working folder that must stay empty (a default results folder would show)."""

from __future__ import annotations

import importlib

import pytest

from tests.test_bad_input_scripts import assert_refused

SEED = "expected an integer from 0 to 9223372036854775807"
SEEDS = "for --seeds: expected a range like 1-100"
MODULES = {"policies": "scenarios.reverse_proxy.policies", "capacity": "scenarios.email.capacity",
           "validation": "scenarios.email.validation", "commerce": "scenarios.commerce.compare",
           "twopc": "scenarios.twopc.compare", "availsim": "scenarios.raft.availsim",
           "readme": "scenarios.cache.readme_figures"}
# a small valid command line of each, to which a case adds its bad argument (the last one given wins)
BASE = {"policies": ["--policies", "round-robin", "--loads", "500", "--time-limit", "0.2", "--out", "OUT"],
        "capacity": ["--workers", "1", "--seeds", "1", "--out", "OUT"],
        "validation": ["--customers", "200"],
        "commerce": ["--seeds", "1", "--time-limit", "0.2"],
        "twopc": ["--time-limit", "0.2", "--out", "OUT.png"],
        "availsim": ["--trials", "1", "--out", "OUT"],
        "readme": ["--out", "OUT"]}


def call(capsys, name: str, *args) -> tuple[int, str, str]:
    """Run ``main([BASE..., ARGS])`` of script ``name``; return (exit status, stdout, stderr)."""
    main = importlib.import_module(MODULES[name]).main
    try:
        code = main([*BASE[name], *[str(a) for a in args]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working folder that must stay empty (OUT, OUT.png and any default output would show),
    and inputs beside it."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "folder").mkdir()
    (inputs / "a-file").write_text("x")
    (inputs / "binary.csv").write_bytes(b"\x00\xff\xfe\x01 not text \x9c")
    (inputs / "no-columns.csv").write_text("a,b\n1,2\n")
    (inputs / "header-only.csv").write_text("policy,load_rps,seed,api_p99_ms,static_p99_ms,slowest_share,"
                                            "fair_share,failed,valid\n")
    (inputs / "bad-policy.csv").write_text("policy,load_rps,seed,api_p99_ms,static_p99_ms,slowest_share,"
                                           "fair_share,failed,valid\nbogus,500,1,3.0,1.0,0.1,0.1,0,True\n")
    (inputs / "bad-load.csv").write_text("policy,load_rps,seed,api_p99_ms,static_p99_ms,slowest_share,"
                                         "fair_share,failed,valid\np2c,nan,1,3.0,1.0,0.1,0.1,0,True\n")
    (inputs / "workers-header.csv").write_text("workers,tx_latency_p99_ms,campaign_drain_s,valid\n")
    (inputs / "bad-workers.csv").write_text("workers,tx_latency_p99_ms,campaign_drain_s,valid\nabc,1,2,True\n")
    (inputs / "bad.toml").write_text("x = [\n")
    (inputs / "sweep-done" / "sweep-1down").mkdir(parents=True)
    (inputs / "sweep-done" / "sweep-1down" / "runs.csv").write_text("x\n")
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    yield inputs
    assert not any(here.iterdir()), sorted(p.name for p in here.iterdir())


IN = "{in}"  # replaced by the inputs folder

CASES = [
    # scenarios.reverse_proxy.policies
    ("policies", ["--time-limit", "nan"], "bad value 'nan' for --time-limit"),
    ("policies", ["--time-limit", "-1"], "bad value '-1' for --time-limit"),
    ("policies", ["--loads", "abc"], "bad value 'abc' for --loads"),
    ("policies", ["--loads", ""], "bad value '' for --loads"),
    ("policies", ["--loads", "-5"], "bad value '-5' for --loads"),
    ("policies", ["--loads", "0"], "bad value '0' for --loads"),
    ("policies", ["--loads", "inf"], "bad value 'inf' for --loads"),
    ("policies", ["--loads", "500,500"], "bad value '500,500' for --loads"),
    ("policies", ["--policies", "bogus"], "bad value 'bogus' in 'bogus' for --policies"),
    ("policies", ["--seeds", "-1"], "bad value '-1' " + SEEDS),
    ("policies", ["--seeds", "abc"], "bad value 'abc' " + SEEDS),
    ("policies", ["--set", "foo"], "bad value 'foo' for --set: expected key=value"),
    ("policies", ["--set", "foo=1"], "unknown parameter 'foo' for reverse-proxy"),
    ("policies", ["--set", "policy=p2c"], "bad value 'policy=p2c' for --set"),
    ("policies", ["--set", "retries=1", "--set", "retries=2"], "bad value 'retries=2' for --set"),
    ("policies", ["--out", f"{IN}/a-file"], "a-file' for --out: it exists and is not a folder"),
    ("policies", ["--out", ""], "bad value '' for --out"),
    ("policies", ["--from-csv", f"{IN}/missing.csv"], "missing.csv' for --from-csv: no such file"),
    ("policies", ["--from-csv", f"{IN}/folder"], "folder' for --from-csv: not a regular file"),
    ("policies", ["--from-csv", f"{IN}/no-columns.csv"], "no-columns.csv' for --from-csv: no column policy"),
    ("policies", ["--from-csv", f"{IN}/header-only.csv"], "header-only.csv' for --from-csv: no rows"),
    ("policies", ["--from-csv", f"{IN}/binary.csv"], "binary.csv' for --from-csv"),
    ("policies", ["--from-csv", f"{IN}/bad-policy.csv"], "line 2 has policy 'bogus'"),
    ("policies", ["--from-csv", f"{IN}/bad-load.csv"], "line 2 has load_rps 'nan'"),
    # scenarios.email.capacity
    ("capacity", ["--workers", "abc"], "bad value 'abc' for --workers"),
    ("capacity", ["--workers", "0"], "bad value '0' for --workers"),
    ("capacity", ["--workers", ""], "bad value '' for --workers"),
    ("capacity", ["--workers", "nan"], "bad value 'nan' for --workers"),
    ("capacity", ["--seeds", "-3"], "bad value '-3' " + SEEDS),
    ("capacity", ["--nemesis", "bogus"], "unknown nemesis 'bogus'"),
    ("capacity", ["--set", "scale=nan"], "bad value 'nan' for scale"),
    ("capacity", ["--set", "scale"], "bad value 'scale' for --set: expected key=value"),
    ("capacity", ["--set", "workers=3"], "bad value 'workers=3' for --set"),
    ("capacity", ["--jobs", "0"], "bad value '0' for --jobs"),
    ("capacity", ["--jobs", "-5"], "bad value '-5' for --jobs"),
    ("capacity", ["--out", f"{IN}/a-file"], "a-file' for --out: it exists and is not a folder"),
    ("capacity", ["--from-csv", f"{IN}/missing.csv"], "missing.csv' for --from-csv: no such file"),
    ("capacity", ["--from-csv", f"{IN}/no-columns.csv"], "no-columns.csv' for --from-csv: no column workers"),
    ("capacity", ["--from-csv", f"{IN}/workers-header.csv"], "workers-header.csv' for --from-csv: no rows"),
    ("capacity", ["--from-csv", f"{IN}/bad-workers.csv"], "line 2 has workers 'abc'"),
    # scenarios.email.validation
    ("validation", ["--rho", "nan"], "bad value 'nan' for --rho"),
    ("validation", ["--rho", "0"], "bad value '0' for --rho"),
    ("validation", ["--rho", "-0.5"], "bad value '-0.5' for --rho"),
    ("validation", ["--rho", "1"], "bad value '1' for --rho"),
    ("validation", ["--rho", "1.5"], "bad value '1.5' for --rho"),
    ("validation", ["--rho", "inf"], "bad value 'inf' for --rho"),
    ("validation", ["--send-ms", "nan"], "bad value 'nan' for --send-ms"),
    ("validation", ["--send-ms", "0"], "bad value '0' for --send-ms"),
    ("validation", ["--send-ms", "-100"], "bad value '-100' for --send-ms"),
    ("validation", ["--servers", "0"], "bad value '0' for --servers"),
    ("validation", ["--servers", "-2"], "bad value '-2' for --servers"),
    ("validation", ["--customers", "0"], "bad value '0' for --customers"),
    ("validation", ["--customers", "-5"], "bad value '-5' for --customers"),
    ("validation", ["--seed", "-1"], "bad value '-1' for --seed: " + SEED),
    ("validation", ["--seed", "99999999999999999999"], "for --seed: " + SEED),
    ("validation", ["--customers", "2", "--rho", "1e-6", "--send-ms", "1e9", "--servers", "1"],
     "bad value '2' for --customers"),
    # scenarios.commerce.compare
    ("commerce", ["--rate", "nan"], "bad value 'nan' for --rate"),
    ("commerce", ["--rate", "-1"], "bad value '-1' for --rate"),
    ("commerce", ["--time-limit", "inf"], "bad value 'inf' for --time-limit"),
    ("commerce", ["--set", "bogus=1"], "unknown parameter 'bogus' for commerce"),
    ("commerce", ["--set", "mode"], "bad value 'mode' for --set: expected key=value"),
    ("commerce", ["--set", "mode=tcc"], "bad value 'mode=tcc' for --set"),
    ("commerce", ["--nemesis", "bogus"], "unknown nemesis 'bogus'"),
    ("commerce", ["--seeds", "x"], "bad value 'x' " + SEEDS),
    ("commerce", ["--seeds", ""], "bad value '' " + SEEDS),
    ("commerce", ["--seeds", "-1"], "bad value '-1' " + SEEDS),
    ("commerce", ["--seeds", "5-1"], "bad value '5-1' " + SEEDS),
    ("commerce", ["--config", f"{IN}/missing.toml"], "missing.toml' for --config: the file does not exist"),
    ("commerce", ["--config", f"{IN}/folder"], "folder' for --config: it is a folder"),
    ("commerce", ["--config", f"{IN}/bad.toml"], "bad.toml' for --config: not valid TOML"),
    # scenarios.twopc.compare
    ("twopc", ["--seed", "-1"], "bad value '-1' for --seed: " + SEED),
    ("twopc", ["--rate", "nan"], "bad value 'nan' for --rate"),
    ("twopc", ["--time-limit", "0"], "bad value '0' for --time-limit"),
    ("twopc", ["--nemesis", "bogus"], "unknown nemesis 'bogus'"),
    ("twopc", ["--set", "shards"], "bad value 'shards' for --set: expected key=value"),
    ("twopc", ["--set", "protocol=2pc"], "bad value 'protocol=2pc' for --set"),
    ("twopc", ["--out", "no-such-folder/x.png"], "bad value 'no-such-folder/x.png' for --out: no folder"),
    ("twopc", ["--out", "figure.txt"], "bad value 'figure.txt' for --out: expected a file name ending .png"),
    ("twopc", ["--out", f"{IN}/folder"], "folder' for --out: it is a folder"),
    # scenarios.raft.availsim
    ("availsim", ["--trials", "200000"], "bad value '200000' for --trials: expected an integer from 1 to 100,000"),
    ("availsim", ["--trials", "1e23"], "bad value '1e23' for --trials"),
    ("availsim", ["--trials", "0"], "bad value '0' for --trials"),
    ("availsim", ["--jobs", "0"], "bad value '0' for --jobs"),
    ("availsim", ["--out", f"{IN}/a-file"], "a-file' for --out: it exists and is not a folder"),
    ("availsim", ["--out", f"{IN}/a-file/sub"], "a-file/sub' for --out: cannot write there"),
    ("availsim", ["--out", f"{IN}/sweep-done"], "sweep-done' for --out: it holds"),
    # scenarios.cache.readme_figures
    ("readme", ["--out", f"{IN}/a-file"], "a-file' for --out: it exists and is not a folder"),
    ("readme", ["--out", ""], "bad value '' for --out: expected a folder path"),
    ("readme", ["--bogus"], "bad value '--bogus': unrecognized arguments"),
]


@pytest.mark.parametrize("name,args,needle", CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_a_bad_argument_is_one_line_and_nothing_written(work, capsys, name, args, needle):
    args = [a.replace(IN, str(work)) for a in args]
    assert_refused(*call(capsys, name, *args), needle.replace(IN, str(work)))
    assert not (work / "folder").exists() or not any((work / "folder").iterdir())
    assert not (work / "sweep-done" / "availsim-2down.toml").exists()


def test_policies_redraws_from_its_csv(tmp_path, capsys):
    """A good --from-csv still draws the figure and prints the table, without running anything."""
    src = tmp_path / "policies.csv"
    src.write_text("policy,load_rps,seed,api_p99_ms,static_p99_ms,slowest_share,fair_share,failed,valid\n"
                   "round-robin,500.0,1,12.5,3.0,0.25,0.15,0,True\np2c,500.0,1,,3.0,0.1,0.15,0,True\n")
    main = importlib.import_module(MODULES["policies"]).main
    assert main(["--from-csv", str(src), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "round-robin" in out and "figure:" in out
    assert (tmp_path / "out" / "policies.png").stat().st_size > 0


def test_capacity_redraws_from_a_sweep_csv(tmp_path, capsys):
    src = tmp_path / "runs.csv"
    src.write_text("workers,tx_latency_p99_ms,campaign_drain_s,valid\n1,2800,120,True\n2,,60,False\n")
    main = importlib.import_module(MODULES["capacity"]).main
    assert main(["--from-csv", str(src), "--out", str(tmp_path / "out")]) == 0
    assert "figure:" in capsys.readouterr().out
    assert (tmp_path / "out" / "capacity.png").stat().st_size > 0
