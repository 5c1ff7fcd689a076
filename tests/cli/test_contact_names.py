"""A NAME argument is resolved to one contact once (cli/contact_names.py): the exact name or
the address; a name that matches none is never guessed, and a look-alike is named in the
error with its address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger_tui.app.errors import BadInput
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.contact_names import contact_named, contact_or_group, look_alike_key
from messenger_tui.core.address import encode_address
from tests.helpers.cli import User
from tests.helpers.clients import make_service

#: Nothing listens here: the service stays offline (no command here needs the relay).
OFFLINE = "ws://127.0.0.1:9"
#: "anna" with a Cyrillic small a first: a second contact whose name reads the same.
CYRILLIC_ANNA = "\u0430nna"


def _address(seed: int) -> str:
    return encode_address(bytes([seed]) * 32)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[MessengerService]:
    svc = make_service(tmp_path, "me", OFFLINE)
    svc.add_contact(_address(1), "anna")
    svc.add_contact(_address(2), CYRILLIC_ANNA)
    svc.add_contact(_address(3), "Bob")
    try:
        yield svc
    finally:
        svc.profile.close()


def test_the_exact_name_or_the_address_names_one_contact(service: MessengerService) -> None:
    anna = service.contact("anna")
    other = service.contact(CYRILLIC_ANNA)
    assert anna.id != other.id
    assert contact_named(service, "anna").id == anna.id
    assert contact_named(service, "  anna ").id == anna.id  # spaces as the store keeps names
    assert contact_named(service, "ANNA").id == anna.id  # names are unique ignoring case
    assert contact_named(service, CYRILLIC_ANNA).id == other.id
    assert contact_named(service, _address(2)).id == other.id
    assert contact_named(service, _address(1).upper()).id == anna.id


def test_a_look_alike_is_never_picked_and_the_error_names_the_candidates(
    service: MessengerService,
) -> None:
    with pytest.raises(BadInput) as ambiguous:
        contact_named(service, "\u00e1nna")  # "ánna": looks like both annas
    text = str(ambiguous.value)
    assert "ambiguous" in text
    assert _address(1) in text and _address(2) in text
    with pytest.raises(BadInput) as one:
        contact_named(service, "B\u00f6b")  # "Böb"
    assert "did you mean 'Bob'" in str(one.value) and _address(3) in str(one.value)
    with pytest.raises(BadInput) as unknown:
        contact_named(service, "zed")
    assert "no contact named 'zed'" in str(unknown.value) and "known:" in str(unknown.value)
    with pytest.raises(BadInput):
        contact_or_group(service, "zed")  # neither a contact nor a group
    assert look_alike_key("B\u043e-b") == look_alike_key("bob") == "bob"


def test_send_to_an_ambiguous_name_fails_before_queueing_anything(tmp_path: Path) -> None:
    me = User(tmp_path, "me")
    me.init(OFFLINE)
    me.run("contacts", "add", _address(1), "--name", "anna")
    me.run("contacts", "add", _address(2), "--name", CYRILLIC_ANNA)
    res = me.run("send", "\u00e1nna", "hello", check=False)
    assert res.code == 4 and "ambiguous" in res.err and _address(2) in res.err
    res = me.run("send", "nobody", "hello", check=False)
    assert res.code == 4 and "no contact named 'nobody'" in res.err
    assert "hello" not in me.run("history", "anna").out
    assert "hello" not in me.run("history", CYRILLIC_ANNA).out
    # A rename keeps the conversation: the name resolves to the same contact.
    me.run("contacts", "rename", "anna", "anne")
    res = me.run("send", "anne", "to anne", check=False)
    assert res.code == 0, res.err
    assert "to anne" in me.run("history", _address(1)).out
