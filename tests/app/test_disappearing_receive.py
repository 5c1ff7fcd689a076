"""What an incoming text or timer does to the conversation's timer (the real receiver and
store; no relay needed): an absent stamp is no statement (gurk#79), a higher version wins, an
out-of-bounds one is ignored."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.service import MessengerService
from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl
from tests.helpers.clients import make_service

OFFLINE_URL = "ws://127.0.0.1:9"


@pytest.fixture
async def alice(tmp_path: Path) -> AsyncIterator[MessengerService]:
    service = make_service(tmp_path, "alice", OFFLINE_URL)
    bob = make_service(tmp_path, "bob", OFFLINE_URL)
    service.add_contact(bob.address, "bob")
    bob.profile.close()
    try:
        yield service
    finally:
        await service.close()
        service.profile.close()


def _deliver(alice: MessengerService, payload: pl.Payload) -> list[ev.Event]:
    row = alice.store.contacts.by_name("bob")
    assert row is not None
    events: list[ev.Event] = []
    with alice.store.db.transaction():
        alice._receiver._apply(row, payload, alice._now_ms(), events)
    return events


def _text(text: str, timer: pl.TimerStamp | None) -> pl.Text:
    return pl.Text(id=os.urandom(16), text=text, sent_at_ms=1, timer=timer)


def _expire_after(alice: MessengerService, text: str) -> int | None:
    row = alice.store.db.execute(
        "SELECT expire_after_s FROM messages WHERE body = ?", (text,)
    ).fetchone()
    return None if row[0] is None else int(row[0])


async def test_a_text_without_a_stamp_does_not_turn_the_timer_off(
    alice: MessengerService,
) -> None:
    alice.set_disappearing_timer(alice.contact("bob").id, 300)
    events = _deliver(alice, _text("from an old client", None))
    assert alice.disappearing_timer(alice.contact("bob").id) == 300
    assert not [e for e in events if isinstance(e, ev.TimerChanged)]
    assert _expire_after(alice, "from an old client") == 300  # kept under the timer in force


async def test_stamps_and_timer_payloads_merge_by_version(alice: MessengerService) -> None:
    bob = alice.contact("bob")
    alice.set_disappearing_timer(alice.contact("bob").id, 300)  # version 1 by alice
    stale_off = pl.TimerStamp(seconds=0, version=0, author=b"")
    _deliver(alice, _text("stale", stale_off))
    assert alice.disappearing_timer(alice.contact("bob").id) == 300
    events = _deliver(alice, _text("newer", pl.TimerStamp(60, 2, bob.identity)))
    assert alice.disappearing_timer(alice.contact("bob").id) == 60
    assert [(e.seconds, e.by_me) for e in events if isinstance(e, ev.TimerChanged)] == [(60, False)]
    assert _expire_after(alice, "newer") == 60
    _deliver(alice, pl.Timer(seconds=0, version=3))  # bob turns it off
    assert alice.disappearing_timer(alice.contact("bob").id) == 0
    _deliver(alice, _text("after off", None))
    assert _expire_after(alice, "after off") is None
    # A jump far past every version seen is ignored (it would pin the timer).
    _deliver(alice, pl.Timer(seconds=30, version=3 + dm.MAX_VERSION_JUMP + 1))
    assert alice.disappearing_timer(alice.contact("bob").id) == 0
    history = [m.text for m in alice.history(alice.contact("bob").id)]
    assert "bob set disappearing messages to 1 min." in history
    assert "bob turned disappearing messages off." in history


async def test_setting_the_timer_queues_it_and_refuses_bad_durations(
    alice: MessengerService,
) -> None:
    from messenger_tui.app.errors import BadInput

    before = alice.outbox_count()
    alice.set_disappearing_timer(alice.contact("bob").id, 5)
    assert alice.outbox_count() == before + 1
    alice.set_disappearing_timer(alice.contact("bob").id, 5)  # unchanged: nothing sent
    assert alice.outbox_count() == before + 1
    with pytest.raises(BadInput, match="1 s to 28 days"):
        alice.set_disappearing_timer(alice.contact("bob").id, dm.MAX_TIMER_S + 1)
