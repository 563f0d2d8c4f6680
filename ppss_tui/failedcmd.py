"""``ppss-console failed JOB``: failed items grouped like the console's failed view
(``failgroups``: same exit code and output once the item's own path and name are masked, nodes
folded); ``--raw`` lists every record, ``--json`` prints them as JSON."""

from __future__ import annotations

import argparse
import json

from worker import layout as L
from worker.errors import EXIT_OK
from worker.jobops import failed_items
from worker.jobstatus import read_spec

from .failgroups import group_failures

SHOWN_LINES = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group()
    out.add_argument("--raw", action="store_true", help="every failed record, one line each (not grouped)")
    out.add_argument("--json", action="store_true", help="every failed record as JSON")


def grouped_lines(records: list[dict]) -> list[str]:
    groups = group_failures(records)
    if not groups:
        return ["no failed items"]
    n = len(records)
    lines = [f"{n} failed item{'s' * (n != 1)} in {len(groups)} group{'s' * (len(groups) != 1)}"]
    for g in groups:
        lines.append(f"\n{g.count} item{'s' * (g.count != 1)} · exit {g.exit} · on {g.nodes}")
        tail = g.tail.splitlines()[-SHOWN_LINES:] or ["(no output)"]
        lines += [f"    | {t}" for t in tail]
        more = f" (and {g.count - 1} more)" if g.count > 1 else ""
        lines.append(f"    first: {g.first_item}{more}")
    return lines


def raw_lines(records: list[dict]) -> list[str]:
    if not records:
        return ["no failed items"]
    out = []
    for r in sorted(records, key=lambda r: r.get("start") or 0):
        item = L.display_item(L.item_from_json(r.get("item", "")), 80)
        out.append(f"exit {r.get('exit')}  node {r.get('node', '?')}  attempt {r.get('attempt', 1)}  {item}")
    return out


async def run(args, store) -> int:
    """``store``: the job's open store (the caller opens and closes it)."""
    await read_spec(store)
    records = await failed_items(store)
    if args.json:
        print(json.dumps(records))
    else:
        print("\n".join(raw_lines(records) if args.raw else grouped_lines(records)))
    return EXIT_OK
