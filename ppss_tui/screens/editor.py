"""Edit control.yaml: validated (YAML and schema) before saving; never overwrites a change made
meanwhile by someone else (the save carries a hash of the text it opened, and is refused if the file differs)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, TextArea

from worker.control import ControlError, parse_control
from worker.errors import PpssError


class EditorScreen(Screen):
    BINDINGS = [Binding("ctrl+s", "save", "Save", id="editor_save", priority=True),
                Binding("ctrl+r", "reload", "Reload (drop edits)", id="editor_reload", priority=True),
                Binding("escape", "close", "Close", id="editor_close", priority=True)]

    def __init__(self, access) -> None:
        super().__init__()
        self.access = access
        self.stamp: str | None = None
        self.saved_text = ""
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("control.yaml", "bold"), ("  on the master: ctrl+s saves, "
                                   "ctrl+r reloads, escape closes", "dim")), id="editor-title")
        yield TextArea("", id="editor", soft_wrap=False, show_line_numbers=True, tab_behavior="indent")
        yield Static(id="editor-status")
        yield Footer()

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.cursor_blink = False
        area.read_only = True
        self.set_status("loading …", "dim")
        self.run_worker(self.load(), exclusive=True, group="editor")

    async def load(self) -> None:
        try:
            text, self.stamp = await self.access.read_control()
        except PpssError as exc:
            self.set_status(str(exc), "bold red")
            return
        area = self.query_one(TextArea)
        area.read_only = False
        area.load_text(text)
        area.focus()
        self.saved_text, self.loaded = text, True
        self.validate(text)

    def set_status(self, text: str, style: str) -> None:
        self.query_one("#editor-status", Static).update(Text(text, style))

    def validate(self, text: str) -> bool:
        try:
            control = parse_control(text.encode(), "control.yaml")
        except ControlError as exc:
            self.set_status(f"invalid: {exc}", "bold red")
            return False
        changed = " (modified)" if text != self.saved_text else ""
        overrides = ", ".join(sorted(control.nodes)) or "none"
        self.set_status(f"valid: state {control.state}, node overrides: {overrides}{changed}", "green")
        return True

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.loaded:
            self.validate(event.text_area.text)

    def action_save(self) -> None:
        if not self.loaded:
            return
        text = self.query_one(TextArea).text
        if not self.validate(text):
            self.app.bell()
            return
        self.run_worker(self.save(text), exclusive=True, group="editor")

    async def save(self, text: str) -> None:
        try:
            self.stamp = await self.access.write_control(text, self.stamp)
        except ControlError as exc:
            self.set_status(f"not saved: {exc} (ctrl+r reloads, dropping your edits)", "bold red")
            self.app.bell()
            return
        except PpssError as exc:
            self.set_status(f"not saved: {exc}", "bold red")
            return
        self.saved_text = text
        self.set_status("saved; workers pick it up within 2 s", "bold green")
        self.app.notify("control.yaml saved")
        kick = getattr(self.app, "kick", None)
        if kick:
            kick()

    def action_reload(self) -> None:
        self.loaded = False
        self.query_one(TextArea).read_only = True
        self.set_status("reloading …", "dim")
        self.run_worker(self.load(), exclusive=True, group="editor")

    def action_close(self) -> None:
        """Close; with unsaved edits, ask first (no: keep editing)."""
        if not (self.loaded and self.query_one(TextArea).text != self.saved_text):
            self.app.pop_screen()
            return

        def answered(drop: bool | None) -> None:
            if drop:
                self.app.pop_screen()
                self.app.notify("unsaved edits to control.yaml were dropped", severity="warning")
        from .confirm import ConfirmScreen
        self.app.push_screen(ConfirmScreen("control.yaml has unsaved edits.\n\nDrop them and close? "
                                           "(ctrl+s saves them instead)", yes="Drop edits", no="Keep editing"),
                             answered)
