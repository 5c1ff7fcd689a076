"""Pure text helpers for the UI: times, previews, delivery-state marks, connection status."""

from __future__ import annotations

from datetime import date, datetime, timedelta

#: Marks after an own message, by delivery state (queued, sent, delivered, read).
STATE_MARKS = {
    "queued": "◷",
    "sent": "✓",
    "delivered": "✓✓",
    "read": "✔✔",  # heavy checks (and the accent colour): told apart without colour too
    "error": "✗",
}
STATE_WORDS = {
    "queued": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "error": "failed",
}


def wall_clock() -> datetime:
    """The local wall-clock time: the one place the UI reads "now" (for "Today", "Yesterday"
    and list times). Tests replace this module attribute to freeze it (snapshot tests)."""
    return datetime.now()


def local_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000)


def clock(ms: int) -> str:
    """``14:02``"""
    return local_dt(ms).strftime("%H:%M")


def day_label(day: date, today: date | None = None) -> str:
    """``Today``, ``Yesterday``, ``Monday 3 March 2025``."""
    today = today or wall_clock().date()
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return f"{day.strftime('%A')} {day.day} {day.strftime('%B %Y')}"


def list_time(ms: int, now: datetime | None = None) -> str:
    """Time of a conversation's last message: ``14:02`` today, ``Mon`` this week,
    ``03-05`` this year, ``2024-03-05`` before."""
    now = now or wall_clock()
    when = local_dt(ms)
    if when.date() == now.date():
        return when.strftime("%H:%M")
    if now.date() - when.date() < timedelta(days=7) and when <= now:
        return when.strftime("%a")
    if when.year == now.year:
        return when.strftime("%m-%d")
    return when.strftime("%Y-%m-%d")


def preview(text: str, width: int) -> str:
    """One line of a message: whitespace collapsed, cut with an ellipsis."""
    flat = " ".join(text.split())
    if width <= 0:
        return ""
    if len(flat) <= width:
        return flat
    return flat[: max(0, width - 1)] + "…"


def short_address(address: str, keep: int = 12) -> str:
    return address if len(address) <= keep + 1 else address[:keep] + "…"


def connection_text(state: str, retry_in: float | None) -> str:
    """``connected``, ``connecting…``, ``reconnecting in 3 s``, ``offline``."""
    if state == "connected":
        return "connected"
    if state == "connecting":
        return "connecting…"
    if state == "reconnecting":
        if retry_in is not None and retry_in >= 0.5:
            return f"reconnecting in {round(retry_in)} s"
        return "reconnecting…"
    return "offline"


def group_digits(digits: str, size: int = 5) -> list[str]:
    return [digits[i : i + size] for i in range(0, len(digits), size)]


def clean_text(text: str) -> str:
    """No control characters reach the terminal (tabs become spaces, newlines stay)."""
    text = text.expandtabs(4)
    if all(ch.isprintable() or ch == "\n" for ch in text):
        return text
    return "".join(ch if ch.isprintable() or ch == "\n" else "\ufffd" for ch in text)
