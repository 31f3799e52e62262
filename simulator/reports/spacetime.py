"""Spacetime (Lamport) diagrams of a traced run, as SVG written directly (no matplotlib).

One vertical line per node, time flowing down. Each message is an arrow from its sender to its
receiver, labelled with its type; a dropped message ends in a cross. Timers are small ticks,
crashes a red cross (the line is dashed while the node is down), restarts a green bar, and
network faults (partitions, slow or flaky links) a shaded band across every line, labelled.
Client operations are bars on their client's line; those the failing checker's message names
(by operation index) are drawn thick and orange.

Where the arrows start: the trace records when a message *arrives* (``deliver``) or is dropped,
not when it was sent. A node only acts when something happens to it (a message, a timer, a start),
so each arrow is drawn from the sender's last traced event before the arrival: exact when the
handler sends at once, a little late when the sender had a CPU or fsync delay and did something
else meanwhile.

Time is drawn to a piecewise scale: each distinct instant gets a row, and the gap between rows
grows with the simulated time between them (within limits), so a burst of messages in one
millisecond is as readable as a heartbeat a second later. The left axis gives simulated
milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

MAX_MESSAGES = 400  # past this many arrows in one picture, labels overlap and nothing can be followed
MAX_NODES = 24
COL_W = 110
TOP = 70
LEFT = 90
ROW_MIN, ROW_MAX = 7.0, 40.0  # pixels between consecutive instants
PX_PER_MS = 6.0

NETWORK_FAULTS = {"partition", "partition_oneway", "block", "isolate", "slow", "set_loss", "set_duplicate", "flaky",
                  "isolate_skewed"}
ENDS_NETWORK = {"heal", "reset_links", "final_heal"}
MESSAGE_EVENTS = {"deliver", "drop-cut", "drop-loss", "drop-unknown", "drop-unsent", "drop-down", "drop-inbox"}


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass
class Drawing:
    """A traced run, ready to draw (optionally a window of it)."""

    events: list[dict]  # trace events: time_ns, event, args
    faults: list[dict]  # faults.jsonl: time_ns, action, ...
    history: list[dict]
    clients: int
    highlight: set[int] = field(default_factory=set)  # operation indexes named by the failing checker
    title: str = ""
    from_ns: int | None = None
    to_ns: int | None = None
    named_times_ns: list[int] = field(default_factory=list)  # instants the failing checker's message names

    # ---- what is drawn ----
    def window(self, from_ns: int | None, to_ns: int | None) -> "Drawing":
        return Drawing(self.events, self.faults, self.history, self.clients, self.highlight, self.title, from_ns, to_ns,
                       self.named_times_ns)

    def _inside(self, t: int) -> bool:
        return (self.from_ns is None or t >= self.from_ns) and (self.to_ns is None or t <= self.to_ns)

    def messages(self) -> list[dict]:
        return [e for e in self.events if e["event"] in MESSAGE_EVENTS and self._inside(e["time_ns"])]

    def nodes(self) -> list[str]:
        names = set()
        for e in self.events:
            if e["event"] in MESSAGE_EVENTS:
                names.update(str(a) for a in e["args"][:2])
            elif e["event"] in ("timer", "log") and e["args"]:
                names.add(str(e["args"][0]))
        clients = sorted((n for n in names if re.fullmatch(r"c\d+", n)), key=_natural)
        return sorted(names - set(clients), key=_natural) + clients

    def fits(self) -> bool:
        return len(self.messages()) <= MAX_MESSAGES and len(self.nodes()) <= MAX_NODES

    def size_note(self) -> str:
        n, k = len(self.messages()), len(self.nodes())
        span = self.span_text()
        if k > MAX_NODES:
            return f"{k} nodes{span}: more than {MAX_NODES} cannot be drawn legibly"
        return f"{n} messages{span}: more than {MAX_MESSAGES} cannot be drawn legibly"

    def span_text(self) -> str:
        if self.from_ns is None and self.to_ns is None:
            return " in the whole run"
        lo = f"{self.from_ns / 1e9:g}" if self.from_ns is not None else "start"
        hi = f"{self.to_ns / 1e9:g}" if self.to_ns is not None else "end"
        return f" from {lo} s to {hi} s"

    def focus(self) -> "Drawing":
        """A window that fits, around the times the failing checker names (else the last fault):
        it grows from that instant, alternately earlier and later, while it stays under the limit."""
        if self.fits():
            return self
        times = sorted(e["time_ns"] for e in self.messages())
        if not times:
            return self
        center = self._center()
        lo = hi = min(range(len(times)), key=lambda i: abs(times[i] - center))
        while hi - lo + 1 < MAX_MESSAGES and (lo > 0 or hi < len(times) - 1):
            if lo > 0:
                lo -= 1
            if hi < len(times) - 1 and hi - lo + 1 < MAX_MESSAGES:
                hi += 1
        while lo < hi and len(self.window(times[lo], times[hi]).messages()) > MAX_MESSAGES:  # ties at the edges
            hi -= 1
        return self.window(times[lo], times[hi])

    def _center(self) -> int:
        named = self.named_times_ns
        if named:
            return int(sum(named) / len(named))
        crashes = [f["time_ns"] for f in self.faults if f.get("action") not in ("final_heal",)]
        return crashes[-1] if crashes else self.events[-1]["time_ns"]

    # ---- the picture ----
    def write(self, path: Path) -> None:
        Path(path).write_text(self.svg(), encoding="utf-8")

    def svg(self) -> str:
        nodes = self.nodes()
        col = {n: LEFT + 40 + i * COL_W for i, n in enumerate(nodes)}
        msgs = self.messages()
        inside = [e for e in self.events if self._inside(e["time_ns"])]
        faults = [f for f in self.faults if self._inside(f["time_ns"])]
        ops = self._ops()
        instants = sorted({e["time_ns"] for e in inside} | {f["time_ns"] for f in faults}
                          | {t for o in ops for t in (o[1], o[2]) if self._inside(t)})
        y_of: dict[int, float] = {}
        y = float(TOP)
        prev = None
        for t in instants:
            if prev is not None:
                y += min(ROW_MAX, max(ROW_MIN, (t - prev) / 1e6 * PX_PER_MS))
            y_of[t] = y
            prev = t
        bottom = y + 30
        t_lo = instants[0] if instants else 0
        t_hi = instants[-1] if instants else 0

        def ypos(t: int) -> float:
            if t in y_of:
                return y_of[t]
            if not instants or t <= t_lo:
                return TOP - 10
            if t >= t_hi:
                return bottom - 10
            import bisect

            i = bisect.bisect_left(instants, t)
            a, b = instants[i - 1], instants[i]
            return y_of[a] + (y_of[b] - y_of[a]) * (t - a) / (b - a)

        width = LEFT + 40 + len(nodes) * COL_W + 40
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{int(bottom + 40)}" '
               f'font-family="Helvetica, Arial, sans-serif" font-size="10">',
               '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
               'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker>'
               '<marker id="d" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
               'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>',
               '<rect width="100%" height="100%" fill="white"/>',
               f'<text x="10" y="18" font-size="13" font-weight="bold">{escape(self.title)}</text>',
               f'<text x="10" y="34" fill="#555">{len(msgs)} messages{escape(self.span_text())}; time flows down '
               f'(simulated ms on the left); arrows start at the sender\'s last event before arrival</text>']
        # network fault bands
        open_band = None
        bands = []
        for f in self.faults:
            act = f.get("action")
            if act in NETWORK_FAULTS and open_band is None:
                open_band = (f["time_ns"], f.get("nemesis") or act)
            elif act in ENDS_NETWORK and open_band is not None:
                bands.append((open_band[0], f["time_ns"], open_band[1]))
                open_band = None
        if open_band is not None:
            bands.append((open_band[0], t_hi, open_band[1]))
        for t0, t1, lab in bands:
            if (self.to_ns is not None and t0 > self.to_ns) or (self.from_ns is not None and t1 < self.from_ns):
                continue
            y0, y1 = ypos(max(t0, t_lo)), ypos(min(t1, t_hi))
            out.append(f'<rect x="{LEFT}" y="{y0:.1f}" width="{width - LEFT - 10}" height="{max(2.0, y1 - y0):.1f}" '
                       f'fill="#f5b7b1" opacity="0.35"/>')
            out.append(f'<text x="{width - 14}" y="{y0 + 11:.1f}" text-anchor="end" fill="#922">{escape(lab)}</text>')
        # node lines, dashed while down
        down: dict[str, list[tuple[int, int]]] = {}
        crashed_at: dict[str, int] = {}
        for f in sorted(self.faults, key=lambda f: f["time_ns"]):
            node = f.get("node")
            if f.get("action") == "crash" and node:
                crashed_at.setdefault(node, f["time_ns"])
            elif f.get("action") == "restart" and node in crashed_at:
                down.setdefault(node, []).append((crashed_at.pop(node), f["time_ns"]))
        for node, t0 in crashed_at.items():
            down.setdefault(node, []).append((t0, t_hi))
        for n in nodes:
            x = col[n]
            out.append(f'<text x="{x}" y="{TOP - 18}" text-anchor="middle" font-size="12" font-weight="bold">{escape(n)}</text>')
            out.append(f'<line x1="{x}" y1="{TOP - 10}" x2="{x}" y2="{bottom:.1f}" stroke="#888" stroke-width="1.2"/>')
            for t0, t1 in down.get(n, []):
                y0, y1 = ypos(max(t0, t_lo)), ypos(min(t1, t_hi))
                if y1 > y0:
                    out.append(f'<line x1="{x}" y1="{y0:.1f}" x2="{x}" y2="{y1:.1f}" stroke="white" stroke-width="3"/>'
                               f'<line x1="{x}" y1="{y0:.1f}" x2="{x}" y2="{y1:.1f}" stroke="#c0392b" '
                               f'stroke-width="1.2" stroke-dasharray="3,4"/>')
        # time axis
        last_label = -1e9
        for t in instants:
            if y_of[t] - last_label >= 28:
                out.append(f'<text x="{LEFT - 6}" y="{y_of[t] + 3:.1f}" text-anchor="end" fill="#555">{t / 1e6:,.3f}</text>')
                out.append(f'<line x1="{LEFT - 3}" y1="{y_of[t]:.1f}" x2="{LEFT + 8}" y2="{y_of[t]:.1f}" stroke="#bbb"/>')
                last_label = y_of[t]
        # client operations
        for proc_node, t0, t1, label, hot in ops:
            if proc_node not in col:
                continue
            x = col[proc_node] - 8
            y0, y1 = ypos(max(t0, t_lo)), ypos(min(t1, t_hi))
            color, w = ("#e67e22", 5) if hot else ("#5dade2", 3)
            out.append(f'<line x1="{x}" y1="{y0:.1f}" x2="{x}" y2="{max(y1, y0 + 2):.1f}" stroke="{color}" stroke-width="{w}">'
                       f'<title>{escape(label)}</title></line>')
            if hot:
                out.append(f'<text x="{x - 4}" y="{y0 + 3:.1f}" text-anchor="end" fill="#d35400" font-weight="bold">'
                           f'{escape(label)}</text>')
        # timers and faults on nodes
        for e in inside:
            if e["event"] == "timer" and str(e["args"][0]) in col:
                x, yy = col[str(e["args"][0])], y_of[e["time_ns"]]
                out.append(f'<circle cx="{x}" cy="{yy:.1f}" r="2.2" fill="#7d3c98"><title>timer {escape(str(e["args"][1]))} '
                           f'at {e["time_ns"] / 1e6:.3f} ms</title></circle>')
        for f in faults:
            node = f.get("node")
            yy = ypos(f["time_ns"])
            act = f.get("action", "")
            if node in col:
                x = col[node]
                if act == "crash":
                    out.append(f'<path d="M{x - 6},{yy - 6:.1f} l12,12 M{x + 6},{yy - 6:.1f} l-12,12" stroke="#c0392b" '
                               f'stroke-width="2.5"/>')
                elif act == "restart":
                    out.append(f'<line x1="{x - 8}" y1="{yy:.1f}" x2="{x + 8}" y2="{yy:.1f}" stroke="#27ae60" stroke-width="3"/>')
                else:
                    out.append(f'<rect x="{x - 5}" y="{yy - 5:.1f}" width="10" height="10" fill="#f39c12"/>')
                out.append(f'<text x="{x + 9}" y="{yy + 3:.1f}" fill="#c0392b" font-weight="bold">{escape(act)}</text>')
            elif act not in NETWORK_FAULTS and act not in ENDS_NETWORK:
                out.append(f'<text x="{LEFT + 4}" y="{yy - 2:.1f}" fill="#922">{escape(act)}</text>')
        # messages
        last_at: dict[str, list[int]] = {}
        for e in self.events:  # every event a node takes part in, for where its sends start
            if e["event"] in ("timer", "log") and e["args"]:
                last_at.setdefault(str(e["args"][0]), []).append(e["time_ns"])
            elif e["event"] == "deliver":
                last_at.setdefault(str(e["args"][1]), []).append(e["time_ns"])
        for f in self.faults:
            if f.get("action") == "restart" and f.get("node"):
                last_at.setdefault(f["node"], []).append(f["time_ns"])
        for o in ops:
            last_at.setdefault(o[0], []).append(o[1])
        for v in last_at.values():
            v.sort()
        import bisect

        for e in msgs:
            src, dst, kind = str(e["args"][0]), str(e["args"][1]), str(e["args"][2])
            if src not in col or dst not in col:
                continue
            t = e["time_ns"]
            starts = last_at.get(src, [])
            i = bisect.bisect_left(starts, t) - 1
            t_send = starts[i] if i >= 0 else t
            y0, y1 = ypos(max(t_send, t_lo)), y_of.get(t, ypos(t))
            if y1 - y0 < 3:
                y0 = y1 - 3
            x0, x1 = col[src], col[dst]
            dropped = e["event"] != "deliver"
            color = "#c0392b" if dropped else "#333"
            dash = ' stroke-dasharray="4,3"' if dropped else ""
            if dropped:
                x1 = x0 + (x1 - x0) * 0.6
                y1 = y0 + (y1 - y0) * 0.6
            out.append(f'<line x1="{x0}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{color}" stroke-width="0.9"'
                       f'{dash} marker-end="url(#{"d" if dropped else "a"})"><title>{escape(kind)} {escape(src)} -> '
                       f'{escape(dst)}: {escape(e["event"])} at {t / 1e6:.3f} ms</title></line>')
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
            if angle > 90 or angle < -90:
                angle += 180
            out.append(f'<text x="{mx:.1f}" y="{my - 2:.1f}" text-anchor="middle" font-size="8" fill="{color}" '
                       f'transform="rotate({angle:.1f} {mx:.1f} {my:.1f})">{escape(kind)}'
                       f'{" (" + escape(e["event"]) + ")" if dropped else ""}</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def _ops(self) -> list[tuple[str, int, int, str, bool]]:
        """(client node, invoke ns, complete ns, label, highlighted) for operations in the window."""
        pending: dict[int, dict] = {}
        out = []
        end = max((e["time_ns"] for e in self.events), default=0)
        for op in self.history:
            if op.get("type") == "invoke":
                pending[op["process"]] = op
                continue
            inv = pending.pop(op.get("process"), None)
            if inv is None:
                continue
            out.append(self._op(inv, op["time"], op.get("type", "")))
        for inv in pending.values():
            out.append(self._op(inv, end, "open"))
        return [o for o in out if (self.to_ns is None or o[1] <= self.to_ns) and (self.from_ns is None or o[2] >= self.from_ns)]

    def _op(self, inv: dict, t_end: int, how: str) -> tuple[str, int, int, str, bool]:
        node = f"c{inv['process'] % max(1, self.clients) + 1}"
        label = f"op {inv['index']} {inv.get('f')} {json.dumps(inv.get('value'))[:30]} -> {how}"
        return node, inv["time"], t_end, label, inv["index"] in self.highlight


def load(folder: str | Path) -> Drawing:
    """The drawing of a run folder made with ``--trace``. Raises FileNotFoundError without a trace."""
    folder = Path(folder)
    events = []
    with open(folder / "trace.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                e = json.loads(line)
                if isinstance(e, dict) and isinstance(e.get("time_ns"), int) and isinstance(e.get("args"), list):
                    events.append(e)
    faults = _jsonl(folder / "faults.jsonl")
    history = _jsonl(folder / "history.jsonl")
    man = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    met = json.loads((folder / "metrics.json").read_text(encoding="utf-8")) if (folder / "metrics.json").is_file() else {}
    message = " ".join(str(v.get("message", "")) for v in (met.get("checks") or {}).values()
                       if isinstance(v, dict) and v.get("valid") is False)
    highlight = {int(m) for m in re.findall(r"\bops? #?(\d+)", message)}
    highlight |= {int(m) for m in re.findall(r"\bindex (\d+)", message)}
    clients = max((int(n[1:]) for e in events if e["event"] in MESSAGE_EVENTS for n in map(str, e["args"][:2])
                   if re.fullmatch(r"c\d+", n)), default=1)
    title = f"{man.get('scenario')} seed {man.get('seed')}" + (f", bug {man['bug']}" if man.get("bug") else "")
    if message:
        title += f": {message[:110]}"
    named = [int(float(v) * (1e6 if unit == "ms" else 1e9)) for v, unit in re.findall(r"(?:\bat |\bt=)(\d+(?:\.\d+)?) (ms|s)\b", message)]
    return Drawing(events, faults, history, clients, highlight, title, named_times_ns=named)


from_folder = load


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
    return out
