"""The email checkers on small hand-built runs: what counts as lost, queued or duplicated."""

from __future__ import annotations

import dataclasses

from scenarios.email.analysis import analyse
from scenarios.email.checks import drained, no_duplicates, nothing_lost, tx_latency
from scenarios.email.ingest import JobRecord
from scenarios.email.messages import BULK, TX, DeadLetter, QueueMessage
from scenarios.email.model import Mailboxes
from scenarios.email.validation import send_stage_settings
from simulator.pipeline.config import RunConfig
from simulator.pipeline.scenario import RunData


def hand_run(api_snap: dict, part_snap: dict, mail: Mailboxes, records=(), history=()) -> RunData:
    s = dataclasses.replace(send_stage_settings(1, 100.0), batch_size=4, population=1_000_000)
    cfg = RunConfig(scenario="email", params={"rate_window_ms": 1000.0, "tx_p99_objective_s": 10.0})
    return RunData(cfg=cfg, history=list(history), records=list(records), faults=[],
                   exposed={"apis": {"a0": api_snap}, "partitions": {"q0": part_snap}, "mail": mail, "settings": s},
                   end_ns=0, heal_ns=0, network={})


def test_nothing_lost_names_the_recipient_that_has_no_end():
    """Delivered, bounced, suppressed, dead-lettered and queued recipients are fine; the one left is named."""
    mail = Mailboxes()
    for i in (0, 1):
        mail.deliver(7, 8, i)
    mail.bounce(7, 8, 2)
    api = {"j/7": JobRecord(7, BULK, 100, 8, 0), "c/7": 2}
    part = {"d/7.1.3": DeadLetter((7, 1, 3), 7, (4,), "attempts"),
            "m/7.1.1": QueueMessage((7, 1, 1), 7, BULK, 100, 8, (5, 6), 1, 0)}
    records = [{"kind": "suppressed", "job": 7, "items": (3,), "time_ns": 0, "node": "w0"}]
    res = nothing_lost(analyse(hand_run(api, part, mail, records)), hand_run(api, part, mail, records))
    assert res.valid is False
    assert res.details["lost"] == 1 and res.details["still_queued"] == 2
    assert "job 7 recipient 7 (campaign, address 107" in res.message


def test_recipients_an_api_has_not_fanned_out_yet_are_queued_not_lost():
    """Recipients past the API's fan-out checkpoint count as still queued."""
    mail = Mailboxes()
    for i in range(4):
        mail.deliver(7, 8, i)
    api = {"j/7": JobRecord(7, BULK, 100, 8, 0), "c/7": 1}
    run = hand_run(api, {}, mail)
    res = nothing_lost(analyse(run), run)
    assert res.valid is True and res.details["still_queued"] == 4


def test_no_duplicates_counts_recipients_delivered_twice():
    """A recipient delivered twice fails the check, with its job, index and count in the message."""
    mail = Mailboxes()
    mail.deliver(7, 8, 5)
    mail.deliver(7, 8, 5)
    api = {"j/7": JobRecord(7, BULK, 100, 8, 0), "c/7": 2}
    run = hand_run(api, {}, mail)
    res = no_duplicates(analyse(run), run)
    assert res.valid is False and "job 7 recipient 5" in res.message and "delivered 2 times" in res.message


S = 1_000_000_000


def tx_jobs_run(delivered: int, dead: int, bounced: int):
    """A hand-built run of one-recipient transactional jobs, each accepted 1 ms after its invoke:
    ``delivered`` reach a mailbox 0.5 s after the invoke, ``dead`` are dead-lettered, ``bounced`` bounce."""
    mail, api, part, records, history = Mailboxes(), {}, {}, [], []
    for j in range(delivered + dead + bounced):
        api[f"j/{j}"], api[f"c/{j}"] = JobRecord(j, TX, 1000 + j, 1, j * S), 1
        history += [{"index": 0, "time": j * S, "type": "invoke", "process": j, "f": "send", "value": 1000 + j},
                    {"index": 0, "time": j * S + 1_000_000, "type": "ok", "process": j, "f": "send", "value": j}]
        if j < delivered:
            mail.deliver(j, 1, 0)
            records.append({"kind": "call", "time_ns": j * S + S // 2, "provider": "ideal", "n": 1, "delivered": 1,
                            "duplicate": 0, "bounced": 0, "deferred": 0, "throttled": 0, "unavailable": 0,
                            "job": j, "cls": TX})
        elif j < delivered + dead:
            part[f"d/{j}.0.0"] = DeadLetter((j, 0, 0), j, (0,), "age")
        else:
            mail.bounce(j, 1, 0)
    return hand_run(api, part, mail, records, history)


def test_tx_latency_counts_mail_never_delivered_as_infinitely_late():
    """A transactional email accepted but never delivered (here dead-lettered) counts as missing the
    objective: 1 in 30 puts p99 out of bounds, where leaving it out gave a p99 of 0.5 s."""
    run = tx_jobs_run(delivered=29, dead=1, bounced=0)
    res = tx_latency(analyse(run), run)
    assert res.valid is False
    assert res.details["never_delivered"] == 1 and res.details["samples"] == 30
    assert "unbounded" in res.message and "1 never delivered" in res.message


def test_tx_latency_leaves_bounced_mail_out():
    """A bounced address has no delivery to wait for: it neither counts as late nor as a sample."""
    run = tx_jobs_run(delivered=29, dead=0, bounced=3)
    res = tx_latency(analyse(run), run)
    assert res.valid is True
    assert res.details["never_delivered"] == 0 and res.details["samples"] == 29 and res.details["p99_s"] == 0.5


def test_drained_fails_on_a_submission_never_accepted():
    """A send the APIs never answered is in no API's records: drained names it though every queue is empty."""
    run = tx_jobs_run(delivered=2, dead=0, bounced=0)
    run.history += [{"index": 0, "time": 5 * S, "type": "invoke", "process": 90, "f": "send", "value": 7},
                    {"index": 0, "time": 6 * S, "type": "invoke", "process": 91, "f": "drain", "value": None},
                    {"index": 0, "time": 7 * S, "type": "ok", "process": 91, "f": "drain", "value": {}}]
    res = drained(analyse(run), run)
    assert res.valid is False and res.details["submissions_not_accepted"] == 1
    assert "1 submissions were never accepted (the first: send invoked at 5.000 s, never answered)" in res.message
    run.history[-3:-2] = []  # without the unanswered send the same run drained
    run._email_analysis = None
    assert drained(analyse(run), run).valid is True
