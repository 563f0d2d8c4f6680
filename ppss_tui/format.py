"""How numbers, ages and states read on screen (pure functions, shared by the widgets)."""

from __future__ import annotations

import datetime as dt

import humanize

from .snapshot import (CONNECTING, HOSTKEY_CHANGED, HOSTKEY_UNKNOWN, LOGIN_REFUSED, NOT_LISTED,
                       UNREACHABLE, UP, JobSnapshot, NodeRow)


def count(n: int) -> str:
    return f"{n:,}"


def short_count(n: int) -> str:
    """A count in few characters: 9,999 as is, then 12.3k, 100k, 1.2M."""
    if n < 10_000:
        return f"{n:,}"
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            v = n / size
            return f"{v:.1f}{unit}" if v < 100 and v != int(v) else f"{v:.0f}{unit}"
    return str(n)


def rate(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.1f}/s" if r < 100 else f"{r:,.0f}/s"


NO_VALUE = "—"


def eta(snapshot: JobSnapshot) -> str:
    """finished; paused/suspended while the job does not run; "—" when it cannot be told."""
    state = snapshot.job_state
    if state == "finished":
        return "finished"
    if state in ("paused", "halted", "suspended"):
        return state
    if not snapshot.eta_known:
        return NO_VALUE
    if snapshot.eta < 1:
        return "any moment"
    return humanize.naturaldelta(dt.timedelta(seconds=snapshot.eta))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 2:
        return "now"
    return humanize.naturaldelta(dt.timedelta(seconds=seconds)) + " ago"


def short_age(seconds: float | None) -> str:
    """A table-width age: now, 27 s, 5 min, 3 h, 2 d. Workers write a heartbeat every second and
    SFTP mtimes have one-second steps, so anything under 5 s is "now" (a row does not flicker)."""
    if seconds is None:
        return "-"
    if seconds < 5:
        return "now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def load(values: tuple[float, float, float] | None) -> str:
    return "-" if values is None else " ".join(f"{v:.2f}" for v in values)


def memory(free: int | None, total: int | None) -> str:
    if free is None:
        return "-"
    text = humanize.naturalsize(free, binary=True, format="%.1f")
    if total:
        text += f" ({100 * free / total:.0f}%)"
    return text


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def slots(row: NodeRow) -> str:
    """``busy/slots``; items still running beyond a lowered limit as ``+N``; a pending change ``→N``."""
    if row.reported:
        used = row.slots_used
        text = f"{min(used, row.slots)}/{row.slots}"
        if used > row.slots:
            text += f" +{used - row.slots}"
    else:
        text = "-"
    if row.slots_target is not None:
        text += f" →{row.slots_target}"
    return text


CONN_STYLE = {UP: "green", CONNECTING: "yellow", UNREACHABLE: "bold red", HOSTKEY_CHANGED: "bold red",
              HOSTKEY_UNKNOWN: "bold yellow", LOGIN_REFUSED: "bold red", NOT_LISTED: "dim"}

STATE_STYLE = {"running": "green", "paused": "yellow", "suspended": "magenta", "stopping": "yellow",
               "stopped": "dim", "finished": "blue", "error": "bold red", "lost": "bold red",
               "starting": "cyan", "no worker": "dim", "no workers": "bold yellow", "halted": "bold yellow"}


def seconds_left(seconds: float | None) -> str:
    """An ETA in a table cell: "—" unknown, "done" at 0, else 42 s, 5 min, 3 h, 2 d."""
    if seconds is None:
        return NO_VALUE
    if seconds <= 0:
        return "done"
    return short_age(seconds) if seconds >= 5 else "< 5 s"


def job_eta(row) -> str:
    """A jobs-list row's ETA: its state (a halt's reason) when it does not run."""
    if row.state == "halted" and row.halted:
        return row.halted
    if row.state in ("paused", "halted", "stopped"):
        return row.state
    return seconds_left(row.eta)


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
