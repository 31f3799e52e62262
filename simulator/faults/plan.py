"""Fault plans as data: the verbs, their arguments, checking a plan, and fault windows for plots.

An action is a dict: ``{"at_ns": 10_000_000_000, "action": "partition", "groups": [["n1"], ["n2", "n3"]]}``
plus, for generated ones, ``"nemesis"`` (which generator) and ``"phase"`` (``start``/``stop``).
A plan is a list of actions sorted by time. The verbs are listed in :mod:`simulator.faults`.
"""

from __future__ import annotations

from ..engine.errors import UsageError

VERBS: dict[str, tuple[str, ...]] = {
    "partition": ("groups",), "partition_oneway": ("srcs", "dsts"), "block": ("pairs",),
    "isolate": ("node",), "heal": (), "slow": ("factor",), "set_loss": ("p",), "set_duplicate": ("p",),
    "flaky": ("pairs", "p"), "reset_links": (), "crash": ("node",), "restart": ("node",),
    "pause": ("node",), "resume": ("node",), "clock_bump": ("node", "delta_ms"),
    "clock_drift": ("node", "ppm"), "clock_strobe": ("node", "delta_ms", "period_ms", "duration_ms"),
    "clock_reset": ("node",), "final_heal": (),
}
# Arguments a verb may carry besides its required ones: a crash that loses what the node had not
# synced; the bridge node that a generated partition-bridge names (for its plot label).
OPTIONAL: dict[str, tuple[str, ...]] = {"crash": ("lose_unsynced",), "block": ("bridge",)}
# What any planned action may carry: its time, and the nemesis and phase of a generated one.
COMMON = ("action", "at_s", "at_ns", "nemesis", "phase")

MAX_AT_S = 1e9  # a fault's time: the cap of a run's time limit (in ns, it stays inside int64)
MAX_AT_NS = int(MAX_AT_S * 1e9)


def validate_plan(plan: list[dict], extra_verbs: dict[str, tuple[str, ...]] | None = None) -> None:
    """Check a plan from a TOML file: known verbs, required arguments, one time for each."""
    verbs = {**VERBS, **(extra_verbs or {})}
    for i, act in enumerate(plan):
        if not isinstance(act, dict):
            raise UsageError(f"fault {i + 1} is not a table: write [[faults]] at_s = ..., action = ...")
        name = act.get("action")
        if name is None:
            raise UsageError(f"fault {i + 1} has no action: give action = one of {', '.join(sorted(verbs))}")
        if not isinstance(name, str):
            raise UsageError(f"bad value {name!r} for action of fault {i + 1}: expected a fault action (text): "
                             f"one of {', '.join(sorted(verbs))}")
        if name not in verbs:
            raise UsageError(f"unknown fault action {name!r}: accepted: {', '.join(sorted(verbs))}")
        if "at_s" in act and "at_ns" in act:
            raise UsageError(f"bad value at_s = {act['at_s']!r} and at_ns = {act['at_ns']!r} for fault {i + 1} ({name}): "
                             "expected one time, at_s or at_ns, not both")
        if "at_s" not in act and "at_ns" not in act:
            raise UsageError(f"fault {i + 1} ({name}) has no time: give at_s")
        key = "at_s" if "at_s" in act else "at_ns"
        at = act[key]
        if key == "at_s":
            if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= MAX_AT_S:
                raise UsageError(f"bad time {at!r} for fault {i + 1} (at_s): expected a number of seconds "
                                 f"from 0 to {MAX_AT_S:g}")
        elif isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= MAX_AT_NS:
            raise UsageError(f"bad time {at!r} for fault {i + 1} (at_ns): expected an integer number of nanoseconds "
                             f"from 0 to {MAX_AT_NS:g} (or at_s, in seconds)")
        for arg in verbs[name]:
            if arg not in act:
                raise UsageError(f"fault {i + 1} ({name}) lacks {arg!r}: needs {', '.join(verbs[name])}")
        if name in VERBS and name not in (extra_verbs or {}):  # a design checks its own verbs (check_fault)
            check_keys(i + 1, act, VERBS[name] + OPTIONAL.get(name, ()))


def check_keys(n: int, act: dict, args: tuple[str, ...]) -> None:
    """Refuse (one line) a key of fault ``n`` that is neither what every planned action may carry
    (``COMMON``) nor one of ``args``, the verb's own arguments."""
    accepted = COMMON + tuple(args)
    for key in act:
        if key not in accepted:
            raise UsageError(f"unknown argument {key!r} of fault {n} ({act.get('action')}): accepted: {', '.join(accepted)}")


def normalise(plan: list[dict]) -> list[dict]:
    """Times in ns, sorted by time (stably: equal times keep file order)."""
    out = []
    for act in plan:
        act = dict(act)
        if "at_s" in act:
            act["at_ns"] = int(round(float(act.pop("at_s")) * 1e9))
        out.append(act)
    return sorted(out, key=lambda a: a["at_ns"])


def windows(applied: list[dict], end_ns: int) -> list[tuple[int, int, str]]:
    """(start_ns, stop_ns, label) for every fault that started, for shading plots."""
    out = []
    open_: dict[str, tuple[int, str]] = {}
    for act in applied:
        label = act.get("nemesis") or act["action"]
        if act.get("phase") == "start":
            open_[label] = (act["time_ns"], label)
        elif act.get("phase") == "stop" and label in open_:
            t0, lab = open_.pop(label)
            out.append((t0, act["time_ns"], lab))
    for t0, lab in open_.values():
        out.append((t0, end_ns, lab))
    return sorted(out)
