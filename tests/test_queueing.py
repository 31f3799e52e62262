"""Erlang C, the M/M/c formula the queue and email validations compare against."""

from __future__ import annotations

import math

import pytest

from simulator import erlang_c


def test_mm10_matches_the_textbook_response_time():
    """M/M/10 with lambda=9, mu=1 has mean response 1.6687 s (wait 0.6687 s, P(wait) 0.6687)."""
    got = erlang_c(10, 9.0, 1.0)
    assert got.response_s == pytest.approx(1.6687, abs=5e-4)
    assert got.wait_s == pytest.approx(got.response_s - 1.0)
    assert got.p_wait == pytest.approx(0.6687, abs=5e-4)


def test_mm1_reduces_to_one_over_mu_minus_lambda():
    """With one server Erlang C is M/M/1: P(wait) = rho and response 1 / (mu - lambda)."""
    got = erlang_c(1, 50.0, 0.01)
    assert got.p_wait == pytest.approx(0.5)
    assert got.response_s == pytest.approx(1 / (100 - 50))


def test_load_at_or_above_capacity_waits_forever():
    """An offered load equal to the server count is unstable: every arrival waits, for ever."""
    got = erlang_c(10, 10.0, 1.0)
    assert got.p_wait == 1.0 and math.isinf(got.wait_s) and math.isinf(got.response_s)
