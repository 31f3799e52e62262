"""Wall and CPU time for tools that report their own speed (``python -m scenarios.cache.replay``,
``scenarios.kademlia.scaling``). Designs and their tools never read the host's clock themselves:
model time comes from ``ctx.now``, and the speed of the machine only from here, so it can never
leak into a run's events."""

from __future__ import annotations

import time


class Stopwatch:
    """Started on creation; ``wall_s`` and ``cpu_s`` are the seconds since."""

    def __init__(self) -> None:
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self._wall0

    @property
    def cpu_s(self) -> float:
        return time.process_time() - self._cpu0
