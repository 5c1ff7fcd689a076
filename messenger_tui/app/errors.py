"""Errors the app facade raises. Each has a readable message and a documented exit code."""

from __future__ import annotations


class AppError(Exception):
    """Base: ``exit_code`` is what the CLI exits with (see README, "Exit codes")."""

    exit_code = 1


class NotInitialized(AppError):
    exit_code = 3


class ProfileExists(AppError):
    exit_code = 3


class BadInput(AppError):
    """Bad address, unknown contact, duplicate name, message too long."""

    exit_code = 4


class RelayUnavailable(AppError):
    exit_code = 5


class PassphraseProblem(AppError):
    """Wrong or missing passphrase."""

    exit_code = 6


class StorageProblem(AppError):
    """Damaged or locked database, unreadable key file."""

    exit_code = 7


class ProfileBusy(AppError):
    exit_code = 8


class KeyChangeBlocked(AppError):
    """The contact's identity key changed; sending waits until the user accepts it."""

    exit_code = 9


class TimedOut(AppError):
    exit_code = 10


class AudioProblem(AppError):
    """A microphone or speaker cannot be used (PortAudio missing, no such device, busy).
    ``reason`` says what, ``fix`` how to fix it (or None)."""

    exit_code = 12

    def __init__(self, reason: str, fix: str | None = None) -> None:
        super().__init__(reason + (f" ({fix})" if fix else ""))
        self.reason = reason
        self.fix = fix
