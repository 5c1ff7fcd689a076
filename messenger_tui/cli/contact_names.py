"""A command's NAME argument to a contact, once: the service is keyed by contact id.

:func:`contact_named` takes what a user types: the contact's name (compared as the store
compares names: case-insensitively, runs of spaces as one) or its address. A name that matches
no contact exactly is never guessed: when it looks like one or more contacts' names (the same
letters once accents, case, punctuation and look-alike letters such as Cyrillic ``\u0430``
for Latin ``a`` are set aside) the error names them with their addresses, so that a message never
goes to a look-alike.
"""

from __future__ import annotations

import unicodedata

from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import Contact
from messenger_tui.app.service import MessengerService
from messenger_tui.core.address import decode_address
from messenger_tui.core.errors import AddressError

#: Letters of other scripts drawn like Latin ones (the common cases; the rest of Unicode's
#: confusables is left to the exact-name rule, which never guesses anyway).
_LOOK_ALIKES = str.maketrans(
    {
        **dict.fromkeys("\u0430\u03b1", "a"),
        **dict.fromkeys("\u0432", "b"),
        **dict.fromkeys("\u0441", "c"),
        **dict.fromkeys("\u0501", "d"),
        **dict.fromkeys("\u0435\u0451", "e"),
        **dict.fromkeys("\u043d", "h"),
        **dict.fromkeys("\u0456\u0457\u03b9\u0131", "i"),
        **dict.fromkeys("\u0458", "j"),
        **dict.fromkeys("\u043a\u03ba", "k"),
        **dict.fromkeys("\u043c", "m"),
        **dict.fromkeys("\u043e\u03bf", "o"),
        **dict.fromkeys("\u0440\u03c1", "p"),
        **dict.fromkeys("\u051b", "q"),
        **dict.fromkeys("\u0455", "s"),
        **dict.fromkeys("\u0442\u03c4", "t"),
        **dict.fromkeys("\u03c5", "u"),
        **dict.fromkeys("\u03bd", "v"),
        **dict.fromkeys("\u051d", "w"),
        **dict.fromkeys("\u0445\u03c7", "x"),
        **dict.fromkeys("\u0443", "y"),
        "0": "o",
        "1": "l",
    }
)


def look_alike_key(name: str) -> str:
    """What two names that look alike have in common (for the error only, never to pick)."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in bare.translate(_LOOK_ALIKES) if ch.isalnum())


def contact_named(service: MessengerService, name: str) -> Contact:
    """The contact ``name`` means (its name or its address); :class:`BadInput` for a name
    that matches none, saying which contacts it looks like, if any."""
    typed = " ".join(name.split())
    try:
        return service.contact(typed)
    except BadInput as unknown:
        by_address = _by_address(service, typed)
        if by_address is not None:
            return by_address
        key = look_alike_key(typed)
        alike = [c for c in service.contacts() if key and look_alike_key(c.name) == key]
        if len(alike) == 1:
            raise BadInput(
                f"no contact named {typed!r}; did you mean {alike[0].name!r} "
                f"({alike[0].address})? Give the exact name or the address"
            ) from None
        if alike:
            which = ", ".join(f"{c.name!r} ({c.address})" for c in alike)
            raise BadInput(
                f"no contact named {typed!r}, and it is ambiguous: it looks like {which}; "
                "give the exact name or the address"
            ) from None
        raise unknown from None


def contact_or_group(service: MessengerService, name: str) -> Contact | None:
    """The contact ``name`` means, or None when it names a group and no contact (``send``,
    ``history``, ``send-file`` and ``send-voice`` take either; a contact's name wins)."""
    try:
        return contact_named(service, name)
    except BadInput:
        try:
            service.groups.group(name)
        except BadInput:
            pass
        else:
            return None
        raise


def _by_address(service: MessengerService, text: str) -> Contact | None:
    try:
        identity = decode_address(text)
    except AddressError:
        return None
    return next((c for c in service.contacts() if c.identity == identity), None)
