"""The `dsim` command as a user calls it: through click's runner and as a real subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.cli import main

FILES = ("manifest.json", "metrics.json", "history.jsonl", "faults.jsonl", "latency-raw.png",
         "latency-quantiles.png", "rate.png")
SHORT = ["--time-limit", "5"]


def dsim(*args, cwd=None, env=None):
    """Run the real `dsim` console script in a subprocess."""
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


class _Main:
    """Lets click's CliRunner drive simulator.cli.main, its one-line errors and exit codes included."""

    name = "dsim"

    def main(self, args=None, **_ignored):
        main(list(args or []))


def call(*args):
    """Run `dsim` in-process, as the console script does."""
    return CliRunner().invoke(_Main(), list(args))


def test_run_writes_every_file_with_the_metrics_fields(tmp_path):
    """`dsim run queue --seed 7 --out DIR` exits 0 and DIR holds every results file and metrics field."""
    out = tmp_path / "run"
    res = dsim("run", "queue", "--seed", "7", "--out", str(out))
    assert res.returncode == 0, res.stderr
    for name in FILES:
        assert (out / name).is_file(), name
    met = json.loads((out / "metrics.json").read_text())
    assert met["valid"] is True
    for key in ("checks", "ops", "latency_ms", "throughput_ops_s", "availability"):
        assert key in met
    assert set(met["latency_ms"]) >= {"p50", "p95", "p99", "p999", "max"}
    assert set(met["ops"]) >= {"ok", "fail", "info"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["seed"] == 7 and len(man["digest"]) == 64
    assert man["versions"]["simpy"] and man["parameters"]["servers"] == 1
    first = json.loads((out / "history.jsonl").read_text().splitlines()[0])
    assert set(first) >= {"index", "time", "type", "process", "f", "value"}
    assert "VALID" in res.stdout and str(out) in res.stdout


def test_default_folder_and_latest_link(tmp_path):
    """Without --out a run goes to results/<scenario>/<UTC time>-s<seed>/ and results/<scenario>/latest points at it."""
    res = dsim("run", "queue", "--seed", "5", *SHORT, "--no-plots", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = [p for p in (tmp_path / "results" / "queue").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and runs[0].name.endswith("-s5")
    assert (tmp_path / "results" / "queue" / "latest").resolve() == runs[0].resolve()


def test_out_folder_gets_no_latest_link_beside_it(tmp_path):
    """With --out, nothing is written beside the named folder."""
    assert call("run", "queue", "--seed", "1", "--out", str(tmp_path / "mine"), *SHORT, "--no-plots").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_replay_matches_and_detects_tampering(tmp_path):
    """`dsim replay` exits 0 on an untouched run folder and 1 when the recorded digest differs."""
    out = tmp_path / "run"
    assert call("run", "queue", "--seed", "3", "--out", str(out), *SHORT, "--no-plots").exit_code == 0
    res = call("replay", str(out))
    assert res.exit_code == 0 and "identical" in res.output
    man = json.loads((out / "manifest.json").read_text())
    man["digest"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(man))
    res = call("replay", str(out))
    assert res.exit_code == 1 and "DIFFERENT" in res.output


def test_a_different_replay_names_the_two_commits_when_the_code_changed(tmp_path):
    """A digest that differs from a run recorded at another commit is reported with both commits,
    since a change of code between them can change a run."""
    out = tmp_path / "run"
    assert call("run", "queue", "--seed", "3", "--out", str(out), *SHORT, "--no-plots").exit_code == 0
    man = json.loads((out / "manifest.json").read_text())
    man["digest"], man["git_commit"] = "0" * 64, "f" * 40
    (out / "manifest.json").write_text(json.dumps(man))
    res = call("replay", str(out))
    from simulator.pipeline.results import git_commit
    if git_commit() is None:
        pytest.skip("not a git checkout: no commit to compare")
    assert res.exit_code == 1 and "recorded at commit ffffffffffff" in res.output


def test_replay_subprocess_under_another_hash_seed(tmp_path):
    """A run replayed in a process with another PYTHONHASHSEED gives the identical digest."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    assert dsim("run", "queue", "--seed", "9", "--out", str(out), *SHORT, "--no-plots", env=env).returncode == 0
    env["PYTHONHASHSEED"] = "999"
    res = dsim("replay", str(out), env=env)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("args, needle", [
    (["run", "queue", "--seed", "abc"], "'abc'"),
    (["run", "queue", "--seed", "1", "--set", "nosuch=1"], "'nosuch'"),
    (["run", "queue", "--seed", "1", "--set", "servers=-1"], "'-1'"),
    (["run", "nosuchscenario", "--seed", "1"], "'nosuchscenario'"),
    (["run", "queue", "--seed", "1", "--nemesis", "bogus"], "'bogus'"),
    (["run", "queue", "--seed", "1", "--bug", "nope"], "'nope'"),
    (["run", "queue", "--seed", "1", "--rate", "fast"], "'fast'"),
    (["run", "queue", "--seed", "1", "--set", "servers"], "'servers'"),
    (["sweep", "queue", "--seeds", "9-1"], "'9-1'"),
    (["sweep", "queue", "--seeds", "1-2", "--grid", "servers"], "'servers'"),
    (["sweep", "queue", "--seeds", "1-2", "--jobs", "0"], "'0'"),
    (["run", "queue", "--no-such-flag"], "--no-such-flag"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, needle):
    """Bad input exits 2 with one line naming the bad value, and writes no results."""
    res = dsim(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "results").exists()


def test_malformed_toml_is_one_line_exit_2(tmp_path):
    """A malformed --config file exits 2 with one line naming the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text("rate = [1,\n")
    res = dsim("run", "queue", "--seed", "1", "--config", str(bad), cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "bad.toml" in res.stderr


def test_toml_config_sets_options_params_and_faults(tmp_path):
    """A TOML experiment file sets run options, parameters and an explicit fault plan."""
    cfg = tmp_path / "exp.toml"
    cfg.write_text('seed = 4\ntime_limit_s = 6\nrate = 20\n[params]\nservers = 2\n'
                   '[[faults]]\nat_s = 2\naction = "pause"\nnode = "n1"\n'
                   '[[faults]]\nat_s = 3\naction = "resume"\nnode = "n1"\n')
    out = tmp_path / "run"
    res = call("run", "queue", "--config", str(cfg), "--out", str(out), "--no-plots")
    assert res.exit_code == 0, res.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 4 and man["parameters"]["servers"] == 2 and man["config"]["rate"] == 20
    faults = [json.loads(x) for x in (out / "faults.jsonl").read_text().splitlines()]
    assert [f["action"] for f in faults][:2] == ["pause", "resume"]


def test_bug_run_exits_1_with_the_counter_example(tmp_path):
    """A run with a planted bug that a checker catches exits 1 and prints the failing check."""
    res = call("run", "queue", "--seed", "1", "--bug", "double-serve", "--out", str(tmp_path / "r"), "--no-plots")
    assert res.exit_code == 1
    assert "INVALID  exactly-once" in res.output and "more than once" in res.output


@pytest.mark.parametrize("args, needle", [(["list"], "queue"), (["describe", "queue"], "double-serve"),
                                           (["--help"], "dsim run queue"), (["run", "--help"], "Examples")])
def test_info_commands_as_subprocesses(args, needle):
    """The informational commands work as real subprocesses and exit 0."""
    res = dsim(*args)
    assert res.returncode == 0 and needle in res.stdout, res.stderr


def test_list_and_describe():
    """`dsim list` names the queue scenario and `dsim describe queue` shows parameters, bugs and checkers."""
    res = call("list")
    assert res.exit_code == 0 and "queue" in res.output
    res = call("describe", "queue")
    assert res.exit_code == 0
    for word in ("servers", "service_ms", "double-serve", "exactly-once", "Examples", "rate"):
        assert word in res.output


def test_sweep_writes_csv_and_summary(tmp_path):
    """`dsim sweep queue --seeds 1-8 --jobs 2` writes 8 rows to runs.csv and summary.png."""
    out = tmp_path / "sw"
    res = dsim("sweep", "queue", "--seeds", "1-8", "--jobs", "2", "--out", str(out), *SHORT)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert [int(r["seed"]) for r in rows] == list(range(1, 9))
    assert all(r["valid"] == "True" for r in rows)
    assert {"latency_p99_ms", "throughput_ops_s", "digest"} <= set(rows[0])
    assert (out / "summary.png").stat().st_size > 10_000


def test_sweep_grid_and_worst_exit_status(tmp_path):
    """A grid multiplies the runs, and a sweep with an invalid run exits 1."""
    out = tmp_path / "sw"
    res = call("sweep", "queue", "--seeds", "1-2", "--grid", "servers=1,2", "--grid", "rate=20,40",
               "--out", str(out), *SHORT)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert len(rows) == 8 and {(r["servers"], r["rate"]) for r in rows} == {("1", "20"), ("1", "40"), ("2", "20"), ("2", "40")}
    res = call("sweep", "queue", "--seeds", "1-2", "--bug", "double-serve", "--out", str(tmp_path / "b"), *SHORT)
    assert res.exit_code == 1


def test_compare_prints_table_and_writes_figure(tmp_path):
    """`dsim compare` on two run folders prints a row per run and writes one figure."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert call("run", "queue", "--seed", "1", "--out", str(a), *SHORT, "--no-plots").exit_code == 0
    assert call("run", "queue", "--seed", "2", "--out", str(b), *SHORT, "--no-plots", "--set", "servers=2").exit_code == 0
    fig = tmp_path / "cmp.png"
    res = dsim("compare", str(a), str(b), "--out", str(fig))
    assert res.returncode == 0, res.stderr
    assert "queue s1" in res.stdout and "queue s2" in res.stdout and "p99 ms" in res.stdout
    assert fig.stat().st_size > 10_000


def test_show_prints_summary(tmp_path):
    """`dsim show` prints a complete run's summary."""
    out = tmp_path / "r"
    assert call("run", "queue", "--seed", "1", "--out", str(out), *SHORT, "--no-plots").exit_code == 0
    res = dsim("show", str(out))
    assert res.returncode == 0 and "verdict" in res.stdout


def test_trace_flag_writes_trace(tmp_path):
    """--trace writes trace.jsonl with deliveries and timers."""
    out = tmp_path / "r"
    assert call("run", "queue", "--seed", "1", "--out", str(out), "--time-limit", "1", "--no-plots", "--trace").exit_code == 0
    events = [json.loads(x) for x in (out / "trace.jsonl").read_text().splitlines()]
    assert events and {"deliver"} <= {e["event"] for e in events}


def test_crashing_run_leaves_incomplete_folder(tmp_path, monkeypatch):
    """A run that crashes mid-way leaves its folder with the manifest marked incomplete and the error."""
    from scenarios.queue import scenario as q

    def boom(self, ctx, src, msg):
        raise RuntimeError("planted crash")

    monkeypatch.setattr(q.Server, "on_message", boom)
    out = tmp_path / "r"
    res = call("run", "queue", "--seed", "1", "--out", str(out), "--no-plots")
    assert res.exit_code == 3
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and "planted crash" in man["error"]
    assert (out / "error.txt").is_file() and (out / "history.jsonl").is_file()


def test_interrupted_run_leaves_incomplete_folder(tmp_path, monkeypatch):
    """A run interrupted by Ctrl-C leaves its folder marked incomplete, naming the interruption."""
    from simulator.pipeline import run as run_mod

    def interrupt(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod.Run, "finish", interrupt)
    out = tmp_path / "r"
    res = call("run", "queue", "--seed", "1", "--out", str(out), "--no-plots")
    assert res.exit_code == 3
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and man["error"] == "interrupted"


def test_rate_profile_ramp_shapes_the_load(tmp_path):
    """--rate-profile ramp:0-100 puts most arrivals in the second half of the run."""
    out = tmp_path / "r"
    res = call("run", "queue", "--seed", "1", "--out", str(out), "--time-limit", "20", "--no-plots",
               "--rate-profile", "ramp:0-100")
    assert res.exit_code == 0, res.output
    inv = [json.loads(x)["time"] for x in (out / "history.jsonl").read_text().splitlines() if '"invoke"' in x]
    late = sum(1 for t in inv if t > 10e9)
    assert 0.7 < late / len(inv) < 0.8  # 3/4 of a linear ramp's area lies in its second half


def test_bad_rate_profile_is_a_usage_error(tmp_path):
    """A malformed --rate-profile exits 2 naming it."""
    res = dsim("run", "queue", "--seed", "1", "--rate-profile", "wobble", cwd=tmp_path)
    assert res.returncode == 2 and "'wobble'" in res.stderr


def test_export_writes_jepsen_edn(tmp_path):
    """`dsim export` writes the history as EDN maps with keyword types."""
    out = tmp_path / "r"
    assert call("run", "queue", "--seed", "1", "--out", str(out), *SHORT, "--no-plots").exit_code == 0
    res = call("export", str(out))
    assert res.exit_code == 0
    first = (out / "history.edn").read_text().splitlines()[0]
    assert first.startswith("{:index 0, :time ") and ":type :invoke" in first and ":f :request" in first


def test_shrink_folder_says_complete_and_a_valid_run_is_refused_by_name(tmp_path, capsys):
    """`dsim shrink` marks shrink.json complete when it ends, and refuses a valid run saying it passed every check."""
    from tests.cli_helpers import dsim

    bad, good = tmp_path / "bad", tmp_path / "good"
    assert dsim(capsys, "run", "queue", "--seed", "1", "--bug", "double-serve", "--no-plots",
                "--out", bad)[0] == 1
    code, out, err = dsim(capsys, "shrink", bad, "--budget", "3", "--out", tmp_path / "s")
    assert code == 1, err
    about = json.loads((tmp_path / "s" / "shrink.json").read_text())
    assert about["status"] == "complete" and about["still_fails"] is True and about["checker"] == "exactly-once"
    assert dsim(capsys, "run", "queue", "--seed", "1", "--time-limit", "1", "--no-plots", "--out", good)[0] == 0
    code, _, err = dsim(capsys, "shrink", good)
    assert code == 2 and "its run is valid (every check passed)" in err and "\n" not in err.strip()
    assert not (tmp_path / "good-shrunk").exists()


@pytest.mark.parametrize("how", ["forked", "serial", "child-failed"])
def test_the_standard_plots_come_from_a_child_or_else_from_the_run_itself(tmp_path, monkeypatch, how):
    """The standard plots drawn in a forked child, in the process itself (DSIM_SERIAL_CHECKS=1), or
    again by the process when the child fails, give the same files, listed first in the manifest."""
    from simulator import build_config, get_scenario
    from simulator.pipeline import runner

    if how == "serial":
        monkeypatch.setenv("DSIM_SERIAL_CHECKS", "1")
    elif how == "child-failed":
        real = runner.fork_call

        def failing(fn):
            wait = real(lambda: 1 / 0)  # the child raises: its wait() gives None
            return wait
        monkeypatch.setattr(runner, "fork_call", failing)
    cfg = build_config(get_scenario("email"), seed=1, options={"time_limit_s": 3.0}, sets={})
    out = tmp_path / "r"
    outcome, status, _ = runner.run_to_folder(cfg, out, plots=True)
    assert status == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["plots"][:3] == ["latency-raw.png", "latency-quantiles.png", "rate.png"]
    assert len(man["plots"]) > 3  # the design's own follow
    for name in man["plots"]:
        assert (out / name).stat().st_size > 1000, name
