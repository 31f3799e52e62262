"""The protocol-facing API: :class:`Node` (handlers) and the :class:`Context` they act through.

A protocol node is a plain class with three handlers. It never imports simpy, never reads true
time and never touches global randomness::

    class Echo(Node):
        def on_start(self, ctx):                 # after boot and after every restart
            ctx.set_timer("tick", (90, 110))     # a named timer, delay drawn uniformly in ms
        def on_message(self, ctx, src, msg):     # a message arrived from node ``src``
            ctx.send(src, msg)
        def on_timer(self, ctx, name):           # a named timer fired
            ctx.set_timer("tick", 100)

A handler runs atomically at one instant of simulated time. Everything it does goes through
``ctx``; the runtime (:mod:`simulator.engine.runtime`) is the concrete context. Its contract:

``ctx.id``
    this node's id (``"n1"``, ``"c3"``).
``ctx.now`` / ``ctx.now_ms``
    the node's *local* clock in integer nanoseconds / float milliseconds. It carries the node's
    offset and drift, so leases computed from it break under clock faults as real ones do.
``ctx.send(dst, msg)``
    send a message (normally a frozen dataclass, declared with :func:`message`). It leaves after
    any fsync this handler paid for so far: a node that persists before it answers pays for the
    disk, as real ones do.
``ctx.set_timer(name, after_ms)``
    ``after_ms`` is a number, or a ``(low, high)`` range drawn uniformly from the node's stream.
    Setting a timer again resets it. Timers measure local elapsed time: drift stretches them,
    clock bumps do not.
``ctx.cancel_timer(name)`` / ``ctx.timer_set(name)``
    cancel a timer (no error if unset) / whether it is pending.
``ctx.rng``
    this node's ``numpy.random.Generator`` (stream ``"node.<id>"``); survives restarts.
``ctx.incarnation``
    how many times this node has crashed (0 until the first crash). Counters kept in memory start
    over after a restart; a request id that carries the incarnation (``incarnation << 40 | n``)
    cannot be matched by a late reply to the node's previous life.
``ctx.storage``
    durable key-value storage (:class:`simulator.engine.storage.Storage`): survives crashes; writes with
    ``sync=True`` (the default) cost the host's fsync latency.
``ctx.record(kind, **fields)``
    an observation for checkers and metrics (true time is added); protocol code never reads them.
    Fields, like operation values, should be plain data (numbers, strings, tuples, lists, dicts):
    never sets, whose order changes with PYTHONHASHSEED and would change the digest.
``ctx.record_row(kind, row)``
    the same for an observation made once a request or more (a component's "served" line): the
    tuple ``row`` of plain values, its columns fixed by the design, is kept as
    ``(true time ns, node id, *row)`` in the table ``kind`` (``RunData.table(kind)``), with no
    field names or dict per row, so it costs a fraction of a ``record`` to make, keep and fold into
    the digest. Tables live outside the node, like records: a crash loses no row, and a run that
    stops early still hands its rows to whatever saves it.
``ctx.log(text)``
    a debug line, kept in the trace when the run is traced.
``ctx.complete(op_id, type, value=None)``
    client nodes only: finish an operation with ``"ok"``, ``"fail"`` or ``"info"``; returns False
    when the operation had already ended (timed out), so late replies are harmless.

A node that does work per message can price it and let its host queue it, instead of keeping a
queue and a timer per core of its own::

    class Server(Node):
        cores, queue_limit = 4, 1000          # read by the host at each boot
        def cost_ns(self, ctx, src, msg):     # at arrival: ns of one core, or None to run at once
            return None if type(msg) is Reply else 2_000_000
        def on_job(self, ctx, src, msg, arrived_ns, started_ns, queued):
            ...                               # the work is done now; wait = started_ns - arrived_ns
        def on_refused(self, ctx, src, msg):  # more than queue_limit jobs were waiting
            ctx.send(src, Busy())

The host queues priced messages FIFO on its ``cores`` (the runtime's own cost model,
:mod:`simulator.engine.runtime`); ``queued`` is how many jobs were waiting when this one came,
and the times are the node's own clock (``ctx.now``). A crashed node's jobs are lost with it; a
paused one starts and finishes nothing until it resumes.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, NamedTuple, Protocol


class Context(Protocol):
    """What a handler sees. The runtime's Host implements it; tests use ``simulator.engine.testing.FakeContext``."""

    id: str

    @property
    def now(self) -> int: ...
    @property
    def now_ms(self) -> float: ...
    @property
    def rng(self) -> Any: ...
    @property
    def storage(self) -> Any: ...
    def send(self, dst: str, msg: Any) -> None: ...
    def set_timer(self, name: str, after_ms: float | tuple[float, float]) -> None: ...
    def cancel_timer(self, name: str) -> None: ...
    def timer_set(self, name: str) -> bool: ...
    def record(self, kind: str, **fields: Any) -> None: ...
    def record_row(self, kind: str, row: tuple) -> None: ...
    def log(self, text: str) -> None: ...
    def complete(self, op_id: int, type: str, value: Any = None) -> bool: ...


