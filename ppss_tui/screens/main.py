"""The main screen: job summary, node table, selected node detail, and the steering keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from worker.errors import PpssError

from ..snapshot import JobSnapshot
from ..widgets import JobSummary, NodeDetail, NodeTable
from .confirm import ConfirmScreen
from .editor import EditorScreen
from .failed import FailedScreen
from .log import LogScreen


class MainScreen(Screen):
    BINDINGS = [
        Binding("p", "set_node_state('paused')", "Pause", id="pause_node"),
        Binding("r", "set_node_state('running')", "Resume", id="resume_node"),
        Binding("P", "set_job_state('paused')", "Pause all", id="pause_all"),
        Binding("R", "set_job_state('running')", "Resume all", id="resume_all"),
        Binding("s", "stop", "Stop", id="stop_job"),
        Binding("z", "set_node_state('suspended')", "Suspend", id="suspend_node"),
        Binding("Z", "set_job_state('suspended')", "Suspend all", id="suspend_all", show=False),
        Binding("plus", "slots(1)", "+slot", id="slots_up"),
        Binding("minus", "slots(-1)", "-slot", id="slots_down"),
        Binding("e", "edit", "Edit control", id="edit_control"),
        Binding("f", "failed", "Failed", id="failed_items"),
        Binding("l", "log", "Log", id="show_log"),
    ]

    def compose(self) -> ComposeResult:
        yield JobSummary(id="summary")
        yield NodeTable(id="nodes")
        yield NodeDetail(id="node-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(NodeTable).focus()
        if self.app.snapshot is not None:
            self.show(self.app.snapshot)

    # ---- rendering -------------------------------------------------------------------------
    def show(self, snap: JobSnapshot) -> None:
        now = self.app.clock()
        try:
            summary, table = self.query_one(JobSummary), self.query_one(NodeTable)
        except NoMatches:
            return  # not composed yet, or being torn down as the app exits
        summary.show(snap, now)
        table.show(snap)
        self.query_one(NodeDetail).show(snap.node(table.selected) if table.selected else None, now)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        snap = self.app.snapshot
        if snap is not None:
            self.query_one(NodeDetail).show(snap.node(event.row_key.value), self.app.clock())

    # ---- helpers ---------------------------------------------------------------------------
    @property
    def selected_node(self) -> str | None:
        return self.query_one(NodeTable).selected

    def _access(self):
        access = self.app.access
        if access is None:
            self.notify("the master is not connected yet", severity="warning")
        return access

    def _change(self, what: str, op) -> None:
        """Run a control.yaml change in the background; report the outcome."""
        async def run() -> None:
            try:
                await op()
            except PpssError as exc:
                self.notify(str(exc), severity="error", timeout=8)
                return
            self.notify(what)
            self.app.kick()
        self.run_worker(run(), group="control")

    # ---- actions ---------------------------------------------------------------------------
    def action_set_node_state(self, state: str) -> None:
        node, access = self.selected_node, self._access()
        if access is None:
            return
        if node is None:
            self.notify("no node selected", severity="warning")
            return
        self._change(f"{node}: {state}", lambda: access.set_state(state, node))

    def action_set_job_state(self, state: str) -> None:
        access = self._access()
        if access is not None:
            self._change(f"every node: {state}", lambda: access.set_state(state))

    def action_stop(self) -> None:
        access = self._access()
        if access is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._change("job: stopped (running items finish, then workers exit)",
                             lambda: access.set_state("stopped"))
        self.app.push_screen(ConfirmScreen("Stop the job?\n\nEvery worker lets its running items finish, "
                                           "then exits. Resume (R) and restart the workers to go on.",
                                           yes="Stop"), answered)

    def action_slots(self, delta: int) -> None:
        node, access, snap = self.selected_node, self._access(), self.app.snapshot
        if access is None or node is None or snap is None:
            return
        row = snap.node(node)
        base = row.control_slots if row and row.control_slots is not None else (row.slots if row else 0)
        if not base and row and not row.reported:
            spec = next((n for n in self.app.cluster.nodes if n.name == node), None)
            base = (spec.slots or 1) if spec else 1
        new = max(0, min(4096, base + delta))
        if new == base:
            self.app.bell()
            return
        self._change(f"{node}: {new} slots", lambda: access.set_slots(node, new))

    def action_edit(self) -> None:
        access = self._access()
        if access is not None:
            self.app.push_screen(EditorScreen(access))

    def action_failed(self) -> None:
        access = self._access()
        if access is not None:
            self.app.push_screen(FailedScreen(access))

    def action_log(self) -> None:
        node, access, snap = self.selected_node, self._access(), self.app.snapshot
        if access is None or node is None:
            return
        row = snap.node(node) if snap else None
        running = row.running if row else ()

        async def load() -> str:
            parts = []
            for r in running:
                text = await access.item_log(r.ident)
                parts.append(f"── running now on slot {r.slot}: {r.item}\n" +
                             (f"(log of its previous attempt)\n{text}" if text else
                              "(its log is written when it finishes)"))
            joblog = await access.node_joblog(node)
            parts.append(f"── job log of {node} (latest events)\n" + (joblog or "(empty)"))
            return "\n\n".join(parts)
        self.app.push_screen(LogScreen(f"log of node {node}", load))
