"""Run one item: ``/bin/sh -c CMD`` with the item in the environment, never in the code.

If CMD does not mention ITEM, ``"$ITEM"`` is appended, so ``gzip`` runs ``gzip "$ITEM"``
(PPSS's habit), still as data. Each item runs in its own session; stop, suspend, resume and
timeouts reach everything it started, even processes that left the session (``proctree``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass

from . import proctree

OUTPUT_LIMIT = 1 << 20  # keep the last MiB of an item's output
TERM_GRACE = 5.0


@dataclass(frozen=True)
class Result:
    exit_code: int  # the command's status; 128+N when killed by signal N
    output: bytes
    started: float
    duration: float
    truncated: int = 0  # bytes of output dropped from the start
    reason: str = ""  # why ppss ended it ("timeout after 5 s"); "" when it ended by itself
    leftovers: tuple[str, ...] = ()  # processes it left running, killed ("1234 (sleep 299)")

    @property
    def timed_out(self) -> bool:
        return self.reason.startswith("timeout")


# ITEM as a word of its own ($ITEM, ${ITEM}, environ["ITEM"]; $ITEM_ID counts too), not inside
# another word such as a path /srv/ITEMS/x.sh or a variable MY_ITEM.
_MENTION = re.compile(r"(?<![A-Za-z0-9_])ITEM(?![A-Za-z0-9])")


def mentions_item(command: str) -> bool:
    return _MENTION.search(command) is not None


def shell_argv(command: str) -> list[str]:
    code = command if mentions_item(command) else f'{command} "$ITEM"'
    return ["/bin/sh", "-c", code, "ppss"]


class ItemProcess:
    """One item's process: spawned with posix_spawn and watched through a pidfd where the
    platform has them (half the parent's CPU per item of asyncio's subprocess machinery,
    measured in bench/throughput), else through asyncio's subprocess support.

    The item is its whole process tree (``proctree``): when the shell ends, what it left running
    is ended too (SIGTERM, SIGKILL after TERM_GRACE) and named in the output; ``terminate`` and a
    timeout end every process of the tree, not only the shell's process group."""

    def __init__(self, command: str, env: dict, timeout: float | None = None) -> None:
        self.command = command
        self.env = env
        self.timeout = timeout
        self.pid: int | None = None
        self.returncode: int | None = None
        self.suspended = False
        self.terminated = False  # we sent it SIGTERM
        self.reason = ""
        self.tag = proctree.new_tag()
        self.kill_at: float | None = None  # when what is left of the tree gets SIGKILL
        self.killed: dict[int, str] = {}  # leftovers ended after the shell exited
        self._timer: asyncio.TimerHandle | None = None
        self._left: float | None = None  # running time left before the timeout (None: no timeout)
        self._ender: asyncio.Task | None = None
        key = TAG_KEY if not env or isinstance(next(iter(env)), bytes) else proctree.TAG_VAR
        self.env[key] = self.tag.encode() if isinstance(key, bytes) else self.tag

    async def run(self) -> Result:
        started = time.time()
        t0 = time.monotonic()
        self._left = self.timeout
        self._arm()
        try:
            if FAST_SPAWN:
                code, output, dropped = await self._run_spawn()
            else:
                code, output, dropped = await self._run_asyncio()
        except OSError as exc:
            msg = f"ppss: cannot start /bin/sh: {exc.strerror or exc}\n".encode()
            return Result(127, msg, started, time.monotonic() - t0)
        finally:
            self._stop_timer()
        notes = b""
        if self.reason:
            notes += f"ppss: {self.reason}: ended the item and every process it started\n".encode()
            code = code or 124  # ended by us: never a success, whatever the shell said (as timeout(1))
        leftovers = tuple(self.killed.values())
        if leftovers:
            notes += (f"ppss: killed {len(leftovers)} leftover process(es) the item left running: "
                      f"{', '.join(leftovers)}\n").encode()
        return Result(code, output + notes, started, time.monotonic() - t0, dropped, self.reason, leftovers)

    def _arm(self) -> None:
        """Start (or, after a suspension, go on with) the timeout: only running time counts."""
        if self._left is not None and self._timer is None and self.returncode is None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, self._left), self._time_out)

    def _stop_timer(self) -> None:
        if self._timer:
            self._left = self._timer.when() - asyncio.get_running_loop().time()
            self._timer.cancel()
            self._timer = None

    def _time_out(self) -> None:
        self.reason = f"timeout after {self.timeout:g} s"
        self._ender = asyncio.ensure_future(self.terminate())

    async def _run_spawn(self) -> tuple[int, bytes, int]:
        loop = asyncio.get_running_loop()
        argv = [os.fsencode(a) for a in shell_argv(self.command)]
        proctree.become_subreaper()
        r, w = os.pipe()
        try:
            self.pid = os.posix_spawn(
                argv[0], argv, self.env, setsid=True, setsigmask=(), setsigdef=_DEFAULT_SIGNALS,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        proctree.started(self.pid)
        pidfd = os.pidfd_open(self.pid)
        os.set_blocking(r, False)
        out = _Output()
        exited = loop.create_future()
        loop.add_reader(r, out.read, r)
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            loop.remove_reader(r)
            os.close(pidfd)
        out.read(r, drain=True)  # what it wrote just before exiting
        _, status = os.waitpid(self.pid, 0)
        self.returncode = _exit_code(os.waitstatus_to_exitcode(status))
        proctree.waited(self.pid)
        self._stop_timer()
        try:
            await self.end_tree(record=True)
        finally:
            out.read(r, drain=True)  # and what the leftovers wrote
            os.close(r)
        return self.returncode, out.value(), out.dropped

    async def _run_asyncio(self) -> tuple[int, bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            *shell_argv(self.command), env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self.pid = proc.pid
        out = _Output()
        assert proc.stdout is not None

        async def read_all() -> None:
            while data := await proc.stdout.read(65536):
                out.add(data)

        reader = asyncio.ensure_future(read_all())
        # proc.wait() also waits for the pipe to close, which leftovers may hold open: the
        # exit status is set as soon as the shell exits, so look at that.
        while proc.returncode is None and not reader.done():
            await asyncio.wait({reader}, timeout=0.05)
        if proc.returncode is None:
            await proc.wait()
        self.returncode = _exit_code(proc.returncode)
        self._stop_timer()
        await self.end_tree(record=True)
        await reader
        await proc.wait()
        return self.returncode, out.value(), out.dropped

    def members(self) -> list[int]:
        shell = self.pid if self.pid is not None and self.returncode is None else None
        return proctree.members(self.tag, shell)

    def signal(self, sig: int) -> None:
        """Signal the whole tree: the process group, and whatever left it."""
        if self.pid is not None and self.returncode is None:  # not reaped: the pid is still ours
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        proctree.send(self.members(), sig)

    def suspend(self) -> None:
        if not self.suspended:
            self.signal(signal.SIGSTOP)
            self.suspended = True
            self._stop_timer()  # a suspended item is not running: its timeout waits too

    def resume(self) -> None:
        if self.suspended:
            self.signal(signal.SIGCONT)
            self.suspended = False
            self._arm()

    async def terminate(self) -> None:
        """SIGTERM the item's whole tree, SIGKILL what is left of it after a grace period."""
        if self.pid is None or self.returncode is not None or self.terminated:
            return  # (an item that ended by itself: run() is ending what it left)
        self.terminated = True
        self.kill_at = time.monotonic() + TERM_GRACE
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        self.suspended = False
        await self.end_tree(record=False)

    async def end_tree(self, record: bool) -> None:
        """Until no process of the item is left: SIGTERM each once, SIGKILL all at ``kill_at``.
        ``record``: name them (they outlived the shell) in ``killed``."""
        termed: set[int] = set()
        give_up = None
        while True:
            pids = self.members()
            if not pids:
                return
            if record:
                for pid in pids:  # (named as last seen: after an exec if there was one)
                    name = proctree.describe(pid)
                    if pid not in self.killed or not name.endswith("(?)"):  # (a name once known stays)
                        self.killed[pid] = name
            now = time.monotonic()
            if self.kill_at is None:
                self.kill_at = now + TERM_GRACE
            new = [p for p in pids if p not in termed]
            proctree.send(new, signal.SIGTERM)
            proctree.send(new, signal.SIGCONT)
            termed.update(new)
            if now >= self.kill_at:
                proctree.send(pids, signal.SIGKILL)
                give_up = give_up or now + TERM_GRACE
                if now > give_up:  # unkillable (uninterruptible sleep): stop trying
                    return
            await asyncio.sleep(0.02 if now >= self.kill_at else 0.05)


class _Output:
    """An item's output, keeping the last OUTPUT_LIMIT bytes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while self.size - len(self.chunks[0]) >= OUTPUT_LIMIT and len(self.chunks) > 1:
            self.size -= len(self.chunks[0])
            self.dropped += len(self.chunks.pop(0))

    def read(self, fd: int, drain: bool = False) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            self.add(data)
            if not drain:
                return

    def value(self) -> bytes:
        data = b"".join(self.chunks)
        if len(data) > OUTPUT_LIMIT:
            self.dropped += len(data) - OUTPUT_LIMIT
            data = data[-OUTPUT_LIMIT:]
        return data


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N -> 128+N, as shells report it


_DEFAULT_SIGNALS = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, n))
TAG_KEY = proctree.TAG_VAR.encode()
FAST_SPAWN = hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open") and hasattr(os, "POSIX_SPAWN_DUP2")
if FAST_SPAWN:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel older than 5.3
        FAST_SPAWN = False
