"""Messages of the email pipeline, in its own vocabulary (frozen, slotted dataclasses).

Client-facing messages (``SubmitSend``, ``SubmitCampaign``, ``Accepted``) are kept apart from the
internal ones (queue, worker, provider, suppression). Recipients travel in batches: a
:class:`QueueMessage` names a job and a tuple or ``range`` of recipient indices, never one object
per email, so a million-recipient campaign is a few thousand messages.
"""

from __future__ import annotations

from simulator import message

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


@message
class Enqueue:
    msg: QueueMessage


@message
class Enqueued:
    msg_id: tuple[int, int, int]


@message
class Pull:
    """A worker's long poll for one message; ``bulk_ok`` False asks for transactional mail only."""

    pull_id: int
    bulk_ok: bool


@message
class Leased:
    """A message handed to a worker, invisible to others until ``receipt`` expires or is acked."""

    pull_id: int
    msg: QueueMessage
    receipt: int


@message
class Empty:
    """Nothing arrived during the long poll."""

    pull_id: int


@message
class Ack:
    """Done with a message: delete it, and atomically store its retry batch and dead letters."""

    msg_id: tuple[int, int, int]
    retry: QueueMessage | None
    dead: tuple[DeadLetter, ...]


@message
class Extend:
    """The worker still holds this lease and works on it: push its visibility timeout back."""

    msg_id: tuple[int, int, int]
    receipt: int


@message
class DepthQuery:
    query_id: int


@message
class Depth:
    """Messages a partition still holds (ready, delayed or leased) or an API still has to fan out."""

    query_id: int
    messages: int


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
