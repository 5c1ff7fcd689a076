"""The group call pane: above a group's conversation while its call rings, is in progress or
we are in it. In the call it lists the other participants, one line each: a speaking marker
(● speaking now, ○ quiet), the name, and their health (loss while the relay forwarded them,
their jitter buffer's delay), or "not heard yet" before their key and first frame arrive.
Hidden when the group has no call."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from messenger_tui.app.group_models import GroupCallParticipant, GroupCallView

#: Participant lines shown at most (then "and N more").
MAX_LINES = 5


def participant_line(p: GroupCallParticipant) -> Text:
    line = Text("  ")
    if p.speaking:
        line.append("● ", style="bold green")
    else:
        line.append("○ ", style="dim")
    line.append(p.name, style="bold" if p.speaking else "")
    if not p.heard:
        line.append("  not heard yet", style="dim")
        return line
    line.append(f"  loss {p.loss_percent:.1f} %  buffer {p.delay_ms:.0f} ms", style="dim")
    return line


def pane_text(call: GroupCallView) -> Text | None:
    """What the pane shows for ``call`` (None: hidden)."""
    if call.state == "ringing":
        return Text.assemble(("☏ ", "bold"), ("A call rings in this group", "bold"),
                             ("  F5 join", "dim"))  # fmt: skip
    if call.state == "in_progress":
        return Text.assemble(("☏ ", "bold"), "Call in progress", ("  F5 join", "dim"))
    if call.state == "joining":
        return Text.assemble(("☏ ", "bold"), "Joining the call…", ("  F7 leave", "dim"))
    if call.state == "rejoining":
        return Text.assemble(("☏ ", "bold"), "Connection lost, rejoining the call…",
                             ("  F7 leave", "dim"))  # fmt: skip
    if call.state == "ended":
        if not call.problem:
            return None
        return Text.assemble(("☏ ", "bold"), ("Call ended: ", "bold"), call.problem)
    if call.state != "in_call":
        return None
    others = len(call.participants)
    head = Text.assemble(
        ("☏ ", "bold"),
        ("In the call", "bold"),
        f" · {others} other{'' if others == 1 else 's'}" if others else " · nobody else yet",
    )
    if call.muted:
        head.append(" · muted", style="bold yellow")
    head.append("  F6 mute  F7 leave", style="dim")
    lines = [head]
    for p in call.participants[:MAX_LINES]:
        lines.append(participant_line(p))
    if others > MAX_LINES:
        lines.append(Text(f"  and {others - MAX_LINES} more", style="dim"))
    return Text("\n").join(lines)


class GroupCallPane(Static):
    DEFAULT_CSS = """
    GroupCallPane { height: auto; padding: 0 1; background: $boost; display: none; }
    GroupCallPane.-shown { display: block; }
    """

    def show_call(self, call: GroupCallView | None) -> None:
        text = pane_text(call) if call is not None else None
        self.set_class(text is not None, "-shown")
        self.update(text if text is not None else "")
