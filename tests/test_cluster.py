"""Sweeps on Dask: the same rows and digests as on local processes, from a LocalCluster and from a
scheduler and workers started by hand on loopback ports; a killed worker's batch is run again and
counted once; workers refuse a different environment; without the extra, --cluster says how to
install it. The Dask tests skip only when the `cluster` extra (distributed) is not installed."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.pipeline import executor as X

# long enough that a worker can be killed in the middle of its batch, short enough for CI
RUN = ["queue", "--seeds", "1-6", "--time-limit", "60"]
WALL_COLUMNS = ("wall_seconds", "checker_seconds")


def dsim(*args, cwd, timeout=300) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def rows_less_wall(folder: Path) -> list[dict]:
    with open(folder / "runs.csv") as fh:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(fh)]


def run_digests(folder: Path) -> dict[str, str]:
    """Each run folder's name -> its manifest's digest (the folders that arrived, whatever the CSV says)."""
    return {d.name: json.loads((d / "manifest.json").read_text())["digest"] for d in sorted((folder / "runs").iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The small sweep run with --jobs 1, the result every other executor must reproduce."""
    here = tmp_path_factory.mktemp("ref")
    res = dsim("sweep", *RUN, "--jobs", "1", "--out", "ref", cwd=here)
    assert res.returncode == 0, res.stdout + res.stderr
    return here / "ref"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_processes_and_local_cluster_give_the_same_rows_and_digests(reference, tmp_path):
    """runs.csv less its wall-time columns and every run's digest are the same with --jobs 2 and --cluster local:2 as with --jobs 1."""
    pytest.importorskip("distributed")
    for name, how in (("jobs2", ["--jobs", "2"]), ("local2", ["--cluster", "local:2"])):
        res = dsim("sweep", *RUN, *how, "--out", name, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        assert rows_less_wall(tmp_path / name) == rows_less_wall(reference), name
        assert run_digests(tmp_path / name) == run_digests(reference), name
        assert len(run_digests(reference)) == 6 and all(run_digests(reference).values())


@pytest.fixture
def hand_started_cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes (no nanny, so a killed worker stays dead) on 127.0.0.1."""
    pytest.importorskip("distributed")
    dask = Path(sys.executable).with_name("dask")
    cmd = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = [subprocess.Popen([*cmd, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.txt", "w"))]
    try:
        for i in range(2):
            procs.append(subprocess.Popen([*cmd, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                           "--no-nanny", "--no-dashboard", "--name", f"w{i}",
                                           "--local-directory", str(tmp_path / f"w{i}")],
                                          stdout=subprocess.DEVNULL, stderr=open(logs / f"w{i}.txt", "w")))
        from distributed import Client

        t0 = time.monotonic()
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        assert time.monotonic() - t0 < 180
        yield address, {"w0": procs[1].pid, "w1": procs[2].pid}  # without a nanny each worker is its own process
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_hand_started_scheduler_gives_the_same_results_and_retries_a_killed_workers_batch(reference, tmp_path,
                                                                                           hand_started_cluster):
    """A sweep against `dask scheduler` + two `dask worker`s gets every folder back with the --jobs 1 digests; killing a worker mid-batch re-runs its batch elsewhere, each run once."""
    address, workers = hand_started_cluster
    res = dsim("sweep", *RUN, "--cluster", address, "--out", "packed", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert rows_less_wall(tmp_path / "packed") == rows_less_wall(reference)
    assert run_digests(tmp_path / "packed") == run_digests(reference)

    # the same sweep written in place, in batches of 2; one worker is killed as soon as a run has started
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    out = tmp_path / "shared"
    proc = subprocess.Popen([*cmd, "sweep", *RUN, "--cluster", address, "--batch", "2", "--shared-out", "--out", str(out)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not (out / "runs").is_dir() or not any((out / "runs").glob("*/manifest.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 180, "no run started"
            time.sleep(0.02)
        os.kill(workers["w0"], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout + stderr
    assert rows_less_wall(out) == rows_less_wall(reference)
    assert run_digests(out) == run_digests(reference)
    assert all(json.loads((d / "manifest.json").read_text())["status"] == "complete" for d in (out / "runs").iterdir())


def test_a_worker_with_another_dsim_or_design_refuses_clearly(monkeypatch):
    """A worker whose dsim version or design file differs from the client's refuses with both values named."""
    cfg = {"scenario": "queue", "seed": 1}
    expect = X.environment([cfg])
    X._check_environment(expect, [cfg])  # the same environment: accepted
    with pytest.raises(X.WorkerMismatch, match=r"refuses the sweep: it has dsim \S+ \(client: 0\.0\.0-other\).*pip install"):
        X._check_environment({**expect, "dsim": "0.0.0-other"}, [cfg])
    with pytest.raises(X.WorkerMismatch, match=r"design queue sha256 [0-9a-f]{12} \(client: 000000000000\)"):
        X._check_environment({**expect, "designs": {"queue": "0" * 64}}, [cfg])
    with pytest.raises(X.WorkerMismatch, match=r"Python \S+ \(client: 2\.7\.18\)"):
        X._check_environment({**expect, "python": "2.7.18"}, [cfg])


def test_cluster_without_the_extra_exits_2_saying_how_to_install(monkeypatch, capsys, tmp_path):
    """Without `distributed`, `dsim sweep --cluster local:2` exits 2 with one line naming the pip command, and writes nothing."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "queue", "--seeds", "1-2", "--cluster", "local:2", "--out", "s"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.strip().count("\n") == 0 and "pip install -e '.[cluster]'" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("text", ["local:0", "local:x", "local:", "tcp://", "tcp://host", "tcp://host:99999", "udp://h:1", ""])
def test_bad_cluster_values_are_refused(text):
    """--cluster takes local:N or tcp://HOST:PORT and names the bad value otherwise."""
    with pytest.raises(X.UsageError, match="for --cluster: expected local:N"):
        X.parse_cluster(text)


def test_packed_folder_unpacks_to_the_same_files(tmp_path):
    """A run folder packed on a worker unpacks on the client to the same files and bytes, replacing an older folder."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "manifest.json").write_text('{"status": "complete"}\n')
    (src / "sub" / "plot.png").write_bytes(bytes(range(256)) * 40)
    dst = tmp_path / "runs" / "run-s1"
    dst.mkdir(parents=True)
    (dst / "stale.txt").write_text("from a run interrupted before")
    X.unpack(X.pack(src), dst)
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*")) == ["manifest.json", "sub", "sub/plot.png"]
    assert (dst / "sub" / "plot.png").read_bytes() == (src / "sub" / "plot.png").read_bytes()


def test_default_batch_keeps_several_batches_per_worker():
    """The default batch gives each worker about four batches, never more than 50 runs, never fewer than 1."""
    assert X.default_batch(48, 2) == 6
    assert X.default_batch(3, 2) == 1
    assert X.default_batch(100_000, 2) == X.MAX_BATCH


def test_batches_shrink_to_single_runs_so_workers_end_together():
    """Default batches cover every run once, never grow, start at the default batch and end at one run;
    a given --batch is used as is, the last batch taking what is left."""
    sizes = X.batch_sizes(48, 2)
    assert sum(sizes) == 48 and sizes[0] == X.default_batch(48, 2) and sizes[-1] == 1
    assert all(a >= b for a, b in zip(sizes, sizes[1:]))
    assert X.batch_sizes(7, 2, 3) == [3, 3, 1]
    assert X.batch_sizes(0, 2) == []


@pytest.mark.parametrize("args, needle", [
    (["--jobs", "2", "--cluster", "local:2"], "for --jobs with --cluster: expected one of them"),
    (["--batch", "3"], "'--batch' without --cluster"),
    (["--shared-out"], "'--shared-out' without --cluster"),
    (["--cluster", "local:2", "--batch", "0"], "bad value '0' for --batch: expected an integer from 1"),
])
def test_conflicting_executor_options_are_one_line_exit_2(tmp_path, capsys, monkeypatch, args, needle):
    """--jobs with --cluster, or --batch / --shared-out without --cluster, is refused in one line before anything is written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "queue", "--seeds", "1-2", *args, "--out", "s"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


HUNT = ["hunt", "queue", "--bug", "double-serve", "--budget", "10", "--seed", "5", "--time-limit", "2", "--until", "all"]
HUNT_TIMING = ("wall_s", "cpu_s", "folder")


def hunt_rows(folder: Path) -> list[dict]:
    with open(folder / "hunt.csv") as fh:
        return [{k: v for k, v in r.items() if k not in HUNT_TIMING} for r in csv.DictReader(fh)]


def test_a_hunt_on_a_local_cluster_gives_the_hunt_of_one_process(tmp_path):
    """`dsim hunt --cluster local:2` writes the same hunt.csv (less timing and folder columns) and the same failure folders as `--jobs 1`."""
    pytest.importorskip("distributed")
    for name, how in (("one", ["--jobs", "1"]), ("dask", ["--cluster", "local:2"])):
        res = dsim(*HUNT, *how, "--out", name, cwd=tmp_path)
        assert res.returncode == 1, res.stdout + res.stderr
    assert hunt_rows(tmp_path / "dask") == hunt_rows(tmp_path / "one")
    assert len(hunt_rows(tmp_path / "one")) == 10 and any(r["valid"] == "False" for r in hunt_rows(tmp_path / "one"))
    folders = {d.name: json.loads((d / "manifest.json").read_text())["digest"] for d in (tmp_path / "one" / "failures").iterdir()}
    assert folders and folders == {d.name: json.loads((d / "manifest.json").read_text())["digest"]
                                   for d in (tmp_path / "dask" / "failures").iterdir()}


@pytest.mark.parametrize("args, needle", [
    (["hunt", "queue", "--jobs", "2", "--cluster", "local:2"], "for --jobs with --cluster: expected one of them"),
    (["hunt", "queue", "--batch", "3"], "'--batch' without --cluster"),
    (["hunt", "queue", "--cluster", "udp://x:1"], "for --cluster: expected local:N"),
])
def test_hunt_executor_options_are_checked_as_the_sweeps_are(tmp_path, capsys, monkeypatch, args, needle):
    """Bad --cluster/--jobs/--batch combinations on `dsim hunt` are refused in one line, before the hunt folder exists."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", "h"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and err.count("\n") == 1
    assert not (tmp_path / "h").exists()


def test_hunt_runs_batched_on_a_local_cluster_give_the_same_hunt(tmp_path):
    """`--batch 3` sends a hunt's runs to Dask three to a task and still writes the --jobs 1 hunt.csv (less timings)."""
    pytest.importorskip("distributed")
    args = ["hunt", "queue", "--budget", "7", "--seed", "2", "--time-limit", "1"]
    for name, how in (("one", ["--jobs", "1"]), ("batched", ["--cluster", "local:2", "--batch", "3"])):
        res = dsim(*args, *how, "--out", name, cwd=tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
    assert hunt_rows(tmp_path / "batched") == hunt_rows(tmp_path / "one") and len(hunt_rows(tmp_path / "one")) == 7


def test_a_shrink_on_a_local_cluster_gives_the_shrink_of_one_process(tmp_path):
    """`dsim shrink --cluster local:2` tries the same candidates (shrink.csv less wall times) and writes the same shrunk.toml as `--jobs 1`."""
    pytest.importorskip("distributed")
    res = dsim("run", "queue", "--bug", "double-serve", "--seed", "2", "--time-limit", "4", "--nemesis", "crash,pause",
               "--nemesis-interval", "0.5", "--out", "run", "--no-plots", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    tables = []
    for name, how in (("one", ["--jobs", "1"]), ("dask", ["--cluster", "local:2"])):
        res = dsim("shrink", "run", "--budget", "20", *how, "--out", name, cwd=tmp_path)
        assert res.returncode == 1, res.stdout + res.stderr
        with open(tmp_path / name / "shrink.csv") as fh:
            tables.append([{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(fh)])
        toml = (tmp_path / name / "shrunk.toml").read_text().split("\n", 2)[2]  # less the header naming the folder
        tables.append(toml)
    assert tables[0] == tables[2] and tables[1] == tables[3] and len(tables[0]) <= 20
