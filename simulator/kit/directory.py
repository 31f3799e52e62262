"""Where components live: component name -> its instance ids, and how a caller picks one.

Every kit node gets the same :class:`Directory` (built once by the design). A caller that reaches a
component without a load balancer in front picks an instance at random (client-side balancing,
as a service mesh's sidecar would); a database is reached through its router.
"""

from __future__ import annotations


class Directory:
    def __init__(self, instances: dict[str, list[str]] | None = None):
        self.instances: dict[str, list[str]] = {k: list(v) for k, v in (instances or {}).items()}

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
        fresh = [i for i in ids if i not in tried] if tried else ids
        pool = fresh or ids
        return pool[int(ctx.rng.integers(len(pool)))]
