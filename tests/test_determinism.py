"""Determinism: for every registered scenario, one seed gives one digest, in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.run import execute

SHORT = {"time_limit_s": 3.0, "quiesce_s": 1.0, "final_timeout_s": 2.0}


def digest_of(name: str, seed: int, **options) -> str:
    cfg = build_config(registry.get(name), seed=seed, options={**SHORT, **options})
    return execute(cfg).digest


@pytest.mark.parametrize("name", registry.names())
def test_same_seed_same_digest(name):
    """Two runs of a scenario with one seed give one digest."""
    assert digest_of(name, 11) == digest_of(name, 11)


@pytest.mark.parametrize("name", registry.names())
def test_other_seed_other_digest(name):
    """Another seed gives another digest."""
    assert digest_of(name, 11) != digest_of(name, 12)


def test_digest_is_stable_across_processes_and_hash_seeds():
    """Separate processes with different PYTHONHASHSEED values compute the same digest for each scenario."""
    code = ("import json, sys; from tests.test_determinism import digest_of; from simulator.pipeline import scenario as r; "
            "print(json.dumps({n: digest_of(n, 5) for n in r.names()}))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outs = []
    for hashseed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    shipped = [n for n in registry.names() if registry.origin(n) == registry.SHIPPED]  # not design files other tests loaded
    assert outs[0] == {n: digest_of(n, 5) for n in shipped}


def test_digest_survives_faults_and_nemeses():
    """A queue run under crash and pause nemeses replays to the same digest."""
    opts = {"nemesis": "crash,pause", "nemesis_interval_s": 1.0}
    assert digest_of("queue", 3, **opts) == digest_of("queue", 3, **opts)
