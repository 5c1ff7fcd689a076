"""Checks behind ``messenger-tui doctor``: each finding says what is wrong and how to fix it."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from messenger_tui.app.errors import AppError
from messenger_tui.app.profile import ProfilePaths, open_profile, profile_exists
from messenger_tui.app.service import MessengerService
from messenger_tui.media.audio_check import probe_audio, probe_opus
from messenger_tui.storage.profile_lock import ProfileLock


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    #: False for problems that leave chat working (audio, for example).
    essential: bool = True


def check_libraries() -> list[Finding]:
    findings = []
    for module in ("nacl", "msgspec", "websockets", "textual"):
        try:
            __import__(module)
            findings.append(Finding(f"python package {module}", True, "importable"))
        except ImportError as exc:
            findings.append(Finding(f"python package {module}", False, str(exc), "run make setup"))
    opus = probe_opus()
    findings.append(
        Finding("libopus (call codec)", opus.available, opus.reason or "loads", opus.fix, False)
    )
    audio = probe_audio()
    detail = audio.reason or (
        f"{len(audio.inputs)} input(s): {', '.join(audio.inputs[:3])}; "
        f"{len(audio.outputs)} output(s): {', '.join(audio.outputs[:3])}"
    )
    findings.append(Finding("audio devices", audio.available, detail, audio.fix, False))
    return findings


async def check_profile(
    home: Path, passphrase: str | None, *, lock: ProfileLock | None = None
) -> list[Finding]:
    if not profile_exists(home):
        return [
            Finding(
                "profile",
                False,
                f"no profile in {home}",
                "create one: messenger-tui init --name NAME (or run `make run`)",
            )
        ]
    findings = [Finding("profile", True, str(home))]
    try:
        profile = open_profile(home, passphrase, lock=lock)
    except AppError as exc:
        return [*findings, Finding("profile", False, str(exc), None)]
    try:
        check = profile.store.db.quick_check()
        findings.append(
            Finding(
                "database",
                check == "ok",
                f"{ProfilePaths(home).database}: integrity {check}",
                None
                if check == "ok"
                else "back up the file (it is encrypted: only messenger-tui, with your "
                "passphrase, reads it) and report the problem",
            )
        )
        service = MessengerService(profile)
        waiting = service.outbox_count()
        try:
            await service.connect(timeout=5.0)
            echo = "with an Echo contact" if service.relay_echo_identity else "no Echo contact"
            findings.append(Finding("relay", True, f"{profile.relay_url} reachable ({echo})"))
        except AppError as exc:
            findings.append(
                Finding(
                    "relay",
                    False,
                    str(exc),
                    "start it (`make run` for the embedded relay, or `messenger-tui relay`), "
                    "or check the URL and the network",
                )
            )
        finally:
            await service.close()
        findings.append(Finding("outbox", True, f"{waiting} message(s) waiting to be sent"))
    finally:
        profile.close()
    return findings


def print_findings(findings: list[Finding]) -> int:
    """Print a report; return 0 when every essential check passed, 1 otherwise."""
    worst = 0
    for f in findings:
        mark = "ok " if f.ok else ("!! " if f.essential else "-- ")
        print(f"{mark} {f.name}: {f.detail}", flush=True)
        if not f.ok and f.fix:
            print(f"     fix: {f.fix}", flush=True)
        if not f.ok and f.essential:
            worst = 1
    print(
        "all essential checks passed" if worst == 0 else "some checks failed (see fixes above)",
        file=sys.stderr,
    )
    return worst


async def diagnose(
    home: Path, passphrase: str | None, *, lock: ProfileLock | None = None
) -> list[Finding]:
    libraries = await asyncio.to_thread(check_libraries)
    return libraries + await check_profile(home, passphrase, lock=lock)
