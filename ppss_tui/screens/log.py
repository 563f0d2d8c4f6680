"""A read-only view of a log: an item's log or a node's job log tail."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static


class LogScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="log_back")]

    def __init__(self, title: str, loader) -> None:
        """``loader`` is a coroutine function returning the text (or None if there is none)."""
        super().__init__()
        self.title_text = title
        self.loader = loader

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="log-title")
        yield Log(id="log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Log).write_line("loading …")
        self.run_worker(self.load(), exclusive=True)

    async def load(self) -> None:
        log = self.query_one(Log)
        try:
            text = await self.loader()
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the UI
            text = f"cannot read the log: {exc}"
        log.clear()
        log.write(text if text else "(no log yet)")
