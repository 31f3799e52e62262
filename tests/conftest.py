"""Fixtures shared by the CLI and bad-input tests."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working folder, so a default results/ folder would show."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """One real, complete, tiny queue run folder (copied, never modified, by the tests)."""
    from simulator.cli import main

    out = tmp_path_factory.mktemp("good") / "run"
    try:
        main(["run", "queue", "--seed", "2", "--time-limit", "0.5", "--no-plots", "--out", str(out)])
    except SystemExit as exc:
        assert exc.code == 0
    return out


@pytest.fixture
def clean_registry(monkeypatch):
    """The registry as it is, restored after the test (designs loaded here must not leak into other tests)."""
    from simulator.pipeline import scenario as registry

    registry.names()
    for attr in ("_REGISTRY", "_ORIGIN", "_DESIGNS", "_BY_PATH", "_FAILED"):
        monkeypatch.setattr(registry, attr, dict(getattr(registry, attr)))
    modules = set(sys.modules)
    yield registry
    for name in set(sys.modules) - modules:
        if name.startswith("_dsim_design_"):
            del sys.modules[name]
