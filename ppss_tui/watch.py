"""``ppss-console status JOB --watch``: follow a job from a shell, as GNU parallel's ``--bar``/``--eta``.

On a terminal: one live line (bar with done and failed apart, counts, rate, ETA) rewritten in
place every interval. Piped: a plain, timestamped line whenever the counts or the state change.
Either way it ends when the job is finished (exit 1 if items failed, as ``status``); Ctrl-C
ends it earlier (130). The job's state, rate and ETA are the console's (``snapshot``). No Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from worker.errors import EXIT_ITEMS_FAILED, EXIT_OK, UsageError
from worker.jobstatus import read_spec

from . import format as F
from .snapshot import JobSnapshot, RateMeter, build_snapshot
from .statusread import StatusReader

BAR = 24


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watch", action="store_true",
                   help="follow the job until it is finished: a live bar and ETA on a terminal, lines when piped")
    p.add_argument("--interval", type=float, default=2.0, help="with --watch: seconds between reads (default 2)")


def bar(snap: JobSnapshot, width: int = BAR) -> str:
    done = round(snap.done_fraction * width)
    failed = min(width - done, round(snap.failed_fraction * width))
    if snap.failed and not failed and done < width:
        failed = 1
    return "#" * done + "x" * failed + "." * (width - done - failed)


def live_line(snap: JobSnapshot) -> str:
    """``[#####x......] 43% 430/1,000 done, 2 failed, 8 running · 12.5/s · ETA 45 seconds · running``"""
    return (f"[{bar(snap)}] {100 * snap.fraction:3.0f}% {F.count(snap.done)}/{F.count(snap.total)} done, "
            f"{F.count(snap.failed)} failed, {F.count(snap.running)} running · {F.rate(snap.rate)} · "
            f"ETA {F.eta(snap)} · {snap.job_state}")


def plain_line(snap: JobSnapshot, now: float) -> str:
    return (time.strftime("%H:%M:%S", time.localtime(now)) + f" {snap.job_state}: {F.count(snap.done)}/"
            f"{F.count(snap.total)} done, {F.count(snap.failed)} failed, {F.count(snap.running)} running, "
            f"{F.count(snap.pending)} waiting, rate {F.rate(snap.rate)}, ETA {F.eta(snap)}")


async def run(args, store, out=None, clock: Callable[[], float] = time.time) -> int:
    """Read the job every ``args.interval`` seconds until it is finished. ``store`` stays the caller's."""
    if getattr(args, "json", False) or getattr(args, "recount", False):
        raise UsageError("status --watch goes without --json and --recount")
    if args.interval <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    out = out or sys.stdout
    tty = out.isatty()
    spec = await read_spec(store)
    meter, reader = RateMeter(), StatusReader(threads=False)  # only changed status files each time
    last, key = "", None
    while True:
        status = await reader.read(store, spec)
        now = clock()
        meter.add(now, status.done + status.failed)
        snap = build_snapshot(store.label, status, (), {}, meter, {}, now)
        if tty:
            line = live_line(snap)
            out.write("\r" + line.ljust(len(last)))
            last = line
        else:
            if (snap.job_state, snap.done, snap.failed, snap.running) != key:
                out.write(plain_line(snap, now) + "\n")
                key = (snap.job_state, snap.done, snap.failed, snap.running)
        out.flush()
        if snap.job_state == "finished":
            if tty:
                out.write("\n")
            return EXIT_ITEMS_FAILED if status.failed else EXIT_OK
        await asyncio.sleep(args.interval)
