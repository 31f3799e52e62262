"""The workload and its history: clients that invoke operations (open or closed loop, per-op
timeouts) and the Jepsen-shaped history of invoke/ok/fail/info events they leave."""
