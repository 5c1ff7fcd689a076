"""``messenger-tui doctor``: print every check with a fix for each problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from messenger_tui.app.diagnostics import diagnose, print_findings
from messenger_tui.cli.passphrase import claim_then_passphrase


async def run_doctor(home: Path, args: argparse.Namespace) -> int:
    lock, passphrase = claim_then_passphrase(args, home)
    try:
        return print_findings(await diagnose(home, passphrase, lock=lock))
    finally:
        if lock is not None:
            lock.release()
