"""History writing speed: lines of ``history.jsonl`` per CPU second, for a design's real history.

A run of the design's benchmark preset (``raft``: 5 nodes, 1,000 ops/s, partitions and crashes, so
values are lists such as ``["k3", 17]``; ``queue``: ints and None) makes one history, outside the
timing; then :func:`simulator.workload.history.write_jsonl` writes it ``--repeat`` times to a
temporary file and the median rate is printed. Issue 10 asks for at least 1,000,000 lines a second.

    python benchmarks/history.py                     # raft, 20 simulated s
    python benchmarks/history.py --design queue --json
    python benchmarks/history.py --time-limit 60 --repeat 9 --json
    python benchmarks/history.py --columns           # the history held in columns alone, as a long run's is

The last line with ``--json``: ``{"design", "lines", "lines_per_s", "lines_per_s_min",
"lines_per_s_max", "repeat", "bytes", "columns"}``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import scriptargs as A  # noqa: E402
from simulator.pipeline import scenario as registry  # noqa: E402
from simulator.pipeline.config import build_config  # noqa: E402
from simulator.pipeline.run import Run  # noqa: E402
from simulator.workload import history as H  # noqa: E402
from simulator.workload.history import write_jsonl  # noqa: E402

MAX_REPEAT = 1000

DESIGNS = {
    "raft": ("raft", {"node_count": 5, "rate": 1000, "nemesis": ["partition-random-halves", "crash"]}, {}),
    "queue": ("queue", {"rate": 1000.0}, {"servers": "20"}),
}


def make_history(design: str, time_limit_s: float, seed: int) -> tuple[Run, list[dict]]:
    """A finished run and its history. The run is kept, as ``dsim run`` keeps it while it writes its
    folder: its workload vouches for the history's values (simulator.workload.history.vouch)."""
    scen, options, sets = DESIGNS[design]
    cfg = build_config(registry.get(scen), seed=seed, options={**options, "time_limit_s": time_limit_s}, sets=sets)
    run = Run(cfg)
    return run, run.execute(None).run.history


def time_writes(history: list[dict], repeat: int) -> tuple[list[float], int]:
    """Rates (lines per CPU second) of ``repeat`` writes, and the file's size in bytes."""
    rates = []
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        for _ in range(repeat):
            gc.collect()
            t0 = time.process_time()
            write_jsonl(path, history)
            cpu = time.process_time() - t0
            rates.append(len(history) / cpu if cpu > 0 else float("inf"))
            size = os.path.getsize(path)
    return rates, size


def main(argv=None) -> int:
    ap = A.Parser(prog=Path(__file__).name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--design", default="raft", choices=tuple(DESIGNS), help=f"whose history: {', '.join(DESIGNS)} (default raft)")
    ap.add_argument("--time-limit", type=A.number(0, 3600, lo_open=True), default=20.0,
                    help="simulated seconds of the run, above 0, at most 3600 (default 20)")
    ap.add_argument("--repeat", type=A.integer(1, MAX_REPEAT), default=7,
                    help=f"writes to time, 1 to {MAX_REPEAT} (default 7; the median is reported)")
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    ap.add_argument("--columns", action="store_true",
                    help="hold the history in columns alone (as past DICTS_UP_TO events), so each chunk's "
                         "dicts are built as it is written")
    args = ap.parse(argv)
    if isinstance(args, int):  # a bad argument (its one line printed), or --help
        return args
    if args.columns:
        H.DICTS_UP_TO = 0
    _run, history = make_history(args.design, args.time_limit, args.seed)
    rates, size = time_writes(history, args.repeat)
    out = {"design": args.design, "lines": len(history), "lines_per_s": round(statistics.median(rates)),
           "lines_per_s_min": round(min(rates)), "lines_per_s_max": round(max(rates)),
           "repeat": args.repeat, "bytes": size, "columns": args.columns}
    print(f"{args.design} history{' (columns alone)' if args.columns else ''}: {len(history):,} lines, {size / 1e6:.1f} MB; written at "
          f"{out['lines_per_s']:,} lines per CPU s (median of {args.repeat}; "
          f"{out['lines_per_s_min']:,} to {out['lines_per_s_max']:,})")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
