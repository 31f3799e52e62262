"""Bad input the fifth probe found: output paths the machine cannot use (a name over 255 bytes, a
symlink loop, a folder that refuses files), options a resumed sweep would ignore, a design file's
unused --node-count, spacetime windows past int64, GraphML topologies and graph fan-outs too large
to run, debug switches read as text. One line, exit 2, nothing written."""

from __future__ import annotations

import os

import pytest

from simulator import UsageError
from tests.test_bad_input import TINY, assert_refused, dsim_in

RUN = ["--seed", "1", *TINY, "--no-plots"]
LONG = "a" * 300


@pytest.mark.parametrize("args", [
    ["run", "queue", *RUN, "--out", f"od/{LONG}"],
    ["sweep", "queue", "--seeds", "1", *TINY, "--out", f"od/{LONG}/x"],
    ["hunt", "queue", "--seed", "1", "--budget", "2", "--out", f"od/{LONG}"],
])
def test_an_output_folder_name_over_255_bytes_is_refused(here, capsys, args):
    code, _, err = dsim_in(capsys, *args)
    assert_refused(code, err, "for --out")
    assert not (here / "od").exists()


def test_output_files_the_machine_cannot_use_are_refused(here, capsys, good_run):
    code, _, err = dsim_in(capsys, "compare", good_run, "--out", f"{LONG}.png")
    assert_refused(code, err, "for --out: cannot use the path (File name too long)")
    (here / "x.edn").symlink_to("y.edn")
    (here / "y.edn").symlink_to("x.edn")
    code, _, err = dsim_in(capsys, "export", good_run, "--out", here / "x.edn")
    assert_refused(code, err, "for --out: cannot use the path (Symlink loop")


def test_a_folder_that_refuses_files_is_refused_before_the_run(here, capsys, monkeypatch):
    from pathlib import Path

    real = Path.touch

    def touch(self, *a, **kw):  # an immutable or read-only folder, whoever runs the test
        if self.name.startswith(".dsim-probe-"):
            raise PermissionError(1, "Operation not permitted")
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "touch", touch)
    (here / "ro").mkdir()
    for args in (["run", "queue", *RUN], ["sweep", "queue", "--seeds", "1", *TINY]):
        code, _, err = dsim_in(capsys, *args, "--out", here / "ro")
        assert_refused(code, err, "cannot write in the folder (Operation not permitted)")
        assert list((here / "ro").iterdir()) == []


def test_a_resumed_sweep_refuses_options_it_would_ignore(here, capsys):
    code, _, err = dsim_in(capsys, "sweep", "queue", "--seeds", "1", *TINY, "--out", here / "sw")
    assert code == 0, err
    for extra, needle in ((["--seeds", "9"], "--seeds"), (["--time-limit", "5"], "--time-limit"),
                          (["--no-plots"], "--plots/--no-plots"), (["--set", "servers=2"], "--set")):
        code, _, err = dsim_in(capsys, "sweep", "--resume", here / "sw", *extra)
        assert_refused(code, err, f"bad value {needle} with --resume")
    code, _, err = dsim_in(capsys, "sweep", "--resume", here / "sw", "--jobs", "1")  # how to run it: fine
    assert code == 0, err


def test_the_ping_example_refuses_a_node_count_it_ignores(here, capsys, clean_registry):
    from pathlib import Path

    ping = Path(__file__).resolve().parent.parent / "examples" / "ping" / "ping.py"
    code, _, err = dsim_in(capsys, "run", ping, *RUN, "--node-count", "50", "--out", here / "out")
    assert_refused(code, err, "bad value 50 for node_count: ping does not use it")


@pytest.mark.parametrize("window, needle", [
    (["--to", "1e300"], "bad value 1e+300 for --to: expected simulated seconds above 0 to 1e9"),
    (["--to", "0"], "bad value 0.0 for --to"),
    (["--from", "1e300"], "bad value 1e+300 for --from: expected simulated seconds from 0 to 1e9"),
])
def test_spacetime_windows_beyond_any_run_are_refused(here, capsys, window, needle):
    code, _, err = dsim_in(capsys, "run", "queue", *RUN, "--trace", "--out", here / "run")
    assert code == 0, err
    code, _, err = dsim_in(capsys, "show", here / "run", "--spacetime", *window)
    assert_refused(code, err, needle)


