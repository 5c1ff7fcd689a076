"""docs/protocol.md §6 shows the two connection tables rendered from their ``TRANSITIONS``;
the test fails when a table and its copy in the doc differ. To update the doc, paste the
output of ``python -m tests.core.links.test_tables_doc``."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.core.links import media_rejoin, relay_link

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
TABLES: dict[str, Mapping[Any, Mapping[Any, Any]]] = {
    "| relay link phase | event | next phase | steps |": relay_link.TRANSITIONS,
    "| media link phase | event | next phase | steps |": media_rejoin.TRANSITIONS,
}


def render(table: Mapping[Enum, Mapping[Enum, Any]]) -> list[str]:
    lines = []
    for phase, row in table.items():
        for event, transition in row.items():
            steps = ", ".join(step.value for step in transition.steps) or "—"
            lines.append(f"| {phase.value} | {event.value} | {transition.target.value} | {steps} |")
    return lines


def documented(header: str) -> list[str]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


@pytest.mark.parametrize("header", list(TABLES))
def test_the_documented_table_is_the_code_table(header: str) -> None:
    assert documented(header) == render(TABLES[header])


if __name__ == "__main__":
    for header, table in TABLES.items():
        print(header, "|---|---|---|---|", *render(table), "", sep="\n")
