"""The top of the main screen: the job and its state, done and failed apart, rate, ETA.

Bound to the screen's reactive snapshot; it only formats values the snapshot computed.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from .. import format as F
from ..snapshot import JobSnapshot
from .quiet import set_text


class DoneFailedBar(Widget):
    """A one-line bar: done in green, failed in red, what is left dim."""

    snapshot: reactive[JobSnapshot | None] = reactive(None, always_update=True)

    def render(self) -> Text:
        snap, width = self.snapshot, max(1, self.size.width)
        if snap is None:
            return Text("─" * width, "dim")
        done = round(snap.done_fraction * width)
        failed = min(width - done, round(snap.failed_fraction * width))
        if snap.failed and not failed and done < width:
            failed = 1  # a failure is never invisible
        return Text.assemble(("█" * done, "green"), ("█" * failed, "red"), ("─" * (width - done - failed), "dim"))


class JobSummary(Vertical):
    snapshot: reactive[JobSnapshot | None] = reactive(None, always_update=True)

    def compose(self) -> ComposeResult:
        yield Static(id="job-title")
        with Horizontal(id="progress-row"):
            yield DoneFailedBar(id="progress").data_bind(JobSummary.snapshot)
            yield Static(id="percent")
        yield Static(id="counts")
        with Horizontal(id="rate-row"):
            yield Static(id="rate")
            yield Sparkline([], id="spark")
            yield Static(id="eta")
        yield Static(id="notes")

    def watch_snapshot(self, snap: JobSnapshot | None) -> None:
        if snap is not None and self.is_mounted:
            self.show(snap, self.app.clock())

    def show(self, snap: JobSnapshot, now: float) -> None:
        state = snap.job_state
        title = Text()
        title.append("job ", "dim")
        title.append(snap.job, "bold")
        if state:
            title.append("  ")
            title.append(state, F.STATE_STYLE.get(state, "bold"))
            if state == "halted" and snap.halted:
                title.append(f": {snap.halted}", F.STATE_STYLE["halted"])
        if snap.master_state != "up":
            title.append("  master ", "dim")
            title.append(snap.master_state, "bold red")
        if snap.taken:
            title.append(f"  updated {F.age(max(0.0, now - snap.taken))}", "dim")
        if snap.command:  # one line, cut at the width: the whole command is in job.yaml and `e`
            title.append("\ncommand ", "dim")
            title.append(" ".join(snap.command.split()))
        title.no_wrap, title.overflow = True, "ellipsis"
        set_text(self.query_one("#job-title", Static), title)
        set_text(self.query_one("#percent", Static), Text(f" {100 * snap.fraction:.0f}%", "bold"), fixed=True)

        counts = Text()
        for value, label, style in ((snap.done, "done", "green"), (snap.failed, "failed", "red" if snap.failed else ""),
                                    (snap.running, "running", "cyan"), (snap.pending, "waiting", "")):
            if counts:
                counts.append(" · ", "dim")
            counts.append(F.count(value), style or "bold")
            counts.append(f" {label}", "dim")
        counts.append(f" of {F.count(snap.total)} items", "dim")
        set_text(self.query_one("#counts", Static), counts)

        set_text(self.query_one("#rate", Static), Text.assemble(("rate ", "dim"), (F.rate(snap.rate), "bold")),
                 fixed=True)
        spark = self.query_one("#spark", Sparkline)
        spark.display = bool(snap.history)
        if snap.history and list(snap.history) != spark.data:
            spark.data = list(snap.history)
        set_text(self.query_one("#eta", Static), Text.assemble(("ETA ", "dim"), (F.eta(snap), "bold")), fixed=True)
        set_text(self.query_one("#notes", Static), notes(snap, now))


def notes(snap: JobSnapshot, now: float) -> Text:
    """What needs a word beyond the counts: retry queue, counters behind the records, errors."""
    text = Text()
    if snap.queued:
        text.append(f"{F.count(snap.queued)} queued on nodes  ", "dim")
    if snap.retry_pending:
        text.append(f"{F.count(snap.retry_pending)} to retry  ", "yellow")
    if snap.counter_lag is not None and snap.recount is not None:
        text.append(f"records ({F.age(max(0.0, now - (snap.recount_at or now)))}): "
                    f"{F.count(snap.recount[0])} done, {F.count(snap.recount[1])} failed; node counters lag",
                    "yellow")
    if snap.master_error:
        text.append(f"\n{snap.master_error}", "bold red")
    if snap.control_error:
        text.append(f"\ncontrol.yaml: {snap.control_error}", "bold red")
    return text
