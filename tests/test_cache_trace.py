"""The cache design driven by a trace (``--set trace=PATH``): the trace's keys, sizes, operations
and times become the run's, and a missing or corrupt trace is one line and exit status 2."""

from __future__ import annotations

import numpy as np

from simulator import build_config, execute, get_scenario
from tests.cli_helpers import dsim

SHORT = {"time_limit_s": 2.0, "quiesce_s": 2.5}


def run(sets, **options):
    cfg = build_config(get_scenario("cache"), seed=1, options={**SHORT, **options}, sets=sets)
    return execute(cfg)


def write_csv(path, n=400, per_s=1000.0):
    """A CSV of ``n`` requests over keys 'a'..'e' (sizes 10..50), every 10th a set, ``per_s`` apart."""
    rows = [(i / per_s, "abcde"[i * 7 % 5], 10 * ("abcde".index("abcde"[i * 7 % 5]) + 1),
             "set" if i % 10 == 9 else "get") for i in range(n)]
    path.write_text("time,key,size,op\n" + "".join(f"{t},{k},{s},{op}\n" for t, k, s, op in rows))
    return rows


def test_a_csv_trace_gives_the_run_its_keys_operations_and_order(tmp_path):
    """The run's operations are the trace's, in its order, round and round: its keys renamed k0..
    in order of first appearance, its sets as writes, its gets as reads; the run is valid."""
    rows = write_csv(tmp_path / "t.csv")
    out = run({"trace": str(tmp_path / "t.csv")}, rate=500.0)
    assert out.valid is True, {k: v.message for k, v in out.checks.items() if v.valid is not True}
    first = list(dict.fromkeys(k for _, k, _, _ in rows))
    expect = [("write" if op == "set" else "read", f"k{first.index(k)}") for _, k, _, op in rows]
    got = [(h["f"], h["value"]) for h in out.run.history if h["type"] == "invoke" and h["f"] in ("read", "write")]
    assert len(got) > len(rows)  # 2 s at 500/s: the trace of 400 comes round again
    assert got == [expect[i % len(expect)] for i in range(len(got))]


def test_an_oracle_general_trace_keeps_its_object_sizes(tmp_path):
    """An oracleGeneral trace's objects keep their sizes (the size the app servers fill with) and
    drive a valid run that fills only the trace's keys."""
    from scenarios.cache import trace

    ids = np.array([5, 9, 5, 7, 9, 5] * 50, dtype=np.uint64)
    rec = np.zeros(ids.size, dtype=[("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["t"], rec["id"], rec["size"], rec["next"] = np.arange(ids.size), ids, ids * 11, -1
    (tmp_path / "t.bin").write_bytes(rec.tobytes())
    tr = trace.load(str(tmp_path / "t.bin"), "oracleGeneral")
    assert tr.sizes == [55, 99, 77] and tr.keys[:4] == [0, 1, 0, 2] and tr.writes is None
    out = run({"trace": str(tmp_path / "t.bin"), "write_share": 0.0}, rate=200.0)
    assert out.valid is True
    filled = {r["key"] for r in out.run.records if r["kind"] == "cache.set" and r["stored"]}
    assert filled == {"k0", "k1", "k2"}


def test_trace_speed_follows_the_traces_own_rate(tmp_path):
    """With trace_speed S the arrivals follow the trace's request rate times S (1,000/s in the trace:
    about 2,000 requests in 2 s at S=1, about 4,000 at S=2), whatever --rate says."""
    write_csv(tmp_path / "t.csv", n=3000, per_s=1000.0)
    counts = []
    for speed in (1.0, 2.0):
        out = run({"trace": str(tmp_path / "t.csv"), "trace_speed": speed}, rate=50.0)
        counts.append(sum(1 for h in out.run.history if h["type"] == "invoke"))
    assert abs(counts[0] - 2000) < 200 and abs(counts[1] - 4000) < 300, counts


def test_a_missing_or_corrupt_trace_is_one_line_and_exit_2(tmp_path, capsys):
    """A trace that does not exist, a truncated oracleGeneral file, a CSV row without a size, and
    trace_speed on a trace whose times never advance: each exits 2 with one line naming the value."""
    (tmp_path / "cut.bin").write_bytes(b"\0" * 30)
    (tmp_path / "short.csv").write_text("time,key,size\n0,a\n")
    (tmp_path / "still.csv").write_text("0,a,1\n0,b,2\n")
    cases = [(["--set", f"trace={tmp_path / 'none.bin'}"], "expected an existing trace file"),
             (["--set", f"trace={tmp_path / 'cut.bin'}"], "a multiple of 24 bytes"),
             (["--set", f"trace={tmp_path / 'short.csv'}"], "CSV rows time,key,size[,op]"),
             (["--set", f"trace={tmp_path / 'still.csv'}", "--set", "trace_speed=1"], "for trace_speed")]
    for args, says in cases:
        code, out, err = dsim(capsys, "run", "cache", "--time-limit", "1", *args, "--out", tmp_path / "o")
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "bad value" in err and says in err, err
        assert not (tmp_path / "o").exists()
