"""``messenger-tui send-file`` and ``send-voice``, and the attachment part of ``receive``
(``--download-dir``, ``--download-all``; ``--json`` lines of type ``attachment``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from messenger_tui.app import events as ev
from messenger_tui.app.models import TransferView
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.contact_names import contact_or_group
from messenger_tui.cli.output import err, out, terminal_safe
from messenger_tui.cli.profile_service import close_service, open_service

#: Exit code of a transfer that failed (refused, tampered) or a download that did not pass
#: its checks.
TRANSFER_FAILED = 14
#: Seconds a transfer may take by default.
DEFAULT_TIMEOUT = 3600.0


def add_file_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``send-file`` and ``send-voice`` (called from main.build_parser)."""
    p = sub.add_parser(
        "send-file",
        parents=[common],
        help="send a file: encrypted, uploaded (resuming after a drop or a restart: run the "
        "same command again), then announced to the contact, or once to every member of a "
        "group; exits 0 once the relay stored the message",
    )
    p.add_argument("name")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="progress and the result as JSON lines")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    p.set_defaults(func=cmd_send_file)

    p = sub.add_parser(
        "send-voice",
        parents=[common],
        help="send a voice message (Ogg Opus, 24 kb/s) made from a WAV file (48 kHz mono "
        "16-bit) or a test tone of S seconds",
    )
    p.add_argument("name")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-wav", metavar="WAV", type=Path)
    source.add_argument("--duration", metavar="S", type=float)
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    p.set_defaults(func=cmd_send_voice)


def add_receive_file_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--download-dir",
        metavar="DIR",
        help="save received files here (this run only; the setting download_dir is the "
        "lasting choice)",
    )
    p.add_argument(
        "--download-all",
        action="store_true",
        help="also download files over the auto-download limit (setting auto_download_kib)",
    )


def transfer_json(view: TransferView) -> dict[str, Any]:
    data: dict[str, Any] = {
        "transfer": view.id,
        "status": view.status,
        "name": view.name,
        "size": view.size,
        "mime_type": view.mime_type,
        "done": view.done,
        "total": view.total,
        "rate_bps": round(view.rate_bps),
        "eta_s": None if view.eta_s is None else round(view.eta_s, 1),
    }
    if view.error:
        data["error"] = view.error
    return data


def _progress_line(view: TransferView) -> str:
    share = 100.0 * view.done / view.total if view.total else 0.0
    eta = "" if view.eta_s is None else f", {view.eta_s:.0f} s left"
    return (
        f"{terminal_safe(view.name)}: {view.status} {share:.0f}% "
        f"({view.done / 1048576:.1f} of {view.total / 1048576:.1f} MiB, "
        f"{view.rate_bps / 1048576:.1f} MiB/s{eta})"
    )


