"""The node table (rows keyed by node name, only changed rows repainted) and the selected node's detail.

Columns by priority: Node (pinned when scrolling right), State, Slots, Done, Failed and Rate
always; Connection, Heartbeat, Load, Mem free, Current item and Host as the width allows.
The rows shown and their order come from ``nodeview.View`` (filter, sort, problems first).
"""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable, Static

from .. import format as F
from ..nodeview import View
from ..snapshot import UP, NodeRow
from .quiet import set_text
from .tables import cursor_row_key, fit_columns

# (key, label, width): None = sized from the rows when they are added. In priority order: the
# first six always; the others while they fit. Fixed widths let a refresh update cells
# without re-measuring whole columns.
COLUMNS = (("name", "Node", None), ("state", "State", 9), ("slots", "Slots", 8), ("done", "Done", 8),
           ("failed", "Failed", 6), ("rate", "Rate", 7), ("conn", "Connection", 16),
           ("beat", "Heartbeat", 9), ("load", "Load", 14), ("mem", "Mem free", 14),
           ("current", "Current item", 26), ("host", "Host", None))
ALWAYS = 6
ROWS_PER_PAINT = 10   # changed rows on screen repainted per frame: keys are answered between frames
SCROLLBAR = 2


def row_cells(row: NodeRow) -> dict[str, object]:
    conn_text = row.conn  # the fingerprint offered is in the detail below the table
    if len(conn_text) > 16:
        conn_text = conn_text[:15] + "…"
    return {
        "name": Text(row.name, "bold red" if row.problem else "bold"),
        "state": Text(row.state, F.STATE_STYLE.get(row.state, "")),
        "slots": Text(F.slots(row)),
        "done": Text(F.count(row.done), justify="right"),
        "failed": Text(F.count(row.failed), "red" if row.failed else "", justify="right"),
        "rate": Text(F.rate(row.rate), justify="right"),
        "conn": Text(conn_text, F.CONN_STYLE.get(row.conn, "")),
        "beat": Text(F.short_age(row.heartbeat_age)),
        "load": Text(F.load(row.load)),
        "mem": Text(F.memory(row.mem_free, row.mem_total)),
        "current": Text(F.current(row, 26)),   # Text, never markup: item names are data
        "host": Text(row.host, "dim"),
    }


def columns_for(width: int, name_width: int, host_width: int) -> tuple[str, ...]:
    """The column keys that fit ``width`` cells, by priority (the first ALWAYS whatever the width)."""
    return fit_columns(COLUMNS, width, ALWAYS, SCROLLBAR, lambda key: name_width if key == "name" else host_width)


