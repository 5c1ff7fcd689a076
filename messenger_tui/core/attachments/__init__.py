"""Attachments, sans-I/O: chunked encryption with a resumable state, size padding, the
pointer the end-to-end message carries, and safe file names (docs/protocol.md
"Attachments: chunk format and pointer")."""

from messenger_tui.core.attachments.layout import DEFAULT_CHUNK_SIZE, BlobLayout
from messenger_tui.core.attachments.names import pick_free_name, sanitize_filename
from messenger_tui.core.attachments.padding import MAX_ATTACHMENT_SIZE, padded_size
from messenger_tui.core.attachments.pointer import (
    AttachmentPointer,
    decode_pointer,
    encode_pointer,
)
from messenger_tui.core.attachments.stream import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    decrypt_pieces,
    encrypt_pieces,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_ATTACHMENT_SIZE",
    "AttachmentDecryptor",
    "AttachmentEncryptor",
    "AttachmentPointer",
    "BlobLayout",
    "decode_pointer",
    "decrypt_pieces",
    "encode_pointer",
    "encrypt_pieces",
    "padded_size",
    "pick_free_name",
    "sanitize_filename",
]
