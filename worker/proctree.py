"""An item's whole process tree: found through /proc, ended with it (Linux; elsewhere a no-op).

The worker makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so whatever an
item leaves behind — ``sleep 299 &``, a ``setsid`` daemon, a double fork, a new process group —
is re-parented to the worker instead of init and can still be found. Every item's processes
inherit ``PPSS_TREE=<tag>`` in their environment; an adopted orphan is attributed to its item by
that tag (read from /proc/<pid>/environ). A process that clears its environment *and* leaves
the item's session escapes attribution (a delegated cgroup would catch it; ppss does not need one).
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import signal
from dataclasses import dataclass
from pathlib import Path

TAG_VAR = "PPSS_TREE"
PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")
_HAVE_PROC = _PROC.is_dir()

_subreaper: bool | None = None
live_shells: set[int] = set()  # item shells not yet waited for by their ItemProcess
_sessions: set[int] = set()  # sessions (= shell pids) items were started in
_adopted: set[int] = set()  # orphans seen carrying one of our tags
_counter = itertools.count(1)


@dataclass(frozen=True)
class ProcInfo:
    state: str
    ppid: int
    session: int


def new_tag() -> str:
    return f"{os.getpid()}.{next(_counter)}"


def become_subreaper() -> bool:
    """Once per process: orphans of our items come to us. False where that is not possible."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if _PROC.is_dir() and hasattr(os, "fork"):
            try:
                # the running program's own symbols (libc among them): no find_library, which
                # runs ldconfig (and gcc) in a subprocess
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper = False
            if _subreaper:
                atexit.register(kill_all_adopted)
    return _subreaper


def started(shell_pid: int) -> None:
    live_shells.add(shell_pid)
    _sessions.add(shell_pid)


def waited(shell_pid: int) -> None:
    live_shells.discard(shell_pid)


def info(pid: int) -> ProcInfo | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return ProcInfo(fields[0], int(fields[1]), int(fields[3]))


def children(pid: int) -> list[int]:
    """Direct children (called once per item end: plain os calls, no Path objects)."""
    out: list[int] = []
    base = f"/proc/{pid}/task"
    try:
        tasks = os.listdir(base)
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"{base}/{tid}/children", "rb") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"{base}/{tid}"):
                continue  # the thread ended
            return _children_by_scan(pid)  # kernel without /proc/<pid>/task/<tid>/children
        except OSError:
            continue
    return out


def _children_by_scan(pid: int) -> list[int]:
    out = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            p = info(int(entry.name))
            if p and p.ppid == pid:
                out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def tag_of(pid: int) -> str | None:
    try:
        env = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = f"{TAG_VAR}=".encode()
    for entry in env.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode("ascii", "replace")
    return None


def members(tag: str, shell_pid: int | None) -> list[int]:
    """The live (not zombie) processes of one item: the shell's descendants and the orphans
    carrying its tag, with theirs. Adopted orphans that ended meanwhile are reaped."""
    if not _HAVE_PROC:
        return []
    pids = [shell_pid, *descendants(shell_pid)] if shell_pid else []
    if _subreaper:
        roots = [c for c in children(os.getpid()) if c not in live_shells]
        if roots:
            reap(roots)
    else:  # orphans went to init: look everywhere
        roots = [int(e.name) for e in _PROC.iterdir() if e.name.isdigit()]
    for pid in roots:
        if pid not in pids and tag_of(pid) == tag:
            _adopted.add(pid)
            pids += [pid, *descendants(pid)]
    out = []
    for pid in dict.fromkeys(pids):
        p = info(pid)
        if p and p.state not in ("Z", "X"):
            out.append(pid)
    return out


def describe(pid: int) -> str:
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        argv = []
    text = " ".join(a.decode("utf-8", "replace") for a in argv)
    if not text:  # a zombie (or a process mid-exec) has no command line: its name, then
        try:
            text = (_PROC / str(pid) / "comm").read_text(errors="replace").strip()
        except OSError:
            text = ""
    return f"{pid} ({text[:60] or '?'})"


def send(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap(pids: list[int]) -> None:
    """Collect the exit status of adopted orphans that ended (never an item shell, whose
    ItemProcess waits for it, nor a child someone else in this process started)."""
    for pid in pids:
        if pid in live_shells:
            continue
        p = info(pid)
        if p and p.state == "Z" and (pid in _adopted or p.session in _sessions):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            _adopted.discard(pid)


def kill_all_adopted() -> None:
    """At the worker's exit: SIGKILL every orphan of ours still alive (belt and braces)."""
    if not _subreaper:
        return
    prefix = f"{os.getpid()}."
    for _ in range(5):
        left = [pid for pid in children(os.getpid()) if pid not in live_shells
                and (pid in _adopted or (info(pid) or ProcInfo("", 0, 0)).session in _sessions
                     or (tag_of(pid) or "").startswith(prefix))]
        left = [p for p in left if (info(p) or ProcInfo("Z", 0, 0)).state != "Z"] + \
            [d for p in left for d in descendants(p)]
        if not left:
            break
        send(left, signal.SIGKILL)
        reap(children(os.getpid()))