class NodeTable(DataTable):
    """One row per shown node; a refresh repaints only the rows whose cells changed."""

    _batch = False

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=1, **kw)
        self.view = View()
        self.rows_shown: list[NodeRow] = []
        self._order: list[str] = []
        self._cells: dict[str, dict[str, object]] = {}
        self._pending: dict[str, tuple[int, NodeRow]] = {}   # changed while off screen
        self._keys: tuple[str, ...] = ()
        self.rows_repainted = 0     # rows repainted by refreshes (bench/console_scale.py)
        self.lines_rendered = 0     # lines Textual asked this widget to render
        self.rebuilds = 0

    # ---- repaint accounting: update_cell() refreshes the whole widget; batch it per row ------
    def refresh(self, *regions, repaint: bool = True, layout: bool = False, recompose: bool = False):
        if self._batch and not regions and not layout and not recompose:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render_line(self, y: int):
        self.lines_rendered += 1
        return super().render_line(y)

    # ---- what is shown ------------------------------------------------------------------------
    @property
    def selected(self) -> str | None:
        return cursor_row_key(self)

    def on_resize(self) -> None:
        self.rebuild()

    def _fit(self) -> tuple[str, ...]:
        name_w = max([4, *(len(r.name) for r in self.rows_shown)])
        host_w = max([4, *(len(r.host) for r in self.rows_shown)])
        return columns_for(self.size.width or 80, name_w, host_w)

    def show(self, rows: list[NodeRow], force: bool = False) -> None:
        """Show these rows in this order. With the order unchanged, a changed row on screen is
        updated and repainted now; one off screen is only marked, and updated when drawn."""
        old_rows = {r.name: r for r in self.rows_shown}
        self.rows_shown = rows
        order = [r.name for r in rows]
        if force or order != self._order or self._fit() != self._keys:
            self._pending.clear()
            self._cells = {r.name: row_cells(r) for r in rows}
            self.rebuild()
            return
        for index, row in enumerate(rows):
            if old_rows.get(row.name) != row or row.name in self._pending:
                self._pending[row.name] = (index, row)
        self._flush_visible()

    def _flush_visible(self) -> None:
        """Update and repaint up to ROWS_PER_PAINT changed rows on screen; the rest next frame."""
        first, last = self._visible_rows()
        todo = [(index, row) for index, row in self._pending.values() if first <= index < last]
        for index, row in todo[:ROWS_PER_PAINT]:
            self._update_row(index, row)
        if len(todo) > ROWS_PER_PAINT:
            self.set_timer(0.001, self._flush_visible)

    def _visible_rows(self, top: int = 0, height: int | None = None) -> tuple[int, int]:
        """Indexes [first, last) of the rows within lines [top, top+height) of the widget."""
        header = self.header_height if self.show_header else 0
        height = self.size.height if height is None else height
        first = max(0, round(self.scroll_y) + top - header)
        return first, first + height + 1

    def _update_row(self, index: int, row: NodeRow, repaint: bool = True) -> None:
        self._pending.pop(row.name, None)
        old, new = self._cells.get(row.name), row_cells(row)
        if old == new:
            return
        self._batch = True
        try:
            for key in self._keys:
                if old is None or old[key] != new[key]:
                    self.update_cell(row.name, key, new[key])
        finally:
            self._batch = False
        self._cells[row.name] = new
        if repaint:
            self._repaint_row(index)

    def render_lines(self, crop):
        """Bring the rows about to be drawn up to date first (rows changed while off screen)."""
        if self._pending:
            first, last = self._visible_rows(crop.y, crop.height)
            for name, (index, row) in list(self._pending.items()):
                if first <= index < last:
                    self._update_row(index, row, repaint=False)  # being drawn now
        return super().render_lines(crop)

    def _repaint_row(self, index: int) -> None:
        """Repaint one row if it is on screen (rows are one line; an off-screen row is drawn
        from its new cells when scrolled to). DataTable.refresh_row is O(rows) per call."""
        y = index + (self.header_height if self.show_header else 0) - round(self.scroll_y)
        if self.show_header and y < self.header_height or y >= self.size.height:
            return
        self.refresh(Region(0, y, self.size.width, 1))
        self.rows_repainted += 1

    def rebuild(self) -> None:
        """Columns that fit, rows in order; the cursor stays on the selected node."""
        selected = self.selected
        keys = self._fit()
        self.rebuilds += 1
        self.clear(columns=keys != self._keys)
        if keys != self._keys:
            for key, label, width in COLUMNS:
                if key in keys:
                    self.add_column(label, key=key, width=width)
            self._keys = keys
        self._order = [r.name for r in self.rows_shown]
        for name in self._order:
            cells = self._cells.get(name)
            if cells is not None:
                self.add_row(*(cells[k] for k in keys), key=name)
        self.rows_repainted += len(self._order)
        if selected in self._order:
            self.move_cursor(row=self._order.index(selected), animate=False)


class NodeDetail(Static):
    """What the selected node's row cannot hold: the full reason, fingerprint, running items."""

    def show(self, row: NodeRow | None, now: float) -> None:
        if row is None:
            set_text(self, Text("no node selected", "dim"))
            return
        text = Text()
        text.append(row.name, "bold")
        text.append(f"  {row.host}  ", "dim")
        text.append(row.conn, F.CONN_STYLE.get(row.conn, ""))
        if row.conn != UP and row.conn_reason:
            text.append(f"\n{row.conn_reason}", F.CONN_STYLE.get(row.conn, ""))
        if row.fingerprint:
            text.append(f"\nfingerprint offered: {row.fingerprint}", "bold")
        if row.error:
            text.append(f"\nworker error: {row.error}", "bold red")
        if row.slots_target is not None:
            text.append(f"\ncontrol.yaml sets {F.plural(row.slots_target, 'slot')}", "dim")
        if row.reported and row.slots_used > row.slots:
            text.append(f"\n{row.slots_used} running on {F.plural(row.slots, 'slot')}: "
                        f"{row.slots_used - row.slots} finish before new ones start", "yellow")
        for r in row.running:
            text.append(f"\n slot {r.slot}  ", "dim")
            text.append(f"{F.age(max(0.0, now - r.started)).replace(' ago', ''):>12}  ", "cyan")
            text.append(r.item)
        set_text(self, text)
