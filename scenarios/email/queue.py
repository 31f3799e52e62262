"""The email design's queue partitions: the kit's durable queue (:mod:`simulator.kit.queue`:
visibility timeouts, redelivery, long polling, tombstones, atomic settle with delayed retries and
dead letters), configured for mail.

- priority: transactional messages (``TX``) are served before campaign batches, and a worker may
  long-poll for transactional mail only (``Pull.bulk_ok`` False), so reserved worker slots never
  fill up with campaign batches;
- sizes: a message is a batch of recipients, so depths and records count emails
  (``len(msg.items)``), and lease records carry the batch's ``attempt``;
- no redrive (``max_receives`` 0): a lease only expires when its worker crashed or was cut off,
  and the providers' idempotency keys make the redelivery harmless; the workers dead-letter
  recipients themselves (``max_attempts``, ``max_age_ms``) through the ack.

Planted bug ``fifo-only``: no priority classes, so one ready queue for both and ``bulk_ok`` is
ignored.
"""

from __future__ import annotations

from simulator.kit.queue import Queue, QueueSpec

from .messages import TX, DeadLetter, QueueMessage
from .settings import Settings


def emails(msg) -> int:
    """Emails a stored item carries (a batch or one of the workers' dead letters)."""
    return len(msg.items)


def attempt(msg: QueueMessage) -> dict:
    return {"attempt": msg.attempt}


def spec(settings: Settings) -> QueueSpec:
    return QueueSpec("queue", partitions=len(settings.partitions),
                     visibility_timeout_ms=settings.visibility_timeout_ms, long_poll_ms=settings.long_poll_ms,
                     max_receives=0, priority=() if settings.bug == "fifo-only" else (TX,),
                     sample_ms=settings.sample_ms, size_of=emails, fields_of=attempt)


def Partition(settings: Settings) -> Queue:
    """One partition node (its id is one of ``settings.partitions``)."""
    return Queue(spec(settings))


def pending(snapshot: dict) -> list[QueueMessage]:
    return Queue.pending(snapshot)


def dead_letters(snapshot: dict) -> list[DeadLetter]:
    return Queue.dead_letters(snapshot)


__all__ = ["Partition", "spec", "pending", "dead_letters"]