def test_a_graphml_topology_too_large_to_route_is_refused(here, capsys):
    nodes = "".join(f'<node id="s{i}"/>' for i in range(2001))
    edges = "".join(f'<edge source="s{i}" target="s{i + 1}"/>' for i in range(2000))
    (here / "big.graphml").write_text('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
                                      f'<graph edgedefault="undirected">{nodes}{edges}</graph></graphml>')
    code, _, err = dsim_in(capsys, "run", "raft", *RUN, "--topology", f"graph:{here / 'big.graphml'}",
                           "--out", here / "out")
    assert_refused(code, err, "has 2,001 nodes: expected at most 2,000")
    assert not (here / "out").exists()


def test_a_service_calling_too_many_hops_is_refused():
    from simulator.kit.graph import parse

    with pytest.raises(UsageError, match=r"\(65 hops\) for calls: expected at most 64 hops"):
        parse({"app": {"kind": "service", "calls": ["db:read"] * 65}, "db": {"kind": "database"}},
              [{"name": "r", "path": ["app"]}])


@pytest.mark.parametrize("value", ["0", "false", "No", " ", "off"])
def test_dsim_debug_set_to_off_stays_off(monkeypatch, capsys, value):
    from simulator import cli

    monkeypatch.setenv("DSIM_DEBUG", value)

    def crash(**kw):  # a bug of dsim's own, as the command would meet it
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.cli, "main", crash)
    with pytest.raises(SystemExit) as exc:
        cli.main(["list"])
    assert exc.value.code == 3
    assert capsys.readouterr().err.startswith("dsim: internal error: RuntimeError: boom")
    assert os.environ["DSIM_DEBUG"] == value


@pytest.mark.parametrize("exposes, needle", [
    ('{"wrong-seq": "--seed 1 --frobnicate 3"}', "No such option '--frobnicate'"),
    ('{"wrong-seq": "--seed 1 --bug drop-pong"}', "it plants 'drop-pong'"),
    ('{"drop-pong": "--out /tmp/x --seed 1"}', "it names --out"),
    ('{"drop-pong": "--seed abc"}', "bad value 'abc' for --seed"),
    ('{"drop-pong": "--seed 1 extra"}', "'extra' is not an option"),
])
def test_a_design_file_whose_exposing_command_would_not_run_is_refused(here, capsys, clean_registry, exposes, needle):
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "examples" / "ping" / "ping.py").read_text()
    anchor = '    unused_options = ("node_count",)'
    assert text.count(anchor) == 1
    (here / "mine.py").write_text(text.replace(anchor, f"    exposes = {exposes}\n{anchor}"))
    code, _, err = dsim_in(capsys, "describe", here / "mine.py")
    assert_refused(code, err, "for exposes[", needle)


def test_a_search_the_design_refuses_is_refused_before_a_hunt(here, capsys, clean_registry):
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "examples" / "ping" / "ping.py").read_text()
    anchor = '    unused_options = ("node_count",)'
    for search, needle in (('{"bug_share": (2.0, 5.0)}', "2.0 is refused (bad value 2.0 for bug_share"),
                           ('{"bug_share": [float("nan")]}', "nan is refused (not a finite number)"),
                           ('{"rate": (-1e308, 1e308)}', "-1e+308 is refused (bad value -1e+308 for rate"),
                           ('{"node_count": (1, 3)}', "which ping does not use")):
        (here / "mine.py").write_text(text.replace(anchor, f"    search = {search}\n{anchor}"))
        code, _, err = dsim_in(capsys, "hunt", here / "mine.py", "--bug", "wrong-seq", "--budget", "2",
                               "--seed", "3", "--out", here / "h")
        assert_refused(code, err, needle)
        assert not (here / "h").exists()


def test_compare_will_not_write_into_a_compared_folder(here, capsys, good_run):
    import shutil

    shutil.copytree(good_run, here / "r")
    code, _, err = dsim_in(capsys, "compare", here / "r", here / "r", "--out", here / "r" / "latency-raw.png")
    assert_refused(code, err, "it lies inside the compared folder")
