"""What the console's two tables (nodes, jobs) share: columns fitted to the width by priority,
and the row key under the cursor."""

from __future__ import annotations

from typing import Callable, Sequence

from textual.widgets import DataTable

CELL_PAD = 2  # DataTable's cell_padding on both sides


def fit_columns(columns: Sequence[tuple[str, str, int | None]], width: int, always: int, used: int,
                auto_width: Callable[[str], int]) -> tuple[str, ...]:
    """The keys of ``columns`` (key, label, width or None) that fit ``width`` cells, in priority
    order; the first ``always`` whatever the width. ``used``: cells taken already (a scrollbar,
    a marker); ``auto_width(key)`` sizes a column whose width is None."""
    keys: list[str] = []
    for n, (key, _, w) in enumerate(columns):
        cost = (w if w is not None else auto_width(key)) + CELL_PAD
        if n >= always and used + cost > width:
            break
        keys.append(key)
        used += cost
    return tuple(keys)


def cursor_row_key(table: DataTable) -> str | None:
    """The key of the row under the cursor; None for an empty table or no row there."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:  # noqa: BLE001 - no row under the cursor
        return None
