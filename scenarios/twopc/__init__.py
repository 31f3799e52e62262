"""The twopc scenario: a distributed transaction manager, two-phase commit beside Paxos Commit."""

from . import scenario  # noqa: F401  (registers "twopc")
