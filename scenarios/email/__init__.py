"""The email scenario: fan-out through a durable queue and rate-limited providers, exactly once."""

from . import scenario  # noqa: F401  (registers "email")
