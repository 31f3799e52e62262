"""The kernel's scheduled call: the one event shape that the kernel, the network and the hosts push.

An entry on SimPy's heap is ``(time, priority, event id, event)``. Instead of a ``simpy.Event``
with a callback list, the engine pushes a :class:`Call3`: a slotted object whose ``callbacks`` is
a one-tuple that calls ``fn(a, b, c)``. SimPy's ``step`` treats it as a processed event, so the
heap, the tie rule (time, then priority, then event id) and ``run(until=...)`` are SimPy's own.

``FLUSH_AT`` is how many trace integers the kernel buffers before it folds them into the digest.
"""

from __future__ import annotations

FLUSH_AT = 5 * 8192


class Call3:
    """A scheduled call ``fn(a, b, c)``."""

    __slots__ = ("callbacks", "fn", "a", "b", "c")
    _ok = True

    def __init__(self, fn, a, b, c):
        self.callbacks = _FIRE3
        self.fn = fn
        self.a = a
        self.b = b
        self.c = c


def _fire3(ev: Call3) -> None:
    ev.fn(ev.a, ev.b, ev.c)


_FIRE3 = (_fire3,)
