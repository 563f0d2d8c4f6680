"""Pure helpers for the failed-items view: fold node names, group identical failures."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from worker import layout as L

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def fold_names(names: Iterable[str]) -> str:
    """``node1 node2 node3 node7 web`` -> ``node[1-3,7],web``.

    Names that end in digits are grouped by the text before the digits; zero-padded numbers
    keep their width (``n01 n02`` -> ``n[01-02]``) and are never mixed with unpadded ones.
    A group of one is written plainly (``node7``). Duplicates are ignored. Output is sorted.
    """
    groups: dict[tuple[str, int], list[int]] = {}
    plain: set[str] = set()
    numbered: list[tuple[str, str]] = []
    padded: dict[str, set[int]] = {}
    for name in names:
        m = _NUMBERED.match(name)
        if not m:
            plain.add(name)
            continue
        prefix, digits = m.groups()
        numbered.append((prefix, digits))
        if digits.startswith("0") and len(digits) > 1:
            padded.setdefault(prefix, set()).add(len(digits))
    for prefix, digits in numbered:
        # n01 n02 n10 share a width of 2; n1 (unpadded, shorter) stays apart from n01.
        width = len(digits) if len(digits) in padded.get(prefix, ()) else 0
        groups.setdefault((prefix, width), []).append(int(digits))
    parts: list[tuple[str, str]] = [(name, name) for name in plain]
    for (prefix, width), numbers in groups.items():
        fmt = (lambda n, w=width: f"{n:0{w}d}") if width else str
        spans = _ranges(numbers)
        if len(spans) == 1 and spans[0][0] == spans[0][1]:
            text = f"{prefix}{fmt(spans[0][0])}"
        else:
            body = ",".join(fmt(a) if a == b else f"{fmt(a)}-{fmt(b)}" for a, b in spans)
            text = f"{prefix}[{body}]"
        parts.append((f"{prefix}\0{width:03d}", text))
    return ",".join(sorted(text for _, text in parts))


@dataclass(frozen=True)
class FailureGroup:
    """Failed items whose exit code and (item-neutral) output tail are the same."""
    exit: object
    tail: str                      # the output tail, the item's own text replaced by $ITEM
    nodes: str                     # folded node names
    count: int
    items: tuple[str, ...]         # display forms, in start order
    ids: tuple[str, ...]
    records: tuple[dict, ...] = ()

    @property
    def first_item(self) -> str:
        return self.items[0] if self.items else ""


def _neutral_tail(record: dict, lines: int) -> str:
    tail = str(record.get("output_tail") or "")
    item = str(record.get("item") or "")
    if item:
        tail = tail.replace(item, "$ITEM")
    kept = tail.rstrip("\n").splitlines()[-lines:]
    return "\n".join(kept)


def group_failures(records: Iterable[dict], tail_lines: int = 6) -> list[FailureGroup]:
    """Group failed records by (exit code, last lines of output with the item replaced by $ITEM).

    Largest groups first; ties by exit code then first start time.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        key = (repr(r.get("exit")), _neutral_tail(r, tail_lines))
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
