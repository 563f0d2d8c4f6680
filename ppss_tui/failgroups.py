"""Failed items grouped by cause, for the console's failed view and ``ppss-console failed``.

Records with the same exit code and the same output tail make one group once the item's own
text is masked: its full path as ``$ITEM``, and any path ending in its file name (a copy in a
work directory, a log naming it) or the bare name as ``$NAME``. Node names are folded with
ClusterShell's ``NodeSet`` (``node[1-3,7]``). No Textual here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ClusterShell.NodeSet import NodeSet, NodeSetException

from worker import layout as L


def fold_names(names: Iterable[str]) -> str:
    """``node1 node2 node3 node7 web`` -> ``node[1-3,7],web`` (sorted, duplicates once)."""
    names = sorted(set(names))
    try:
        return str(NodeSet.fromlist(names))
    except NodeSetException:  # a name NodeSet cannot parse (brackets, commas): listed as is
        return ",".join(names)


def mask_item(text: str, item: str) -> str:
    """``text`` with the item's own path and file name masked (``$ITEM``, ``$NAME``)."""
    if item:
        text = text.replace(item, "$ITEM")
        name = os.path.basename(item.rstrip("/"))
        if len(name) >= 3:
            text = re.sub(r"(?:[^\s'\":]*/)?" + re.escape(name), "$NAME", text)
    return text


def tail_end(text: str, width: int) -> str:
    """The end of a line cut to ``width`` (the error is at the end), with "…" in front when cut."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


@dataclass(frozen=True)
class FailureGroup:
    """Failed items whose exit code and masked output tail are the same."""
    exit: object
    tail: str                      # the output tail, the item's own text masked
    nodes: str                     # folded node names
    count: int
    items: tuple[str, ...]         # display forms, in start order
    ids: tuple[str, ...]
    records: tuple[dict, ...] = ()

    @property
    def first_item(self) -> str:
        return self.items[0] if self.items else ""

    @property
    def last_line(self) -> str:
        return self.tail.splitlines()[-1] if self.tail else ""


def masked_tail(record: dict, lines: int) -> str:
    tail = str(record.get("output_tail") or "")
    kept = mask_item(tail, str(record.get("item") or "")).rstrip("\n").splitlines()[-lines:]
    return "\n".join(kept)


def group_failures(records: Iterable[dict], tail_lines: int = 6) -> list[FailureGroup]:
    """Group failed records by (exit code, last lines of output with the item masked).

    Largest groups first; ties by exit code then first start time.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        key = (repr(r.get("exit")), masked_tail(r, tail_lines))
        groups.setdefault(key, []).append(r)
    out = []
    for (_, tail), recs in groups.items():
        recs.sort(key=lambda r: (r.get("start") or 0, str(r.get("id") or "")))
        out.append(FailureGroup(
            exit=recs[0].get("exit"), tail=tail,
            nodes=fold_names(str(r.get("node") or "?") for r in recs), count=len(recs),
            items=tuple(L.display_item(L.item_from_json(str(r.get("item") or "")), 200) for r in recs),
            ids=tuple(str(r.get("id") or "") for r in recs), records=tuple(recs)))
    out.sort(key=lambda g: (-g.count, repr(g.exit), min((r.get("start") or 0) for r in g.records)))
    return out
