"""Shared helpers for the bench/ scripts (not a test module, not part of the package).

* ``REPO``, ``sshcluster``: the repository root and tests/sshcluster.py imported by path.
* ``Cleanup``: a stack of undo actions run on normal exit, Ctrl-C and SIGTERM/SIGHUP.
* ``Procs``: child processes in their own sessions (so Ctrl-C reaches only the bench), killed
  by process group at cleanup, with ``wait_rusage`` giving a child's peak RSS (``wait4``).
* ``cpu_seconds``/``CpuSampler``: CPU time of process trees read from /proc.
* ``table``: plain-text table.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PROBE = BENCH / "ppss_worker_probe.py"
TICK = os.sysconf("SC_CLK_TCK")


def _load_sshcluster():
    spec = importlib.util.spec_from_file_location("sshcluster", REPO / "tests" / "sshcluster.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sshcluster"] = mod
    spec.loader.exec_module(mod)
    return mod


sshcluster = _load_sshcluster()


def default_tmp() -> str:
    """Where the bench puts clusters and job directories: $PPSS_BENCH_TMP, else /dev/shm
    (tmpfs) when writable, else the system default.  On this kind of VM the disk under /tmp
    discards every freed block synchronously, so deleting a job directory with thousands of
    lock directories can take minutes and disk latency swamps the figures."""
    env = os.environ.get("PPSS_BENCH_TMP")
    if env:
        return env
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def tool(name: str) -> str:
    """``name`` from this Python's own bin directory (the venv running the bench: its
    ppss-console is this checkout's), else from PATH."""
    own = Path(sys.executable).parent / name
    if os.access(own, os.X_OK):
        return str(own)
    path = shutil.which(name)
    if not path:
        raise SystemExit(f"bench: {name} not found on PATH")
    return path


class Cleanup:
    """LIFO undo stack.  ``with Cleanup() as c:`` turns SIGINT/SIGTERM/SIGHUP into KeyboardInterrupt."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, label: str, fn: Callable[[], object]) -> None:
        self.actions.append((label, fn))

    def tempdir(self, prefix: str, base: str | None = None, keep: bool = False) -> Path:
        """A new temporary directory under ``base`` (see ``default_tmp``), removed at the end
        unless ``keep``."""
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=base or default_tmp()))
        if keep:
            print(f"keeping {path}")
        else:
            self.push(f"remove {path}", lambda: remove_tree(path))
        return path

    def __enter__(self) -> "Cleanup":
        def raise_interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, raise_interrupt)
        # Even when started in the background of a non-interactive shell (SIGINT ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, etype, exc, tb) -> None:
        if etype is not None and not issubclass(etype, (KeyboardInterrupt, SystemExit)):
            import traceback
            traceback.print_exception(etype, exc, tb)
            print("bench: cleaning up after the error above", file=sys.stderr)
        elif etype is KeyboardInterrupt:
            print("\nbench: interrupted, cleaning up ...", file=sys.stderr)
        # Ignore further Ctrl-C while undoing (a second Ctrl-C must not leave sshd behind).
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self.actions:
                label, fn = self.actions.pop()
                try:
                    fn()
                except BaseException as e:  # keep cleaning (SIGTERM during cleanup too)
                    print(f"bench: cleanup {label}: {e!r}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, old)


def remove_tree(path: Path, attempts: int = 10) -> None:
    """rmtree, retried briefly: a process killed a moment ago may still be writing its last file."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.3)
    print(f"bench: could not remove {path}", file=sys.stderr)


def stop_cluster(cluster, timeout: float = 5.0) -> None:
    """Kill node sessions (remote workers) first and wait for them, then the master's sessions
    (so no worker reconnects to a master that is going away), then the listeners."""
    servers = [s for name, s in cluster.servers.items() if name != "master"] + [cluster.master]
    for server in servers:
        deadline = time.monotonic() + timeout
        while server.running and server.drop_sessions() and time.monotonic() < deadline:
            time.sleep(0.1)
    cluster.close()


class Procs:
    """Children started in new sessions; ``kill_all`` SIGKILLs their process groups."""

    def __init__(self, cleanup: Cleanup) -> None:
        self.procs: list[subprocess.Popen] = []
        cleanup.push("kill child processes", self.kill_all)

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass

    @staticmethod
    def wait_rusage(p: subprocess.Popen) -> tuple[int, "os.struct_rusage"]:
        """Wait for ``p`` with wait4: (exit code, rusage of that child alone)."""
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        return p.returncode, ru


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, **kw)


# ---- CPU accounting from /proc ------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float, float, str] | None:
    """(ppid, utime s, stime s, comm) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text.rsplit(")", 1)[1].split()
    return int(f[1]), int(f[11]) / TICK, int(f[12]) / TICK, comm


def descendants(root: int) -> list[int]:
    return sshcluster._descendants(root)


class CpuSampler:
    """Samples, every ``interval`` s, the CPU time of each descendant of the given roots and
    keeps the last value seen per pid (processes that exit between samples lose < interval)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.2) -> None:
        self.roots = roots
        self.interval = interval
        self.seen: dict[str, dict[int, tuple[float, float, str]]] = {k: {} for k in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for name, root in self.roots.items():
            for pid in descendants(root):
                s = _stat(pid)
                if s:
                    self.seen[name][pid] = (s[1], s[2], s[3])

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def start(self) -> "CpuSampler":
        self._thread.start()
        return self

    def stop(self) -> dict[str, tuple[float, float, int]]:
        """{root name: (user s, system s, number of processes seen)}"""
        self._stop.set()
        self._thread.join()
        out = {}
        for name, procs in self.seen.items():
            out[name] = (sum(v[0] for v in procs.values()), sum(v[1] for v in procs.values()), len(procs))
        return out


def vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def table(rows: list[tuple], title: str = "") -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    sep = "  ".join("-" * w for w in widths)
    lines = [title] if title else []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if i and j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))).rstrip())
        if i == 0:
            lines.append(sep)
    return "\n".join(lines)


def load_now() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def fmt_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.1f}" if seconds > 0 else "-"


def now() -> float:
    return time.perf_counter()
