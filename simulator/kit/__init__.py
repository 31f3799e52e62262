"""The component kit: services, load balancers, databases and rate limiters to build designs from,
and the transaction modes across them (:mod:`simulator.kit.saga`: sagas, TCC, 2PC).

Each component is a :class:`~simulator.engine.node.Node` with its parameters in one spec
dataclass (documented in its module); they speak :mod:`simulator.kit.messages`. A design wires
them by hand in Python, or from a TOML graph (:mod:`simulator.kit.graph`).
"""
