"""Named random streams derived from one master seed.

Every random draw in a run comes from a stream with a name (``"net.latency"``, ``"node.n3"``,
``"faults"``). A stream's seed is derived from (master seed, the stream's name) through SHA-256 of
the name, never Python's ``hash()``, which is salted per process. Adding a stream therefore never
shifts the draws of another, and a run replays the same whatever PYTHONHASHSEED is.

Hot paths draw through :class:`Batch`, which pre-draws numpy arrays and hands out Python floats:
calling numpy once per message costs several times more than popping a pre-drawn value, and a
batch draw yields the same sequence as scalar draws from the same Generator.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import Callable

import numpy as np
import numpy.random  # noqa: F401 - numpy loads it lazily; load it with us, not mid-run

MAX_SEED = 2**63 - 1


def stream_seed(master_seed: int, name: str) -> list[int]:
    """Entropy words for stream ``name``: the master seed and four words of SHA-256(name)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return [int(master_seed) & 0xFFFFFFFF, (int(master_seed) >> 32) & 0xFFFFFFFF, *words]


class Streams:
    """A registry of named ``numpy.random.Generator`` objects for one run."""

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
        self.seed = int(seed)
        self._streams: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> np.random.Generator:
        """The stream called ``name``, created on first use (the same object afterwards)."""
        gen = self._streams.get(name)
        if gen is None:
            # The words as a uint32 array rather than a list of ints: the same seed (SeedSequence
            # reads both as the same words), but it keeps the array, about 140 B a stream less,
            # which counts with a stream per host on a million hosts.
            words = np.array(stream_seed(self.seed, name), dtype=np.uint32)
            gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
            self._streams[name] = gen
        return gen

    def batch(self, name: str, draw: Callable[[np.random.Generator, int], np.ndarray], size: int = 4096) -> "Batch":
        """A :class:`Batch` over stream ``name``; ``draw(gen, n)`` returns n values."""
        return Batch(self.get(name), draw, size)


class Batch:
    """Pre-drawn values from one generator, handed out one at a time as Python floats."""

    __slots__ = ("_gen", "_draw", "_size", "_buf")

    def __init__(self, gen: np.random.Generator, draw: Callable[[np.random.Generator, int], np.ndarray], size: int = 4096):
        self._gen = gen
        self._draw = draw
        self._size = size
        self._buf: list[float] = []

    def __call__(self) -> float:
        buf = self._buf
        if not buf:
            values = self._draw(self._gen, self._size).tolist()
            values.reverse()  # pop() from the end hands them out in drawn order
            self._buf = buf = values
        return buf.pop()
