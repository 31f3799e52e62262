"""Duration distributions (simulator.engine.dists): means, parsing, validation and integer-ns samplers."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.dists import KINDS, Dist
from simulator.engine.rng import Streams

N = 40_000


@pytest.mark.parametrize("kind,cv,tol", [
    ("constant", 0.5, 1e-12), ("uniform", 0.5, 0.01), ("normal", 0.3, 0.01),
    ("lognormal", 1.2, 0.04), ("exponential", 1.0, 0.025), ("pareto", 0.5, 0.06),
])
def test_sample_mean_is_close_to_mean_ms(kind, cv, tol):
    """Each kind's sample mean over many draws is within a small relative tolerance of mean_ms."""
    d = Dist(kind, 10.0, cv=cv)
    x = d.draw_ms(np.random.default_rng(1), N)
    assert abs(x.mean() - 10.0) / 10.0 < tol


@pytest.mark.parametrize("kind", ["uniform", "normal", "lognormal"])
def test_cv_sets_the_spread(kind):
    """For uniform, normal (away from 0) and lognormal, the sample coefficient of variation is about cv."""
    x = Dist(kind, 10.0, cv=0.2).draw_ms(np.random.default_rng(2), N)
    assert abs(x.std() / x.mean() - 0.2) < 0.01


def test_draws_are_never_negative():
    """No kind draws a negative duration, even a wide normal."""
    for kind in KINDS:
        x = Dist(kind, 1.0, cv=2.0 if kind != "uniform" else 0.5).draw_ms(np.random.default_rng(3), 5000)
        assert (x >= 0).all(), kind


def test_zero_mean_draws_zero():
    """A zero mean gives zeros for every kind, and is_zero() says so."""
    for kind in KINDS:
        d = Dist(kind, 0.0)
        assert d.is_zero()
        assert (d.draw_ms(np.random.default_rng(0), 10) == 0).all()


@pytest.mark.parametrize("text,expect", [
    ("exponential:10", Dist("exponential", 10.0)),
    ("lognormal:5:cv=1.2", Dist("lognormal", 5.0, cv=1.2)),
    ("pareto:3:alpha=1.5", Dist("pareto", 3.0, alpha=1.5)),
    ("10", Dist("constant", 10.0)),
    ("0.25", Dist("constant", 0.25)),
])
def test_parse_accepts_documented_forms(text, expect):
    """parse() reads KIND:MEAN, KIND:MEAN:cv=..., KIND:MEAN:alpha=... and a bare number (constant)."""
    assert Dist.parse(text) == expect


@pytest.mark.parametrize("text,match", [
    ("gaussian:10", "not one of"),
    ("exponential:-1", "mean must be"),
    ("-3", "mean must be"),
    ("exponential:abc", "cannot read distribution"),
    ("fast", "cannot read distribution"),
    ("lognormal:5:sigma=2", "unknown distribution option"),
    ("lognormal:12:0.8", "name it, e.g. lognormal:12:cv=0.8"),
    ("pareto:12:3", "name it, e.g. pareto:12:alpha=3"),
    ("exponential:nan", "mean must be"),
    ("exponential:1e300", "from 0 to 1e.12 ms"),
    ("pareto:5:alpha=1", "alpha must be > 1"),
    ("normal:5:cv=-1", "cv must be"),
])
def test_parse_rejects_bad_text_clearly(text, match):
    """Unknown kinds, negative or non-numeric means and bad options raise a ValueError that says why."""
    with pytest.raises(ValueError, match=match):
        Dist.parse(text)


def test_constructor_rejects_bad_kind_and_negative_mean():
    """Dist() itself validates its kind and mean."""
    with pytest.raises(ValueError, match="not one of"):
        Dist("weibull", 1.0)
    with pytest.raises(ValueError, match="mean must be"):
        Dist("exponential", -0.5)
    with pytest.raises(ValueError, match="mean must be"):
        Dist("constant", float("inf"))


def test_sampler_returns_ints_in_ns():
    """sampler() gives Python ints in nanoseconds; a constant gives exactly mean_ms * 1e6."""
    s = Streams(1)
    const = Dist("constant", 2.5).sampler(s, "c")
    assert const() == 2_500_000 and type(const()) is int
    expo = Dist("exponential", 2.0).sampler(s, "e")
    draws = [expo() for _ in range(20_000)]
    assert all(type(v) is int for v in draws)
    assert abs(np.mean(draws) / 2e6 - 1) < 0.03


def test_sampler_is_reproducible_per_stream():
    """Two samplers on identically seeded streams of one name give the same sequence."""
    d = Dist("lognormal", 3.0, cv=0.8)
    a = d.sampler(Streams(9), "disk.n1")
    b = d.sampler(Streams(9), "disk.n1")
    assert [a() for _ in range(50)] == [b() for _ in range(50)]


def test_to_dict_round_trips():
    """to_dict() gives the fields, and Dist(**to_dict()) is equal to the original."""
    d = Dist("pareto", 4.0, cv=0.5, alpha=3.0)
    assert d.to_dict() == {"kind": "pareto", "mean_ms": 4.0, "cv": 0.5, "alpha": 3.0}
    assert Dist(**d.to_dict()) == d
