"""The row key under a DataTable's cursor (tables keyed by node or job name)."""

from __future__ import annotations

from textual.widgets import DataTable


def cursor_row_key(table: DataTable) -> str | None:
    """The key of the row under the cursor; None for an empty table or no row there."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:  # noqa: BLE001 - no row under the cursor
        return None
