"""A resource manager's lock table: strict two-phase locking with two granularities.

A transfer takes an intention-exclusive (IX) lock on the shard and an exclusive (X) lock on each
account it touches; an audit takes a shared (S) lock on the whole shard, which conflicts with
every IX (Gray's multi-granularity locking). A request takes all its locks at once or waits: no
local deadlock is possible, and distributed deadlocks (two transactions waiting on each other
across shards) end with the lock-wait timeout, which the resource manager turns into a no vote.

Fairness: once an audit waits, later transfers queue behind it, so a stream of transfers cannot
starve audits. Waiters are granted in arrival order. Nothing here iterates a set to decide an
order.
"""

from __future__ import annotations

TRANSFER = "transfer"
AUDIT = "audit"


class LockTable:
    __slots__ = ("ix", "s", "x", "queue", "held", "audits_waiting")

    def __init__(self):
        self.ix: set[int] = set()          # transactions holding the shard's IX lock
        self.s: set[int] = set()           # transactions holding the shard's S lock
        self.x: dict[int, int] = {}        # account -> transaction holding it
        self.queue: dict[int, tuple] = {}  # waiting tx -> (kind, accounts), in arrival order
        self.held: dict[int, tuple] = {}   # tx -> (kind, accounts) it holds
        self.audits_waiting = 0

    def _free(self, kind: str, accounts: tuple) -> bool:
        if kind == AUDIT:
            return not self.ix
        if self.s:
            return False
        x = self.x
        for a in accounts:
            if a in x:
                return False
        return True

    def _grant(self, tx: int, kind: str, accounts: tuple) -> None:
        if kind == AUDIT:
            self.s.add(tx)
        else:
            self.ix.add(tx)
            for a in accounts:
                self.x[a] = tx
        self.held[tx] = (kind, accounts)

    def acquire(self, tx: int, kind: str, accounts: tuple) -> bool:
        """Take every lock now (True) or join the queue (False)."""
        if tx in self.held:
            return True
        if (kind == AUDIT or not self.audits_waiting) and self._free(kind, accounts):
            self._grant(tx, kind, accounts)
            return True
        self.queue[tx] = (kind, accounts)
        if kind == AUDIT:
            self.audits_waiting += 1
        return False

    def cancel(self, tx: int) -> None:
        """Leave the queue (a lock-wait timeout or an abort)."""
        req = self.queue.pop(tx, None)
        if req is not None and req[0] == AUDIT:
            self.audits_waiting -= 1

    def release(self, tx: int) -> list[int]:
        """Drop ``tx``'s locks (and any queued request); returns the waiters granted, in order."""
        self.cancel(tx)
        h = self.held.pop(tx, None)
        if h is None:
            return []
        kind, accounts = h
        if kind == AUDIT:
            self.s.discard(tx)
        else:
            self.ix.discard(tx)
            for a in accounts:
                if self.x.get(a) == tx:
                    del self.x[a]
        return self._wake()

    def force(self, tx: int, kind: str, accounts: tuple) -> None:
        """Re-take a prepared transaction's locks after a restart (they cannot conflict)."""
        self._grant(tx, kind, accounts)

    def _wake(self) -> list[int]:
        granted = []
        if not self.queue:
            return granted
        audit_blocked = False
        for tx, (kind, accounts) in list(self.queue.items()):
            if kind == AUDIT:
                if self._free(kind, accounts):
                    del self.queue[tx]
                    self.audits_waiting -= 1
                    self._grant(tx, kind, accounts)
                    granted.append(tx)
                else:
                    audit_blocked = True
            elif not audit_blocked and self._free(kind, accounts):
                del self.queue[tx]
                self._grant(tx, kind, accounts)
                granted.append(tx)
        return granted

    def summary(self) -> dict:
        """What is held and waiting (for the liveness checker)."""
        return {"held": sorted(self.held), "waiting": list(self.queue)}
