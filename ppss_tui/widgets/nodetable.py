"""The node table (rows keyed by node name, updated cell by cell) and the selected node's detail."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable, Static

from .. import format as F
from ..snapshot import UP, JobSnapshot, NodeRow

# (key, label, width): None = sized from the rows when they are added (name and host never change).
# Fixed widths let a refresh update cells without re-measuring whole columns (200 rows).
COLUMNS = (("name", "Node", None), ("host", "Host", None), ("conn", "Connection", 26),
           ("state", "State", 9), ("slots", "Slots", 9), ("done", "Done", 9), ("failed", "Failed", 7),
           ("rate", "Rate", 7), ("beat", "Heartbeat", 11), ("load", "Load", 14), ("mem", "Mem free", 14),
           ("current", "Current item", 26))


def row_cells(row: NodeRow) -> tuple:
    conn_text = F.conn(row)
    if len(conn_text) > 26:
        conn_text = conn_text[:25] + "…"
    return (
        Text(row.name, "bold"),
        Text(row.host, "dim"),
        Text(conn_text, F.CONN_STYLE.get(row.conn, "")),
        Text(row.state, F.STATE_STYLE.get(row.state, "")),
        F.slots(row),
        Text(F.count(row.done), justify="right"),
        Text(F.count(row.failed), "red" if row.failed else "", justify="right"),
        Text(F.rate(row.rate), justify="right"),
        F.age(row.heartbeat_age).replace(" ago", ""),
        F.load(row.load),
        F.memory(row.mem_free, row.mem_total),
        F.current(row, 26),
    )


class NodeTable(DataTable):
    """One row per node; a refresh only touches the cells that changed."""

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._shown: dict[str, tuple] = {}
        self.cell_updates = 0
        self._cells_cache: dict[tuple, object] = {}

    def _render_cell(self, row_index, column_index, base_style, width, cursor=False, hover=False):
        """DataTable keys its cell cache on a table-wide update counter, so one changed cell
        re-renders every visible cell. Cache on the cell's own value instead: a refresh that
        changes a few cells of 200 rows renders only those. (Relies on DataTable internals;
        falls back to the stock path if they change.)"""
        try:
            row_key = self._row_locations.get_key(row_index) if row_index >= 0 else None
            column_key = self._column_locations.get_key(column_index) if column_index >= 0 else None
            value = self._data[row_key][column_key] if row_key is not None and column_key is not None else None
        except (AttributeError, KeyError, TypeError):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (row_key, column_key, row_index, id(value), base_style, width, cursor, hover,
               self._show_hover_cursor, self._pseudo_class_state)
        hit = self._cells_cache.get(key)
        if hit is None or hit[0] is not value:
            if len(self._cells_cache) > 20_000:
                self._cells_cache.clear()
            hit = (value, super()._render_cell(row_index, column_index, base_style, width, cursor, hover))
            self._cells_cache[key] = hit
        return hit[1]

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None

    def show(self, snap: JobSnapshot) -> None:
        wanted = {n.name for n in snap.nodes}
        for gone in [k for k in self._shown if k not in wanted]:
            self.remove_row(gone)
            del self._shown[gone]
        for row in snap.nodes:
            cells = row_cells(row)
            old = self._shown.get(row.name)
            if old is None:
                self.add_row(*cells, key=row.name)
            elif old != cells:
                for (key, _, _), new, before in zip(COLUMNS, cells, old):
                    if new != before:
                        self.update_cell(row.name, key, new)
                        self.cell_updates += 1
            self._shown[row.name] = cells


class NodeDetail(Static):
    """What the selected node's row cannot hold: the full reason, fingerprint, running items."""

    def show(self, row: NodeRow | None, now: float) -> None:
        if row is None:
            self.update(Text("no node selected", "dim"))
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
        if row.control_slots is not None:
            text.append(f"\ncontrol.yaml sets {row.control_slots} slots", "dim")
        for r in row.running:
            text.append(f"\n slot {r.slot}  ", "dim")
            text.append(f"{F.age(max(0.0, now - r.started)).replace(' ago', ''):>12}  ", "cyan")
            text.append(r.item)
        self.update(text)
