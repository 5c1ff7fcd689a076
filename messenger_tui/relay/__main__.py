"""``python -m messenger_tui.relay``: an alias of ``messenger-tui relay`` (without ``--echo``);
both run :func:`messenger_tui.relay.command.serve`. See that module for the options, the
ready line, signals and exit statuses."""

from __future__ import annotations

import sys

from messenger_tui.relay.command import main
from messenger_tui.relay.command_args import build_parser, config_from_args

__all__ = ["build_parser", "config_from_args", "main"]

if __name__ == "__main__":
    sys.exit(main())
