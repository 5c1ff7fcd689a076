"""``messenger-tui doctor``: print every check with a fix for each problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from messenger_tui.app.diagnostics import diagnose, print_findings
from messenger_tui.cli.passphrase import passphrase_for


async def run_doctor(home: Path, args: argparse.Namespace) -> int:
    return print_findings(await diagnose(home, passphrase_for(args, home)))
