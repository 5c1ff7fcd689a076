"""Typed errors of the sans-I/O core. Each names the problem; callers map them to messages."""

from __future__ import annotations


class CoreError(Exception):
    """Base of every error raised by messenger_tui.core."""


class MalformedFrame(CoreError):
    """Bytes that are not a well-formed relay protocol frame."""


class AddressError(CoreError, ValueError):
    """A text that is not a valid messenger-tui address."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        #: "format" (not an address at all) or "checksum" (a typo in a real-looking address)
        self.reason = reason


class CryptoError(CoreError):
    """Base of cryptographic failures. A failed operation never changes the input state."""


class InvalidSignature(CryptoError):
    """A signature did not verify under the claimed key."""


class DecryptionFailed(CryptoError):
    """A ciphertext failed authentication: tampered, truncated, or under the wrong key."""


class DuplicateMessage(CryptoError):
    """A ratchet message whose key was already used: a replay or a redelivery."""


class TooManySkipped(CryptoError):
    """A ratchet message would skip more message keys than the bound allows."""


class MalformedEnvelope(CryptoError):
    """An end-to-end envelope or header that cannot be parsed."""


class WrongPassphrase(CryptoError):
    """The passphrase does not unlock the stored identity key."""


class IdentityMismatch(CryptoError):
    """The identity key inside a handshake differs from the sender the relay claims."""


class UnknownPrekey(CryptoError):
    """An envelope names a prekey the recipient does not hold (used, rotated or never issued)."""


class SessionMismatch(CryptoError):
    """An envelope carries handshake data of a different session than the one given."""


class CorruptSession(CryptoError):
    """Stored session bytes that do not decode to a valid session."""


class CorruptKeyFile(CryptoError):
    """A stored identity key file that is damaged or not a key file of this program."""


class NoSenderKey(CryptoError):
    """A group message under a sender key we do not hold (its distribution message has not
    arrived, or the key was evicted): hold the message and ask the sender to resend the key."""

    def __init__(self, message: str, *, group_id: bytes, key_id: int) -> None:
        super().__init__(message)
        self.group_id = group_id
        self.key_id = key_id


class NotGroupMember(CoreError):
    """A group message or membership change whose author is not a member: dropped, counted."""


class MembershipDenied(CoreError):
    """A membership change its author has no right to make (e.g. a non-admin adding someone)."""


class InvalidMembershipChange(CoreError):
    """A membership change that is malformed, for another group, or inconsistent with its base."""


class AttachmentError(CoreError):
    """Base of attachment failures (core/attachments): a pointer, a blob or a transfer state."""


class MalformedAttachmentPointer(AttachmentError, ValueError):
    """An attachment pointer with a missing, oversized or inconsistent field."""


class CorruptTransferState(AttachmentError):
    """Persisted encryptor or decryptor state that does not decode to a valid state."""


class AttachmentIntegrityError(AttachmentError, CryptoError):
    """A downloaded blob failed a check; nothing of it may be kept (write to a temporary file
    and rename it only after the decryptor's ``finish`` returns)."""


class TamperedAttachment(AttachmentIntegrityError):
    """A chunk (or the blob header) did not authenticate: changed, swapped or not this file."""


class TruncatedAttachment(AttachmentIntegrityError):
    """The blob ended before its final chunk."""


class DigestMismatch(AttachmentIntegrityError):
    """Every chunk authenticated, but the blob is not the one the pointer names (its digest
    differs): the sender encrypted the file twice, or the pointer's digest is wrong."""


class AttachmentSourceChanged(AttachmentError):
    """The file being encrypted was shorter or longer than the size announced at the start
    (it changed while being sent): start again with a fresh key."""
