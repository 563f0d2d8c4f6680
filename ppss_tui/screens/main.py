"""The main screen: job summary, node table, selected node detail, the filter, and the steering keys.

Under a jobs root the root's jobs are listed above the summary (``JobsTable``); the job under
the cursor there is the one the dashboard shows and every key acts on (``app.select_job``).

The screen holds a reactive snapshot (bound to the app's) and a reactive ``nodeview.View``
(filter, sort, problems first); the table shows ``view.arrange(snapshot.nodes)``.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from worker.errors import PpssError

from .. import format as F
from ..nodeview import SORTS, View
from ..snapshot import JobSnapshot
from ..widgets import JobsTable, JobSummary, NodeDetail, NodeTable
from .confirm import ConfirmScreen
from .editor import EditorScreen
from .failed import FailedScreen
from .jobsroot import JobsRootMixin
from .log import LogScreen

HEADER_SORTS = {"name": "name", "failed": "failed", "rate": "rate", "beat": "heartbeat"}


class MainScreen(JobsRootMixin, Screen):
    # Footer order: the first ones stay visible at 80 columns.
    BINDINGS = [
        Binding("question_mark", "app.help", "Help", id="help", tooltip="this help"),
        Binding("q", "app.quit", "Quit", id="quit", tooltip="quit the console (the job goes on)"),
        Binding("slash", "filter", "Filter", id="filter_nodes", tooltip="filter nodes: a name, or a state (lost)"),
        Binding("f", "failed", "Failed", id="failed_items", tooltip="failed items, grouped by cause"),
        Binding("e", "edit", "Edit", id="edit_control", tooltip="edit control.yaml"),
        Binding("j", "focus_jobs", "Jobs", id="focus_jobs", tooltip="jobs list <-> nodes (jobs root)"),
        Binding("l", "log", "Log", id="show_log", tooltip="log of the selected node", show=False),
        Binding("p", "set_node_state('paused')", "Pause", id="pause_node", tooltip="pause the selected node"),
        Binding("r", "set_node_state('running')", "Resume", id="resume_node", tooltip="resume the selected node"),
        Binding("s", "stop", "Stop", id="stop_job", tooltip="stop the job (asks first)", show=False),
        Binding("o", "sort", "Sort", id="sort_nodes", tooltip="sort: file, name, failed, rate, heartbeat", show=False),
        Binding("exclamation_mark", "problems_first", "Problems first", id="problems_first", tooltip="lost, error, unreachable nodes first", show=False),
        Binding("escape", "clear_filter", "Clear filter", id="clear_filter", tooltip="clear the filter", show=False),
        Binding("P", "set_job_state('paused')", "Pause all", id="pause_all", tooltip="pause every node", show=False),
        Binding("R", "set_job_state('running')", "Resume all", id="resume_all", tooltip="resume every node", show=False),
        Binding("z", "set_node_state('suspended')", "Suspend", id="suspend_node", tooltip="suspend the selected node (SIGSTOP)", show=False),
        Binding("Z", "set_job_state('suspended')", "Suspend all", id="suspend_all", tooltip="suspend every node", show=False),
        Binding("plus", "slots(1)", "+slot", id="slots_up", tooltip="one more slot on the selected node", show=False),
        Binding("minus", "slots(-1)", "-slot", id="slots_down", tooltip="one slot fewer on the selected node", show=False),
    ]

    snapshot: reactive[JobSnapshot | None] = reactive(None, always_update=True, init=False)
    view: reactive[View] = reactive(View, always_update=True, init=False)

    def compose(self) -> ComposeResult:
        yield JobsTable(id="jobs")
        yield Static(id="jobs-note")
        yield JobSummary(id="summary").data_bind(MainScreen.snapshot)
        yield NodeTable(id="nodes")
        yield NodeDetail(id="node-detail")
        yield Static(id="view-line")
        yield Input(placeholder="filter: a name, or a state (lost, paused, unreachable, problem)", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one(NodeTable).focus()
        self.render_view()

    # ---- rendering -------------------------------------------------------------------------
    def watch_snapshot(self, old: JobSnapshot | None, new: JobSnapshot | None) -> None:
        if bool(old and old.root) != bool(new and new.root):
            self.refresh_bindings()
        self.render_view()

    def watch_view(self) -> None:
        self.render_view(force=True)

    def render_view(self, force: bool = False) -> None:
        snap = self.snapshot
        try:
            table, line = self.query_one(NodeTable), self.query_one("#view-line", Static)
        except NoMatches:
            return  # not composed yet, or being torn down as the app exits
        self.render_jobs(snap, force)
        rows = self.view.arrange(snap.nodes) if snap else []
        table.show(rows, force=force)
        default = self.view == View()
        line.display = not default
        if not default:
            line.update(Text(self.view.describe(len(rows), len(snap.nodes) if snap else 0)
                             + "   (esc clears, o sorts, ! problems first)", "bold"))
        self.show_detail(table.selected)

    def show_detail(self, name: str | None) -> None:
        snap = self.snapshot
        self.query_one(NodeDetail).show(snap.node(name) if snap and name else None, self.app.clock())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, JobsTable):
            self.job_highlighted(event.data_table)
            return
        self.show_detail(event.row_key.value if event.row_key is not None else None)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        sort = HEADER_SORTS.get(str(event.column_key.value))
        if sort is None:
            self.notify(f"sort by {' / '.join(SORTS)}: click those headers or press o", timeout=4)
            return
        self.view = View(self.view.filter, sort, self.view.problems_first)

    # ---- finding nodes -----------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.view = View(event.value, self.view.sort, self.view.problems_first)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(NodeTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.value or box.display:
            box.value = ""
            box.display = False
            self.view = View("", self.view.sort, self.view.problems_first)
            self.query_one(NodeTable).focus()

    def action_sort(self) -> None:
        self.view = self.view.next_sort()

    def action_problems_first(self) -> None:
        self.view = View(self.view.filter, self.view.sort, not self.view.problems_first)

    def action_select_node(self, name: str) -> None:
        table = self.query_one(NodeTable)
        if name not in [r.name for r in table.rows_shown]:
            self.action_clear_filter()
        names = [r.name for r in table.rows_shown]
        if name in names:
            table.move_cursor(row=names.index(name))
            table.focus()

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
    def action_set_node_state(self, state: str, node: str | None = None) -> None:
        node, access = node or self.selected_node, self._access()
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

        snap = self.snapshot
        job = f"job {snap.selected}" if snap and snap.root and snap.selected else "job"

        def answered(yes: bool | None) -> None:
            if yes:
                self._change(f"{job}: stopped (running items finish, then workers exit)",
                             lambda: access.set_state("stopped"))
        self.app.push_screen(ConfirmScreen(f"Stop the {job}?\n\nEvery worker lets its running items finish, "
                                           "then exits. Resume (R) and restart the workers to go on.",
                                           yes="Stop"), answered)

    def action_slots(self, delta: int) -> None:
        node, access, snap = self.selected_node, self._access(), self.snapshot
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
        self._change(f"{node}: {F.plural(new, 'slot')}", lambda: access.set_slots(node, new))

    def action_edit(self) -> None:
        access = self._access()
        if access is not None:
            self.app.push_screen(EditorScreen(access))

    def action_failed(self) -> None:
        access = self._access()
        if access is not None:
            self.app.push_screen(FailedScreen(access))

    def action_log(self) -> None:
        node, access, snap = self.selected_node, self._access(), self.snapshot
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
