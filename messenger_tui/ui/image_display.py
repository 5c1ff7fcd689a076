"""How inline images show in this terminal: the terminal's graphics protocol (kitty, sixel)
through ``textual-image``, or Unicode half-blocks everywhere else.

Detection (:func:`probe_terminal`) runs once, before Textual starts (``MessengerApp.run_async``):
the terminal's answers to ``textual-image``'s queries can only be read before Textual's input
thread owns stdin. It asks nothing when stdout is not a terminal (Pilot, a pipe) or inside a
multiplexer (tmux, screen, zellij: they do not pass images through reliably): half-blocks
there. Environment hints name the protocol of terminals known to have one (kitty, ghostty:
kitty; foot, mlterm, WezTerm: sixel) when the query finds nothing.

The ``image_preview`` setting picks (:func:`choose_display`): ``auto`` (the protocol found,
else half-blocks), ``kitty`` or ``sixel`` (that protocol, even when the query did not answer;
still half-blocks where no terminal or a multiplexer is), ``half-blocks``, or ``off`` (no
preview). Images reach the terminal as a PNG the app downscaled under the pixel limit
(``image_picture``): the terminal never decodes a received file itself.

Kitty pictures use the protocol's Unicode placeholders (one character per cell, the image id in
the colour), so they are ordinary text to the line-based views: they scroll, wrap and clip
like text. Sixel is detected and can be chosen, but the line-based views still draw
half-blocks for it: a sixel picture is pixels written at a cursor position, which a view that
scrolls line by line would have to crop and redraw itself (not done yet).
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.segment import Segment

log = logging.getLogger(__name__)

#: What the chosen display draws with.
KITTY, SIXEL, HALF_BLOCKS, OFF = "kitty", "sixel", "half-blocks", "off"


@dataclass(frozen=True, slots=True)
class TerminalGraphics:
    """What :func:`probe_terminal` found: a terminal on stdout, a multiplexer around it, and
    the graphics protocol it has (None: none found)."""

    tty: bool = False
    multiplexer: str | None = None
    protocol: str | None = None


#: Not a terminal (Pilot, headless): half-blocks whatever the setting.
NO_TERMINAL = TerminalGraphics()


def graphics_of(app: object) -> TerminalGraphics:
    """What the app's probe found (``MessengerApp.terminal_graphics``; none under Pilot)."""
    found = getattr(app, "terminal_graphics", NO_TERMINAL)
    return found if isinstance(found, TerminalGraphics) else NO_TERMINAL


def multiplexer_of(env: Mapping[str, str]) -> str | None:
    """The terminal multiplexer the app runs in, from its environment (None: none)."""
    term = env.get("TERM", "")
    if env.get("TMUX") or term.startswith("tmux"):
        return "tmux"
    if env.get("STY") or term.startswith("screen"):
        return "screen"
    if env.get("ZELLIJ") is not None:
        return "zellij"
    return None


def protocol_from_env(env: Mapping[str, str]) -> str | None:
    """The graphics protocol of a terminal known by its environment (None: not known)."""
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "").casefold()
    if env.get("KITTY_WINDOW_ID") or term in ("xterm-kitty", "xterm-ghostty"):
        return KITTY
    if program == "ghostty":
        return KITTY
    if term.startswith(("foot", "mlterm")) or program == "wezterm":
        return SIXEL
    return None


def query_terminal() -> str | None:
    """Ask the terminal (``textual-image``: a sixel query, then a kitty one, each waiting
    0.1 s at most). Must run before Textual starts; its import caches the cell size too."""
    try:
        import textual_image.renderable as renderables  # the queries run at import
        import textual_image.widget  # noqa: F401  (caches the terminal's cell size)
    except Exception as exc:  # a terminal that answers garbage must not stop the app
        log.warning("terminal graphics query failed: %s", type(exc).__name__)
        return None
    if renderables.Image is renderables.SixelImage:
        return SIXEL
    if renderables.Image is renderables.TGPImage:
        return KITTY
    return None


def probe_terminal(
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    query: Callable[[], str | None] = query_terminal,
) -> TerminalGraphics:
    """What this terminal can show (see the module doc). ``query`` runs only on a terminal
    outside a multiplexer."""
    env = os.environ if env is None else env
    out = sys.__stdout__ if stdout is None else stdout
    tty = out is not None and out.isatty()
    multiplexer = multiplexer_of(env)
    if not tty or multiplexer is not None:
        return TerminalGraphics(tty, multiplexer, None)
    answered = query()
    return TerminalGraphics(True, None, answered or protocol_from_env(env))


def choose_display(setting: str, graphics: TerminalGraphics) -> str:
    """What inline images are drawn with: kitty, sixel, half-blocks or off."""
    if setting in (OFF, HALF_BLOCKS):
        return setting
    if not graphics.tty or graphics.multiplexer is not None:
        return HALF_BLOCKS
    if setting in (KITTY, SIXEL):
        return setting
    return graphics.protocol or HALF_BLOCKS


def picture_cells(png: bytes, max_cols: int, max_rows: int) -> tuple[int, int]:
    """Cells a picture takes to fit ``max_cols`` x ``max_rows`` keeping its proportions
    (from the terminal's cell size in pixels)."""
    from PIL import Image
    from textual_image._terminal import get_cell_size

    cell = get_cell_size()
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    scale = min(max_cols * cell.width / width, max_rows * cell.height / height)
    cols = max(1, min(max_cols, round(width * scale / cell.width)))
    rows = max(1, min(max_rows, round(height * scale / cell.height)))
    return cols, rows


def picture_pixels(max_cols: int, max_rows: int) -> tuple[int, int]:
    """The pixels ``max_cols`` x ``max_rows`` cells hold in this terminal (what the app
    downscales a picture to)."""
    from textual_image._terminal import get_cell_size

    cell = get_cell_size()
    return max_cols * cell.width, max_rows * cell.height


def kitty_lines(png: bytes, max_cols: int, max_rows: int) -> list[list[Segment]]:
    """A picture as kitty placeholder lines (the image is sent to the terminal now)."""
    from textual_image.renderable.tgp import Image as KittyImage

    cols, rows = picture_cells(png, max_cols, max_rows)
    console = Console(file=io.StringIO(), width=cols, height=rows, color_system="truecolor")
    image = KittyImage(io.BytesIO(png), width=cols, height=rows)
    options = console.options.update(width=cols, height=rows)
    segments = [s for s in image.__rich_console__(console, options) if isinstance(s, Segment)]
    return [line for line in Segment.split_lines(segments) if line][:rows]
