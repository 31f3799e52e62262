"""Messages of the email pipeline, in its own vocabulary (frozen, slotted dataclasses).

Client-facing messages (``SubmitSend``, ``SubmitCampaign``, ``Accepted``) are kept apart from the
internal ones (queue, worker, provider, suppression). Recipients travel in batches: a
:class:`QueueMessage` names a job and a tuple or ``range`` of recipient indices, never one object
per email, so a million-recipient campaign is a few thousand messages.
"""

from __future__ import annotations

from dataclasses import dataclass

TX = "tx"  # transactional class: password resets, receipts
BULK = "bulk"  # marketing campaigns


# ---- client <-> ingest API ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubmitSend:
    """A transactional email to one address; ``job`` is the client's idempotency key."""

    op_id: int
    job: int
    address: int


@dataclass(frozen=True, slots=True)
class SubmitCampaign:
    """A campaign to ``recipients`` consecutive addresses from ``first_address``."""

    op_id: int
    job: int
    first_address: int
    recipients: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """The job is durable at the ingest API: it will be expanded and sent."""

    op_id: int
    job: int


# ---- the queue ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One durable queue message: a batch of recipients of one job, at one attempt.

    ``msg_id`` is ``(job, batch, attempt)``. ``items`` are recipient indices within the job (a
    ``range`` for a fresh campaign batch, a tuple for retries). ``delay_ms`` keeps a retry
    invisible for its back-off; ``first_ns`` is when the job was accepted (for the age limit).
    """

    msg_id: tuple[int, int, int]
    job: int
    cls: str
    first_address: int
    job_size: int
    items: range | tuple[int, ...]
    attempt: int
    first_ns: int
    delay_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Recipients given up on: too many attempts or too old."""

    msg_id: tuple[int, int, int]
    job: int
    items: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    msg: QueueMessage


@dataclass(frozen=True, slots=True)
class Enqueued:
    msg_id: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Pull:
    """A worker's long poll for one message; ``bulk_ok`` False asks for transactional mail only."""

    pull_id: int
    bulk_ok: bool


@dataclass(frozen=True, slots=True)
class Leased:
    """A message handed to a worker, invisible to others until ``receipt`` expires or is acked."""

    pull_id: int
    msg: QueueMessage
    receipt: int


@dataclass(frozen=True, slots=True)
class Empty:
    """Nothing arrived during the long poll."""

    pull_id: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Done with a message: delete it, and atomically store its retry batch and dead letters."""

    msg_id: tuple[int, int, int]
    retry: QueueMessage | None
    dead: tuple[DeadLetter, ...]


@dataclass(frozen=True, slots=True)
class Extend:
    """The worker still holds this lease and works on it: push its visibility timeout back."""

    msg_id: tuple[int, int, int]
    receipt: int


@dataclass(frozen=True, slots=True)
class DepthQuery:
    query_id: int


@dataclass(frozen=True, slots=True)
class Depth:
    """Messages a partition still holds (ready, delayed or leased) or an API still has to fan out."""

    query_id: int
    messages: int


# ---- worker <-> provider -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProviderSend:
    """One bulk API call: the recipients ``items`` of ``job``; ``keyed`` sends idempotency keys."""

    call_id: int
    job: int
    cls: str
    first_address: int
    job_size: int
    items: tuple[int, ...]
    keyed: bool


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """One outcome code per item (see :mod:`scenarios.email.model`), as bytes."""

    call_id: int
    outcomes: bytes


# ---- suppression list ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Suppress:
    address: int


@dataclass(frozen=True, slots=True)
class SuppressionSync:
    """A (re)started worker asks for the whole list."""


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Addresses newly on (or, after a sync, all of) the suppression list."""

    addresses: tuple[int, ...]