async def _send_and_wait(service: MessengerService, args: argparse.Namespace, start: Any) -> int:
    queue = service.subscribe()
    view: TransferView = await start()
    resumed = view.status != "encrypting" or view.done > 0
    # the pointer needs the message link: stay connected (reconnecting after a relay restart)
    await service.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    waiter = asyncio.ensure_future(service.wait_transfer(view.id, args.timeout))
    try:
        while not waiter.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({waiter, getter}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            event = getter.result()
            if isinstance(event, ev.TransferChanged) and event.transfer.id == view.id:
                if args.json:
                    out(json.dumps({"type": "progress", **transfer_json(event.transfer)}))
                else:
                    err(_progress_line(event.transfer))
        final = waiter.result()
    finally:
        waiter.cancel()
        service.unsubscribe(queue)
    if final.status != "done":
        reason = final.error or final.status
        if args.json:
            out(json.dumps({"type": "error", **transfer_json(final), "error": reason}))
        err(f"error: sending {terminal_safe(final.name)} failed: {reason}")
        return TRANSFER_FAILED
    remaining = max(1.0, deadline - loop.time())
    if final.group_row is not None:  # one sender-key message to every member
        stored = await service.groups.wait_sent(remaining)
    else:
        stored = await service.wait_outbox_empty(remaining, message_row=final.message_row)
    wire = service.transfer_manager.wire_bytes.get(final.id, 0)
    if args.json:
        out(
            json.dumps(
                {
                    "type": "sent",
                    **transfer_json(final),
                    "stored": stored,
                    "resumed": resumed,
                    "wire_bytes": wire,
                }
            )
        )
    if stored:
        err(f"sent {terminal_safe(final.name)} to {terminal_safe(args.name)}")
        return 0
    err(
        f"{terminal_safe(final.name)} is uploaded; its message is queued and goes out the "
        "next time messenger-tui connects"
    )
    return 0


async def cmd_send_file(args: argparse.Namespace) -> int:
    service = open_service(args)
    try:
        contact = contact_or_group(service, args.name)
        return await _send_and_wait(
            service,
            args,
            lambda: (
                service.group_files.send_file(args.name, Path(args.path))
                if contact is None
                else service.send_file(contact.id, Path(args.path))
            ),
        )
    finally:
        await close_service(service)


async def cmd_send_voice(args: argparse.Namespace) -> int:
    from messenger_tui.app.voice_messages import make_voice_file

    service = open_service(args)
    folder: Path | None = None
    try:
        contact = contact_or_group(service, args.name)  # an unknown name fails first
        path, info = await asyncio.to_thread(
            make_voice_file, wav=args.from_wav, seconds=args.duration
        )
        folder = path.parent
        err(f"voice message: {info.duration_ms / 1000:.1f} s, {info.bytes_written} bytes")
        return await _send_and_wait(
            service,
            args,
            lambda: (
                service.group_files.send_voice(args.name, path, info.duration_ms, info.waveform)
                if contact is None
                else service.send_voice(contact.id, path, info.duration_ms, info.waveform)
            ),
        )
    finally:
        await close_service(service)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def attachment_json(service: MessengerService, view: TransferView) -> dict[str, Any]:
    """A finished (or failed) download as ``receive --json`` prints it."""
    if view.group_row is not None:
        return _group_attachment_json(service, view)
    message = service.message(view.message_row) if view.message_row else None
    contact = service.contact_by_id(view.contact_id) if view.contact_id is not None else None
    data: dict[str, Any] = {
        "type": "attachment" if view.status == "done" else "error",
        "id": message.message_id.hex() if message else None,
        "from": contact.name if contact else None,
        "name": view.name,
        "size": view.size,
        "mime_type": view.mime_type,
        "status": view.status,
    }
    return _file_fields(data, view)


def _file_fields(data: dict[str, Any], view: TransferView) -> dict[str, Any]:
    if view.status == "done":
        data.update(path=view.path, sha256=view.sha256)
    else:
        data["error"] = view.error or view.status
    if view.duration_ms is not None:
        data.update(voice=True, duration_s=view.duration_ms / 1000)
    return data


def _group_attachment_json(service: MessengerService, view: TransferView) -> dict[str, Any]:
    """A group member's file: as a contact's, with ``group`` and the ``sender``'s key."""
    message = service.groups.message(view.message_row) if view.message_row else None
    group = service.groups.by_id(view.group_row) if view.group_row is not None else None
    data: dict[str, Any] = {
        "type": "attachment" if view.status == "done" else "error",
        "id": message.message_id.hex() if message else None,
        "group": group.name if group else None,
        "from": message.sender_name if message else None,
        "sender": message.sender.hex() if message else None,
        "name": view.name,
        "size": view.size,
        "mime_type": view.mime_type,
        "status": view.status,
    }
    return _file_fields(data, view)


def prepare_downloads(service: MessengerService, args: argparse.Namespace) -> set[int]:
    """Apply ``--download-dir``/``--download-all`` before connecting; returns the downloads
    settled before this run (not reported again by :func:`finish_downloads`)."""
    if args.download_dir:
        service.set_download_dir(Path(args.download_dir).expanduser())
    service.transfer_manager.download_all = bool(args.download_all)
    return {
        t.id
        for t in service.transfers()
        if t.direction == "down" and t.status in ("done", "failed", "cancelled")
    }


async def finish_downloads(
    service: MessengerService, args: argparse.Namespace, settled: set[int], timeout: float
) -> int:
    """Wait for the downloads this run started or resumed and report each (a JSON line, or a
    line on stderr). Returns :data:`TRANSFER_FAILED` if any failed, else 0."""
    code = 0
    for view in service.transfers():
        if view.direction != "down" or view.id in settled or view.status == "cancelled":
            continue
        while view.status == "new":  # the manager decides at once: auto or offered
            await asyncio.sleep(0.05)
            view = service.transfer(view.id) or view
        if view.status == "offered":
            if not args.download_all:
                err(
                    f"{terminal_safe(view.name)} ({view.size} bytes) is over the auto-download "
                    "limit; run receive --download-all to fetch it"
                )
                continue
            service.download_file(view.id)
        final = await service.wait_transfer(view.id, timeout)
        if args.json:
            out(json.dumps(attachment_json(service, final)))
        elif final.status == "done":
            err(f"saved {terminal_safe(final.path or '')} ({final.size} bytes)")
        if final.status == "failed":
            err(f"error: {terminal_safe(final.error or 'the download failed')}")
            code = TRANSFER_FAILED
    return code
