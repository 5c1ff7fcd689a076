"""Message search: in the open conversation or in all of them (SQLite FTS5 through the
service). Results come as you type, newest first: the contact, the time, and a snippet with
the matched words highlighted. Choosing one dismisses with it; the main screen then opens the
conversation at that message.

Whatever is typed is searched for literally (FTS5 operators and quotes are plain text); every
word must occur and the last one may be the start of a word.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade, SearchHit
from messenger_tui.app.group_models import GroupSearchHit
from messenger_tui.app.models import Contact, ContactId
from messenger_tui.ui.bindings import focus_bindings
from messenger_tui.ui.formatting import clean_text, local_dt

#: Results listed at most (the newest ones).
MAX_RESULTS = 200
HIT_STYLE = "bold reverse"


def hit_prompt(hit: SearchHit | GroupSearchHit) -> Text:
    """Two lines: who (the contact, or ``# group``) and when; the snippet with the matched
    words highlighted (in a group, after its author's name)."""
    m = hit.message
    when = local_dt(m.sent_at_ms).strftime("%Y-%m-%d %H:%M")
    where = hit.contact.name if isinstance(hit, SearchHit) else f"# {hit.group.name}"
    head = Text.assemble((where, "bold"), "  ", (when, "dim"))
    # Newlines become spaces: the same length, so the highlight spans stay valid.
    body = Text(clean_text(hit.snippet).replace("\n", " ").replace("\t", " "))
    if len(body.plain) == len(hit.snippet):
        for start, end in hit.highlights:
            body.stylize(HIT_STYLE, start, end)
    if isinstance(hit, GroupSearchHit) and not m.outgoing:
        author = f"{clean_text(hit.message.sender_name)}: "
    else:
        author = "you: " if m.outgoing else ""
    line = Text(author, style="dim") + body
    line.no_wrap = True
    line.overflow = "ellipsis"
    head.no_wrap = True
    head.overflow = "ellipsis"
    return Text("\n").join([head, line])


class SearchScreen(ModalScreen[SearchHit | GroupSearchHit | None], inherit_bindings=False):
    """Dismisses with the chosen result, or None."""

    BINDINGS = [
        *focus_bindings(),
        Binding("ctrl+t", "toggle_scope", "All / this chat", id="search.scope",
                tooltip="Search all conversations, or only the open one"),
        Binding("down", "results", "Results", show=False, id="search.results",
                tooltip="Move from the search field to the results"),
        Binding("escape", "close", "Close", id="search.close",
                tooltip="Close the search without opening a result"),
    ]  # fmt: skip

    def __init__(
        self, service: MessengerFacade, contact: Contact | None = None, query: str = ""
    ) -> None:
        """``contact``: search in this conversation at first (None: in all of them)."""
        super().__init__(classes="dialog-screen")
        self.service = service
        self.contact = contact
        self.everywhere = contact is None
        self.hits: list[SearchHit | GroupSearchHit] = []
        self._initial = query

    def compose(self) -> ComposeResult:
        with Vertical(id="search", classes="dialog compact-dialog"):
            yield Static("Search messages", classes="dialog-title")
            yield Input(
                value=self._initial, placeholder="Words to find…", id="search-input",
                compact=True,
            )  # fmt: skip
            yield Static(id="search-scope")
            yield OptionList(id="search-results", compact=True)
            yield Static(id="search-status")

    def on_mount(self) -> None:
        self.query_one("#search-input", Input).focus()
        self._run()

    @property
    def query_text(self) -> str:
        return self.query_one("#search-input", Input).value

    @property
    def status_text(self) -> str:
        return str(self.query_one("#search-status", Static).render())

    def _show_scope(self) -> None:
        scope = self.query_one("#search-scope", Static)
        if self.contact is None:
            scope.update(Text("In all conversations", style="dim"))
        elif self.everywhere:
            scope.update(Text(f"In all conversations  (Ctrl+T: only {self.contact.name})",
                              style="dim"))  # fmt: skip
        else:
            scope.update(Text(f"In {self.contact.name}  (Ctrl+T: all conversations)",
                              style="dim"))  # fmt: skip

    def _run(self) -> None:
        self._show_scope()
        text = self.query_text
        results = self.query_one("#search-results", OptionList)
        status = self.query_one("#search-status", Static)
        contact_id = None if self.everywhere or self.contact is None else self.contact.id
        if not text.strip():
            self.hits = []
        else:
            try:
                self.hits = self._search(text, contact_id)
            except AppError as exc:  # e.g. the contact was deleted meanwhile
                self.hits = []
                status.update(Text(str(exc), style="red"))
                results.clear_options()
                return
        results.clear_options()
        results.add_options(
            Option(hit_prompt(hit), id=f"hit-{i}") for i, hit in enumerate(self.hits)
        )
        if self.hits:
            results.highlighted = 0
        results.display = bool(self.hits)
        if not text.strip():
            status.update(Text("Type words to find; Enter opens the newest match.", style="dim"))
        elif not self.hits:
            status.update(Text(f"No messages match “{text.strip()}”.", style="italic"))
        else:
            more = "+" if len(self.hits) >= MAX_RESULTS else ""
            n = len(self.hits)
            status.update(Text(
                f"{n}{more} {'message' if n == 1 else 'messages'} · ↑ ↓ Enter to open",
                style="dim",
            ))  # fmt: skip

    def _search(self, text: str, contact_id: ContactId | None) -> list[SearchHit | GroupSearchHit]:
        """The open conversation's hits, or every conversation's: contacts' and groups'
        merged newest first (one row-id order for both)."""
        hits: list[SearchHit | GroupSearchHit] = list(
            self.service.search(text, contact_id=contact_id, limit=MAX_RESULTS)
        )
        if contact_id is None:
            hits += self.service.groups.search_hits(text, limit=MAX_RESULTS)
            hits.sort(key=lambda h: h.message.id, reverse=True)
        return hits[:MAX_RESULTS]

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._run()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        results = self.query_one("#search-results", OptionList)
        index = results.highlighted
        if self.hits:
            self.dismiss(self.hits[index if index is not None else 0])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if 0 <= event.option_index < len(self.hits):
            self.dismiss(self.hits[event.option_index])

    def action_toggle_scope(self) -> None:
        if self.contact is None:
            self.app.notify("No conversation is open: searching all of them.")
            return
        self.everywhere = not self.everywhere
        self._run()

    def action_results(self) -> None:
        if self.hits:
            self.query_one("#search-results", OptionList).focus()

    def action_close(self) -> None:
        self.dismiss(None)
