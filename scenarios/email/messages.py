"""Messages of the email pipeline, in its own vocabulary (frozen, slotted dataclasses).

Client-facing messages (``SubmitSend``, ``SubmitCampaign``, ``Accepted``) are kept apart from the
internal ones (queue, worker, provider, suppression). Recipients travel in batches: a
:class:`QueueMessage` names a job and a tuple or ``range`` of recipient indices, never one object
per email, so a million-recipient campaign is a few thousand messages.
"""

from __future__ import annotations

from simulator import message

# The queue protocol is the kit's (simulator.kit.queue), re-exported for the email nodes: Enqueue /
# Enqueued, Pull, Leased, Empty, Ack (with the retry batch and dead letters, atomically), Extend,
# DepthQuery / Depth.
from simulator.kit.queue import Ack, Depth, DepthQuery, Empty, Enqueue, Enqueued, Extend, Leased, Pull  # noqa: F401

TX = "tx"  # transactional class: password resets, receipts
BULK = "bulk"  # marketing campaigns


# ---- client <-> ingest API ----------------------------------------------------------------------
@message
class SubmitSend:
    """A transactional email to one address; ``job`` is the client's idempotency key."""

    op_id: int
    job: int
    address: int


@message
class SubmitCampaign:
    """A campaign to ``recipients`` consecutive addresses from ``first_address``."""

    op_id: int
    job: int
    first_address: int
    recipients: int


@message
class Accepted:
    """The job is durable at the ingest API: it will be expanded and sent."""

    op_id: int
    job: int


# ---- the queue ----------------------------------------------------------------------------------
@message
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


@message
class DeadLetter:
    """Recipients given up on: too many attempts or too old."""

    msg_id: tuple[int, int, int]
    job: int
    items: tuple[int, ...]
    reason: str


# ---- worker <-> provider -------------------------------------------------------------------------
@message
class ProviderSend:
    """One bulk API call: the recipients ``items`` of ``job``; ``keyed`` sends idempotency keys."""

    call_id: int
    job: int
    cls: str
    first_address: int
    job_size: int
    items: tuple[int, ...]
    keyed: bool


@message
class ProviderReply:
    """One outcome code per item (see :mod:`scenarios.email.model`), as bytes."""

    call_id: int
    outcomes: bytes


# ---- suppression list ---------------------------------------------------------------------------
@message
class Suppress:
    address: int


@message
class SuppressionSync:
    """A (re)started worker asks for the whole list."""


@message
class Suppressed:
    """Addresses newly on (or, after a sync, all of) the suppression list."""

    addresses: tuple[int, ...]
