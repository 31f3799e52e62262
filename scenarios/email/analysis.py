"""One pass over what a run left, shared by the checkers, the figures and the plots.

Per-email accounting never builds an object per email: each job has a numpy mask of recipients
that reached an end (delivered, bounced, suppressed, dead-lettered) or are still queued, built
from the mailboxes' byte rows, the suppressed and dead-letter index tuples and the queue's
remaining messages. Latencies come from the providers' per-call records (one call is one job's
recipients at one instant), weighted by how many were delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator import pairs, windows

from .messages import TX
from .model import PROVIDER_NAMES


@dataclass
class Job:
    job: int
    cls: str
    first_address: int
    recipients: int
    invoke_ns: int | None = None
    fanout_done: bool = True
    pending_from: int | None = None  # recipients from here on are not fanned out yet


@dataclass
class Analysis:
    jobs: dict[int, Job]
    ok_missing: list[int]  # jobs answered ok that no API has a record of
    suppressed: dict[int, list[tuple]]
    dead: dict[int, list[tuple]]
    queued: dict[int, list]
    drain_ok: bool
    calls: dict[str, np.ndarray]  # per provider: rows (time_ns, n, delivered, duplicate, bounced, deferred, throttled, unavailable)
    tx_latency: list[tuple[int, int]]  # (invoke ns, latency ns) of first delivery of each transactional job
    bulk_latency: tuple[np.ndarray, np.ndarray]  # (latency ns per call, delivered weight)
    campaign_drain_s: list[float]
    fault_spans: list[tuple[int, int]]
    counts: dict[str, int] = field(default_factory=dict)
    # invoke ns of accepted transactional jobs never delivered, bounced nor suppressed (dead-lettered,
    # still queued or lost): they have no delivery latency, yet missed every objective
    tx_undelivered: list[int] = field(default_factory=list)
    # (f, invoke ns, how it ended or None) of submissions (send, campaign) not answered accepted
    unaccepted: list[tuple[str, int, str | None]] = field(default_factory=list)


def _spans(run) -> list[tuple[int, int]]:
    """Time spans (ns) during which a fault acted, from nemesis windows and explicit plan actions."""
    spans = [(t0, t1) for t0, t1, _ in windows(run.faults, run.end_ns)]
    open_: dict[tuple, int] = {}
    ends = {"provider_restore": "provider_outage", "restart": "crash", "resume": "pause"}
    for act in run.faults:
        if act.get("phase") or act["action"] == "final_heal":
            continue
        verb, t = act["action"], act["time_ns"]
        if verb in ("provider_outage", "crash", "pause"):
            open_[(verb, act.get("provider") or act.get("node"))] = t
        elif verb in ends:
            t0 = open_.pop((ends[verb], act.get("provider") or act.get("node")), None)
            spans.append((t if t0 is None else t0, t))
        elif verb == "provider_slow" and float(act["factor"]) != 1.0:
            open_[("slow", act["provider"])] = t
        elif verb == "provider_slow":
            spans.append((open_.pop(("slow", act["provider"]), t), t))
        elif verb in ("heal", "reset_links"):
            for key in [k for k in open_ if k[0] == "net"]:
                spans.append((open_.pop(key), t))
        else:
            open_[("net", verb)] = t
    stop = max(run.heal_ns, max((t1 for _, t1 in spans), default=0))
    spans += [(t0, stop) for t0 in open_.values()]
    return sorted(spans)


def analyse(run) -> Analysis:
    cached = getattr(run, "_email_analysis", None)
    if cached is not None:
        return cached
    ex = run.exposed
    settings = ex["settings"]
    jobs: dict[int, Job] = {}
    furthest: dict[int, int] = {}  # job -> most batches any API has confirmed (a job may sit at two APIs)
    for snap in ex["apis"].values():
        for key, rec in snap.items():
            if key.startswith("j/"):
                if rec.job not in jobs:
                    jobs[rec.job] = Job(rec.job, rec.cls, rec.first_address, rec.recipients)
                furthest[rec.job] = max(furthest.get(rec.job, 0), snap.get("c/%d" % rec.job, 0))
    for j, job in jobs.items():
        if furthest[j] * settings.batch_size < job.recipients:
            job.fanout_done = False
            job.pending_from = furthest[j] * settings.batch_size
    ok_missing = []
    unaccepted = []
    drain_ok = False
    for inv, comp in pairs(run.history):
        if inv["f"] in ("send", "campaign") and (comp is None or comp["type"] != "ok"):
            unaccepted.append((inv["f"], inv["time"], None if comp is None else comp["type"]))
        if comp is None:
            continue
        if inv["f"] == "drain":
            drain_ok = comp["type"] == "ok"
        elif comp["type"] == "ok":
            job = jobs.get(comp["value"])
            if job is None:
                ok_missing.append(comp["value"])
            else:
                job.invoke_ns = inv["time"]
    suppressed: dict[int, list] = {}
    for r in run.records_of("suppressed"):
        suppressed.setdefault(r["job"], []).append(r["items"])
    dead: dict[int, list] = {}
    queued: dict[int, list] = {}
    for snap in ex["partitions"].values():
        for key, v in snap.items():
            if key.startswith("d/"):
                dead.setdefault(v.job, []).append(v.items)
            elif key.startswith("m/"):
                queued.setdefault(v.job, []).append(v.items)

    rows: dict[str, list] = {}
    tx_first: dict[int, int] = {}
    bulk_lat, bulk_w = [], []
    last_delivery: dict[int, int] = {}
    for r in run.records:
        if r["kind"] != "call":
            continue
        t = r["time_ns"]
        rows.setdefault(r["provider"], []).append((t, r["n"], r["delivered"], r["duplicate"], r["bounced"],
                                                   r["deferred"], r["throttled"], r["unavailable"]))
        if r["delivered"]:
            j = r["job"]
            if r["cls"] == TX:
                tx_first.setdefault(j, t)
            else:
                last_delivery[j] = t
                job = jobs.get(j)
                if job is not None and job.invoke_ns is not None:
                    bulk_lat.append(t - job.invoke_ns)
                    bulk_w.append(r["delivered"])
    calls = {p: np.array(v, dtype=np.int64).reshape(-1, 8) for p, v in rows.items()}
    tx_latency = []
    for j, t in tx_first.items():
        job = jobs.get(j)
        if job is not None and job.invoke_ns is not None:
            tx_latency.append((job.invoke_ns, t - job.invoke_ns))
    mail = ex["mail"]
    tx_undelivered = sorted(job.invoke_ns for j, job in jobs.items()
                            if job.cls == TX and job.invoke_ns is not None and j not in tx_first
                            and not any(mail.bounced.get(j, b"")) and j not in suppressed)
    drains = [(last_delivery[j] - jobs[j].invoke_ns) / 1e9 for j in sorted(last_delivery)
              if j in jobs and jobs[j].invoke_ns is not None]
    totals = np.zeros(7, dtype=np.int64)
    for arr in calls.values():
        totals += arr[:, 1:].sum(axis=0)
    counts = dict(zip(("attempted", "delivered", "duplicates_prevented", "bounced", "deferred", "throttled",
                       "unavailable"), (int(x) for x in totals)))
    counts["retried"] = sum(r["n"] for r in run.records_of("retry"))
    counts["redeliveries"] = len(run.records_of("kit.redeliver"))
    counts["suppressed"] = sum(len(items) for lists in suppressed.values() for items in lists)
    counts["dead_letters"] = sum(len(items) for lists in dead.values() for items in lists)
    counts["emails"] = sum(j.recipients for j in jobs.values())
    counts["campaigns"] = sum(1 for j in jobs.values() if j.cls != TX)
    out = Analysis(jobs, ok_missing, suppressed, dead, queued, drain_ok, calls, sorted(tx_latency),
                   (np.array(bulk_lat, dtype=np.int64), np.array(bulk_w, dtype=np.int64)), drains, _spans(run),
                   counts, tx_undelivered=tx_undelivered, unaccepted=unaccepted)
    run._email_analysis = out
    return out


def outcome_masks(a: Analysis, mail, job: Job) -> tuple[np.ndarray, np.ndarray]:
    """(ended, queued) boolean masks over a job's recipients."""
    n = job.recipients
    ended = np.zeros(n, dtype=bool)
    row = mail.delivered.get(job.job)
    if row is not None:
        ended |= np.frombuffer(bytes(row), dtype=np.uint8) > 0
    row = mail.bounced.get(job.job)
    if row is not None:
        ended |= np.frombuffer(bytes(row), dtype=np.uint8) > 0
    for items in a.suppressed.get(job.job, ()):
        ended[list(items)] = True
    for items in a.dead.get(job.job, ()):
        ended[list(items)] = True
    queued = np.zeros(n, dtype=bool)
    for items in a.queued.get(job.job, ()):
        if isinstance(items, range):
            queued[items.start:items.stop] = True
        else:
            queued[list(items)] = True
    if job.pending_from is not None:
        queued[job.pending_from:] = True
    return ended, queued


def provider_of(settings, address: int) -> str:
    from .model import AddressBook

    names = settings.providers or PROVIDER_NAMES
    return names[AddressBook(settings.shares, settings.bounce_rate).provider(address)]
