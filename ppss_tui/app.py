"""The Textual operator console: ``ppss-console [--cluster ppss.yaml]`` with no subcommand.

Structure: ``poller.Poller`` (no Textual) reads the master and the nodes and calls back with an
immutable ``snapshot.JobSnapshot``; the app wraps it in a ``messages.SnapshotReady`` and sets its
reactive ``snapshot``, which the main screen and its widgets are bound to (``data_bind``): they
only render what the snapshot computed. Changes go through an ``access.ConsoleAccess``
(control.yaml via ``worker.jobops``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive

from . import settings
from .clusterfile import Cluster, load_cluster
from .commands import PpssCommands
from .messages import MasterReady, SnapshotReady
from .poller import Poller
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .snapshot import JobSnapshot

read_keymap = settings.read_keymap


class PpssConsole(App):
    CSS_PATH = "console.tcss"
    TITLE = "ppss console"
    COMMANDS = App.COMMANDS | {PpssCommands}
    VERTICAL_BREAKPOINTS = [(0, "-short"), (35, "-tall")]
    BINDINGS = [Binding("q", "quit", "Quit", id="quit"),
                Binding("question_mark", "help", "Help", id="help")]

    snapshot: reactive[JobSnapshot | None] = reactive(None, always_update=True, init=False)

    def __init__(self, cluster: Cluster, *, clock: Callable[[], float] = time.time, poll: bool = True,
                 snapshot: JobSnapshot | None = None, access=None, interval: float = 1.5,
                 node_interval: float = 3.0, keymap: dict[str, str] | None = None,
                 recount_every: float | None = 600.0, config_dir: str | None = None,
                 jobs_interval: float = 3.0) -> None:
        """``config_dir``: where the theme is remembered (None: nowhere, as in tests)."""
        super().__init__()
        self.cluster = cluster
        self.clock = clock
        self.set_reactive(PpssConsole.snapshot, snapshot)
        self.access = access
        self.poll = poll
        self.poller: Poller | None = None
        self.snapshots = 0
        self.config_dir = config_dir
        self._poller_args = dict(interval=interval, node_interval=node_interval, recount_every=recount_every,
                                 jobs_interval=jobs_interval)
        self._initial_keymap = keymap or {}
        self.intro: list[str] = []
        saved = settings.read_settings(config_dir).get("theme") if config_dir else None
        if isinstance(saved, str) and saved in self.available_themes:
            self.theme = saved

    def on_mount(self) -> None:
        if self._initial_keymap:
            self.set_keymap(self._initial_keymap)
        self.push_screen(MainScreen(id="main").data_bind(PpssConsole.snapshot))
        if self.intro:
            self.notify("\n".join(self.intro), title="ppss demo", timeout=8)
        if self.poll:
            self.poller = Poller(self.cluster, lambda snap: self.post_message(SnapshotReady(snap)),
                                 lambda access: self.post_message(MasterReady(access)),
                                 self.clock, **self._poller_args)
            self.run_worker(self.poller.run(), group="poller", exclusive=True, exit_on_error=False)

    def watch_theme(self, theme: str) -> None:
        if self.config_dir and self.is_running:
            try:
                settings.write_setting(self.config_dir, "theme", theme)
            except OSError as exc:
                self.notify(f"cannot save the theme under {self.config_dir}: {exc.strerror}",
                            severity="warning")

    def kick(self) -> None:
        if self.poller is not None:
            self.poller.kick()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snap: JobSnapshot) -> None:
        self.snapshots += 1
        self.snapshot = snap

    def on_master_ready(self, message: MasterReady) -> None:
        self.access = message.access

    def select_job(self, name: str) -> None:
        """Under a jobs root: show and steer the job NAME (the poller switches, reads it now)."""
        if self.poller is not None:
            self.poller.select(name)
            self.poller.publish()
        elif self.snapshot is not None and self.snapshot.root and self.snapshot.selected != name:
            self.snapshot = dataclasses.replace(self.snapshot, selected=name)  # fixed data (tests)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keys = []
        seen = set()
        for active in self.active_bindings.values():
            b = active.binding
            if not b.id or b.action in ("help", "app.help") or b.id in seen:
                continue  # only our own bindings: widget and system keys are not remappable here
            seen.add(b.id)
            keys.append((self.get_key_display(b), b.tooltip or b.description or b.action, b.id))
        keys.append((self.get_key_display(Binding("question_mark", "help")), "this help", "help"))
        keys.append(("↑ ↓ pgdn", "select a node", ""))
        keys.append(("ctrl+p", "palette: commands, theme", ""))
        self.push_screen(HelpScreen(keys))


def binding_ids() -> set[str]:
    """Every binding id keymap.yaml may name."""
    from .screens import confirm, editor, failed, log
    classes = (PpssConsole, MainScreen, HelpScreen, confirm.ConfirmScreen, editor.EditorScreen,
               failed.FailedScreen, log.LogScreen)
    return {b.id for cls in classes for b in cls.BINDINGS if isinstance(b, Binding) and b.id}


def run_console(args, intro: list[str] | None = None) -> int:
    """Run the console; ``intro`` lines (the demo's) are shown in it, not hidden behind it."""
    cluster = load_cluster(args.cluster)
    app = PpssConsole(cluster, keymap=read_keymap(known=binding_ids()), config_dir=settings.config_dir())
    app.intro = list(intro or [])
    app.run()
    return 0
