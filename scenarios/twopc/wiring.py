"""What every node of a run knows about the deployment: ids, timeouts, the protocol, the bug.

Built once per run by the scenario and shared (read-only) by every node factory, so a restarted
node comes back with the same configuration and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMER_GRID_NS = 5_000_000  # deadlines round up to a 5 ms grid, so clustered time-outs share one firing


def arm_timer(node, ctx, due: int) -> None:
    """Set ``node``'s one timer ("tick") to fire by local time ``due`` (ns), rounded up to the
    grid; keep an earlier setting. Nodes keep ``tick_due`` (None when unset) for this."""
    due = -(-due // TIMER_GRID_NS) * TIMER_GRID_NS
    if node.tick_due is None or due < node.tick_due:
        node.tick_due = due
        ctx.set_timer("tick", max(0.0, (due - ctx.now) / 1e6) + 0.001)


def sprung(node, ctx, phase: str) -> bool:
    """Whether a phase-boundary crash trap set for this coordinator fires at ``phase``; if it does,
    the node goes dead (answers nothing more) until the fault restores it."""
    if node.traps.armed and node.traps.hit(ctx.id, phase):
        node.dead = True
        return True
    return False


@dataclass(frozen=True)
class Wiring:
    protocol: str                 # "2pc" or "paxos-commit"
    rms: tuple[str, ...]          # resource managers, one per shard: rm1..rmS
    coordinators: tuple[str, ...]  # 2PC: (tm1,); Paxos Commit: tm1..tm(2F+1), each an acceptor
    f: int                        # faults tolerated (0 for 2PC)
    accounts: int
    initial_balance: int
    lock_wait_timeout_ms: float
    vote_timeout_ms: float
    doubt_timeout_ms: float
    doubt_retry_ms: float
    recovery_timeout_ms: float
    suspect_ms: float
    ack_delay_ms: float
    cooperative: bool
    bug: str | None

    def shard_of(self, account: int) -> int:
        return account % len(self.rms)

    def rm_of(self, account: int) -> str:
        return self.rms[account % len(self.rms)]

    def accounts_of(self, rm: str) -> range:
        i = self.rms.index(rm)
        return range(i, self.accounts, len(self.rms))

    def acceptors_for(self, leader: str) -> tuple[str, ...]:
        """The F+1 acceptors an RM sends its ballot-0 vote to: the leader's and the next F (Section 4.3)."""
        return _acceptors(self.coordinators, self.f)[leader]


_ACCEPTORS: dict = {}


def _acceptors(coords: tuple[str, ...], f: int) -> dict[str, tuple[str, ...]]:
    key = (coords, f)
    table = _ACCEPTORS.get(key)
    if table is None:
        k = len(coords)
        table = _ACCEPTORS[key] = {c: tuple(coords[(i + j) % k] for j in range(f + 1)) for i, c in enumerate(coords)}
    return table
