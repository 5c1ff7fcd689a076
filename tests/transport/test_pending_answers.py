"""What one relay connection waits to hear back, matched without a socket."""

from __future__ import annotations

import pytest

from messenger_tui.core import wire
from messenger_tui.transport.errors import NotConnected, RelayRequestError
from messenger_tui.transport.pending_answers import PendingAnswers


async def test_envelopes_and_requests_are_matched_to_their_answers() -> None:
    pending = PendingAnswers()
    first, new = pending.envelope(b"a" * 16)
    again, new_again = pending.envelope(b"a" * 16)
    assert new and not new_again and again is first  # an id in flight is not sent twice
    request = pending.request(7)
    with pytest.raises(ValueError, match="ref 7 is already in flight"):
        pending.request(7)
    assert pending.answer(wire.Stored(id=b"a" * 16, to=b"t" * 32))
    assert not pending.answer(wire.Stored(id=b"b" * 16, to=b"t" * 32))  # nobody waits for it
    assert first.result() == wire.Stored(id=b"a" * 16, to=b"t" * 32)
    ok = wire.Ok(ref=7, prekeys_remaining=3)
    assert pending.answer(ok) and request.result() is ok
    assert pending.stored == {} and pending.requests == {}


async def test_errors_fail_the_waiter_they_name_and_a_drop_fails_the_rest() -> None:
    pending = PendingAnswers()
    envelope, _ = pending.envelope(b"c" * 16)
    request = pending.request(3)
    other = pending.request(4)
    refused = wire.Error(ref=b"c" * 16, code="too_large", message="no")
    assert pending.refuse(refused)
    assert not pending.refuse(wire.Error(ref=0, code="rate_limited", message="slow down"))
    with pytest.raises(RelayRequestError):
        envelope.result()
    pending.forget(4, other)
    other.cancel()
    pending.fail_all("gone")
    with pytest.raises(NotConnected, match="gone"):
        request.result()
    assert pending.requests == {}


async def test_multi_recipient_sends_wait_by_id_fail_by_ref_and_on_a_drop() -> None:
    pending = PendingAnswers()
    first, new = pending.multi(b"m" * 16)
    again, new_again = pending.multi(b"m" * 16)
    assert new and not new_again and again is first
    answer = wire.StoredMulti(id=b"m" * 16, results=[])
    assert pending.answer(answer) and first.result() is answer
    refused, _ = pending.multi(b"r" * 16)
    assert pending.refuse(wire.Error(ref=b"r" * 16, code="too_large", message="no"))
    with pytest.raises(RelayRequestError):
        refused.result()
    dropped, _ = pending.multi(b"d" * 16)
    pending.fail_all("gone")
    with pytest.raises(NotConnected, match="gone"):
        dropped.result()
    assert pending.stored_multi == {}
