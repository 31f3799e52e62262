"""Bad input the third probe found: a padded burst profile past the rate cap, a clock stopped by drift, partitions
whose sides overlap, a block of a node with itself, malformed Dask addresses, underscores in --set numbers, results
written into a run folder. One line on stderr, exit 2, nothing written."""

from __future__ import annotations

import pytest

from tests.test_bad_input import TINY, assert_refused, dsim_in

RUN = ["--seed", "1", *TINY, "--no-plots"]


def plan(here, body: str) -> str:
    f = here / "plan.toml"
    f.write_text(f"[[faults]]\nat_s = 0.1\n{body}\n")
    return str(f)


@pytest.mark.parametrize("body, needle", [
    ('action = "clock_drift"\nnode = "n1"\nppm = -1e6', "for ppm of fault 1 (clock_drift): expected a number of ppm above"),
    ('action = "partition"\ngroups = [["n1", "n2"], ["n2", "n3"]]', "each node in one group once"),
    ('action = "partition"\ngroups = [["n1", "n1"], ["n2"]]', "each node in one group once"),
    ('action = "block"\npairs = [["n1", "n1"]]', "pairs of two different nodes"),
    ('action = "partition_oneway"\nsrcs = ["n1"]\ndsts = ["n1", "n2"]', "none of which is in srcs"),
])
def test_a_fault_that_would_crash_or_mean_two_things_is_refused(here, capsys, body, needle):
    code, _, err = dsim_in(capsys, "run", "raft", *RUN, "--config", plan(here, body), "--out", here / "out")
    assert_refused(code, err, needle)
    assert not (here / "out").exists()


def test_a_padded_burst_profile_meets_the_rate_cap(here, capsys):
    code, _, err = dsim_in(capsys, "run", "queue", *RUN, "--rate", "100", "--rate-profile", " burst:1:0.5:1e6",
                           "--out", here / "out")
    assert_refused(code, err, "expected a burst rate (rate x factor) of at most")
    assert not (here / "out").exists()


@pytest.mark.parametrize("address", ["tcp://[::1", "tcp://a b:1", "tcp://[zz]:1", "tcp://h\u00e9:1"])
def test_a_malformed_dask_address_is_refused_at_once(here, capsys, address):
    code, _, err = dsim_in(capsys, "hunt", "queue", "--budget", "1", "--cluster", address, "--out", here / "h")
    assert_refused(code, err, f"bad value {address!r} for --cluster")
    assert not (here / "h").exists()


@pytest.mark.parametrize("item", ["servers=1_0", "service_ms=1_0"])
def test_underscores_in_a_set_number_are_refused_as_in_run_options(here, capsys, item):
    code, _, err = dsim_in(capsys, "run", "queue", *RUN, "--set", item, "--out", here / "out")
    assert_refused(code, err, repr(item.split("=")[1]))


def test_results_are_not_written_inside_a_run_folder(here, capsys, good_run):
    for args in (["hunt", "queue", "--budget", "1", "--out", good_run / "sub"],
                 ["run", "queue", *RUN, "--out", good_run / "again"]):
        code, _, err = dsim_in(capsys, *args)
        assert_refused(code, err, "inside the run folder")
    assert not (good_run / "sub").exists() and not (good_run / "again").exists()
