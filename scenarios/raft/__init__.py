"""Raft (Ongaro and Ousterhout 2014): a replicated key-value store under faults, checked for linearizability."""

from . import scenario  # noqa: F401  (registers "raft")
