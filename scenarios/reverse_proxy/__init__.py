"""The reverse-proxy scenario: a proxy tier in front of uneven upstreams, one of which degrades."""

from . import scenario  # noqa: F401  (registers "reverse-proxy")
