"""The email checkers on small hand-built runs: what counts as lost, queued or duplicated."""

from __future__ import annotations

import dataclasses

from scenarios.email.analysis import analyse
from scenarios.email.checks import no_duplicates, nothing_lost
from scenarios.email.ingest import JobRecord
from scenarios.email.messages import BULK, DeadLetter, QueueMessage
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
