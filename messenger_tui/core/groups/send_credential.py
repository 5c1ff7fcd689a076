"""Group send credentials: the short fan-out form of a multi-recipient send (sans-I/O).

A group message goes to every member in one ``SendMulti``. In its *long* form the frame names
each recipient by its 32-byte identity and delivery secret (about 71 bytes a recipient); in
its *short* form it carries one *send credential* and an 8-byte *reference* per recipient.

- The **send credential** of a sender key is derived by every holder of that key (the sender,
  and each member it distributed the key to) from the key's public parts::

      credential = HKDF-SHA256(ikm=signing_public, salt=group_id,
                               info=CREDENTIAL_INFO || key_id (u32 BE), 32)

  Only members hold ``signing_public`` (it travels in the distribution message, inside the
  pairwise sessions), so only members can compute it; a new sender key (rotation after a
  removal) has a new credential, which a removed member cannot compute.
- Each recipient **grants** the relay the credential's *verifier* for that sender
  (``SetGroupGrants``): ``verifier = SHA-256(VERIFIER_CONTEXT || credential)``. The relay
  stores verifiers, never credentials; a grant is (sender identity, verifier).
- A recipient's **reference** in a short send is
  ``HMAC-SHA256(credential, REF_CONTEXT || recipient)[:8]``. The relay, given the credential
  in the frame, finds the recipients that granted its verifier to this sender and computes
  their references to resolve the frame's; a reference it cannot resolve is refused
  (``not_granted``) and the sender names that recipient in the long form.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

from messenger_tui.core.crypto.primitives import hkdf_sha256

#: Bytes of a send credential, of its verifier and of a recipient reference.
CREDENTIAL_LEN: Final = 32
GRANT_VERIFIER_LEN: Final = 32
REF_LEN: Final = 8
#: Bytes of one grant on the wire: the sender's identity, then the verifier.
GRANT_LEN: Final = 32 + GRANT_VERIFIER_LEN
#: Most grants one identity may register (a user in four full groups of 256).
MAX_GRANTS: Final = 1024

CREDENTIAL_INFO: Final = b"messenger-tui/group-send-credential/v1"
VERIFIER_CONTEXT: Final = b"messenger-tui/group-send-grant/v1\x00"
REF_CONTEXT: Final = b"messenger-tui/group-send-ref/v1\x00"

_KEY_ID: Final = struct.Struct(">I")


def send_credential(group_id: bytes, key_id: int, signing_public: bytes) -> bytes:
    """The send credential of the sender key ``(group_id, key_id, signing_public)``."""
    if len(signing_public) != 32:
        raise ValueError("a signing public key is 32 bytes")
    return hkdf_sha256(
        signing_public,
        salt=group_id,
        info=CREDENTIAL_INFO + _KEY_ID.pack(key_id),
        length=CREDENTIAL_LEN,
    )


def grant_verifier(credential: bytes) -> bytes:
    """What a recipient registers (and the relay stores) for ``credential``."""
    if len(credential) != CREDENTIAL_LEN:
        raise ValueError(f"a send credential is {CREDENTIAL_LEN} bytes, got {len(credential)}")
    return hashlib.sha256(VERIFIER_CONTEXT + credential).digest()


def recipient_ref(credential: bytes, recipient: bytes) -> bytes:
    """``recipient``'s 8-byte reference in a short send under ``credential``."""
    return hmac.new(credential, REF_CONTEXT + recipient, hashlib.sha256).digest()[:REF_LEN]


def split_refs(refs: bytes) -> list[bytes]:
    """The references packed in a short send's ``refs`` (ValueError: not a multiple of 8)."""
    if len(refs) % REF_LEN:
        raise ValueError(f"references are {REF_LEN} bytes each; got {len(refs)} bytes")
    return [refs[i : i + REF_LEN] for i in range(0, len(refs), REF_LEN)]
