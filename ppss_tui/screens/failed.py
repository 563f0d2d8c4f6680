"""Failed items, grouped: same exit code and same output tail (with the item's own path and
name masked) make one row, with the nodes folded like ``node[1-3,7]``; ``r`` retries a group."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from worker.errors import PpssError

from ..failgroups import FailureGroup, group_failures, tail_end
from .log import LogScreen

SHOWN_ITEMS = 15


class FailedScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="failed_back"),
                Binding("l", "log", "Log of first item", id="failed_log"),
                Binding("r", "retry", "Retry group", id="failed_retry"),
                Binding("g", "reload", "Reload", id="failed_reload")]

    def __init__(self, access) -> None:
        super().__init__()
        self.access = access
        self.groups: list[FailureGroup] = []
        self.total = 0

    def compose(self) -> ComposeResult:
        yield Static(Text("failed items: loading …", "bold"), id="failed-title")
        yield DataTable(id="failed-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="failed-detail-box"):
            yield Static(id="failed-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("count", "Items"), ("exit", "Exit"), ("output", "Last output line (end)"),
                           ("nodes", "Nodes"), ("first", "First item")):
            table.add_column(label, key=key)
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self.load(), exclusive=True, group="failed")

    async def load(self) -> None:
        try:
            records = await self.access.failed()
        except PpssError as exc:
            self.query_one("#failed-title", Static).update(Text(f"failed items: {exc}", "bold red"))
            return
        self.show(records)

    def show(self, records: list[dict]) -> None:
        self.total = len(records)
        self.groups = group_failures(records)
        title = Text("failed items: ", "bold")
        title.append(f"{self.total} in {len(self.groups)} group{'s' * (len(self.groups) != 1)}"
                     if records else "none")
        self.query_one("#failed-title", Static).update(title)
        table = self.query_one(DataTable)
        table.clear()
        for n, g in enumerate(self.groups):
            table.add_row(Text(str(g.count), justify="right"), Text(str(g.exit), "bold red"),
                          tail_end(g.last_line, 48), tail_end(g.nodes, 24), tail_end(g.first_item, 40), key=str(n))
        self.show_detail(0)
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.show_detail(int(event.row_key.value))

    def selected(self) -> FailureGroup | None:
        table = self.query_one(DataTable)
        if not self.groups or not table.row_count:
            return None
        return self.groups[min(table.cursor_row, len(self.groups) - 1)]

    def show_detail(self, index: int) -> None:
        detail = self.query_one("#failed-detail", Static)
        if not self.groups:
            detail.update(Text("nothing failed", "dim"))
            return
        g = self.groups[index]
        text = Text()
        text.append(f"exit {g.exit}", "bold red")
        text.append(f"  on {g.nodes}  ({g.count} item{'s' * (g.count != 1)})\n", "bold")
        text.append("output (tail):\n", "dim")
        text.append((g.tail or "(no output)") + "\n")
        text.append("items:\n", "dim")
        for item, rec in zip(g.items[:SHOWN_ITEMS], g.records):
            text.append(f"  {rec.get('node', '?'):<12} attempt {rec.get('attempt', 1)}  {item}\n")
        if g.count > SHOWN_ITEMS:
            text.append(f"  … and {g.count - SHOWN_ITEMS} more\n", "dim")
        detail.update(text)

    def action_log(self) -> None:
        g = self.selected()
        if g is None or not g.ids:
            self.app.bell()
            return
        ident = g.ids[0]
        self.app.push_screen(LogScreen(f"log of {g.first_item}  (id {ident})",
                                       lambda: self.access.item_log(ident)))

    def action_retry(self, index: int | None = None) -> None:
        """Run the selected group's items (or group ``index``'s, from the palette) again."""
        g = self.selected() if index is None else (self.groups[index] if 0 <= index < len(self.groups) else None)
        if g is None:
            self.app.bell()
            return

        async def run() -> None:
            try:
                n = await self.access.retry(g.ids)
            except PpssError as exc:
                self.notify(str(exc), severity="error", timeout=10)
                return
            self.notify(f"{n} item{'s' * (n != 1)} queued again (exit {g.exit}: {tail_end(g.last_line, 40)})")
            self.action_reload()
            kick = getattr(self.app, "kick", None)
            if kick is not None:
                kick()  # the counts above drop at once
        self.run_worker(run(), group="retry")
