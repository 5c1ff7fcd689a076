"""docs/protocol.md's signalling table is rendered from ``TRANSITIONS``: the test fails when
the two differ. To update the doc after a change of the table, paste the output of
``python -m tests.core.calls.test_signalling_doc`` over the table's rows."""

from __future__ import annotations

from pathlib import Path

from messenger_tui.core.calls.signalling import TRANSITIONS, CallTransition

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
HEADER = "| state | event | target | actions |"


def _target(row: CallTransition) -> str:
    target = row.target.value
    if row.peer_reason:
        return f"{target} (peer's reason)"
    if row.reason is not None:
        return f"{target} ({row.reason.value})"
    return target


def render() -> list[str]:
    """The table's rows, one line each, in the table's own order."""
    lines = []
    for state, row in TRANSITIONS.items():
        for event, transition in row.items():
            actions = ", ".join(a.value for a in transition.actions) or "—"
            lines.append(f"| {state.value} | {event.value} | {_target(transition)} | {actions} |")
    return lines


def documented() -> list[str]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2  # past the header and the |---| line
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def test_the_documented_signalling_table_is_the_code_table() -> None:
    rendered, doc = render(), documented()
    missing = [line for line in rendered if line not in doc]
    extra = [line for line in doc if line not in rendered]
    assert not missing and not extra, (
        "docs/protocol.md's signalling table differs from TRANSITIONS:\n"
        + "".join(f"  not in the doc:  {line}\n" for line in missing)
        + "".join(f"  not in the code: {line}\n" for line in extra)
    )
    assert doc == rendered, "same rows, another order: render it again (see the module doc)"


if __name__ == "__main__":
    print("\n".join(render()))
