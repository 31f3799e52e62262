"""dsim: a deterministic discrete-event simulator for distributed systems."""

__version__ = "0.1.0"
