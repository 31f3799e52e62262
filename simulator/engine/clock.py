"""Local clocks: offset, drift and the faults that bump or strobe them.

A node's local time is ``offset + base_local + (true - base_true) * (1 + drift_ppm * 1e-6)``.
``ctx.now`` reads it. Timers measure *local elapsed* time, so a timer of ``d`` local nanoseconds
fires after ``d / (1 + drift)`` true nanoseconds: drift stretches or shrinks timers, while a bump
(a jump of the offset) moves what ``ctx.now`` says without touching pending timers, as with a
monotonic timer source next to a wall clock that NTP steps.

A perfect clock is the common case and costs nothing: hosts without clock faults have no Clock
object at all.
"""

from __future__ import annotations

import math


def _check_drift(drift_ppm: float) -> float:
    drift_ppm = float(drift_ppm)
    if not (drift_ppm > -1e6 and math.isfinite(drift_ppm)):  # at -1e6 ppm the clock stops
        raise ValueError(f"drift must be a finite number of ppm above -1,000,000, got {drift_ppm}")
    return drift_ppm


class Clock:
    """The local clock of one host."""

    __slots__ = ("offset_ns", "drift_ppm", "_base_true", "_base_local")

    def __init__(self, offset_ns: int = 0, drift_ppm: float = 0.0, now_true: int = 0):
        self.offset_ns = int(offset_ns)
        self.drift_ppm = _check_drift(drift_ppm)
        self._base_true = now_true
        self._base_local = now_true

    def local(self, true_ns: int) -> int:
        """Local time at true time ``true_ns``."""
        elapsed = true_ns - self._base_true
        if self.drift_ppm:
            elapsed = int(elapsed * (1.0 + self.drift_ppm * 1e-6))
        return self._base_local + elapsed + self.offset_ns

    def true_delay(self, local_delay_ns: int) -> int:
        """True nanoseconds until a timer of ``local_delay_ns`` local nanoseconds fires: rounded up,
        and at least 1 ns for a delay above 0, so that the local clock has moved on by the whole
        delay when it fires. (Rounded down, a fast clock's timer of a nanosecond or two fired at
        once with the local clock short of its deadline, and a node that sets it again for what is
        left, as it should, did so forever at one instant.)"""
        if self.drift_ppm and local_delay_ns > 0:
            return max(1, math.ceil(local_delay_ns / (1.0 + self.drift_ppm * 1e-6)))
        return local_delay_ns

    def bump(self, delta_ns: int) -> None:
        """Jump the clock by ``delta_ns`` (either sign)."""
        self.offset_ns += int(delta_ns)

    def set_drift(self, drift_ppm: float, now_true: int) -> None:
        """Change the drift rate from ``now_true`` on, keeping local time continuous."""
        self._base_local = self.local(now_true) - self.offset_ns
        self._base_true = now_true
        self.drift_ppm = _check_drift(drift_ppm)

    def reset(self, now_true: int) -> None:
        """Back to true time (the final heal): no offset, no drift."""
        self.offset_ns = 0
        self.drift_ppm = 0.0
        self._base_true = now_true
        self._base_local = now_true
