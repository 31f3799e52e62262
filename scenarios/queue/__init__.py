"""The queue scenario: clients -> one service node with ``servers`` cores (an M/M/c queue)."""

from . import scenario  # noqa: F401  (registers "queue")
