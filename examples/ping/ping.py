"""Ping: the smallest whole design, to copy when you model your own system.

A design is one file. Nodes are plain classes with handlers (``on_message``, ``on_invoke``...)
that act only through ``ctx``: time and randomness come from the simulation, so every run replays
bit for bit from its seed. ``build`` wires the server nodes and says how clients talk; the run
records a Jepsen-shaped history; ``check`` reads it and gives verdicts. Here clients ping one
server ``n1``, which pongs back the ping's sequence number. The checkers ask what a user of ping
would: did every ping come back, and with its own number? Two planted bugs prove they can fail:

``drop-pong``  the server silently drops 1% of its pongs (all-answered fails)
``wrong-seq``  the server answers 1% of pings with the next number (right-seq fails)

(``--set bug_share=0.1`` makes it 10%.)

    dsim run ./examples/ping/ping.py --seed 1                  # VALID, exit 0
    dsim run ./examples/ping/ping.py --seed 1 --bug wrong-seq  # INVALID, exit 1
"""

from simulator import CheckResult, ClientNode, Node, Param, Scenario, Setup, message, pairs, register
from simulator.checkers.basic import availability

SERVER = "n1"


@message  # messages are frozen dataclasses: a handler cannot change one after sending it
class Ping:
    op_id: int
    seq: int


@message
class Pong:
    op_id: int
    seq: int


class Ponger(Node):
    def __init__(self, bug, share):
        self.bug, self.share = bug, share

    def on_message(self, ctx, src, msg):
        if self.bug == "drop-pong" and ctx.rng.random() < self.share:  # ctx.rng, never `random`: replays stay exact
            return
        wrong = self.bug == "wrong-seq" and ctx.rng.random() < self.share
        ctx.send(src, Pong(msg.op_id, msg.seq + 1 if wrong else msg.seq))


class Pinger(ClientNode):
    def on_invoke(self, ctx, op):  # op.value is the sequence number the workload drew
        ctx.send(SERVER, Ping(op.id, op.value))

    def on_message(self, ctx, src, msg):
        ctx.complete(msg.op_id, "ok", msg.seq)  # the history keeps what came back


@register
class PingDesign(Scenario):
    name = "ping"
    summary = "clients ping one server, which pongs the sequence number back"
    params = (Param("bug_share", 0.01, "share of pongs a planted bug spoils", min=0.0, max=1.0),)  # --set bug_share=0.1
    bugs = {"drop-pong": "the server drops bug_share of its pongs", "wrong-seq": "bug_share of pongs carry the wrong number"}
    checkers = {"all-answered": "every ping got its pong (skipped under faults)",
                "right-seq": "every pong carries its own ping's sequence number"}
    nemeses = ("crash", "pause", "flaky-link")
    defaults = {"time_limit_s": 10.0, "node_count": 1, "quiesce_s": 1.0, "final_timeout_s": 1.0}
    unused_options = ("node_count",)  # always one server, n1

    def build(self, sim, cfg) -> Setup:
        sim.add_node(SERVER, lambda: Ponger(cfg.bug, cfg.params["bug_share"]))  # a factory: a crashed node restarts fresh
        return Setup(servers=[SERVER], client=lambda cid: Pinger(),
                     generate=lambda rng: ("ping", int(rng.integers(1 << 30))))

    def check(self, run) -> dict[str, CheckResult]:
        wrong = [(i["value"], c["value"]) for i, c in pairs(run.history) if c and c["type"] == "ok" and c["value"] != i["value"]]
        said = f"{len(wrong)} pongs carried a wrong number (first: sent {wrong[0][0]}, got {wrong[0][1]})" if wrong else ""
        right = CheckResult(not wrong, said, {"wrong": len(wrong)})
        if run.cfg.nemesis or run.cfg.faults:  # under faults a lost ping is expected, not a bug
            return {"all-answered": CheckResult(True, "", {"skipped": "faults were injected"}), "right-seq": right}
        return {"all-answered": availability(run.history, 1.0), "right-seq": right}
