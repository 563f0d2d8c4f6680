"""The main screen's part for a jobs root: the jobs list above the dashboard, the ``j`` key, and
switching the job the dashboard shows and every key acts on (``app.select_job``)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..snapshot import JobSnapshot
from ..widgets import JobsTable, NodeTable


class JobsRootMixin:
    """Mixed into ``MainScreen`` (which composes ``JobsTable#jobs`` and ``Static#jobs-note``)."""

    def render_jobs(self, snap: JobSnapshot | None, force: bool = False) -> None:
        jobs, note = self.query_one(JobsTable), self.query_one("#jobs-note", Static)
        root = bool(snap and snap.root)
        jobs.display = root and bool(snap.jobs)
        note.display = root and not snap.jobs
        if root and snap.jobs:
            jobs.show(list(snap.jobs), snap.selected, force=force)
        elif root:
            note.update(Text(f"no jobs under {snap.root} yet: create one with ppss-console init NAME ...",
                             "bold yellow"))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "focus_jobs":  # only under a jobs root (hidden from the footer otherwise)
            snap = self.snapshot
            return bool(snap and snap.root)
        return True

    def job_highlighted(self, jobs: JobsTable) -> None:
        """The cursor of the jobs list moved: show that job (a rebuild's own moves switch nothing)."""
        name, snap = jobs.highlighted, self.snapshot
        if name and snap is not None and snap.root and name != snap.selected:
            self.app.select_job(name)

    def action_focus_jobs(self) -> None:
        jobs = self.query_one(JobsTable)
        if not jobs.display:
            self.notify("one job here: the cluster's master is a job, not a jobs root", timeout=4)
            return
        (self.query_one(NodeTable) if jobs.has_focus else jobs).focus()

    def action_select_job(self, name: str) -> None:
        jobs = self.query_one(JobsTable)
        names = [r.name for r in jobs.jobs]
        if name in names:
            jobs.move_cursor(row=names.index(name))
            jobs.focus()
        self.app.select_job(name)
