"""Checkers: functions from what a run left (history, observations, exposed state) to a verdict.

A :class:`CheckResult` has ``valid`` in {True, False, "unknown"} and, when it is not True, a
``message`` a person can read: the first counter-example, in words. :func:`compose` folds several
results into one verdict (False beats "unknown" beats True), as Jepsen's ``compose`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "unknown"
MESSAGE_MAX = 2_000  # characters of a checker's message kept (it is printed in the summary and saved)


def cap_message(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


@dataclass
class CheckResult:
    valid: bool | str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.message, str) and len(self.message) > MESSAGE_MAX:
            self.message = cap_message(self.message)
        v = self.valid
        if isinstance(v, str):
            if v != UNKNOWN:
                raise ValueError(f"valid must be True, False or 'unknown', got {v!r}")
        elif v in (True, False) and not isinstance(v, float):
            self.valid = bool(v)  # numpy bools and 0/1 become real bools, so `is False` holds
        else:
            raise ValueError(f"valid must be True, False or 'unknown', got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": self.valid}
        if self.message:
            out["message"] = self.message
        out.update(self.details)
        return out


def merge_valid(values) -> bool | str:
    """False if any is False, else "unknown" if any is unknown, else True (True for none)."""
    values = list(values)
    if any(not isinstance(v, str) and not v for v in values):
        return False
    if any(isinstance(v, str) for v in values):
        return UNKNOWN
    return True


def compose(results: dict[str, CheckResult]) -> CheckResult:
    """One verdict over named results; the message names the failing checks."""
    valid = merge_valid(r.valid for r in results.values())
    bad = [f"{name}: {r.message or r.valid}" for name, r in results.items() if r.valid is not True]
    return CheckResult(valid, "; ".join(bad))
