"""Replay a trace through the eviction policies, without a network: miss ratios and curves.

    python -m scenarios.cache.replay TRACE --policy lru,fifo,clock,sieve --capacity-bytes 128MiB,256MiB
    python -m scenarios.cache.replay --zipf 100000,1.0 --requests 2000000 --capacity-objects 1000,10000
    python -m scenarios.cache.replay trace.csv --format csv --capacity-bytes 1%,10% --plot mrc.png --out mrc.csv

Prints a CSV (``policy,capacity_bytes,requests,misses,miss_ratio,byte_miss_ratio``) on stdout (or
to ``--out``) and each policy's rate on stderr; ``--plot`` draws the miss-ratio curves (miss ratio
against cache size, one line per policy).

The rate times the policy's replay alone: reading or generating the trace, and building the
policy, are outside it (a policy's own preparation of the stream, such as TinyLFU hashing each distinct
key for its sketch, is inside). It is given per wall second and per CPU second of this process:
on a machine shared with other work the wall rate drops with the load, the CPU rate much less,
so the CPU rate is the one to compare across sittings.

Traces:
    oracleGeneral  libCacheSim's binary format: 24-byte little-endian records ``<IQIq>``
                   (timestamp, object id, object size, next access vtime)
    csv            ``time,key,size[,op]`` with an optional header; keys may be any text; ``op``
                   ``get`` / ``read`` (or empty) is a request, ``delete`` removes the key, ``set`` /
                   ``write`` stores it without counting as a request
    without TRACE  a synthetic IRM Zipf stream (``--zipf OBJECTS,ALPHA``, ``--requests``, sizes
                   drawn once per object from ``--sizes``: ``1`` or ``LOW-HIGH`` uniform)

Semantics match libCacheSim's: an object larger than the cache is not admitted; a request for a
cached object whose size changed counts as a miss and replaces it. Capacities accept B, KiB, MiB,
GiB (and KB, MB, GB) suffixes, or a percent of the trace's working set (``10%``: a tenth of the
sum of the sizes of its distinct objects).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import click
import numpy as np

from simulator import Stopwatch, UsageError
from simulator import scriptargs as A
from simulator.kit.cache import POLICIES, make_policy

UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
         "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "k": 10**3, "m": 10**6}
MAX_REQUESTS = 100_000_000  # a synthetic stream's length at most (its keys are held in memory)
MAX_OBJECTS = 100_000_000
ORACLE = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


class BadInput(Exception):
    pass


def bad(value, option: str, expected: str) -> BadInput:
    return BadInput(f"bad value {value!r} for {option}: expected {expected}")


def parse_capacity(text: str, option: str, working_set: int) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*|%)\s*", text)
    if not m or (m.group(2).lower() not in UNITS and m.group(2) != "%"):
        raise bad(text, option, "a size such as 4096, 128MiB, 1GB or 10% (of the working set)")
    x = float(m.group(1))
    n = int(x * working_set / 100) if m.group(2) == "%" else int(x * UNITS[m.group(2).lower()])
    if n < 1:
        raise bad(text, option, "a capacity of at least 1")
    return n


def read_oracle(path: Path, option: str = "TRACE") -> tuple[list, list]:
    """(ops as ("get", id, size), timestamps) of an oracleGeneral file."""
    raw = path.read_bytes()
    if len(raw) % ORACLE.itemsize:
        raise bad(str(path), option, f"an oracleGeneral file (a multiple of {ORACLE.itemsize} bytes)")
    rec = np.frombuffer(raw, dtype=ORACLE)
    return [("get", k, s) for k, s in zip(rec["id"].tolist(), rec["size"].tolist())], rec["t"].tolist()


def read_csv(path: Path, option: str = "TRACE") -> tuple[list, list]:
    """(ops as (op, id, size), times): keys become dense ids in order of first appearance."""
    ops, ids, times = [], {}, []
    try:
        with path.open(newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or (n == 1 and row[0].strip().lower() in ("time", "timestamp")):
                    continue
                if len(row) < 3:
                    raise bad(f"{path}:{n}", option, "CSV rows time,key,size[,op]")
                try:
                    size = int(row[2])
                    t = float(row[0]) if row[0].strip() else 0.0
                except ValueError:
                    raise bad(f"{path}:{n}: {row[0]!r},{row[2]!r}", option, "a number time and an integer size") from None
                op = row[3].strip().lower() if len(row) > 3 else "get"
                if op not in ("", "get", "read", "set", "write", "delete"):
                    raise bad(f"{path}:{n}: op {op!r}", option, "get, read, set, write or delete")
                ops.append((op or "get", ids.setdefault(row[1], len(ids)), size))
                times.append(t)
    except UnicodeDecodeError:
        raise bad(str(path), option, "a text CSV time,key,size[,op] (this looks binary: --format oracleGeneral?)") from None
    return ops, times


def parse_sizes(sizes: str) -> tuple[int, int]:
    """``--sizes``: ``N`` or ``LOW-HIGH`` (1 <= LOW <= HIGH) as (low, high)."""
    m = re.fullmatch(r"\s*(\d{1,12})\s*(?:-\s*(\d{1,12})\s*)?", sizes)
    lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
    if not 1 <= lo <= hi < 2**32:
        raise bad(sizes, "--sizes", "1 (every object size 1), a size N or LOW-HIGH with 1 <= LOW <= HIGH (uniform per object)")
    return lo, hi


def synthetic(objects: int, alpha: float, requests: int, sizes: str, seed: int) -> list:
    lo, hi = parse_sizes(sizes)
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, objects + 1) ** alpha
    keys = np.searchsorted(np.cumsum(w / w.sum()), rng.random(requests))
    if lo == hi == 1:  # the policies' size-free loops count the same, faster
        return keys.tolist(), None
    size_of = rng.integers(lo, hi + 1, objects) if hi > lo else np.full(objects, lo)
    return keys.tolist(), size_of[keys].tolist()


def replay(policy: str, capacity: int, ops, keys, sizes, seed: int) -> dict:
    """(misses, bytes missed) of one policy over a pure request stream (``keys``/``sizes``) or a
    stream of ops with sets and deletes."""
    p = make_policy(policy, capacity, seed)
    clock = Stopwatch()
    if ops is None:
        misses, missed = p.replay(keys, sizes)
        n = len(keys)
        total = n if sizes is None else sum(sizes)
    else:
        misses = missed = n = total = 0
        for op, k, s in ops:
            if op == "delete":
                p.remove(k)
            elif op in ("set", "write"):
                p.insert(k, s)
            else:
                n += 1
                total += s
                if not p.request(k, s):
                    misses += 1
                    missed += s
    dt, cpu = clock.wall_s, clock.cpu_s
    return {"policy": policy, "capacity_bytes": capacity, "requests": n, "misses": misses,
            "miss_ratio": round(misses / n, 6) if n else 0.0, "byte_miss_ratio": round(missed / total, 6) if total else 0.0,
            "requests_per_s": n / dt if dt > 0 else float("inf"),
            "requests_per_cpu_s": n / cpu if cpu > 0 else float("inf")}


def human(n: int) -> str:
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f and n % f == 0:
            return f"{n / f:g}{unit}"
    return str(n)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("trace", required=False)
@click.option("--format", "fmt", default=None, help="oracleGeneral | csv (default: by extension, .csv is csv)")
@click.option("--policy", default="lru,fifo,clock,sieve,s3-fifo", show_default=True,
              help=f"comma-separated policies, or 'all' ({', '.join(POLICIES)})")
@click.option("--capacity-bytes", default=None, help="comma-separated capacities: 128MiB,256MiB or 1%,10%")
@click.option("--capacity-objects", default=None, help="comma-separated capacities in objects (sizes ignored)")
@click.option("--zipf", default="100000,1.0", show_default=True,
              help=f"synthetic stream: OBJECTS,ALPHA (OBJECTS 1 to {MAX_OBJECTS:,})")
@click.option("--requests", default="2000000", show_default=True,
              help=f"synthetic stream length (1 to {MAX_REQUESTS:,})")
@click.option("--sizes", default="1", show_default=True, help="synthetic object sizes: 1 or LOW-HIGH")
@click.option("--seed", default="1", show_default=True, help="seed of the synthetic stream and random")
@click.option("--out", default=None, help="write the CSV here (default stdout)")
@click.option("--plot", default=None, help=f"draw miss-ratio curves to this file ({', '.join(A.FIGURE_SUFFIXES)})")
def command(trace, fmt, policy, capacity_bytes, capacity_objects, zipf, requests, sizes, seed, out, plot):
    """Replay a cache trace (or a synthetic Zipf stream) through eviction policies."""
    try:  # every argument checked before the replay starts
        requests = A.integer(1, MAX_REQUESTS).value(requests, "--requests")
        seed = A.seed.value(seed, "--seed")
        out = A.out_file().value(out, "--out") if out is not None else None
        plot = A.out_file(A.FIGURE_SUFFIXES).value(plot, "--plot") if plot is not None else None
        rows = run(trace, fmt, policy, capacity_bytes, capacity_objects, zipf, requests, sizes, seed)
    except (BadInput, UsageError) as e:
        click.echo(f"replay: error: {e}", err=True)
        sys.exit(2)
    cols = ["policy", "capacity_bytes", "requests", "misses", "miss_ratio", "byte_miss_ratio"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    if out:
        out.write_text("\n".join(lines) + "\n")
    else:
        click.echo("\n".join(lines))
    if plot:
        from simulator import plots

        series = []
        for name in dict.fromkeys(r["policy"] for r in rows):
            mine = sorted((r["capacity_bytes"], r["miss_ratio"]) for r in rows if r["policy"] == name)
            series.append((name, [c for c, _ in mine], [m for _, m in mine]))
        unit = "objects" if capacity_objects else "bytes"
        plots.panels(plot, "Miss-ratio curves", [{"series": series, "ylabel": "miss ratio",
                                                  "xlabel": f"cache size ({unit})", "logx": True,
                                                  "time": False}],
                     subtitle=trace or f"synthetic Zipf {zipf}, {requests:,} requests")


def main(argv: list[str] | None = None) -> int:
    """``python -m scenarios.cache.replay ARGS``: the exit status (2, after one line on stderr, for bad input)."""
    try:
        code = command.main(args=argv, prog_name="python -m scenarios.cache.replay", standalone_mode=False)
    except click.ClickException as e:  # click's own: an unknown option, a missing value, an extra argument
        click.echo(f"replay: error: {' '.join(e.format_message().split())} (see --help)", err=True)
        return 2
    except click.exceptions.Abort:
        return 1
    return code if isinstance(code, int) else 0


def run(trace, fmt, policy, capacity_bytes, capacity_objects, zipf, requests, sizes, seed) -> list[dict]:
    names = list(POLICIES) if policy == "all" else [p.strip() for p in policy.split(",") if p.strip()]
    if not names:
        raise bad(policy, "--policy", f"a comma-separated list of {', '.join(POLICIES)} (or all)")
    for n in names:
        if n not in POLICIES:
            raise bad(n, "--policy", f"a comma-separated list of {', '.join(POLICIES)} (or all)")
    if capacity_bytes and capacity_objects:
        raise bad(capacity_objects, "--capacity-objects", "either --capacity-bytes or --capacity-objects, not both")
    ops = keys = sz = None
    if trace is not None:
        path = Path(trace)
        if not path.is_file():
            raise bad(trace, "TRACE", "an existing trace file")
        fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "oracleGeneral")
        if fmt.lower() not in ("csv", "oraclegeneral"):
            raise bad(fmt, "--format", "oracleGeneral or csv")
        ops, _ = read_csv(path) if fmt.lower() == "csv" else read_oracle(path)
        if not any(o[0] == "get" for o in ops):
            raise bad(trace, "TRACE", "a trace with at least one request (get or read): "
                      + ("it has only sets and deletes" if ops else "it is empty"))
        if all(o[0] == "get" for o in ops):
            keys, sz, ops = [o[1] for o in ops], [o[2] for o in ops], None
    else:
        m = re.fullmatch(r"\s*(\d{1,12})\s*,\s*(\d{1,6}(?:\.\d*)?|\.\d+)\s*", zipf)
        if not m or not 1 <= int(m.group(1)) <= MAX_OBJECTS:
            raise bad(zipf, "--zipf", f"OBJECTS,ALPHA such as 100000,1.0 (OBJECTS 1 to {MAX_OBJECTS:,}, ALPHA >= 0)")
        if requests < 1:
            raise bad(requests, "--requests", "a positive count")
        parse_sizes(sizes)
        keys, sz = synthetic(int(m.group(1)), float(m.group(2)), requests, sizes, seed)
    if capacity_objects:
        if keys is not None:
            sz = None  # the policies' size-free loops
        else:
            ops = [(o, k, 1) for o, k, _ in ops]
    if keys is not None:
        distinct = dict.fromkeys(keys, 1) if sz is None else dict(zip(keys, sz))
    else:
        distinct = {k: s for _, k, s in ops}
    working = sum(distinct.values())
    spec = capacity_objects or capacity_bytes or "1%,10%"
    option = "--capacity-objects" if capacity_objects else "--capacity-bytes"
    caps = [parse_capacity(c, option, working) for c in spec.split(",") if c.strip()]
    if not caps:
        raise bad(spec, option, "comma-separated capacities such as 128MiB,256MiB or 1%,10%")
    rows = []
    for name in names:
        for cap in caps:
            r = replay(name, cap, ops, keys, sz, seed)
            click.echo(f"{name:8s} capacity {cap if capacity_objects else human(cap):>10}: miss ratio {r['miss_ratio']:.4f}, "
                       f"{r['requests_per_s'] / 1e6:.2f}M requests/s "
                       f"({r['requests_per_cpu_s'] / 1e6:.2f}M per CPU second)", err=True)
            rows.append(r)
    return rows


if __name__ == "__main__":
    sys.exit(main())
