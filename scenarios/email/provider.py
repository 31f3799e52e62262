"""The outside world's mail providers, and the suppression list fed by their bounces.

A provider answers each bulk call after its latency (drawn per call; multiplied while it is slow).
Each recipient in the call gets one outcome, decided on arrival:

- ``unavailable`` for every recipient while the provider is in an outage;
- ``throttled`` when the provider's own token bucket (its published limit, with ``burst`` of slack)
  is empty: it answers "try later" above its limit;
- ``bounced`` for an invalid address (a fixed property of the address);
- ``duplicate`` when the call carries idempotency keys and this recipient of this job was delivered
  before: the provider remembers keys and does not deliver again (as Postmark and SES's
  ``X-Idempotency`` style APIs do);
- ``deferred`` with probability ``defer_rate`` (a transient 4xx);
- otherwise ``delivered``: written to the :class:`~scenarios.email.model.Mailboxes`.

Every call is recorded (``call``: arrivals and outcome counts), so checkers can count what reached
each provider in any window. Providers are not servers of the system: the nemesis does not crash
or partition them; scenario fault verbs put them in outage or slow them down.
"""

from __future__ import annotations

from simulator import Dist, Node

from .messages import ProviderReply, ProviderSend, Suppress, Suppressed, SuppressionSync
from .model import BOUNCED, DEFERRED, DELIVERED, DUPLICATE, THROTTLED, UNAVAILABLE, AddressBook, Mailboxes, ProviderControl
from .settings import Settings


class Provider(Node):
    def __init__(self, settings: Settings, index: int, control: ProviderControl, mail: Mailboxes):
        s = settings
        self.name = s.providers[index]
        self.limit_s = s.provider_limit_s[index]
        self.burst = s.provider_burst[index]
        self.latency = Dist(s.send_dist, s.provider_latency_ms[index], cv=1.0)
        self.defer_rate = s.defer_rate
        self.population = s.population
        self.book = AddressBook(s.shares, s.bounce_rate)
        self.control = control
        self.mail = mail

    def on_start(self, ctx) -> None:
        self.tokens = self.burst
        self.token_ns = ctx.now
        self.replies: dict[int, tuple[str, ProviderReply]] = {}
        self.seq = 0
        self._lat: list[float] = []
        self._coin: list[float] = []

    def _draw_latency_ms(self, ctx) -> float:
        if not self._lat:
            self._lat = self.latency.draw_ms(ctx.rng, 1024).tolist()
        return self._lat.pop()

    def _coin_flip(self, ctx) -> float:
        if not self._coin:
            self._coin = ctx.rng.random(1024).tolist()
        return self._coin.pop()

    def on_message(self, ctx, src: str, msg) -> None:
        if type(msg) is not ProviderSend:
            return
        items = msg.items
        n = len(items)
        if self.control.down:
            outcomes = bytes([UNAVAILABLE]) * n
        else:
            out = bytearray(n)
            if self.limit_s > 0:
                now = ctx.now
                self.tokens = min(self.burst, self.tokens + (now - self.token_ns) * self.limit_s / 1e9)
                self.token_ns = now
            mail, book, pop = self.mail, self.book, self.population
            job, size, first = msg.job, msg.job_size, msg.first_address
            limited = self.limit_s > 0
            for k, i in enumerate(items):
                if limited:
                    if self.tokens < 1.0:
                        out[k] = THROTTLED
                        continue
                    self.tokens -= 1.0
                if book.invalid((first + i) % pop):
                    mail.bounce(job, size, i)
                    out[k] = BOUNCED
                elif msg.keyed and mail.was_delivered(job, i):
                    out[k] = DUPLICATE
                elif self.defer_rate and self._coin_flip(ctx) < self.defer_rate:
                    out[k] = DEFERRED
                else:
                    mail.deliver(job, size, i)
                    out[k] = DELIVERED
            outcomes = bytes(out)
        counts = [0] * 6
        for c in outcomes:
            counts[c] += 1
        ctx.record("call", provider=self.name, job=msg.job, cls=msg.cls, n=n,
                   delivered=counts[DELIVERED], duplicate=counts[DUPLICATE], bounced=counts[BOUNCED],
                   deferred=counts[DEFERRED], throttled=counts[THROTTLED], unavailable=counts[UNAVAILABLE])
        self.seq += 1
        self.replies[self.seq] = (src, ProviderReply(msg.call_id, outcomes))
        ctx.set_timer("r%d" % self.seq, self._draw_latency_ms(ctx) * self.control.slow_factor)

    def on_timer(self, ctx, name: str) -> None:
        entry = self.replies.pop(int(name[1:]), None)
        if entry is not None:
            ctx.send(entry[0], entry[1])


class SuppressionList(Node):
    """Durable set of addresses never to mail again; changes reach the workers in batches."""

    def __init__(self, settings: Settings, flush_ms: float = 100.0):
        self.workers = settings.workers
        self.flush_ms = flush_ms

    def on_start(self, ctx) -> None:
        self.fresh: list[int] = []

    def on_message(self, ctx, src: str, msg) -> None:
        t = type(msg)
        if t is Suppress:
            key = "s/%d" % msg.address
            if key not in ctx.storage:
                ctx.storage.put(key, True)
                self.fresh.append(msg.address)
                if not ctx.timer_set("flush"):
                    ctx.set_timer("flush", self.flush_ms)
        elif t is SuppressionSync:
            ctx.send(src, Suppressed(tuple(sorted(int(k[2:]) for k in ctx.storage.keys() if k.startswith("s/")))))

    def on_timer(self, ctx, name: str) -> None:
        fresh, self.fresh = tuple(self.fresh), []
        for w in self.workers:
            ctx.send(w, Suppressed(fresh))
