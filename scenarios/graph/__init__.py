"""The graph scenario: a system design built from kit components described in TOML."""

from . import scenario  # noqa: F401  (registers "graph")
