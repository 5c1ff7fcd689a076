"""The conversation view's loaded window, without Textual: paging, bounds, what is dropped."""

from __future__ import annotations

from messenger_tui.app.models import ContactId, Message
from messenger_tui.core.message_states import MessageState
from messenger_tui.ui.widgets.history_window import MAX_LOADED, NEWEST, PAGE_SIZE, HistoryWindow


def msg(row: int, state: MessageState = "sent") -> Message:
    return Message(
        id=row,
        message_id=row.to_bytes(16, "big"),
        contact_id=ContactId(1),
        outgoing=True,
        kind="text",
        text=f"m{row}",
        sent_at_ms=1_700_000_000_000 + row,
        received_at_ms=None,
        state=state,
    )


class Store:
    """Rows 1..n of one conversation, paged as the facade pages them."""

    def __init__(self, n: int) -> None:
        self.rows = [msg(i) for i in range(1, n + 1)]

    def before(self, before_id: int, limit: int) -> list[Message]:
        older = [m for m in self.rows if m.id < before_id]
        return older[-limit:]

    def after(self, after_id: int, limit: int) -> list[Message]:
        return [m for m in self.rows if m.id > after_id][:limit]


def test_open_newest_pages_back_to_the_first_message() -> None:
    store = Store(250)
    window = HistoryWindow()
    window.open_newest(store.before(NEWEST, PAGE_SIZE), store.before, None, page_size=PAGE_SIZE)
    assert [m.id for m in window.messages] == list(range(151, 251))
    assert (window.has_more, window.has_newer) == (True, False)
    loaded = window.older()
    assert loaded is not None and loaded[0][0].id == 51 and loaded[1] == []
    loaded = window.older()
    assert loaded is not None and len(loaded[0]) == 50
    assert window.has_more is False  # a short page: the first message is loaded
    assert window.older() is None
    assert [m.id for m in window.messages] == list(range(1, 251))


def test_following_keeps_at_most_max_loaded_and_says_which_rows_went() -> None:
    window = HistoryWindow()
    window.open_newest([], lambda before, limit: [], None, page_size=PAGE_SIZE)
    window.extend([msg(i) for i in range(1, MAX_LOADED + 1)])
    assert window.trim_followed() is None
    window.extend([msg(MAX_LOADED + 1)])
    dropped = window.trim_followed()
    assert dropped == list(range(1, MAX_LOADED // 2 + 2))
    assert len(window.messages) == MAX_LOADED // 2
    assert window.has_more  # they load again as pages
    assert dropped[0] not in window and window.get(MAX_LOADED + 1) is not None


def test_a_window_around_a_message_drops_the_far_end_when_paging() -> None:
    store = Store(MAX_LOADED + 3 * PAGE_SIZE)
    window = HistoryWindow()
    target = PAGE_SIZE + 1
    window.open_around(store.rows[:PAGE_SIZE * 2], store.before, store.after)  # fmt: skip
    assert (window.has_newer, window.has_more) == (True, False)
    assert target in window
    pages = 0
    while window.newer() is not None:
        pages += 1
        assert len(window.messages) <= MAX_LOADED
    assert pages == (MAX_LOADED + PAGE_SIZE) // PAGE_SIZE
    assert (window.has_newer, window.has_more) == (False, True)  # the oldest rows went
    assert window.messages[-1].id == store.rows[-1].id
    assert window.back_to_newest() is False  # it reaches the newest now


def test_states_and_fresh_rows() -> None:
    window = HistoryWindow()
    window.open_newest([msg(1), msg(2)], None, None, page_size=PAGE_SIZE)
    assert not window.has_more  # no loader: nothing older can load
    assert window.set_state(2, "read") and not window.set_state(2, "read")
    assert not window.set_state(9, "read")
    assert [m.id for m in window.fresh([msg(4), msg(2), msg(3)])] == [3, 4]
    window.merge([msg(0)])
    assert [m.id for m in window.messages] == [0, 1, 2]
    second = window.get(2)
    assert second is not None and second.state == "read"
