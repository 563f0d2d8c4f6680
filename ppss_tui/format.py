"""How numbers, ages and states read on screen (pure functions, shared by the widgets)."""

from __future__ import annotations

import datetime as dt

import humanize

from .snapshot import (CONNECTING, HOSTKEY_CHANGED, HOSTKEY_UNKNOWN, LOGIN_REFUSED, NOT_LISTED,
                       UNREACHABLE, UP, JobSnapshot, NodeRow)


def count(n: int) -> str:
    return f"{n:,}"


def rate(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.1f}/s" if r < 100 else f"{r:,.0f}/s"


def eta(snapshot: JobSnapshot) -> str:
    if snapshot.finished:
        return "finished"
    if snapshot.eta is None:
        return "unknown"
    if snapshot.eta < 1:
        return "any moment"
    return humanize.naturaldelta(dt.timedelta(seconds=snapshot.eta))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 2:
        return "now"
    return humanize.naturaldelta(dt.timedelta(seconds=seconds)) + " ago"


def load(values: tuple[float, float, float] | None) -> str:
    return "-" if values is None else " ".join(f"{v:.2f}" for v in values)


def memory(free: int | None, total: int | None) -> str:
    if free is None:
        return "-"
    text = humanize.naturalsize(free, binary=True, format="%.1f")
    if total:
        text += f" ({100 * free / total:.0f}%)"
    return text


def slots(row: NodeRow) -> str:
    used = len(row.running)
    text = f"{used}/{row.slots}" if row.reported else "-"
    if row.control_slots is not None and (not row.reported or row.control_slots != row.slots):
        text += f" (→{row.control_slots})"
    return text


CONN_STYLE = {UP: "green", CONNECTING: "yellow", UNREACHABLE: "bold red", HOSTKEY_CHANGED: "bold red",
              HOSTKEY_UNKNOWN: "bold yellow", LOGIN_REFUSED: "bold red", NOT_LISTED: "dim"}

STATE_STYLE = {"running": "green", "paused": "yellow", "suspended": "magenta", "stopping": "yellow",
               "stopped": "dim", "finished": "blue", "error": "bold red", "lost": "bold red",
               "starting": "cyan", "no worker": "dim"}


def conn(row: NodeRow) -> str:
    if row.conn in (HOSTKEY_CHANGED, HOSTKEY_UNKNOWN) and row.fingerprint:
        return f"{row.conn} {row.fingerprint}"
    return row.conn


def current(row: NodeRow, width: int = 40) -> str:
    if not row.running:
        return ""
    first = row.running[0].item
    more = f" +{len(row.running) - 1}" if len(row.running) > 1 else ""
    room = max(8, width - len(more))
    if len(first) > room:
        first = first[: room - 1] + "…"
    return first + more
