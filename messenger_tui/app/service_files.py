"""The files part of :class:`~messenger_tui.app.service.MessengerService`: files, images and
voice messages to a contact, and the transfers (:mod:`.transfers`).

A part of the service class (a base of ``MessengerService``): its methods forward to the
parts the composition root (:mod:`.service`) wires; the state they use is declared in
:class:`~messenger_tui.app.service_state.ServiceState`.
"""

from __future__ import annotations

from pathlib import Path

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput
from messenger_tui.app.images import CellRow
from messenger_tui.app.models import ContactId, TransferView
from messenger_tui.app.service_state import ServiceState
from messenger_tui.app.transfer_files import open_with_desktop
from messenger_tui.app.transfers import TransferManager


class FileMethods(ServiceState):
    """Files and voice messages to a contact, and the transfers."""

    @property
    def transfer_manager(self) -> TransferManager:
        return self._transfers

    async def send_file(self, contact_id: ContactId, path: str | Path) -> TransferView:
        """Send a file to the contact: sealed, uploaded on its own connection (resuming by
        itself), then its pointer through the outbox. Watch :class:`TransferChanged`.
        An image is re-encoded without its metadata (EXIF location) and gets a thumbnail;
        :class:`BadInput` for an unreadable file or a decompression bomb. (A group's files:
        :attr:`group_files`.)"""
        return await self._transfers.send_any(self._known(contact_id), Path(path))

    async def image_preview(
        self, message_row: int, cols: int, rows: int
    ) -> tuple[list[CellRow], bool] | None:
        """An image message's half-block preview: (cell rows, drawn from the full image)."""
        return await self._transfers.image_preview(message_row, cols, rows)

    async def image_picture(
        self, message_row: int, width_px: int, height_px: int
    ) -> tuple[bytes, bool] | None:
        """An image message's picture for kitty / sixel: (PNG, from the full image)."""
        return await self._transfers.image_picture(message_row, width_px, height_px)

    async def send_voice(
        self, contact_id: ContactId, path: str | Path, duration_ms: int, waveform: tuple[int, ...]
    ) -> TransferView:
        """Send an Ogg Opus file (media/voice_note.py) as a voice message to the contact
        (a group's: :attr:`group_files`)."""
        return self._transfers.send_file(
            self._known(contact_id),
            Path(path),
            mime_type="audio/ogg",
            voice=(duration_ms, waveform),
        )

    def transfers(self) -> list[TransferView]:
        return self._transfers.all()

    def transfer(self, transfer_id: int) -> TransferView | None:
        return self._transfers.view(transfer_id)

    def transfer_for_message(self, message_row: int) -> TransferView | None:
        return self._transfers.for_message(message_row)

    def download_file(self, transfer_id: int) -> TransferView:
        """Download a received file now (one over the auto-download limit, or failed)."""
        return self._transfers.download(transfer_id)

    def cancel_transfer(self, transfer_id: int) -> TransferView:
        return self._transfers.cancel(transfer_id)

    def open_file(self, transfer_id: int) -> None:
        """Open a saved download with the desktop's program (``xdg-open``), on request
        only. :class:`BadInput` when it is not saved or there is no such program."""
        view = self._transfers.view(transfer_id)
        if view is None or view.status != "done" or not view.path:
            raise BadInput("that file is not downloaded yet")
        open_with_desktop(Path(view.path))

    def retry_transfer(self, transfer_id: int) -> TransferView:
        return self._transfers.retry(transfer_id)

    async def wait_transfer(self, transfer_id: int, timeout: float) -> TransferView:
        """Wait until the transfer is done, failed or cancelled (:class:`TimedOut`)."""
        return await self._transfers.wait(transfer_id, timeout)

    def set_download_dir(self, folder: str | Path | None) -> None:
        """Save received files in ``folder`` for this run (not stored; the setting
        ``download_dir`` is the lasting choice). None: back to the setting."""
        self._transfers.download_dir_override = None if folder is None else Path(folder)

    def _emit_inbound(self, event: ev.Event) -> None:
        self._emit(event)
        if isinstance(event, ev.MessageReceived | ev.GroupMessageReceived) and (
            event.message.kind in ("attachment", "voice")
        ):
            self._transfers.pump()
