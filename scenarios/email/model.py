"""The world around the pipeline: addresses, providers, outcome codes, back-off, the mailboxes.

Addresses are integers. Which provider hosts an address, and whether it is invalid (a permanent
bounce), is a fixed hash of the integer, so no table per address is ever built and every node
agrees without asking. A campaign goes to a run of consecutive addresses from a population, so
later campaigns meet addresses that bounced earlier: that is what the suppression list is for.

:class:`Mailboxes` is the ground truth outside the system: what each provider actually delivered
to each recipient. Providers write it; checkers read it after the run (it is exposed); no node of
the pipeline ever reads it. Per job it holds one byte per recipient, so a million-recipient
campaign costs two megabytes, not a million objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Outcome codes in ProviderReply.outcomes.
DELIVERED = 0  # accepted and delivered
DUPLICATE = 1  # the idempotency key was seen: delivered before, not delivered again
BOUNCED = 2  # permanent failure: the address does not exist
DEFERRED = 3  # transient 4xx: try later
THROTTLED = 4  # above the provider's rate limit: try later
UNAVAILABLE = 5  # provider outage (503)
TIMEOUT = 6  # worker side: no answer in time (never sent by a provider)
TRANSIENT_FROM = DEFERRED
OUTCOME_NAMES = ("delivered", "duplicate", "bounced", "deferred", "throttled", "unavailable", "timeout")


@dataclass(frozen=True)
class ProviderSpec:
    """A provider at full scale: share of addresses, rate limit (emails/s), mean latency (ms)."""

    name: str
    share: float
    limit_s: float
    latency_ms: float


# Large webmail providers and a long tail; limits add up to the 10,000 emails/s peak.
WEBMAIL = (
    ProviderSpec("gmail", 0.40, 4000.0, 80.0),
    ProviderSpec("outlook", 0.25, 2500.0, 120.0),
    ProviderSpec("yahoo", 0.20, 2000.0, 150.0),
    ProviderSpec("tail", 0.15, 1500.0, 300.0),
)
PROVIDER_NAMES = tuple(p.name for p in WEBMAIL)
IDEAL = "mx"  # the one never-failing provider of the M/M/c validation


def provider_node(name: str) -> str:
    return f"p-{name}"


def _mix(x: int) -> float:
    """A fixed hash of a non-negative integer to [0, 1) (Knuth's multiplicative, 32 bits)."""
    return ((x * 2654435761) & 0xFFFFFFFF) / 4294967296.0


class AddressBook:
    """Maps an address to its provider index and tells invalid addresses, by hashing."""

    __slots__ = ("cuts", "bounce_rate", "n")

    def __init__(self, shares: tuple[float, ...], bounce_rate: float):
        total = sum(shares)
        acc, cuts = 0.0, []
        for s in shares[:-1]:
            acc += s / total
            cuts.append(acc)
        self.cuts = tuple(cuts)
        self.n = len(shares)
        self.bounce_rate = bounce_rate

    def provider(self, address: int) -> int:
        u = _mix(address)
        for i, cut in enumerate(self.cuts):
            if u < cut:
                return i
        return self.n - 1

    def invalid(self, address: int) -> bool:
        return _mix(address ^ 0x5BD1E995) < self.bounce_rate


def address_of(first_address: int, index: int, population: int) -> int:
    return (first_address + index) % population


def backoff_ms(attempt: int, base_ms: float, cap_ms: float, u: float) -> float:
    """Exponential back-off with full jitter: uniform in [0, min(cap, base * 2^(attempt-1)))."""
    return u * min(cap_ms, base_ms * (2.0 ** max(0, attempt - 1)))


@dataclass
class ProviderControl:
    """The provider's operating state that scenario fault verbs change (outage, slowness)."""

    down: bool = False
    slow_factor: float = 1.0


@dataclass
class Mailboxes:
    """Ground truth: deliveries (count per recipient, saturating at 255) and bounces, per job."""

    delivered: dict[int, bytearray] = field(default_factory=dict)
    bounced: dict[int, bytearray] = field(default_factory=dict)

    def deliver(self, job: int, size: int, index: int) -> int:
        """Record one delivery; returns how many times this recipient has now received it."""
        row = self.delivered.get(job)
        if row is None:
            row = self.delivered[job] = bytearray(size)
        c = row[index]
        if c < 255:
            row[index] = c + 1
        return c + 1

    def was_delivered(self, job: int, index: int) -> bool:
        row = self.delivered.get(job)
        return row is not None and row[index] > 0

    def bounce(self, job: int, size: int, index: int) -> None:
        row = self.bounced.get(job)
        if row is None:
            row = self.bounced[job] = bytearray(size)
        row[index] = 1
