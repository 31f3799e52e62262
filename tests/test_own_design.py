"""A design written outside the repository: `dsim run ./mydesign.py` and friends, on examples/ping."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
PING = ROOT / "examples" / "ping" / "ping.py"


def dsim(*args, cwd):
    """Run the real `dsim` console script in a subprocess, in ``cwd``."""
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def ping(tmp_path) -> Path:
    """A copy of the ping design, free to edit."""
    target = tmp_path / "design" / "ping.py"
    target.parent.mkdir()
    shutil.copy(PING, target)
    return target


def test_ping_is_a_short_design_that_imports_only_the_public_surface():
    """examples/ping/ping.py stays under 80 lines, opens with a docstring and imports only `simulator` and its checkers."""
    text = PING.read_text()
    assert len(text.splitlines()) < 80
    assert text.startswith('"""')
    imports = [line.split()[1] for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports and all(m == "simulator" or m.startswith("simulator.checkers") for m in imports), imports


def test_run_by_path_is_valid_and_records_the_file(tmp_path):
    """`dsim run ./examples/ping/ping.py --seed 1` exits 0 and its manifest names the file and its sha256."""
    res = dsim("run", str(PING), "--seed", "1", "--no-plots", "--out", "run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["scenario"] == "ping" and man["design_path"] == str(PING)
    assert man["design_sha256"] == hashlib.sha256(PING.read_bytes()).hexdigest()
    assert man["config"]["design_path"] == str(PING) and man["config"]["design_sha256"] == man["design_sha256"]


def test_run_by_relative_path_uses_the_scenario_name_for_the_folder(tmp_path, ping):
    """A relative path runs too, and the default results folder is results/ping/, not the path."""
    res = dsim("run", "./design/ping.py", "--seed", "2", "--no-plots", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "results" / "ping" / "latest" / "manifest.json").is_file()


@pytest.mark.parametrize("bug, checker", [("drop-pong", "all-answered"), ("wrong-seq", "right-seq")])
def test_each_planted_bug_fails_its_checker_at_the_defaults(tmp_path, bug, checker):
    """`--bug NAME --seed 1` at the design's defaults exits 1 with the bug's checker invalid."""
    res = dsim("run", str(PING), "--seed", "1", "--bug", bug, "--no-plots", "--out", "run", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    checks = json.loads((tmp_path / "run" / "metrics.json").read_text())["checks"]
    assert checks[checker]["valid"] is False
    assert [k for k, v in checks.items() if v["valid"] is not True] == [checker]


def test_a_run_where_nothing_succeeds_draws_its_plots_without_warnings(tmp_path):
    """Every pong dropped (bug_share=1): the run exits 1 and its plots are drawn, with nothing on stderr but the seed."""
    res = dsim("run", str(PING), "--seed", "1", "--bug", "drop-pong", "--set", "bug_share=1", "--time-limit", "2",
               "--out", "run", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Warning" not in res.stderr and res.stderr.strip() == "", res.stderr
    assert (tmp_path / "run" / "latency-quantiles.png").is_file()


def test_replay_reloads_the_file_and_refuses_a_changed_or_gone_one(tmp_path, ping):
    """Replay of a path design's run exits 0; after the file is edited or removed it exits 2 with one line."""
    res = dsim("run", str(ping), "--seed", "1", "--bug", "wrong-seq", "--no-plots", "--out", "run", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    res = dsim("replay", "run", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical" in res.stdout
    before = hashlib.sha256(ping.read_bytes()).hexdigest()
    ping.write_text(ping.read_text().replace("< self.share", "< 2 * self.share"))
    after = hashlib.sha256(ping.read_bytes()).hexdigest()
    res = dsim("replay", "run", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == [f"dsim: error: design file {ping} changed since the run "
                                       f"(sha256 {before[:12]} -> {after[:12]})"]
    ping.unlink()
    res = dsim("replay", "run", cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1
    assert str(ping) in res.stderr and "gone" in res.stderr


def test_describe_by_path(tmp_path):
    """`dsim describe ./ping.py` shows the design's summary, docstring, parameter, bugs and checkers."""
    res = dsim("describe", str(PING), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for needle in ("ping: clients ping one server", "Ping: the smallest whole design", "bug_share", "drop-pong",
                   "wrong-seq", "all-answered", "right-seq"):
        assert needle in res.stdout, needle


def test_sweep_by_path_loads_the_design_in_its_workers(tmp_path, ping):
    """`dsim sweep ./ping.py --jobs 2` runs every seed in worker processes; each run records the file."""
    res = dsim("sweep", str(ping), "--seeds", "1-2", "--jobs", "2", "--bug", "drop-pong", "--out", "sw", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout.startswith("sweep ping: 2 runs")
    with open(tmp_path / "sw" / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["seed"] for r in rows] == ["1", "2"] and all(r["valid"] == "False" for r in rows)
    for r in rows:
        assert json.loads((tmp_path / "sw" / r["folder"] / "manifest.json").read_text())["design_path"] == str(ping)


def test_spawned_sweep_worker_loads_the_design_file_itself(tmp_path, ping):
    """A sweep worker started by spawn (no inherited registry) loads the design file and gets the parent's digest."""
    code = textwrap.dedent(f"""
        import multiprocessing, sys
        from concurrent.futures import ProcessPoolExecutor
        from simulator.pipeline import scenario as registry
        from simulator.pipeline.config import build_config
        from simulator.pipeline.run import execute
        from simulator.pipeline.sweep import run_one
        if __name__ == "__main__":
            cfg = build_config(registry.load_design({str(ping)!r}), seed=3, options={{"time_limit_s": 2.0}})
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                row = pool.submit(run_one, cfg.to_dict(), {{}}, {str(tmp_path / "w")!r}, False).result()
            print(row["digest"] == execute(cfg).digest, row["valid"])
    """)
    script = tmp_path / "spawn_check.py"
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.stdout.split() == ["True", "True"], res.stderr


BROKEN = {
    "syntax": ("x = (\n", "SyntaxError: '(' was never closed (line 1)"),
    "import": ("import no_such_module_for_dsim\n", "ModuleNotFoundError: No module named 'no_such_module_for_dsim'"),
    "raises": ("raise RuntimeError('boom\\nmore')\n", "RuntimeError: boom more"),
    "nothing": ("from simulator import Scenario\n", "it registers no scenario"),
    "two": ("from simulator import Scenario, register\n"
            "@register\nclass A(Scenario):\n    name = 'own-a'\n"
            "@register\nclass B(Scenario):\n    name = 'own-b'\n", "it registers 2 scenarios (own-a, own-b)"),
    "clash": ("from simulator import Scenario, register\n@register\nclass Q(Scenario):\n    name = 'queue'\n",
              "its scenario name 'queue' is taken (by a design dsim ships)"),
    "missing": (None, "FileNotFoundError: no such file"),
}


@pytest.mark.parametrize("kind, command", [(kind, "run") for kind in sorted(BROKEN)]
                         + [("syntax", "describe"), ("two", "sweep"), ("missing", "sweep")])
def test_broken_design_is_one_line_exit_2_and_writes_nothing(tmp_path, kind, command):
    """A design file that is missing, does not import, or registers no, two or a taken scenario: one line, exit 2."""
    source, needle = BROKEN[kind]
    if source is not None:
        (tmp_path / "mine.py").write_text(source)
    res = dsim(command, "./mine.py", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("dsim: error: cannot load design ./mine.py: ") and needle in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "results").exists()


def test_a_shipped_design_that_fails_to_import_is_listed_and_the_others_run(tmp_path):
    """When one shipped design fails to import, `dsim list` names it in one line and still lists and runs the rest."""
    broken = tmp_path / "extra" / "brokendesign"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('needs a module it cannot find')\n")
    code = textwrap.dedent(f"""
        import sys, scenarios
        scenarios.__path__.append({str(tmp_path / "extra")!r})
        from simulator.cli import main
        main(sys.argv[1:])
    """)
    listed = subprocess.run([sys.executable, "-c", code, "list"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "brokendesign: failed to load: ImportError: needs a module it cannot find" in lines
    assert {line.split()[0] for line in lines} >= {"queue", "raft", "twopc", "email"}
    ran = subprocess.run([sys.executable, "-c", code, "run", "queue", "--seed", "1", "--time-limit", "2", "--no-plots",
                          "--out", "q"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr
    again = subprocess.run([sys.executable, "-c", code, "run", "brokendesign"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
    assert again.returncode == 2
    assert again.stderr.strip() == ("dsim: error: scenario 'brokendesign' failed to load: "
                                    "ImportError: needs a module it cannot find")


def test_files_named_alike_load_as_distinct_modules_once_each(tmp_path, clean_registry):
    """Two design files with the same file name get distinct module names; loading one again returns the same class."""
    classes = []
    for i in (1, 2):
        path = tmp_path / f"d{i}" / "design.py"
        path.parent.mkdir()
        path.write_text(PING.read_text().replace('name = "ping"', f'name = "alike{i}"'))
        classes.append(clean_registry.load_design(path))
    assert [c.name for c in classes] == ["alike1", "alike2"]
    assert classes[0].__module__ != classes[1].__module__
    assert all(c.__module__ in sys.modules and c.__module__.startswith("_dsim_design_") for c in classes)
    assert clean_registry.load_design(tmp_path / "d1" / "design.py") is classes[0]
    assert clean_registry.origin("alike1") == str(tmp_path / "d1" / "design.py")
    assert not (tmp_path / "d1" / "__pycache__").exists()
    assert os.path.isabs(clean_registry.design_file(classes[1])[0])
