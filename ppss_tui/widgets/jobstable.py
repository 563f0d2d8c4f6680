"""The jobs of a jobs root, above the dashboard: name, state, progress, failed, rate, ETA.

One row per job (``snapshot.JobRow``, in ``list_jobs``' order: priority, then age). The row of
the job the dashboard shows is marked ``▶``; moving the cursor here selects that job (the
screen asks the app to switch). Cells only change when a job's figures do.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from .. import format as F
from ..snapshot import JobRow
from .tables import cursor_row_key, fit_columns

# (key, label, width): None = sized from the rows. The first five always (they fit 80
# columns); the others as the width allows.
COLUMNS = (("name", "Job", None), ("state", "State", 8), ("progress", "Progress", None),
           ("rate", "Rate", 7), ("eta", "ETA", 11), ("failed", "Failed", 6), ("prio", "Prio", 4))
ALWAYS = 5
NAME_WIDTH = 18


def progress(row: JobRow) -> str:
    return f"{100 * row.fraction:3.0f}% {F.short_count(row.done + row.failed)}/{F.short_count(row.total)}"


def job_name(row: JobRow, selected: bool) -> Text:
    name = row.name if len(row.name) <= NAME_WIDTH else row.name[:NAME_WIDTH - 1] + "…"
    return Text(("▶ " if selected else "  ") + name, "bold" if selected else "")


def job_cells(row: JobRow, selected: bool) -> dict[str, Text]:
    return {
        "name": job_name(row, selected),
        "state": Text(row.state, F.STATE_STYLE.get(row.state, "")),
        "progress": Text(progress(row), justify="right"),
        "failed": Text(F.count(row.failed), "red" if row.failed else "", justify="right"),
        "rate": Text(F.rate(row.rate), justify="right"),
        "eta": Text(F.job_eta(row), justify="right"),
        "prio": Text(str(row.priority), justify="right"),
    }


def job_columns(width: int, rows: list[JobRow]) -> tuple[str, ...]:
    auto = {"name": max([5, *(min(NAME_WIDTH, len(r.name)) + 2 for r in rows)]),
            "progress": max([8, *(len(progress(r)) for r in rows)])}
    return fit_columns(COLUMNS, width, ALWAYS, 2, auto.__getitem__)


class JobsTable(DataTable):
    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=1, **kw)
        self.jobs: list[JobRow] = []
        self.current = ""            # the job the dashboard shows
        self._keys: tuple[str, ...] = ()
        self._cells: dict[str, dict[str, Text]] = {}

    @property
    def highlighted(self) -> str | None:
        return cursor_row_key(self)

    def on_resize(self) -> None:
        self.show(self.jobs, self.current, force=True)

    def show(self, rows: list[JobRow], current: str, force: bool = False) -> None:
        keys = job_columns(self.size.width or 80, rows)
        cells = {r.name: job_cells(r, r.name == current) for r in rows}
        same_rows = [r.name for r in rows] == [r.name for r in self.jobs]
        self.jobs, self.current = list(rows), current
        if not force and same_rows and keys == self._keys:
            for name, new in cells.items():
                old = self._cells.get(name, {})
                for key in keys:
                    if old.get(key) != new[key]:
                        self.update_cell(name, key, new[key])
            self._cells = cells
            return
        # A rebuild moves the cursor back to the current job: the highlight events it causes
        # are read against ``highlighted`` (where the cursor is now), so they switch nothing.
        self._cells = cells
        self.clear(columns=keys != self._keys)
        if keys != self._keys:
            for key, label, width in COLUMNS:
                if key in keys:
                    self.add_column(label, key=key, width=width)
            self._keys = keys
        for r in rows:
            self.add_row(*(cells[r.name][k] for k in keys), key=r.name)
        names = [r.name for r in rows]
        if current in names:
            self.move_cursor(row=names.index(current), animate=False)
