"""The engine: simulated time and scheduling, hosts, the network, clocks, storage, random streams,
distributions, topologies and the Node API. It knows nothing of faults plans, workloads, checkers,
runs or reports; every layer above builds on it. See docs/architecture.md."""
