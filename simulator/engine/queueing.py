"""Queueing theory the validations compare against: Erlang C for M/M/c.

An M/M/c queue (Poisson arrivals at ``rate_s`` per second, ``servers`` servers, exponential
service with mean ``service_s``) has offered load ``a = rate_s * service_s`` Erlangs. When
``a < servers`` it is stable and Erlang C gives the probability that an arrival waits and the mean
time it waits; when ``a >= servers`` the queue grows without bound (the wait is infinite).
"""

from __future__ import annotations

import math
from typing import NamedTuple


class ErlangC(NamedTuple):
    p_wait: float  # probability that an arrival finds every server busy
    wait_s: float  # mean time in the queue, before service
    response_s: float  # mean time in the system: wait plus service


def erlang_c(servers: int, rate_s: float, service_s: float) -> ErlangC:
    """Erlang C for an M/M/c queue; ``(1.0, inf, inf)`` when the offered load reaches ``servers``."""
    a = rate_s * service_s
    c = servers
    if a >= c:
        return ErlangC(1.0, math.inf, math.inf)
    term, total = 1.0, 1.0  # a^k / k!, summed for k < c
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c / (1 - a / c)  # a^c / c! / (1 - rho)
    p_wait = last / (total + last)
    wait_s = p_wait * service_s / (c - a)
    return ErlangC(p_wait, wait_s, wait_s + service_s)
