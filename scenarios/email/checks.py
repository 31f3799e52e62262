"""The email checkers: nothing lost, nothing sent twice, limits held, transactional mail fast, drained.

Each returns a :class:`~simulator.checkers.CheckResult` whose message names the first offenders
in words: which email (job, recipient, address, provider, class) was lost or delivered twice,
which provider got how many requests in which window.
"""

from __future__ import annotations

import numpy as np

from simulator import CheckResult

from .analysis import Analysis, analyse, outcome_masks, provider_of
from .messages import TX
from .model import address_of


def _name(settings, job, index: int) -> str:
    a = address_of(job.first_address, index, settings.population)
    kind = "transactional" if job.cls == TX else "campaign"
    return f"job {job.job} recipient {index} ({kind}, address {a} at {provider_of(settings, a)})"


def nothing_lost(a: Analysis, run) -> CheckResult:
    mail, settings = run.exposed["mail"], run.exposed["settings"]
    lost: list[str] = []
    n_lost = n_queued = 0
    for j in sorted(a.jobs):
        job = a.jobs[j]
        ended, queued = outcome_masks(a, mail, job)
        missing = np.flatnonzero(~(ended | queued))
        n_queued += int((queued & ~ended).sum())
        if len(missing):
            n_lost += len(missing)
            lost.extend(_name(settings, job, int(i)) for i in missing[: max(0, 5 - len(lost))])
    details = {"accepted_emails": a.counts["emails"], "lost": n_lost, "still_queued": n_queued,
               "accepted_jobs_unknown_to_apis": len(a.ok_missing)}
    problems = []
    if a.ok_missing:
        problems.append(f"{len(a.ok_missing)} jobs were answered accepted but no API has them: jobs "
                        + ", ".join(str(j) for j in a.ok_missing[:5]))
    if n_lost:
        problems.append(f"{n_lost} of {a.counts['emails']} accepted emails ended neither delivered, bounced, "
                        f"suppressed nor dead-lettered, and are not queued: " + "; ".join(lost)
                        + (f" and {n_lost - len(lost)} more" if n_lost > len(lost) else ""))
    return CheckResult(not problems, "; ".join(problems), details)


def no_duplicates(a: Analysis, run) -> CheckResult:
    mail, settings = run.exposed["mail"], run.exposed["settings"]
    named: list[str] = []
    n_dup = 0
    for j in sorted(mail.delivered):
        counts = np.frombuffer(bytes(mail.delivered[j]), dtype=np.uint8)
        twice = np.flatnonzero(counts > 1)
        if len(twice):
            n_dup += len(twice)
            job = a.jobs.get(j)
            for i in twice[: max(0, 5 - len(named))]:
                who = _name(settings, job, int(i)) if job else f"job {j} recipient {int(i)}"
                named.append(f"{who} delivered {int(counts[i])} times")
    details = {"duplicated_recipients": n_dup, "duplicates_prevented": a.counts["duplicates_prevented"]}
    if n_dup:
        return CheckResult(False, f"{n_dup} recipients got the same email more than once: " + "; ".join(named)
                           + (f" and {n_dup - len(named)} more" if n_dup > len(named) else ""), details)
    return CheckResult(True, "", details)


def max_window(times_ns: np.ndarray, counts: np.ndarray, window_ns: int) -> tuple[int, int]:
    """Largest sum of ``counts`` over arrivals in any half-open window [t, t + window); and its start."""
    if len(times_ns) == 0:
        return 0, 0
    order = np.argsort(times_ns, kind="stable")
    t, c = times_ns[order], counts[order]
    csum = np.concatenate(([0], np.cumsum(c)))
    ends = np.searchsorted(t, t + window_ns, side="left")
    sums = csum[ends] - csum[np.arange(len(t))]
    k = int(np.argmax(sums))
    return int(sums[k]), int(t[k])


