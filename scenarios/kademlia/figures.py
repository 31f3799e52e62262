"""Kademlia's figures and plots (filled in below)."""

from __future__ import annotations


def figures(run) -> dict:
    looks = [r for r in run.records if r["kind"] == "kad.lookup"]
    client = [r for r in looks if r["purpose"] in ("find", "get", "put")]
    hops = [r["hops"] for r in client]
    return {"lookups": len(looks), "client_lookups": len(client),
            "mean_hops": round(sum(hops) / len(hops), 3) if hops else None}


def plots(run, folder, shade) -> list[str]:
    return []
