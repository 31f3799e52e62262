"""Named random streams (simulator.engine.rng): reproducible, independent, hash-seed free, batch == scalar."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from simulator.engine.rng import MAX_SEED, Batch, Streams, stream_seed


def test_same_seed_and_name_give_same_draws():
    """Two fresh Streams with one master seed give one stream name the same draws."""
    a = Streams(42).get("net.latency").random(8)
    b = Streams(42).get("net.latency").random(8)
    assert np.array_equal(a, b)


def test_different_names_and_seeds_give_different_draws():
    """Another stream name or another master seed gives other draws."""
    base = Streams(42).get("net.latency").random(4)
    assert not np.array_equal(base, Streams(42).get("faults").random(4))
    assert not np.array_equal(base, Streams(43).get("net.latency").random(4))


def test_get_returns_the_same_generator_object():
    """get(name) creates a stream once and returns that object afterwards (draws continue)."""
    s = Streams(1)
    assert s.get("x") is s.get("x")


def test_other_streams_do_not_shift_a_stream():
    """Creating and drawing from other streams first does not change a stream's draws."""
    alone = Streams(7).get("node.n1").random(5)
    s = Streams(7)
    s.get("faults").random(100)
    s.get("net.latency").exponential(1.0, 50)
    busy = s.get("node.n1").random(5)
    assert np.array_equal(alone, busy)


def test_stream_seed_is_seed_words_then_sha256_words():
    """stream_seed carries the 64-bit master seed as two words plus four words of the name's digest."""
    words = stream_seed(2**40 + 5, "abc")
    assert words[:2] == [5, 2**8]
    assert len(words) == 6
    assert stream_seed(1, "abc")[2:] == words[2:]
    assert stream_seed(1, "abd")[2:] != words[2:]


_CHILD = ("from simulator.engine.rng import Streams; s = Streams(99); "
          "print([round(float(s.get(n).random()), 12) for n in ('node.n1', 'faults', 'net.latency')])")


def test_stream_seeds_do_not_depend_on_pythonhashseed():
    """Two processes with different PYTHONHASHSEED values draw the same numbers from named streams."""
    outs = []
    for hs in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
        outs.append(proc.stdout.strip())
    assert outs[0] == outs[1]
    here = Streams(99)
    assert outs[0] == str([round(float(here.get(n).random()), 12) for n in ("node.n1", "faults", "net.latency")])


def test_batch_matches_scalar_draws():
    """A Batch hands out the same sequence as scalar draws from an identically seeded Generator, across refills."""
    batch = Streams(5).batch("b", lambda g, n: g.random(n), size=7)
    scalar = Streams(5).get("b")
    got = [batch() for _ in range(20)]
    want = [float(scalar.random()) for _ in range(20)]
    assert got == want
    assert all(type(v) is float for v in got)


def test_batch_of_ints_hands_out_python_ints():
    """A Batch over integer draws returns Python ints in drawn order."""
    gen = np.random.default_rng(3)
    b = Batch(gen, lambda g, n: g.integers(0, 1000, n), size=4)
    got = [b() for _ in range(9)]
    want = np.random.default_rng(3)
    expect = list(want.integers(0, 1000, 4)) + list(want.integers(0, 1000, 4)) + list(want.integers(0, 1000, 4))[:1]
    assert got == [int(x) for x in expect]
    assert all(type(v) is int for v in got)


@pytest.mark.parametrize("bad", [-1, MAX_SEED + 1, 1.5, "7", None, 2**64])
def test_bad_seeds_are_rejected(bad):
    """Seeds that are not integers in 0..2**63-1 raise ValueError naming the range."""
    with pytest.raises(ValueError, match="seed must be an integer"):
        Streams(bad)


def test_extreme_seeds_are_accepted():
    """Seed 0 and the largest seed both make working streams."""
    assert 0 <= Streams(0).get("a").random() < 1
    assert 0 <= Streams(MAX_SEED).get("a").random() < 1
