"""``messenger-tui doctor``: print every check with a fix for each problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from messenger_tui.app.diagnostics import diagnose, print_findings


async def run_doctor(home: Path, args: argparse.Namespace) -> int:
    from messenger_tui.cli.main import _passphrase

    return print_findings(await diagnose(home, _passphrase(args, home)))
