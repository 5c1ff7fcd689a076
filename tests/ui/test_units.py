"""Small pieces: text helpers, conversation summaries of the facade, binding hygiene."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import date, datetime

from textual.binding import Binding
from textual.dom import DOMNode

import messenger_tui.ui
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.main import build_parser
from messenger_tui.ui.formatting import (
    clean_text,
    connection_text,
    day_label,
    group_digits,
    list_time,
    preview,
)
from messenger_tui.ui.screens.safety import safety_rows
from tests.helpers.interpreter import run_python

from .conftest import seed_messages


def test_text_helpers() -> None:
    today = date(2025, 3, 5)
    assert day_label(today, today) == "Today"
    assert day_label(date(2025, 3, 4), today) == "Yesterday"
    assert day_label(date(2025, 3, 3), today) == "Monday 3 March 2025"
    now = datetime(2025, 3, 5, 18, 0)
    assert list_time(int(datetime(2025, 3, 5, 9, 7).timestamp() * 1000), now) == "09:07"
    assert list_time(int(datetime(2025, 3, 3, 9, 7).timestamp() * 1000), now) == "Mon"
    assert list_time(int(datetime(2025, 1, 3, 9, 7).timestamp() * 1000), now) == "01-03"
    assert list_time(int(datetime(2023, 1, 3, 9, 7).timestamp() * 1000), now) == "2023-01-03"
    assert preview("a  b\n c", 10) == "a b c"
    assert preview("abcdefghijkl", 5) == "abcd…"
    assert connection_text("reconnecting", 4.2) == "reconnecting in 4 s"
    assert connection_text("reconnecting", None) == "reconnecting…"
    assert connection_text("connected", None) == "connected"
    assert connection_text("offline", None) == "offline"
    assert clean_text("a\x1b[31mb\nd") == "a\ufffd[31mb\nd"
    assert clean_text("ab\tc") == "ab  c"
    digits = "".join(str(i % 10) for i in range(60))
    assert group_digits(digits)[:2] == ["01234", "56789"]
    rows = safety_rows(digits)
    assert len(rows) == 3 and all(len(r.split()) == 4 for r in rows)


async def test_conversation_summaries_count_unread_after_the_last_seen(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    bob_id = alice.contact("Bob").id
    summary = alice.conversation(bob_id)
    assert summary is not None and summary.unread == 0 and summary.last_message is None
    seed_messages(alice, "Bob", ["old and seen"], outgoing=False)  # state "seen"
    contact = alice.contact("Bob")
    with alice.store.db.transaction():
        for i in range(3):
            alice.store.messages.insert(
                contact.id, bytes([i]) * 16, outgoing=False, body=f"new {i}",
                sent_at_ms=1, received_at_ms=1, state="received",
            )  # fmt: skip
    # A notice after unread messages does not hide them.
    with alice.store.db.transaction():
        alice.store.messages.insert(
            contact.id, b"n" * 16, outgoing=False, body="a notice", sent_at_ms=1,
            received_at_ms=1, state="seen", kind="notice",
        )  # fmt: skip
    summary = alice.conversation(bob_id)
    assert summary is not None and summary.unread == 3
    assert summary.last_message is not None and summary.last_message.text == "a notice"
    assert await alice.mark_read(alice.contact("Bob").id) == 3
    read = alice.conversation(bob_id)
    assert read is not None and read.unread == 0
    assert [s.contact.name for s in alice.conversations()] == ["Bob"]
    assert alice.connection_state == "offline"
    bob = alice.contact_by_id(bob_id)
    assert bob is not None and bob.name == "Bob"
    assert alice.contact_by_id(10_000) is None
    assert alice.conversation(10_000) is None


def _ui_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(messenger_tui.ui.__path__, "messenger_tui.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DOMNode) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_binding_has_an_id_and_a_tooltip() -> None:
    classes = _ui_classes()
    assert len(classes) >= 8
    ids: dict[str, tuple[str, str]] = {}
    for cls in classes:
        for binding in cls.__dict__.get("BINDINGS", []):
            assert isinstance(binding, Binding), f"{cls.__name__}: use Binding(...)"
            assert binding.id, f"{cls.__name__}: binding {binding.key!r} has no id"
            assert binding.tooltip, f"{cls.__name__}: binding {binding.id} has no tooltip"
            # One id, one meaning (shared bindings such as focus.next repeat on screens).
            meaning = (binding.key, binding.action)
            assert ids.setdefault(binding.id, meaning) == meaning, f"id {binding.id} reused"


def test_ui_command_is_registered() -> None:
    args = build_parser().parse_args(["ui", "--home", "/tmp/somewhere"])
    assert args.func.__name__ == "cmd_ui" and args.home == "/tmp/somewhere"


def test_the_cli_does_not_load_textual_for_other_commands() -> None:
    code = (
        "import sys, messenger_tui.cli.main as m; m.build_parser(); print('textual' in sys.modules)"
    )
    assert run_python(code) == "False"


def test_the_ui_loads_no_transport_or_storage() -> None:
    code = (
        "import sys, messenger_tui.ui; "
        "print(sorted(m for m in ('websockets', 'sqlite3', 'sqlcipher3', 'sounddevice', "
        "'messenger_tui.transport', 'messenger_tui.storage') if m in sys.modules))"
    )
    assert run_python(code) == "[]"
