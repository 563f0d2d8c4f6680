"""The Textual operator console: ``ppss-console [--cluster ppss.yaml]`` with no subcommand.

Structure: ``poller.Poller`` reads the master and the nodes and posts ``messages.SnapshotReady``
carrying an immutable ``snapshot.JobSnapshot``; the app keeps the latest one and hands it to the
current screen, whose widgets only render it. Changes go through ``access.JobAccess``
(control.yaml via ``worker.jobops``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding

from worker.errors import UsageError
from worker.yamlio import load_yaml

from .clusterfile import Cluster, load_cluster
from .messages import MasterReady, SnapshotReady
from .poller import Poller
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .snapshot import JobSnapshot


class PpssConsole(App):
    CSS_PATH = "console.tcss"
    TITLE = "ppss console"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit"),
                Binding("question_mark", "help", "Help", id="help")]

    def __init__(self, cluster: Cluster, *, clock: Callable[[], float] = time.time, poll: bool = True,
                 snapshot: JobSnapshot | None = None, access=None, interval: float = 1.5,
                 node_interval: float = 3.0, keymap: dict[str, str] | None = None,
                 recount_every: float | None = 600.0) -> None:
        super().__init__()
        self.cluster = cluster
        self.clock = clock
        self.snapshot = snapshot
        self.access = access
        self.poll = poll
        self.poller: Poller | None = None
        self.snapshots = 0
        self._poller_args = dict(interval=interval, node_interval=node_interval, recount_every=recount_every)
        self._initial_keymap = keymap or {}

    def on_mount(self) -> None:
        if self._initial_keymap:
            self.set_keymap(self._initial_keymap)
        self.push_screen(MainScreen(id="main"))
        if self.poll:
            self.poller = Poller(self.cluster, self.post_message, self.clock, **self._poller_args)
            self.run_worker(self.poller.run(), group="poller", exclusive=True, exit_on_error=False)

    def kick(self) -> None:
        if self.poller is not None:
            self.poller.kick()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snap: JobSnapshot) -> None:
        self.snapshot = snap
        self.snapshots += 1
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.show(snap)
                break

    def on_master_ready(self, message: MasterReady) -> None:
        self.access = message.access

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keys = []
        for active in self.active_bindings.values():
            b = active.binding
            if not b.id or b.action == "help":
                continue  # only our own bindings: widget and system keys are not remappable here
            keys.append((self.get_key_display(b), b.description or b.action, b.id))
        keys.append((self.get_key_display(Binding("question_mark", "help")), "this help", "help"))
        keys.append(("↑ ↓ pgup pgdn", "select a node", ""))
        self.push_screen(HelpScreen(keys))


def read_keymap(path: str | None = None) -> dict[str, str]:
    """Binding id -> keys, from ~/.config/ppss/keymap.yaml (or $PPSS_KEYMAP) if it exists."""
    if path is None:
        path = os.environ.get("PPSS_KEYMAP") or os.path.join(
            os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "ppss", "keymap.yaml")
    try:
        with open(path, "rb") as fh:
            data = load_yaml(fh.read(), path, UsageError)
    except FileNotFoundError:
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"{path}: expected a mapping of binding id to keys (e.g. pause_node: ctrl+p)")
    return {str(k): v for k, v in data.items()}


def run_console(args) -> int:
    cluster = load_cluster(args.cluster)
    app = PpssConsole(cluster, keymap=read_keymap())
    app.run()
    return 0
