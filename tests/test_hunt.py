"""`dsim hunt`: the swarm search space, its determinism, budgets, and the command as a user calls it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from simulator.engine.errors import UsageError
from simulator.pipeline import hunt as H
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config

from .cli_helpers import dsim


def space(name: str, fixed=(), **options) -> H.Space:
    scen = registry.get(name)
    base = build_config(scen, seed=0, options=options)
    return H.Space.of(scen, base, set(fixed))


def test_one_hunt_seed_gives_one_sequence_of_configurations():
    """Two hunts with the same seed, fed the same results, plan the same configurations; another seed differs."""
    def sequence(seed: int) -> list:
        hunt = H.Hunt(space("raft"), seed)
        out = [p for p in hunt.plan(H.WINDOW)]
        for i in range(3 * H.WINDOW):  # fold run i in, then plan run i + WINDOW, as run_hunt does
            point, _ = out[i]
            hunt.learn(point, [f"kind:{i // 8}", f"x:{i % 3}"])  # synthetic coverage: some new, some not
            out += hunt.plan(1)
        return out

    first, again, other = sequence(11), sequence(11), sequence(12)
    assert first == again
    assert [p for p, _ in first] != [p for p, _ in other]
    assert any(how.startswith("mutant") for _, how in first)  # the corpus is used once it has entries


def test_drawn_configurations_stay_in_the_declared_ranges_and_are_valid():
    """Every drawn raft configuration respects Raft.search and its nemesis list, and builds as a config."""
    sp = space("raft")
    ranges = registry.get("raft").search
    rng = np.random.default_rng(5)
    for _ in range(40):
        point = sp.draw(rng)
        assert set(point.get("nemesis", ())) <= set(sp.nemeses)
        assert len(point.get("nemesis", ())) <= H.MAX_KINDS
        lo, hi = ranges["node_count"]
        assert lo <= point["node_count"] <= hi
        assert point["election_timeout_range"] in ranges["election_timeout_range"]
        cfg = sp.config(point)
        assert cfg.seed == point["seed"] and tuple(point.get("nemesis", ())) == cfg.nemesis


def test_options_the_user_gives_are_not_searched():
    """A fixed --nemesis and a fixed option leave the search; the base value is used for them."""
    sp = space("raft", fixed={"nemesis", "node_count"}, nemesis="crash", node_count=3)
    assert sp.nemeses == () and "node_count" not in sp.ranges
    point = sp.draw(np.random.default_rng(1))
    cfg = sp.config(point)
    assert cfg.nemesis == ("crash",) and cfg.node_count == 3


def test_a_design_without_ranges_is_searched_over_seeds_and_nemeses_only():
    """rate-limiter declares no search ranges: a point is a seed and a nemesis subset."""
    sp = space("rate-limiter")
    point = sp.draw(np.random.default_rng(2))
    assert set(point) <= {"seed", "nemesis"}


def test_budget_parses_runs_and_wall_time_and_refuses_the_rest():
    """--budget takes 200, 90s, 10m, 2h; anything else is a one-line usage error."""
    assert H.parse_budget("200") == H.Budget(runs=200)
    assert H.parse_budget("10m") == H.Budget(wall_s=600)
    assert H.parse_budget("1.5h") == H.Budget(wall_s=5400)
    for bad in ("0", "-3", "ten", "10x", "", "5 m", "1e3"):
        with pytest.raises(UsageError, match="--budget"):
            H.parse_budget(bad)


def test_failure_signature_ignores_numbers_and_node_names():
    """Two failures that differ only in numbers and node ids count once under --until all."""
    a = H.signature("vote-once", "n2 voted twice in term 6: for n2 at 5137.811 ms")
    b = H.signature("vote-once", "n3 voted twice in term 9: for n5 at 5735.307 ms")
    assert a == b != H.signature("election-safety", "two leaders in term 3")
    assert H.signature("exactly-once", "4 delivered more than once: 172 x2, 175 x2") == \
        H.signature("exactly-once", "1 delivered more than once: 188 x2")


def test_hunt_finds_a_planted_bug_and_its_failure_replays(capsys, tmp_path):
    """`dsim hunt queue --bug double-serve` exits 1, names the failing folder, writes hunt.csv and
    hunt.png, and the failure's second run had the same digest (so `dsim replay` of it exits 0)."""
    out = tmp_path / "hunt"
    code, text, err = dsim(capsys, "hunt", "queue", "--bug", "double-serve", "--budget", "8", "--seed", "1",
                           "--time-limit", "3", "--out", out)
    assert code == 1, err
    assert "found exactly-once after" in text and "digest identical" in text
    folder = next((out / "failures").iterdir())
    assert str(folder) in text and f"dsim replay {folder}" in text
    rows = list(csv.DictReader(open(out / "hunt.csv")))
    assert rows and rows[-1]["valid"] == "False" and rows[-1]["checker"] == "exactly-once"
    assert (out / "hunt.png").stat().st_size > 0
    assert json.loads((out / "hunt.json").read_text())["seed"] == 1
    code, text, err = dsim(capsys, "replay", folder)
    assert code == 0, text + err


def test_a_clean_hunt_exits_0_and_says_what_it_covered(capsys, tmp_path):
    """Without a bug the budget runs out: exit 0, and the summary names the runs and nemeses covered."""
    code, text, err = dsim(capsys, "hunt", "queue", "--budget", "3", "--seed", "4", "--time-limit", "0.5",
                           "--out", tmp_path / "h")
    assert code == 0, text + err
    assert "no failure in 3 runs" in text and "nemeses (runs each)" in text
    assert len(list(csv.DictReader(open(tmp_path / "h" / "hunt.csv")))) == 3


