"""Toasts for groups that are not on screen (the main screen calls these for each batch of
events): a new group message, a group call that starts ringing."""

from __future__ import annotations

from textual.app import App

from messenger_tui.app import events as ev
from messenger_tui.app.models import Settings
from messenger_tui.ui.formatting import clean_text, preview


def _showing(app: App[object]) -> int | None:
    """The group on screen (a group conversation's row), if any."""
    row = getattr(app.screen, "group_row", None)
    return row if isinstance(row, int) else None


def announce_group(app: App[object], settings: Settings, batch: list[ev.Event]) -> None:
    """A toast per new group message (at most three), unless toasts are off or that group is
    on screen. Title: "#group · sender"."""
    if not settings.toasts:
        return
    showing = _showing(app)
    new = [
        e
        for e in batch
        if isinstance(e, ev.GroupMessageReceived)
        and e.message.kind in ("text", "attachment", "voice")
        and e.group.id != showing
        and (e.mentioned or not e.group.muted)  # a muted group still tells of a mention
    ]
    for e in new[-3:]:
        text = preview(clean_text(e.message.text), 200)
        title = f"#{e.group.name} · {e.message.sender_name}"
        if e.mentioned:
            title += " mentioned you"
        app.notify(text, title=title, timeout=4, markup=False)
    if len(new) > 3:
        app.notify(f"and {len(new) - 3} more group messages", timeout=4)


def announce_group_call(app: App[object], settings: Settings, batch: list[ev.Event]) -> None:
    """A toast (and the bell, when it is on) when a group's call starts ringing, unless that
    group is on screen (its call pane shows it)."""
    showing = _showing(app)
    for e in batch:
        if (
            isinstance(e, ev.GroupCallChanged)
            and e.call.state == "ringing"
            and e.call.group_row != showing
        ):
            app.notify(
                f"A call rings in #{e.call.group_name}: open the group and press F5 to join",
                title="Group call",
                timeout=8,
                markup=False,
            )
            if settings.bell:
                app.bell()
