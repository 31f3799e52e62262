"""The shrinker's declared-parameter step: a failure that rests on a coincidence many fault actions line
up is tried with the other values the design declares for the search, so ddmin can then cut freely."""

from __future__ import annotations

from dataclasses import replace

from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.shrink import Failure, Shrinker, fault_actions


def test_retuned_tries_each_declared_parameter_value_in_order_and_no_run_options(monkeypatch):
    """For raft, the candidates are the plan unchanged but for election_timeout_range set to each value
    its search declares other than the current one, in the declared order; run options declared for the
    search (rate, node count) are left to their own steps."""
    seen = []
    monkeypatch.setattr(Shrinker, "first", lambda self, step, cands: seen.extend(cands))
    cfg = build_config(registry.get("raft"), seed=1, bug="no-persist-vote", options={"time_limit_s": 3.0})
    plan = [{"at_s": 0.5, "action": "crash", "node": "n1"}, {"at_s": 0.9, "action": "restart", "node": "n1"}]
    Shrinker(Failure(None, cfg, "vote-once", "", 3.0, 0)).retuned(replace(cfg, faults=plan))  # lin_budget_s: one value
    assert [c.params["election_timeout_range"] for c in seen] == ["150-151", "150-160", "150-200"]
    assert all(c.faults == plan and c.rate == cfg.rate and c.node_count == cfg.node_count for c in seen)
    assert all({k: v for k, v in c.params.items() if k != "election_timeout_range"} ==
               {k: v for k, v in cfg.params.items() if k != "election_timeout_range"} for c in seen)


def test_a_declared_value_that_makes_the_coincidence_the_rule_lets_ddmin_cut_to_two_actions(monkeypatch):
    """A synthetic failure that needs twelve crashes at the default parameter but only two (a crash of n1 and
    of n2) once election_timeout_range is 150-160: ddmin alone keeps all twelve, the declared value first
    and ddmin after reach two, and a design without declared values is left as it was."""
    def fails(c):
        value = c.params["election_timeout_range"]
        if value == "150-160":
            return {"n1", "n2"} <= {a["node"] for a in c.faults}
        return value == "" and len(c.faults) == 12

    def first_index(self, step, cfgs):
        for i, c in enumerate(cfgs):
            self.rows.append({"step": step})
            if fails(c):
                return i
        return None

    monkeypatch.setattr(Shrinker, "first_index", first_index)
    cfg = build_config(registry.get("raft"), seed=1, bug="no-persist-vote", options={"time_limit_s": 3.0})
    plan = [{"at_s": round(0.1 + 0.2 * i, 3), "action": "crash", "node": f"n{1 + i % 5}"} for i in range(12)]
    cfg = replace(cfg, faults=plan)
    s = Shrinker(Failure(None, cfg, "vote-once", "", 3.0, 0))
    assert fault_actions(s.ddmin_faults(cfg).faults) == 12
    got = s.ddmin_faults(s.retuned(cfg))
    assert got.params["election_timeout_range"] == "150-160" and fault_actions(got.faults) == 2
    queue = build_config(registry.get("queue"), seed=1)  # declares no parameter for the search
    assert Shrinker(Failure(None, queue, "availability", "", 3.0, 0)).retuned(queue) is queue


def test_parameters_the_user_fixed_are_not_retuned(monkeypatch, tmp_path):
    """A hunt's fixed options (hunt.json beside failures/) and, for a plain run, parameters set away from
    their defaults count as the user's choice: the declared-parameter step offers no other value for them."""
    import json

    from simulator.pipeline.shrink import _user_fixed

    cfg = build_config(registry.get("raft"), seed=1, bug="no-persist-vote", sets={"election_timeout_range": "150-200"})
    assert _user_fixed(tmp_path, cfg) == {"election_timeout_range"}
    (tmp_path / "failures" / "run00001-vote-once").mkdir(parents=True)
    (tmp_path / "hunt.json").write_text(json.dumps({"fixed": ["rate"]}))
    assert _user_fixed(tmp_path / "failures" / "run00001-vote-once", cfg) == {"rate"}
    seen = []
    monkeypatch.setattr(Shrinker, "first", lambda self, step, cands: seen.extend(cands))
    Shrinker(Failure(None, cfg, "vote-once", "", 3.0, 0, frozenset({"election_timeout_range"}))).retuned(cfg)
    assert seen == []