def test_jobs_do_not_change_the_configurations(capsys, tmp_path):
    """The same hunt seed with --jobs 1 and --jobs 2 runs the same configurations with the same digests."""
    rows = []
    for jobs in ("1", "2"):
        code, text, err = dsim(capsys, "hunt", "queue", "--budget", "4", "--seed", "9", "--time-limit", "0.3",
                               "--jobs", jobs, "--out", tmp_path / jobs)
        assert code == 0, text + err
        rows.append([(r["seed"], r["nemesis"], r["rate"], r["digest"]) for r in csv.DictReader(open(tmp_path / jobs / "hunt.csv"))])
    assert rows[0] == rows[1]


@pytest.mark.parametrize("args, needle", [
    (["--budget", "zero"], "--budget"),
    (["--budget", "0"], "--budget"),
    (["--jobs", "0"], "--jobs"),
    (["--seed", "-1"], "--seed"),
    (["--nemesis", "tornado"], "tornado"),
    (["--bug", "nope"], "nope"),
    (["--until", "some"], "--until"),
])
def test_bad_hunt_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, args, needle):
    """Bad input to `dsim hunt`: one line naming the bad value, exit 2, no folder created."""
    out = tmp_path / "h"
    code, text, err = dsim(capsys, "hunt", "queue", *args, "--out", out)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert not out.exists()


def test_until_all_runs_the_whole_budget_and_keeps_one_folder_per_distinct_failure(capsys, tmp_path):
    """--until all does not stop at the first failure; failures of one shape get one folder."""
    out = tmp_path / "all"
    code, text, err = dsim(capsys, "hunt", "queue", "--bug", "double-serve", "--budget", "8", "--seed", "1",
                           "--time-limit", "3", "--until", "all", "--out", out)
    assert code == 1, err
    rows = list(csv.DictReader(open(out / "hunt.csv")))
    assert len(rows) == 8
    failing = [r for r in rows if r["valid"] == "False"]
    folders = list((out / "failures").iterdir())
    assert len(failing) > len(folders) == len({H.signature(r["checker"], r["message"]) for r in failing})


class ShuffledCalls:
    """An executor's call pool that finishes its calls in a random order (in this process)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.todo = []
        self.n = 0

    def __len__(self):
        return len(self.todo)

    def submit(self, fn, items):
        out = []
        for item in items:
            self.todo.append((self.n, fn, item))
            out.append(self.n)
            self.n += 1
        return out

    def next(self):
        ticket, fn, item = self.todo.pop(int(self.rng.integers(len(self.todo))))
        return ticket, fn(item)


class ShuffledExecutor:
    workers = 3
    describe = "shuffled"

    def __init__(self, seed):
        self.seed = seed

    def calls(self, cfgs=()):
        import contextlib

        return contextlib.nullcontext(ShuffledCalls(self.seed))

    def imap(self, tasks, runs_dir, plots=False):
        from simulator.pipeline.executor import LocalExecutor

        return LocalExecutor(1).imap(tasks, runs_dir, plots=plots)


def test_the_order_runs_finish_in_does_not_change_the_hunt(tmp_path):
    """Runs finishing in any order give the same rows (less timings) and findings as runs finishing in order."""
    sp = space("queue", fixed={"time_limit_s"}, time_limit_s=0.4)

    def rows(executor, name):
        res = H.run_hunt(sp, 3, H.Budget(runs=H.WINDOW + 8), 1, "all", tmp_path / name, executor=executor)
        return [{k: v for k, v in r.items() if k not in ("wall_s", "cpu_s", "folder")} for r in res.rows]

    in_order = rows(None, "in-order")
    assert len(in_order) == H.WINDOW + 8 and any(r["how"].startswith("mutant") for r in in_order)
    assert rows(ShuffledExecutor(1), "a") == in_order == rows(ShuffledExecutor(2), "b")


def test_an_unknown_run_names_its_checkers_and_why(monkeypatch):
    """A run that ends unknown reports which checker could not decide and its reason, not a blank."""
    from types import SimpleNamespace

    from simulator.checkers import CheckResult
    from simulator.pipeline import run as R

    def fake_execute(cfg):
        checks = {"availability": CheckResult(True), "linearizable": CheckResult("unknown", "search budget ran out on key(s) 3"),
                  "liveness": CheckResult("unknown")}
        return SimpleNamespace(valid="unknown", checks=checks, run=SimpleNamespace(records=[]), digest="d")

    monkeypatch.setattr(R, "execute", fake_execute)
    got = H.run_point(build_config(registry.get("queue"), seed=1).to_dict())
    assert got["valid"] == "unknown" and got["checker"] == "linearizable,liveness"
    assert "linearizable: search budget ran out on key(s) 3" in got["message"] and "liveness: unknown" in got["message"]


def test_host_time_in_checker_details_is_no_coverage():
    """A checker detail measured on the host clock (the linearizability search's seconds) adds no feature,
    so a slower machine does not grow another corpus; simulated counts do."""
    from simulator.checkers import CheckResult

    fast = H.features([], {"linearizable": CheckResult(True, "", {"keys": 5, "seconds": 0.2})})
    slow = H.features([], {"linearizable": CheckResult(True, "", {"keys": 5, "seconds": 31.0})})
    assert fast == slow == {"linearizable.keys:2"}