class Node:
    """Base class of protocol nodes. Override the handlers you need; the defaults do nothing."""

    def on_start(self, ctx: Context) -> None:
        """Called at boot and after every restart; durable state is in ``ctx.storage``."""

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        """Called when message ``msg`` from node ``src`` is delivered (after its service time)."""

    def on_timer(self, ctx: Context, name: str) -> None:
        """Called when the timer ``name`` fires."""

    #: ``cost_ns(ctx, src, msg) -> int | None``, defined by a node that prices its messages (see
    #: the module's docstring); None here: every message runs ``on_message`` on delivery.
    cost_ns = None

    def on_job(self, ctx: Context, src: str, msg: Any, arrived_ns: int, started_ns: int, queued: int) -> None:
        """A priced message's work is done (it arrived at ``arrived_ns``, took a core at ``started_ns``)."""
        self.on_message(ctx, src, msg)

    def on_refused(self, ctx: Context, src: str, msg: Any) -> None:
        """A priced message found ``queue_limit`` jobs waiting; by default it is dropped."""


class Operation(NamedTuple):
    """A client operation handed to :meth:`ClientNode.on_invoke`.

    ``id`` identifies it for ``ctx.complete``; ``process`` is the Jepsen-style logical process;
    ``f`` and ``value`` are the scenario's operation (``"write"``, ``(key, 3)``).
    """

    id: int
    process: int
    f: str
    value: Any


class ClientNode(Node):
    """A client endpoint on the network. The workload invokes operations on it; it finishes each
    with ``ctx.complete(op.id, "ok" | "fail" | "info", value)``. Operations that do not complete
    within the run's per-operation timeout are recorded ``info`` by the workload."""

    def on_invoke(self, ctx: Context, op: Operation) -> None:
        """Start operation ``op`` (usually: send a request to a server)."""
        raise NotImplementedError


def message(cls: type) -> type:
    """``@message``: a frozen, slotted dataclass whose constructor is about twice as fast.

    A frozen dataclass's generated ``__init__`` assigns each field through
    ``object.__setattr__`` (2.8 µs for five fields against 0.5 µs unfrozen); a simulation builds
    one or more messages per event, so that is a tenth of a run. This keeps the frozen class
    (assignment still raises ``FrozenInstanceError``; equality, hashing, ``repr`` and
    ``dataclasses.replace`` are the dataclass's) and swaps in an ``__init__`` that stores each
    field through its slot descriptor directly (1.4 µs). Fields may have plain defaults, not
    ``default_factory``; the class may not define ``__post_init__``.
    """
    cls = dataclass(frozen=True, slots=True)(cls)
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"@message {cls.__name__}: __post_init__ is not supported")
    names, params, env = [], [], {}
    for f in fields(cls):
        if f.default_factory is not MISSING or f.kw_only is True:
            raise TypeError(f"@message {cls.__name__}.{f.name}: default_factory and kw_only are not supported")
        names.append(f.name)
        env[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"        _set_{n}(self, {n})\n" for n in names) or "        pass\n"
    src = (f"def _make({', '.join(env)}):\n"
           f"    def __init__(self, {', '.join(params)}):\n{body}"
           f"    return __init__\n")
    scope: dict[str, Any] = {}
    exec(src, scope)  # noqa: S102 - generated from the class's own field names, as dataclasses does
    init = scope["_make"](**env)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    return cls
