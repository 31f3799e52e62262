"""Distributions of durations (latency, service time, fsync), given by a kind and a mean in ms.

A :class:`Dist` is data (it goes in manifests and configuration); :meth:`Dist.sampler` turns it
into a fast callable returning integer nanoseconds from a named stream, pre-drawn in batches.

Kinds and their shape parameter:
    constant     always the mean
    uniform      mean +- mean*cv*sqrt(3)  (cv is the coefficient of variation, default 0.5)
    normal       mean, sd = mean*cv, truncated at 0
    lognormal    mean and cv (sigma^2 = ln(1+cv^2))
    exponential  mean (cv is 1 by definition)
    pareto       mean, tail index ``alpha`` (> 1; default 2.5): x_m * (1 + Lomax(alpha))

``cv`` is a number from 0 to 100 and ``alpha`` one above 1 and at most 100 (beyond, draws overflow or
mean nothing). In text (:meth:`Dist.parse`) a kind takes only its own shape option, once: ``cv`` for
uniform, normal and lognormal, ``alpha`` for pareto, none for constant and exponential.

Durations cannot be negative: uniform with cv above 1/sqrt(3) (about 0.577) and normal with a large
cv are clipped at 0, which raises their mean above ``mean_ms`` (normal, cv 2: about 1.4x). Use
lognormal or pareto for long tails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .rng import Batch, Streams

MAX_MEAN_MS = 1e12  # about 31 years; a draw a few times the mean still fits int64 nanoseconds
KINDS = ("constant", "uniform", "normal", "lognormal", "exponential", "pareto")
SHAPES = {"constant": (), "uniform": ("cv",), "normal": ("cv",), "lognormal": ("cv",), "exponential": (),
          "pareto": ("alpha",)}  # the shape option each kind takes in text
MAX_CV = 100.0  # lognormal cv 100 is sigma 3; far beyond, cv**2 and the uniform's range overflow
MAX_ALPHA = 100.0  # pareto alpha 100 is nearly constant already


@dataclass(frozen=True)
class Dist:
    kind: str = "constant"
    mean_ms: float = 0.0
    cv: float = 0.5
    alpha: float = 2.5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"distribution {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0 <= self.mean_ms <= MAX_MEAN_MS:  # NaN fails too; above the bound, draws overflow int64 ns
            raise ValueError(f"mean must be a number from 0 to {MAX_MEAN_MS:g} ms, got {self.mean_ms!r}")
        if not 0 <= self.cv <= MAX_CV:  # NaN fails too
            raise ValueError(f"cv must be a number from 0 to {MAX_CV:g}, got {self.cv!r}")
        if self.kind == "pareto" and not 1 < self.alpha <= MAX_ALPHA:
            raise ValueError(f"pareto alpha must be > 1 and at most {MAX_ALPHA:g}, got {self.alpha!r}")

    @classmethod
    def parse(cls, text: str) -> "Dist":
        """``"exponential:10"`` or ``"lognormal:5:cv=1.2"`` or just ``"10"`` (constant)."""
        parts = str(text).split(":")
        try:
            if len(parts) == 1:
                return cls("constant", float(parts[0]))
            extra = {}
            for p in parts[2:]:
                k, eq, v = p.partition("=")
                if k not in ("cv", "alpha"):
                    shape = "alpha" if parts[0] == "pareto" else "cv"  # a bare number, as in "lognormal:12:0.8"
                    hint = f"; name it, e.g. {parts[0]}:{parts[1]}:{shape}={k}" if not eq else ""
                    raise ValueError(f"unknown distribution option {k!r} (accepted: cv, alpha{hint})")
                takes = SHAPES.get(parts[0])
                if takes is not None and k not in takes:
                    raise ValueError(f"distribution option {k!r} does not apply to {parts[0]}: "
                                     f"accepted: {', '.join(takes) or 'none'}")
                if k in extra:
                    raise ValueError(f"distribution option {k!r} is given twice: give it once")
                extra[k] = float(v)
            return cls(parts[0], float(parts[1]), **extra)
        except (TypeError, ValueError) as exc:
            if "distribution" in str(exc) or "must be" in str(exc):
                raise
            raise ValueError(f"cannot read distribution {text!r}: write KIND:MEAN_MS, e.g. exponential:10") from None

    def to_dict(self) -> dict:
        return asdict(self)

    def is_zero(self) -> bool:
        return self.mean_ms == 0

    def draw_ms(self, gen: np.random.Generator, n: int) -> np.ndarray:
        m = self.mean_ms
        if m == 0 or self.kind == "constant":
            return np.full(n, m)
        if self.kind == "exponential":
            return gen.exponential(m, n)
        if self.kind == "uniform":
            half = m * self.cv * math.sqrt(3)
            return gen.uniform(max(0.0, m - half), m + half, n)
        if self.kind == "normal":
            return np.maximum(gen.normal(m, m * self.cv, n), 0.0)
        if self.kind == "lognormal":
            s2 = math.log1p(self.cv**2)
            return gen.lognormal(math.log(m) - s2 / 2, math.sqrt(s2), n)
        # pareto with minimum x_m chosen so the mean is m
        xm = m * (self.alpha - 1) / self.alpha
        return xm * (1.0 + gen.pareto(self.alpha, n))

    def sampler(self, streams: Streams, stream: str, size: int = 4096) -> Callable[[], int]:
        """A callable giving one duration in integer ns per call, drawn from stream ``stream``."""
        if self.mean_ms == 0 or self.kind == "constant":
            value = int(round(self.mean_ms * 1e6))
            return lambda: value
        return Batch(streams.get(stream), lambda g, n: np.rint(self.draw_ms(g, n) * 1e6).astype(np.int64), size)
