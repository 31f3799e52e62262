"""The commerce design: orders, money and stock with sagas, TCC and two-phase commit."""

from . import scenario  # noqa: F401
