"""The cache tier: cache-aside app servers, a cache cluster and a replicated database (and a policy replay tool)."""

from . import scenario  # noqa: F401  (registers "cache")