def rate_limits(a: Analysis, run) -> CheckResult:
    settings = run.exposed["settings"]
    window_ms = run.cfg.params["rate_window_ms"]
    window_ns = int(window_ms * 1e6)
    details, problems = {}, []
    for i, name in enumerate(settings.providers):
        limit = settings.provider_limit_s[i]
        arr = a.calls.get(name)
        if limit <= 0 or arr is None:
            continue
        allowed = limit * window_ms / 1000 + settings.provider_burst[i]
        peak, at = max_window(arr[:, 0], arr[:, 1], window_ns)
        details[f"{name}_peak_per_window"] = peak
        details[f"{name}_allowed_per_window"] = round(allowed, 1)
        if peak > allowed:
            problems.append(f"{name} received {peak} sends in the {window_ms:g} ms from t={at / 1e9:.3f} s, "
                            f"above its limit of {limit:g}/s plus a burst of {settings.provider_burst[i]:g} "
                            f"({allowed:.0f} allowed)")
    return CheckResult(not problems, "; ".join(problems), details)


def tx_latency(a: Analysis, run, before_s: float = 2.0, after_s: float = 5.0) -> CheckResult:
    """p99 of transactional delivery latency (accept to first delivery), for mail accepted outside
    fault windows. An accepted transactional email never delivered (dead-lettered, still queued or
    lost; bounced and suppressed addresses aside) counts as infinitely late: leaving it out would
    let the worst outcome improve the figure."""
    objective_s = run.cfg.params["tx_p99_objective_s"]
    b, f = int(before_s * 1e9), int(after_s * 1e9)
    spans = [(t0 - b, t1 + f) for t0, t1 in a.fault_spans]

    def outside(t: int) -> bool:
        return not any(s0 <= t <= s1 for s0, s1 in spans)

    lat = [l for t, l in a.tx_latency if outside(t)]
    never = sum(1 for t in a.tx_undelivered if outside(t))
    n_all = len(a.tx_latency) + len(a.tx_undelivered)
    details = {"objective_s": objective_s, "samples": len(lat) + never, "never_delivered": never,
               "excluded_in_fault_windows": n_all - len(lat) - never}
    if not any(j.cls == TX for j in a.jobs.values()):
        return CheckResult(True, "", {**details, "skipped": "no transactional mail was sent"})
    if len(lat) + never < 20:
        return CheckResult("unknown", f"only {len(lat) + never} transactional emails accepted outside fault windows",
                           details)
    samples = np.concatenate((np.array(lat, dtype=np.float64), np.full(never, np.inf)))
    with np.errstate(invalid="ignore"):  # interpolating between two infinities gives nan: still infinite
        p99_ns = float(np.percentile(samples, 99))
    p99_s = np.inf if np.isnan(p99_ns) else p99_ns / 1e9
    details["p99_s"] = round(p99_s, 4) if np.isfinite(p99_s) else None
    if p99_s > objective_s:
        slow = sum(1 for l in lat if l > objective_s * 1e9) + never
        what = (f"{p99_s:.2f} s" if np.isfinite(p99_s) else "unbounded")
        why = f", {never} never delivered" if never else ""
        return CheckResult(False, f"transactional p99 delivery latency {what} is above the {objective_s:g} s "
                                  f"objective ({slow} of {len(lat) + never} took longer{why})", details)
    return CheckResult(True, "", details)


def drained(a: Analysis, run) -> CheckResult:
    """After the final heal every submission was accepted and every queue and fan-out emptied. A
    submission never answered accepted (the client retries it until the run ends) is in no API,
    so nothing-lost cannot see it and the drain's depth polls do not count it."""
    queued = sum(len(items) for lists in a.queued.values() for items in lists)
    fanout = sum(1 for j in a.jobs.values() if j.pending_from is not None)
    details = {"queued_emails": queued, "jobs_not_fanned_out": fanout, "submissions_not_accepted": len(a.unaccepted)}
    problems = []
    if a.unaccepted:
        f, t, end = a.unaccepted[0]
        problems.append(f"{len(a.unaccepted)} submissions were never accepted (the first: {f} invoked at "
                        f"{t / 1e9:.3f} s, {'never answered' if end is None else 'ended ' + end})")
    if not a.drain_ok or queued or fanout:
        problems.append(f"the pipeline did not drain after the final heal: {queued} emails still queued, "
                        f"{fanout} jobs not fully fanned out")
    return CheckResult(not problems, "; ".join(problems), details)


def check_all(run) -> dict[str, CheckResult]:
    a = analyse(run)
    return {"nothing-lost": nothing_lost(a, run), "no-duplicates": no_duplicates(a, run),
            "rate-limits": rate_limits(a, run), "tx-latency": tx_latency(a, run), "drained": drained(a, run)}
