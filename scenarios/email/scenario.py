"""Email fan-out: 100 million emails a day, 10,000 a second at peak, exactly once through
rate-limited providers.

Pipeline (node ids): clients ``c*`` -> ingest APIs ``a*`` (accept durably, fan out into batches) ->
durable queue partitions ``q*`` (visibility timeouts, redelivery, priority, delayed retries, dead
letters) -> send workers ``w*`` (suppression list, per-provider token buckets, idempotency keys,
back-off) -> providers ``p-*`` (latency, throttle, deferrals, bounces, outages); bounces feed the
suppression list ``supp``. See ingest.py, queue.py, worker.py and provider.py for each algorithm.

Load: transactional sends arrive as a Poisson process whose rate follows a daily curve (period
``day_s``: a day compressed into the run); every ``campaign_every_s`` on average one operation is a
campaign to ``campaign_recipients`` consecutive addresses. Everything is at full scale times
``scale``: at ``scale=1`` providers take 10,000 emails/s together (the campaign burst rate) and
transactional mail averages ``tx_rate_s``; the default 0.1 keeps a run to a few wall seconds.
"""

from __future__ import annotations

import math

from simulator import Dist, Param, RunData, Scenario, Setup, UsageError, register

from . import checks, figures
from .ingest import Api, Client
from .model import IDEAL, PROVIDER_NAMES, WEBMAIL, Mailboxes, ProviderControl, provider_node
from .provider import Provider, SuppressionList
from .queue import Partition
from .settings import Settings
from .worker import Worker


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _provider_outage(servers, rng, interval_ns):
    p = _pick(rng, PROVIDER_NAMES)
    return [{"action": "provider_outage", "provider": p}], [{"action": "provider_restore", "provider": p}]


def _provider_slow(servers, rng, interval_ns):
    p = _pick(rng, PROVIDER_NAMES)
    return ([{"action": "provider_slow", "provider": p, "factor": 10.0}],
            [{"action": "provider_slow", "provider": p, "factor": 1.0}])


def _queue_unreachable(servers, rng, interval_ns):
    q = _pick(rng, [s for s in servers if s.startswith("q")])
    return [{"action": "isolate", "node": q}], [{"action": "heal"}]


def _workers_cut_from_queue(servers, rng, interval_ns):
    workers = [s for s in servers if s.startswith("w")]
    parts = [s for s in servers if s.startswith("q")]
    return [{"action": "partition", "groups": [workers, parts]}], [{"action": "heal"}]


FINAL_CAMPAIGN_MAX = 10_000_000  # its mailbox rows take a byte per recipient, its run ~7 wall s a million


