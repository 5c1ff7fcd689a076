"""The main screen's event fold (ui/screens/main_fold.py), without an app: each rule of the
module's docstring, one test per rule."""

from __future__ import annotations

import dataclasses

from messenger_tui.app import events as ev
from messenger_tui.app.models import CallView, Contact, ContactId, Message
from messenger_tui.ui.screens.main_fold import FoldState, ScreenUpdate, fold


def contact(cid: int, name: str) -> Contact:
    return Contact(
        ContactId(cid), name, bytes([cid]) * 32, verified=False, key_changed=False, blocked=False,
        auto_added=False,
    )  # fmt: skip


def message(row: int, cid: int, kind: str = "text") -> Message:
    return Message(
        row, bytes(16), ContactId(cid), False, kind, f"m{row}", 1000 * row, None, "received"
    )


BOB, CAROL = contact(1, "Bob"), contact(2, "Carol")
OPEN_BOB = FoldState(BOB, reading_allowed=True)


def received(c: Contact, row: int) -> ev.MessageReceived:
    return ev.MessageReceived(c, message(row, c.id))


def test_an_empty_batch_changes_nothing() -> None:
    assert fold([], OPEN_BOB) == ScreenUpdate()


def test_messages_for_the_open_conversation_go_to_the_view_others_are_announced() -> None:
    u = fold([received(BOB, 1), received(CAROL, 2), received(BOB, 3)], OPEN_BOB)
    assert [m.id for m in u.new_for_view] == [1, 3]
    assert [(c.name, m.id) for c, m in u.announce] == [("Carol", 2)]
    assert u.touched == {1, 2}
    assert u.typing == {1: False, 2: False}  # a message ends its sender's typing notice
    assert not u.reload_view and not u.header


def test_while_reading_is_not_allowed_the_open_conversation_is_announced_too() -> None:
    u = fold([received(BOB, 1)], FoldState(BOB, reading_allowed=False))
    assert [m.id for m in u.new_for_view] == [1]
    assert [m.id for _, m in u.announce] == [1]


def test_nothing_open_every_message_is_announced() -> None:
    u = fold([received(BOB, 1)], FoldState(None, reading_allowed=False))
    assert u.new_for_view == [] and [m.id for _, m in u.announce] == [1]


def test_an_older_window_announces_instead_of_appending() -> None:
    older = FoldState(BOB, reading_allowed=True, view_has_newer=True)
    u = fold([received(BOB, 1), received(BOB, 2)], older)
    assert u.new_for_view == []
    assert [m.id for _, m in u.announce] == [1, 2]
    # ...unless the view reloads anyway (the contact changed): then the reload shows them.
    renamed = dataclasses.replace(BOB, name="Robert")
    u = fold([received(BOB, 1), ev.ContactChanged(renamed)], older)
    assert [m.id for m in u.new_for_view] == [1] and u.announce == []
    assert u.reload_view and u.header and u.current == renamed


def test_state_changes_only_for_the_open_conversation() -> None:
    u = fold(
        [
            ev.MessageStateChanged(BOB, 7, "delivered"),
            ev.MessageStateChanged(BOB, 7, "read"),
            ev.MessageStateChanged(CAROL, 8, "read"),
        ],
        OPEN_BOB,
    )
    assert u.states == {7: "read"}
    assert u.touched == {1, 2}


def test_a_failed_message_reloads_the_open_view_only() -> None:
    u = fold([ev.MessageFailed(CAROL, b"x", "bad")], OPEN_BOB)
    assert u.touched == {2} and not u.reload_view
    u = fold([ev.MessageFailed(BOB, b"x", "bad"), ev.MessageFailed(None, b"y", "bad")], OPEN_BOB)
    assert u.touched == {1} and u.reload_view and u.header


def test_a_contact_change_rereads_every_summary() -> None:
    u = fold([ev.ContactChanged(CAROL)], OPEN_BOB)
    assert u.all_contacts and u.current is None and not u.reload_view and not u.header


def test_typing_and_presence_last_event_counts_header_only_for_the_open_one() -> None:
    u = fold(
        [
            ev.TypingChanged(CAROL, True),
            ev.TypingChanged(BOB, True),
            ev.TypingChanged(BOB, False),
            ev.PresenceChanged(CAROL, True),
            ev.PresenceChanged(CAROL, False),
        ],
        OPEN_BOB,
    )
    assert u.typing == {2: True, 1: False}
    assert u.presence == {2: False}
    assert u.header and u.touched == {1, 2}
    u = fold([ev.TypingChanged(CAROL, True), ev.PresenceChanged(CAROL, True)], OPEN_BOB)
    assert not u.header


def test_our_connection_redraws_status_header_and_list() -> None:
    down = ev.ConnectionChanged("reconnecting", retry_in=2.0)
    u = fold([ev.ConnectionChanged("connected"), down], OPEN_BOB)
    assert u.connection == down
    assert u.status and u.header and u.relist
    assert not u.touched and not u.all_contacts


def test_outbox_call_and_stats_last_one_counts() -> None:
    def call(state: str) -> CallView:
        return CallView(b"c", b"p", BOB, state, True, 0, None, None, None, False, False, "none")

    u = fold(
        [
            ev.OutboxChanged(3),
            ev.OutboxChanged(0),
            ev.CallChanged(call("outgoing_ringing")),
            ev.CallChanged(call("active")),
        ],
        OPEN_BOB,
    )
    assert u.outbox_waiting == 0 and u.status
    assert u.call is not None and u.call.state == "active"
    assert u.stats is None and not u.header
