"""Which nodes the table shows and in what order: a filter, a sort key, problems first.

Pure functions over ``NodeRow``s (no Textual), so they are unit-tested and cost O(nodes log nodes).

* Filter: ``node2`` keeps names containing it; a state or connection word (``lost``,
  ``paused``, ``unreachable``, ``problem``...) keeps the nodes in that state instead.
* Sort: ``file`` (the cluster file's order, then nodes it does not list), ``name`` (natural: node2 before node10), ``failed`` (most first), ``rate`` (fastest
  first), ``heartbeat`` (longest silent first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .snapshot import NodeRow

SORTS = ("file", "name", "failed", "rate", "heartbeat")
STATE_WORDS = {"running", "paused", "suspended", "stopping", "stopped", "finished", "error", "lost",
               "starting", "no worker", "idle", "up", "connecting", "unreachable", "host key changed",
               "host key unknown", "login refused", "via master"}
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(name))


def matches(row: NodeRow, text: str) -> bool:
    text = text.strip().lower()
    if not text:
        return True
    if text in ("problem", "problems"):
        return row.problem
    if text in STATE_WORDS:
        return row.state == text or row.conn == text
    return text in row.name.lower()


def sort_key(sort: str):
    if sort == "file":
        return lambda r: 0  # sorted() is stable: the snapshot's order
    if sort == "failed":
        return lambda r: (-r.failed, natural_key(r.name))
    if sort == "rate":
        return lambda r: (-(r.rate or 0.0), natural_key(r.name))
    if sort == "heartbeat":
        return lambda r: (-(r.heartbeat_age if r.heartbeat_age is not None else float("inf")),
                          natural_key(r.name))
    return lambda r: natural_key(r.name)


@dataclass(frozen=True)
class View:
    filter: str = ""
    sort: str = "file"
    problems_first: bool = False

    def next_sort(self) -> "View":
        return View(self.filter, SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)], self.problems_first)

    def arrange(self, rows: Iterable[NodeRow]) -> list[NodeRow]:
        shown = sorted((r for r in rows if matches(r, self.filter)), key=sort_key(self.sort))
        if self.problems_first:
            shown.sort(key=lambda r: not r.problem)  # stable: keeps the sort within each part
        return shown

    def describe(self, shown: int, total: int) -> str:
        parts = ["cluster file order" if self.sort == "file" else f"sorted by {self.sort}"]
        if self.problems_first:
            parts.append("problems first")
        if self.filter:
            parts.insert(0, f"filter '{self.filter}': {shown} of {total} nodes")
        return " · ".join(parts)
