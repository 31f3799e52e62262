"""The kernel's scheduled calls: the shape that the kernel, the network and the hosts push.

An entry on SimPy's heap is ``(time, priority, event id, event)``. The engine pushes, instead,
``(time, priority, event id, fn, a, b)`` for a call ``fn(a, b)`` and ``(time, priority, event id,
fn, a, b, c)`` for ``fn(a, b, c)``: no event object, no callback list. Heap order only ever compares
the first three fields (event ids are unique), so the tie rule (time, then priority, then event id)
is SimPy's own. :meth:`Simulation.run <simulator.engine.kernel.Simulation.run>` pops these and
makes the call; a SimPy event (a 4-tuple) on the same heap still goes through ``Environment.step``.
Nothing may run the heap with ``Environment.run`` or ``step`` directly.

``FLUSH_AT`` is how many trace integers the kernel buffers before it folds them into the digest.
"""

from __future__ import annotations

FLUSH_AT = 5 * 8192
