"""Where components live: component name -> its instance ids, and how a caller picks one.

Every kit node gets the same :class:`Directory` (built once by the design). A caller that reaches a
component without a load balancer in front picks an instance at random (client-side balancing,
as a service mesh's sidecar would); a database is reached through its router.

Picks draw from the node's own stream (``ctx.rng``) through :class:`Uniforms`, a block of uniforms
at a time: one numpy call costs several microseconds, about what the rest of a hop costs, and a
request makes a pick or more at every hop.
"""

from __future__ import annotations


_BLOCK = 512


class Uniforms:
    """Uniform draws in [0, 1) from one generator, drawn ``_BLOCK`` at a time and handed out in
    order. ``integers(n)`` is a pick among ``n`` (``int(u * n)``), standing in for
    ``Generator.integers(n)`` wherever a kit component picks an instance."""

    __slots__ = ("rng", "_buf")

    def __init__(self, rng):
        self.rng = rng
        self._buf: list[float] = []

    def random(self) -> float:
        buf = self._buf
        if not buf:
            buf = self._buf = self.rng.random(_BLOCK).tolist()
            buf.reverse()  # pop() from the end hands them out in drawn order
        return buf.pop()

    def integers(self, n: int) -> int:
        buf = self._buf
        if not buf:
            buf = self._buf = self.rng.random(_BLOCK).tolist()
            buf.reverse()
        i = int(buf.pop() * n)
        return i if i < n else n - 1  # u * n can round up to n for u just below 1


class Directory:
    def __init__(self, instances: dict[str, list[str]] | None = None):
        self.instances: dict[str, list[str]] = {k: list(v) for k, v in (instances or {}).items()}
        # one Uniforms per node stream (keyed by the generator object, which outlives restarts:
        # a restarted node goes on with the same block)
        self._uniforms: dict = {}

    def uniforms(self, ctx) -> Uniforms:
        """The block draws of ``ctx``'s node stream (shared by every kit component of the node)."""
        rng = ctx.rng
        u = self._uniforms.get(rng)
        if u is None:
            u = self._uniforms[rng] = Uniforms(rng)
        return u

    def add(self, component: str, ids: list[str]) -> None:
        if component in self.instances:
            raise ValueError(f"component {component!r} added twice")
        self.instances[component] = list(ids)

    def of(self, component: str) -> list[str]:
        return self.instances[component]

    def pick_random(self, ctx, component: str, op: str, key, tried: tuple) -> str | None:
        """A random instance, avoiding those already tried by this request when others remain."""
        ids = self.instances.get(component)
        if not ids:
            return None
        if len(ids) == 1:
            return ids[0]
        pool = ([i for i in ids if i not in tried] or ids) if tried else ids
        return pool[self.uniforms(ctx).integers(len(pool))]
