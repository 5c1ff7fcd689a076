"""The group view's file lines (ui/screens/group_file_actions.py) and the 1:1 transfer bar
leaving group transfers out, on fixed data."""

from __future__ import annotations

from textual.app import App

from messenger_tui.app.group_models import GroupMessage
from messenger_tui.app.models import TransferView
from messenger_tui.ui.screens.group_file_actions import file_note
from messenger_tui.ui.screens.group_message_text import message_line
from messenger_tui.ui.widgets.transfer_bar import TransferBar
from tests.ui.snapshot_facade import SnapshotFacade


def group_message(row: int, kind: str, text: str) -> GroupMessage:
    return GroupMessage(
        id=row, group_row=1, message_id=bytes(16), sender=b"b" * 32, sender_name="bob",
        outgoing=False, kind=kind, text=text, sent_at_ms=0, received_at_ms=1, state="seen",
    )  # fmt: skip


def transfer(row: int, status: str, **kw: object) -> TransferView:
    fields: dict[str, object] = dict(
        id=row, contact_id=None, group_row=1, direction="down", status=status,
        name="plan.pdf", mime_type="application/pdf", size=3 * 1048576, done=1048576,
        total=3 * 1048576 + 64, message_row=row,
    )  # fmt: skip
    fields.update(kw)
    return TransferView(**fields)  # type: ignore[arg-type]


def line(facade: SnapshotFacade, m: GroupMessage) -> str:
    note = file_note(facade, m)
    base = message_line(m)
    return (base if note is None else base + note).plain


def test_file_lines_keep_the_sender_and_show_progress_size_or_voice() -> None:
    facade = SnapshotFacade()
    facade.transfer_list = [
        transfer(1, "downloading", rate_bps=2 * 1048576.0, eta_s=1.0),
        transfer(2, "done", path="/tmp/plan.pdf"),
        transfer(3, "done", name="v.ogg", duration_ms=12_000, waveform=(0, 3, 7), size=36_000),
    ]
    moving = line(facade, group_message(1, "attachment", "[file] plan.pdf"))
    assert "bob: [file] plan.pdf" in moving
    assert "⇩ plan.pdf" in moving and "33 %" in moving and "2.0 MiB/s" in moving
    saved = line(facade, group_message(2, "attachment", "[file] plan.pdf"))
    assert saved.endswith("bob: [file] plan.pdf  (3.0 MiB, saved)")
    voice = line(facade, group_message(3, "voice", "[voice 0:12]"))
    assert "bob: [voice 0:12]" in voice and "▶ 0:00/0:12" in voice
    assert line(facade, group_message(4, "text", "hi")).endswith("bob: hi")


async def test_the_one_to_one_transfer_bar_leaves_group_transfers_out() -> None:
    app: App[None] = App()
    async with app.run_test():
        bar = TransferBar()
        await app.screen.mount(bar)
        one_to_one = transfer(5, "downloading", contact_id=7, group_row=None)
        bar.load([transfer(1, "downloading"), one_to_one])
        bar.show_contact(None)
        assert bar.shown_transfers() == [] and not bar.display
        bar.show_contact(7)
        assert bar.shown_transfers() == [one_to_one]
