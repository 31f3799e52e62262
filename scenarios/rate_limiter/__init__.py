"""The rate-limiter scenario: N gateways enforcing per-user and global limits (local, central, sync)."""

from . import scenario  # noqa: F401  (registers "rate-limiter")