@register
class Email(Scenario):
    name = "email"
    summary = "email fan-out through a durable queue and rate-limited providers, exactly once"
    params = (
        Param("scale", 0.1, "fraction of the full service (100M emails/day, 10,000/s peak) to simulate", min=1e-6, max=10.0),
        Param("tx_rate_s", 250.0, "mean transactional emails per second at full scale", min=0.0),
        Param("campaign_recipients", 200_000, "recipients per campaign at full scale (times scale: at most 10 million)",
              type=int, min=0),
        Param("campaign_every_s", 30.0, "mean simulated seconds between campaign submissions (0: none)", min=0.0,
              time_scale=True),
        Param("final_campaign_recipients", 0, "one more campaign, submitted after the main phase and drained "
              "before the run ends (the benchmark's million), absolute count, at most 10 million (about 7 wall s "
              "and 170 MB a million)", type=int, min=0, max=FINAL_CAMPAIGN_MAX),
        Param("day_s", 60.0, "simulated seconds of one compressed day of the daily curve", min=1.0, time_scale=True),
        Param("daily_amplitude", 0.6, "swing of the daily curve around its mean (0: a flat Poisson rate)", min=0.0, max=1.0),
        Param("population", 2_000_000, "distinct addresses at full scale", type=int, min=1),
        Param("provider_set", "webmail", "webmail: four providers; ideal: one never-failing, unlimited one (M/M/c)",
              type=str, choices=("webmail", "ideal")),
        Param("ideal_send_ms", 100.0, "mean send time of the ideal provider, ms", min=0.0),
        Param("send_dist", "exponential", "provider latency distribution", type=str,
              choices=("exponential", "lognormal", "constant")),
        Param("workers", 8, "send workers in the pool", type=int, min=1, max=10_000),
        Param("worker_slots", 8, "queue messages a worker works on at once", type=int, min=1),
        Param("connections", 8, "concurrent provider calls per worker (each lasts the provider's latency)",
              type=int, min=1),
        Param("call_recipients", 10, "recipients per provider call at most (a bulk send API's limit)", type=int, min=1),
        Param("tx_reserved_slots", 2, "worker slots that never take campaign batches", type=int, min=0),
        Param("partitions", 4, "queue partitions", type=int, min=1, max=1000),
        Param("apis", 2, "ingest API nodes", type=int, min=1, max=100),
        Param("batch_size", 100, "recipients per queue message", type=int, min=1),
        Param("visibility_timeout_s", 30.0, "a leased message not acked in this time is redelivered", min=0.001),
        Param("long_poll_ms", 500.0, "how long a partition holds an empty pull", min=1.0),
        Param("send_timeout_ms", 5000.0, "a provider call not answered in this time counts as failed", min=1.0),
        Param("retry_base_ms", 1000.0, "first retry back-off (doubles per attempt, full jitter)", min=0.0),
        Param("retry_cap_ms", 30000.0, "largest retry back-off", min=0.0),
        Param("max_attempts", 8, "attempts before a recipient goes to the dead-letter queue", type=int, min=1),
        Param("max_age_s", 600.0, "age after which a recipient goes to the dead-letter queue", min=0.0),
        Param("rate_headroom", 0.9, "share of each provider's limit the workers' buckets use together",
              min=0.01, max=1.0),
        Param("bucket_depth_s", 0.2, "token bucket depth, in seconds of its rate", min=0.0),
        Param("provider_burst_s", 0.2, "slack of the provider's own limiter, seconds of its limit", min=0.0),
        Param("defer_rate", 0.03, "chance a provider defers a valid recipient (transient 4xx)", min=0.0, max=1.0),
        Param("bounce_rate", 0.02, "share of addresses that do not exist (permanent bounce)", min=0.0, max=1.0),
        Param("worker_service_ms", 0.2, "CPU time per message at a worker, ms", min=0.0),
        Param("node_service_ms", 0.05, "CPU time per message at APIs, partitions and the suppression list, ms", min=0.0),
        Param("fsync_ms", 1.0, "fsync latency of APIs, partitions and the suppression list, ms", min=0.0),
        Param("tx_p99_objective_s", 10.0, "transactional p99 delivery latency objective, s", min=0.0),
        Param("rate_window_ms", 1000.0, "window in which provider limits are checked, ms", min=1.0),
    )
    bugs = {
        "ack-before-send": "workers ack a leased message before sending it: a crash loses its recipients",
        "no-idempotency": "workers send without idempotency keys: a redelivered message is delivered twice",
        "no-backoff": "failed sends are retried at once from the worker, outside the rate limiter (retry storms)",
        "fifo-only": "no priority: transactional mail waits in line behind campaign batches",
    }
    # A run at the defaults that each bug breaks (the same runs without the bug are valid).
    exposes = {
        "ack-before-send": "--bug ack-before-send --seed 1 --nemesis crash",
        "no-idempotency": "--bug no-idempotency --seed 1 --nemesis crash",
        "no-backoff": "--bug no-backoff --seed 1 --nemesis provider-outage",
    }
    checkers = {
        "nothing-lost": "every accepted email ends delivered, bounced, suppressed, dead-lettered or still queued; names the lost",
        "no-duplicates": "no recipient of a job is delivered more than once by a provider",
        "rate-limits": "no provider receives more than its limit (plus its burst) in any rate_window_ms window",
        "tx-latency": "p99 of transactional delivery latency, outside fault windows, is within tx_p99_objective_s "
                      "(an accepted email never delivered counts as infinitely late)",
        "drained": "after the final heal every submission was accepted and every queue and fan-out empties "
                   "(the final drain operation succeeds)",
    }
    nemeses = ("crash", "pause", "partition-random-halves", "partition-isolate-one", "slow-link", "flaky-link",
               "clock-drift", "provider-outage", "provider-slow", "queue-unreachable", "workers-cut-from-queue")
    # What `dsim hunt` draws from: short and long fault windows, short and full runs.
    search = {"nemesis_interval_s": (2.0, 20.0), "time_limit_s": (20.0, 60.0)}
    fault_verbs = {"provider_outage": ("provider",), "provider_restore": ("provider",),
                   "provider_slow": ("provider", "factor")}
    custom_nemeses = {"provider-outage": _provider_outage, "provider-slow": _provider_slow,
                      "queue-unreachable": _queue_unreachable, "workers-cut-from-queue": _workers_cut_from_queue}
    unused_options = ("node_count",)  # its parameters size it
    defaults = {"time_limit_s": 60.0, "rate": 1.0, "latency_ms": 1.0, "op_timeout_ms": 900_000.0,
                "quiesce_s": 2.0, "final_timeout_s": 900.0, "nemesis_interval_s": 10.0}
    examples = (
        "dsim run email --seed 1",
        "dsim run email --seed 3 --nemesis crash,partition-random-halves,slow-link,provider-outage",
        "dsim run email --seed 1 --bug fifo-only",
        "dsim sweep email --seeds 1-3 --grid workers=2,4,8,16 --jobs 2",
        "python -m scenarios.email.capacity --workers 2,4,8,16 --seeds 1-2",
    )
    benchmarks = {
        "email-campaign": {
            "options": {"time_limit_s": 1.0, "quiesce_s": 0.0, "final_timeout_s": 3600.0,
                        "op_timeout_ms": 3_600_000.0},
            "params": {"scale": 1.0, "final_campaign_recipients": 1_000_000, "campaign_every_s": 0.0,
                       "tx_rate_s": 0.0, "population": 5_000_000, "batch_size": 500, "workers": 16, "connections": 16},
        },
    }

    @classmethod
    def validate(cls, params: dict) -> None:
        per_campaign = params["campaign_recipients"] * params["scale"]  # as build() rounds it
        if per_campaign > FINAL_CAMPAIGN_MAX:
            raise UsageError(f"bad value {params['campaign_recipients']} for campaign_recipients: expected at most "
                             f"{FINAL_CAMPAIGN_MAX:,} recipients a campaign once times scale ({params['scale']:g}), "
                             f"as final_campaign_recipients")
        if params["tx_reserved_slots"] >= params["worker_slots"]:
            raise UsageError(f"bad value {params['tx_reserved_slots']} for tx_reserved_slots: expected less than "
                             f"worker_slots ({params['worker_slots']}), so that campaign batches get a slot")
        if params["retry_base_ms"] > params["retry_cap_ms"]:
            raise UsageError(f"bad value {params['retry_base_ms']:g} for retry_base_ms: expected at most "
                             f"retry_cap_ms ({params['retry_cap_ms']:g})")

    @classmethod
    def check_fault(cls, n, act, hosts, params) -> None:
        verb = act["action"]
        cls.check_fault_keys(n, act, cls.fault_verbs[verb])
        names = (IDEAL,) if params["provider_set"] == "ideal" else PROVIDER_NAMES
        if not isinstance(act["provider"], str) or act["provider"] not in names:
            raise UsageError(f"bad value {act['provider']!r} for provider of fault {n} ({verb}): expected a provider "
                             f"of this run: {', '.join(names)}")

    def build(self, sim, cfg) -> Setup:
        p = cfg.params
        scale = p["scale"]
        ideal = p["provider_set"] == "ideal"
        specs = () if ideal else WEBMAIL
        names = (IDEAL,) if ideal else PROVIDER_NAMES
        n_workers = p["workers"]
        limits = (0.0,) if ideal else tuple(s.limit_s * scale for s in specs)
        bucket = tuple(l * p["rate_headroom"] / n_workers for l in limits)
        population = max(1, int(round(p["population"] * scale)))
        settings = Settings(
            apis=tuple(f"a{i}" for i in range(p["apis"])),
            partitions=tuple(f"q{i}" for i in range(p["partitions"])),
            workers=tuple(f"w{i}" for i in range(n_workers)),
            providers=names, suppression="supp", population=population,
            shares=(1.0,) if ideal else tuple(s.share for s in specs),
            bounce_rate=0.0 if ideal else p["bounce_rate"],
            batch_size=p["batch_size"], fanout_window=64, enqueue_timeout_ms=1000.0,
            visibility_timeout_ms=p["visibility_timeout_s"] * 1e3, long_poll_ms=p["long_poll_ms"], sample_ms=1000.0,
            worker_slots=p["worker_slots"], connections=p["connections"],
            call_recipients=p["call_recipients"], tx_reserved_slots=min(p["tx_reserved_slots"], p["worker_slots"] - 1),
            send_timeout_ms=p["send_timeout_ms"], retry_base_ms=p["retry_base_ms"], retry_cap_ms=p["retry_cap_ms"],
            max_attempts=p["max_attempts"], max_age_ms=p["max_age_s"] * 1e3,
            bucket_rate_s=bucket, bucket_burst=tuple(max(1.0, b * p["bucket_depth_s"]) for b in bucket),
            provider_limit_s=limits, provider_burst=tuple(max(1.0, l * p["provider_burst_s"]) for l in limits),
            provider_latency_ms=(p["ideal_send_ms"],) if ideal else tuple(s.latency_ms for s in specs),
            send_dist=p["send_dist"], defer_rate=0.0 if ideal else p["defer_rate"], bug=cfg.bug,
        )
        self.settings = settings
        mail = Mailboxes()
        controls = {name: ProviderControl() for name in names}
        node_svc = Dist("constant", p["node_service_ms"]) if p["node_service_ms"] else None
        fsync = Dist("constant", p["fsync_ms"]) if p["fsync_ms"] else None
        big = 100_000_000
        for a in settings.apis:
            sim.add_node(a, lambda: Api(settings), service=node_svc, fsync=fsync, inbox_limit=big)
        for q in settings.partitions:
            sim.add_node(q, lambda: Partition(settings), service=node_svc, fsync=fsync, inbox_limit=big)
        svc = Dist("exponential", p["worker_service_ms"]) if p["worker_service_ms"] else None
        for w in settings.workers:
            sim.add_node(w, lambda: Worker(settings), service=svc, inbox_limit=big)
        sim.add_node(settings.suppression, lambda: SuppressionList(settings), service=node_svc, fsync=fsync,
                     inbox_limit=big)
        for i, name in enumerate(names):
            sim.add_node(provider_node(name), lambda i=i, name=name: Provider(settings, i, controls[name], mail))

        def set_down(act, down):
            ctl = controls.get(act["provider"])
            if ctl is not None:
                ctl.down = down

        def set_slow(act):
            ctl = controls.get(act["provider"])
            if ctl is not None:
                ctl.slow_factor = float(act["factor"])

        def restore_all():
            for ctl in controls.values():
                ctl.down, ctl.slow_factor = False, 1.0

        sim.faults.register("provider_outage", lambda act: set_down(act, True))
        sim.faults.register("provider_restore", lambda act: set_down(act, False))
        sim.faults.register("provider_slow", set_slow)
        sim.faults.on_final_heal(restore_all)

        tx_mean = p["tx_rate_s"] * scale
        camp_rate = 1.0 / p["campaign_every_s"] if p["campaign_every_s"] > 0 and p["campaign_recipients"] > 0 else 0.0
        recipients = max(1, int(round(p["campaign_recipients"] * scale)))
        day_s = p["day_s"]
        amplitude = p["daily_amplitude"]
        share = camp_rate / (tx_mean + camp_rate) if tx_mean + camp_rate > 0 else 0.0
        state = {"credit": 0.75}

        def rate_at(t_s: float) -> float:
            return max(1e-9, tx_mean * (1.0 + amplitude * math.sin(2 * math.pi * t_s / day_s - math.pi / 2)) + camp_rate)

        def generate(rng):
            state["credit"] += share
            if state["credit"] >= 1.0:
                state["credit"] -= 1.0
                return "campaign", (int(rng.integers(population)), recipients)
            return "send", int(rng.integers(population))

        final: list = [("drain", None)]
        if p["final_campaign_recipients"]:
            final.insert(0, ("campaign", (0, p["final_campaign_recipients"])))
        servers = list(settings.apis + settings.partitions + settings.workers + (settings.suppression,))

        def expose() -> dict:
            return {
                "partitions": {q: sim.hosts[q].storage.snapshot() for q in settings.partitions},
                "apis": {a: sim.hosts[a].storage.snapshot() for a in settings.apis},
                "suppressed_addresses": sum(1 for k in sim.hosts[settings.suppression].storage.snapshot()
                                            if k.startswith("s/")),
                "mail": mail, "settings": settings,
            }

        return Setup(servers=servers, client=lambda cid: Client(settings), generate=generate,
                     final=final, expose=expose, clients=2, rate_at=rate_at)

    def check(self, run: RunData):
        return checks.check_all(run)

    def figures(self, run: RunData) -> dict:
        return figures.scalars(run)

    def plots(self, run: RunData, folder, shade) -> list[str]:
        return figures.draw(run, folder, shade)
