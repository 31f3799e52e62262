"""Bad input to the email, kademlia, cache and reverse-proxy designs: their own fault verbs' arguments
in a config file's [[faults]] (Scenario.check_fault) and parameter edges (--set). One line on stderr,
exit 2, no traceback, no results folder."""

from __future__ import annotations

import pytest

from simulator import UsageError
from tests.test_bad_input import assert_refused, dsim_in

TINY = ["--seed", "1", "--time-limit", "0.2", "--no-plots"]


def refused(capsys, tmp_path, *args, needles=()):
    out = tmp_path / "out"
    code, _, err = dsim_in(capsys, *args, *TINY, "--out", out)
    assert_refused(code, err, *needles)
    assert not out.exists()
    return err


def plan(tmp_path, *tables: str) -> str:
    f = tmp_path / "plan.toml"
    f.write_text("".join(f"[[faults]]\nat_s = 0.2\n{t}\n" for t in tables))
    return str(f)


# ---- email: provider_outage / provider_restore / provider_slow name one of the run's providers ------

@pytest.mark.parametrize("verb", ["provider_outage", "provider_restore"])
@pytest.mark.parametrize("value, needle", [
    ('["gmail"]', "['gmail']"),
    ('{name = "gmail"}', "{'name': 'gmail'}"),
    ('"nosuch"', "'nosuch'"),
    ("5", "5 for provider"),
])
def test_email_fault_provider(capsys, tmp_path, verb, value, needle):
    f = plan(tmp_path, f'action = "{verb}"\nprovider = {value}')
    refused(capsys, tmp_path, "run", "email", "--config", f, needles=(needle, "gmail, outlook, yahoo, tail"))


def test_email_fault_provider_of_the_ideal_set(capsys, tmp_path):
    f = plan(tmp_path, 'action = "provider_slow"\nprovider = "gmail"\nfactor = 2')
    refused(capsys, tmp_path, "run", "email", "--config", f, "--set", "provider_set=ideal",
            needles=("'gmail'", "mx"))


def test_email_fault_unknown_argument(capsys, tmp_path):
    f = plan(tmp_path, 'action = "provider_outage"\nprovider = "gmail"\nprovidr = "yahoo"')
    refused(capsys, tmp_path, "run", "email", "--config", f, needles=("'providr'", "provider"))


@pytest.mark.parametrize("sets, needle", [
    (["rate_headroom=0"], "'0' for rate_headroom"),
    (["final_campaign_recipients=1000000000"], "'1000000000' for final_campaign_recipients"),
])
def test_email_param_edges(capsys, tmp_path, sets, needle):
    refused(capsys, tmp_path, "run", "email", *[a for s in sets for a in ("--set", s)], needles=(needle,))


# ---- kademlia: churn's window_ms ---------------------------------------------------------------------

@pytest.mark.parametrize("value, needle", [
    ('"abc"', "'abc'"), ("nan", "nan"), ("1e999", "inf"), ("[500]", "[500]"),
    ("-500", "-500"), ("true", "True"), ("1e300", "1e+300"), ("0", "value 0 "),
])
def test_kademlia_churn_window(capsys, tmp_path, value, needle):
    f = plan(tmp_path, f'action = "churn"\nwindow_ms = {value}')
    refused(capsys, tmp_path, "run", "kademlia", "--node-count", "30", "--config", f,
            needles=(needle, "window_ms of fault 1 (churn)"))


def test_kademlia_churn_unknown_argument(capsys, tmp_path):
    f = plan(tmp_path, 'action = "churn_stop"\nwindow_ms = 5')
    refused(capsys, tmp_path, "run", "kademlia", "--node-count", "30", "--config", f, needles=("'window_ms'",))


def test_kademlia_churn_nemesis_plan_passes_its_own_check():
    """shrink writes a nemesis's faults out as a plan (with nemesis and phase keys): still accepted."""
    from simulator.pipeline import scenario as registry
    from simulator.pipeline.config import build_config, dry_build
    from simulator.pipeline.shrink import explicit_plan

    scen = registry.get("kademlia")
    opts = {"node_count": 30, "time_limit_s": 2.0, "nemesis": ("churn",), "nemesis_interval_s": 0.5}
    cfg = build_config(scen, seed=1, options=opts)
    faults = explicit_plan(cfg)
    assert any(a["action"] == "churn" for a in faults)
    again = build_config(scen, seed=1, file={"faults": faults}, options={**opts, "nemesis": ()})
    dry_build(again)
    bad = [dict(a, window_ms=-1.0) if a["action"] == "churn" else a for a in faults]
    with pytest.raises(UsageError, match="window_ms"):
        dry_build(build_config(scen, seed=1, file={"faults": bad}, options={**opts, "nemesis": ()}))


# ---- cache: a trace's times; hot_key_replicas ---------------------------------------------------------

@pytest.mark.parametrize("rows, speed, needle", [
    ("nan,1,100\n2,2,100\n", "1", "'nan' at line 1"),
    ("nan,1,100\n2,2,100\n", "0", "'nan' at line 1"),
    ("time,key,size\n\n1,1,100\n-3,2,100\n", "0", "'-3' at line 4"),
    ("1,1,100\n1e300,2,100\n", "1", "'1e300' at line 2"),
    ("1,1,100\ninf,2,100\n", "0", "'inf' at line 2"),
])
def test_cache_trace_times(capsys, tmp_path, rows, speed, needle):
    f = tmp_path / "t.csv"
    f.write_text(rows)
    err = refused(capsys, tmp_path, "run", "cache", "--set", f"trace={f}", "--set", f"trace_speed={speed}",
                  needles=(needle, "t.csv"))
    assert "RuntimeWarning" not in err


def test_cache_trace_good_times_still_run(capsys, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("0,1,100\n1.5,2,100\n3,1,100\n")
    code, _, err = dsim_in(capsys, "run", "cache", "--set", f"trace={f}", "--set", "trace_speed=1", *TINY,
                           "--out", tmp_path / "out")
    assert code in (0, 1), err


def test_cache_hot_key_replicas_above_the_other_nodes(capsys, tmp_path):
    refused(capsys, tmp_path, "run", "cache", "--set", "hot_key_replicas=99", "--set", "cache_nodes=3",
            needles=("99 for hot_key_replicas", "at most 2"))
    refused(capsys, tmp_path, "run", "cache", "--set", "hot_key_replicas=1", "--set", "cache_nodes=1",
            needles=("1 for hot_key_replicas", "at most 0"))


# ---- reverse-proxy: upstreams per cluster ----------------------------------------------------------

@pytest.mark.parametrize("name", ["api_service_ms", "static_service_ms"])
def test_reverse_proxy_upstream_count(capsys, tmp_path, name):
    many = ",".join(["2"] * 3000)
    refused(capsys, tmp_path, "run", "reverse-proxy", "--set", f"{name}={many}",
            needles=(f"for {name}", "at most 64", "not 3000"))
