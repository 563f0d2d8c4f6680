"""The keys (as currently bound, keymap included) and what the states mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

STATES = """\
Job and node states (control.yaml on the master, the same file `ppss-console pause` edits):
  running    start items while slots are free
  paused     start nothing new; running items finish
  halted     as paused, set when failures passed the job's halt: threshold (R resumes)
  suspended  running items are frozen (SIGSTOP) until resumed
  stopped    start nothing new; running items finish; then the workers exit
A job-wide change (P, R, s, Z) clears the per-node states; slot overrides stay.
Under a jobs root every key acts on the job selected in the jobs list (j goes there).
Keys can be remapped by binding id in ~/.config/ppss/keymap.yaml (id: key)."""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close", id="help_close")]

    def __init__(self, keys: list[tuple[str, str, str]]) -> None:
        """``keys``: (key as shown, description, binding id)."""
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=False, padding=(0, 2))
        table.add_column("Key")
        table.add_column("Does")
        table.add_column("Binding id", style="dim")
        for key, text, ident in self.keys:
            table.add_row(Text(key, "bold cyan"), text, ident)
        with VerticalScroll(id="help-box"):
            yield Static(Text("ppss console: keys", "bold"), id="help-title")
            yield Static(table, id="help-keys")
            yield Static(STATES, id="help-states")
            yield Static(Text("escape closes", "dim"))
