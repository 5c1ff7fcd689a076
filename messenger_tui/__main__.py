"""``python -m messenger_tui``: the same as the ``messenger-tui`` command."""

import sys

from messenger_tui.cli.main import main

sys.exit(main())
