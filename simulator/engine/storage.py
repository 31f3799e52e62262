"""Durable storage of one host: survives crashes, costs fsync latency, can lose unsynced writes.

State a node keeps in its own attributes is volatile: a crash loses it with the node object. State
it puts in ``ctx.storage`` is durable. A write with ``sync=True`` (the default) is on disk when the
handler finishes and costs the host's fsync latency once per handler (group commit: several synced
writes in one handler pay one fsync). A write with ``sync=False`` is cached until the next synced
write or ``sync()``; a crash with ``lose_unsynced`` discards cached writes, as a power loss would.

Values are stored by reference: store immutable values (tuples, frozen dataclasses, numbers) or
copies, never a list the node keeps mutating.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

_MISSING = object()


class Storage:
    """A key-value store with explicit durability."""

    __slots__ = ("_durable", "_cache", "_deletes", "_on_fsync", "fsyncs", "writes")

    def __init__(self, on_fsync: Callable[[], None] | None = None):
        self._durable: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}  # written but not yet synced (value or _MISSING for a delete)
        self._deletes = 0  # deletes among the cached writes (none: sync is one dict update)
        self._on_fsync = on_fsync
        self.fsyncs = 0
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        """The latest written value of ``key`` (synced or not), or ``default``."""
        if key in self._cache:
            value = self._cache[key]
            return default if value is _MISSING else value
        return self._durable.get(key, default)

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def keys(self) -> Iterator[str]:
        """Keys currently present, in insertion order."""
        seen = dict.fromkeys(self._durable)
        seen.update(dict.fromkeys(self._cache))
        return iter([k for k in seen if self.get(k, _MISSING) is not _MISSING])

    def put(self, key: str, value: Any, sync: bool = True) -> None:
        """Write ``key``; with ``sync`` it is durable when the handler ends (one fsync per handler)."""
        self.writes += 1
        self._cache[key] = value
        if sync:
            self.sync()

    def delete(self, key: str, sync: bool = True) -> None:
        """Remove ``key`` (durably, with ``sync``)."""
        self.writes += 1
        self._cache[key] = _MISSING
        self._deletes += 1
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make every cached write durable, paying the host's fsync latency."""
        cache = self._cache
        if self._deletes:
            durable = self._durable
            for key, value in cache.items():
                if value is _MISSING:
                    durable.pop(key, None)
                else:
                    durable[key] = value
            self._deletes = 0
        else:
            self._durable.update(cache)
        cache.clear()
        self.fsyncs += 1
        if self._on_fsync is not None:
            self._on_fsync()

    def crash(self, lose_unsynced: bool) -> None:
        """What a crash does: cached writes survive only if the cache is not lost."""
        if lose_unsynced:
            self._cache.clear()
            self._deletes = 0

    def snapshot(self) -> dict[str, Any]:
        """A copy of what is durable now (for checkers that a scenario exposes it to)."""
        return dict(self._durable)
