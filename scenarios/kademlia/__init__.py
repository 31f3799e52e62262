"""The Kademlia scenario: a DHT whose nodes join by the protocol, churn, look up and store."""

from . import scenario  # noqa: F401  (registers "kademlia")
