"""`dsim show RUN_DIR --spacetime`: a Lamport diagram of a traced run, and polite refusals."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from simulator.cli import main
from simulator.reports import spacetime as ST

from .cli_helpers import dsim

SVG = "{http://www.w3.org/2000/svg}"




@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A short traced raft run with one crash in it."""
    folder = tmp_path_factory.mktemp("st") / "run"
    try:
        main(["run", "raft", "--seed", "1", "--time-limit", "0.6", "--trace", "--no-plots", "--out", str(folder),
              "--nemesis", "crash", "--nemesis-interval", "0.2"])
    except SystemExit as exc:
        assert exc.code == 0
    return folder


def test_a_window_is_drawn_with_one_line_per_node_and_one_arrow_per_message(capsys, traced):
    """--from/--to draw spacetime.svg: a labelled line per node and an arrow per message in the window."""
    code, out, err = dsim(capsys, "show", traced, "--spacetime", "--from", "0.3", "--to", "0.33")
    assert code == 0, err
    root = ET.parse(traced / "spacetime.svg").getroot()
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"n1", "n2", "n3", "n4", "n5", "c1"} <= labels
    drawing = ST.load(traced).window(300_000_000, 330_000_000)
    arrows = [ln for ln in root.iter(f"{SVG}line") if ln.get("marker-end")]
    assert len(arrows) == len(drawing.messages()) > 0
    assert f"{len(drawing.messages())} messages" in out


def test_crashes_are_marked(traced):
    """A crash of the nemesis is drawn on its node's line, labelled."""
    drawing = ST.load(traced)
    crash = next(f for f in drawing.faults if f["action"] == "crash")
    svg = drawing.window(crash["time_ns"] - 5_000_000, crash["time_ns"] + 5_000_000).svg()
    assert ">crash</text>" in svg


def test_too_many_messages_are_refused_in_one_line_naming_from_and_to(capsys, traced):
    """The whole run has more messages than can be drawn legibly: exit 2, one line naming --from/--to."""
    code, out, err = dsim(capsys, "show", traced, "--spacetime")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--from" in err and "--to" in err


def test_focus_picks_a_window_that_fits(traced):
    """focus() narrows a run too big to draw to a window under the limit."""
    drawing = ST.load(traced)
    assert not drawing.fits()
    assert drawing.focus().fits() and drawing.focus().messages()


def test_an_untraced_run_and_bad_windows_are_refused(capsys, tmp_path, traced):
    """A run without trace.jsonl, --to before --from, or --from without --spacetime: one line, exit 2."""
    plain = tmp_path / "plain"
    dsim(capsys, "run", "queue", "--seed", "1", "--time-limit", "0.2", "--no-plots", "--out", plain)
    code, _, err = dsim(capsys, "show", plain, "--spacetime")
    assert code == 2 and "--trace" in err and len(err.strip().splitlines()) == 1
    code, _, err = dsim(capsys, "show", traced, "--spacetime", "--from", "0.5", "--to", "0.4")
    assert code == 2 and "--to" in err
    code, _, err = dsim(capsys, "show", traced, "--from", "0.5")
    assert code == 2 and "--spacetime" in err
