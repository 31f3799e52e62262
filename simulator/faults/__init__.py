"""Faults as data: actions, timed plans, and seeded nemesis generators in the Jepsen style.

An action is a dict: ``{"at_ns": 10_000_000_000, "action": "partition", "groups": [["n1"], ["n2", "n3"]]}``
plus, for generated ones, ``"nemesis"`` (which generator) and ``"phase"`` (``start``/``stop``).
A plan is a list of actions sorted by time; the :class:`Injector` applies them at their times and
keeps every applied action for ``faults.jsonl`` and for shading plots.

Verbs (``action`` values) and their arguments:

=================  =================================================================
partition          groups: lists of node ids that can talk only within their group
partition_oneway   srcs, dsts: messages from srcs to dsts are lost
block              pairs: directed (src, dst) pairs that are cut
isolate            node: cut from every other server
heal               (none): remove every partition
slow               factor: multiply all latencies (1 restores)
set_loss           p: drop each message with probability p
set_duplicate      p: duplicate each message with probability p
flaky              pairs, p: loss on the given directed links only
reset_links        (none): undo slow and flaky
crash              node, lose_unsynced (default false)
restart            node
pause / resume     node
clock_bump         node, delta_ms
clock_drift        node, ppm
clock_strobe       node, delta_ms, period_ms, duration_ms: flip the offset every period
clock_reset        node: back to true time
=================  =================================================================

Scenarios add verbs of their own (a provider outage, a coordinator crash at a phase boundary)
with :meth:`Injector.register`.

Nemeses (``--nemesis a,b``): every ``nemesis_interval_s`` the schedule alternates between starting
a fault and stopping it, choosing among the requested kinds with the ``faults`` stream. Faults never
overlap, so each stop pairs with the start before it, and recovery is measured per fault.
"""

from .injector import Injector
from .nemesis import NEMESES, nemesis_plan
from .plan import VERBS, normalise, validate_plan, windows

__all__ = ["Injector", "NEMESES", "VERBS", "nemesis_plan", "normalise", "validate_plan", "windows"]
