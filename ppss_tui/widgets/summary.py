"""The top of the main screen: the job, overall progress, counts, rate with sparkline, ETA."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Sparkline, Static

from .. import format as F
from ..snapshot import JobSnapshot


class JobSummary(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="job-title")
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=1, show_eta=False, id="progress")
            yield Static(id="counts")
        with Horizontal(id="rate-row"):
            yield Static(id="rate")
            yield Sparkline([], id="spark")
            yield Static(id="eta")
        yield Static(id="locks")

    def show(self, snap: JobSnapshot, now: float) -> None:
        title = Text()
        title.append("job ", "dim")
        title.append(snap.job, "bold")
        title.append("  state ", "dim")
        title.append(snap.control_state, F.STATE_STYLE.get(snap.control_state, "bold"))
        title.append("  master ", "dim")
        title.append(snap.master_state, "green" if snap.master_state == "up" else "bold red")
        if snap.taken:
            title.append(f"  updated {F.age(max(0.0, now - snap.taken))}", "dim")
        if snap.command:
            title.append("\ncommand ", "dim")
            title.append(snap.command)
        self.query_one("#job-title", Static).update(title)

        self.query_one("#progress", ProgressBar).update(total=max(1, snap.total),
                                                        progress=snap.done + snap.failed)
        counts = Text()
        for label, value, style in (("done", snap.done, "green"), ("running", snap.running, "cyan"),
                                    ("failed", snap.failed, "red" if snap.failed else "dim"),
                                    ("pending", snap.pending, "")):
            counts.append(f" {label} ", "dim")
            counts.append(F.count(value), style)
        counts.append(f"  of {F.count(snap.total)}", "dim")
        self.query_one("#counts", Static).update(counts)

        self.query_one("#rate", Static).update(Text.assemble(("rate ", "dim"), (F.rate(snap.rate), "bold")))
        self.query_one("#spark", Sparkline).data = list(snap.history) or [0.0]
        self.query_one("#eta", Static).update(Text.assemble(("ETA ", "dim"), (F.eta(snap), "bold")))

        locks = Text()
        locks.append("locks ", "dim")
        locks.append(f"claimed {F.count(snap.claimed)} · done {F.count(snap.done)} · "
                     f"failed {F.count(snap.failed)} · of {F.count(snap.total)}")
        if snap.retry_pending:
            locks.append(f" · retry queue {F.count(snap.retry_pending)}")
        if snap.recount is not None:
            # Counters only grow: records beyond them mean a node's counters lag (a crash just
            # after a commit). A recount within them has nothing to add.
            extra_done = snap.recount[0] - snap.done
            extra_failed = snap.recount[1] - snap.failed
            if extra_done > 0 or extra_failed > 0:
                locks.append(f"   recount {F.age(max(0.0, now - (snap.recount_at or now)))}: records show "
                             f"{F.count(snap.recount[0])} done, {F.count(snap.recount[1])} failed "
                             "(node counters lag)", "yellow")
        if snap.master_error:
            locks.append(f"\n{snap.master_error}", "bold red")
        if snap.control_error:
            locks.append(f"\ncontrol.yaml: {snap.control_error}", "bold red")
        self.query_one("#locks", Static).update(locks)
