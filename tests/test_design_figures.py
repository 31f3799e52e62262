"""Every shipped design draws its own figures in a run with plots (a broken plot import shows here, not in a user's run)."""

from __future__ import annotations

import pytest

from simulator import get_scenario, scenario_names
from simulator.cli import main

OWN_FIGURES = {"queue": set(), "graph": {"graph.png"}, "raft": {"leader-timeline.png"}, "twopc": {"twopc-in-doubt.png", "twopc-times.png"},
               "kademlia": {"kademlia-lookups.png", "kademlia-over-time.png", "kademlia-cdfs.png"},
               "email": {"email-latency.png", "email-providers.png", "email-queue.png", "email-retries.png"},
               "reverse-proxy": {"proxy-upstreams.png"},
               "cache": {"cache.png", "staleness.png"},
               "commerce": {"commerce-orders.png", "commerce-times.png"}}


@pytest.mark.parametrize("name", scenario_names())
def test_a_run_with_plots_writes_the_designs_figures(name, tmp_path):
    """A short seeded run with plots exits 0 and leaves the standard plots and the design's own PNGs."""
    get_scenario(name)
    with pytest.raises(SystemExit) as end:
        main(["run", name, "--seed", "1", "--time-limit", "3", "--out", str(tmp_path / "run")])
    assert end.value.code == 0
    pngs = {p.name for p in (tmp_path / "run").glob("*.png")}
    assert {"latency-raw.png", "latency-quantiles.png", "rate.png"} | OWN_FIGURES.get(name, set()) <= pngs
