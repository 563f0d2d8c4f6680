"""The halt rule: a job pauses itself (state ``halted``) when its failures pass ``halt:``.

``halt: "N"``   halts when more than N items failed;
``halt: "N%"``  halts when more than N% of the finished items failed, once at least
                ``HALT_MIN_FINISHED`` items finished.
Failures are counted from ``halt_ignore_below`` (the failed count when the job was last resumed
from a halt), so a resumed job runs on until failures grow past the threshold again. The serving
worker (and anything else that notices) calls ``halt_reason`` and, on a reason, rewrites
control.yaml with ``Control.with_halt(reason)`` (see ``worker.jobops.apply_halt``).
"""

from __future__ import annotations

from .errors import UsageError

HALT_MIN_FINISHED = 10


def parse_halt(text: str, where: str = "--halt") -> tuple[float, bool]:
    """"N" -> (N, False); "N%" -> (N, True). UsageError with one line if neither."""
    raw = str(text).strip()
    percent = raw.endswith("%")
    number = raw[:-1].strip() if percent else raw
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not number or value < 0 or value != value or (percent and value > 100) or (
            not percent and not number.isdigit()):
        raise UsageError(f"{where}: {text!r} is not a count N or a percentage N% (e.g. 5 or 12%)")
    return value, percent


def halt_reason(spec, control, done: int, failed: int) -> str | None:
    """The reason text ("12% failed", "7 failed") if the job must halt now, else None.

    ``spec`` is the JobSpec (its ``halt``), ``control`` the job's Control (None: no file read);
    ``done``/``failed`` the job's counts (failed net of retried items). A job already halted or
    stopped, or without ``halt``, never gets a reason."""
    if not getattr(spec, "halt", None):
        return None
    if control is not None and control.state in ("halted", "stopped"):
        return None
    limit, percent = parse_halt(spec.halt, "job.yaml: halt")
    base = (control.halt_ignore_below if control is not None else None) or 0
    counted = failed - base
    if counted <= 0:
        return None
    if not percent:
        return f"{failed} failed" if counted > limit else None
    finished = done + failed
    if finished < HALT_MIN_FINISHED or counted * 100 <= limit * finished:
        return None
    return f"{round(100 * failed / finished)}% failed"
