"""Run one item: ``/bin/sh -c CMD`` with the item in the environment, never in the code.

If CMD does not mention ITEM, ``"$ITEM"`` is appended, so ``gzip`` runs ``gzip "$ITEM"``
(PPSS's habit), still as data. Each item runs in its own process group, so stop, suspend and
resume reach everything it started.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass

OUTPUT_LIMIT = 1 << 20  # keep the last MiB of an item's output
TERM_GRACE = 5.0


@dataclass(frozen=True)
class Result:
    exit_code: int  # the command's status; 128+N when killed by signal N
    output: bytes
    started: float
    duration: float
    truncated: int = 0  # bytes of output dropped from the start


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
    measured in bench/throughput), else through asyncio's subprocess support."""

    def __init__(self, command: str, env: dict) -> None:
        self.command = command
        self.env = env
        self.pid: int | None = None
        self.returncode: int | None = None
        self.suspended = False
        self.terminated = False  # we sent it SIGTERM

    async def run(self) -> Result:
        started = time.time()
        t0 = time.monotonic()
        try:
            if FAST_SPAWN:
                code, output, dropped = await self._run_spawn()
            else:
                code, output, dropped = await self._run_asyncio()
        except OSError as exc:
            msg = f"ppss: cannot start /bin/sh: {exc.strerror or exc}\n".encode()
            return Result(127, msg, started, time.monotonic() - t0)
        return Result(code, output, started, time.monotonic() - t0, dropped)

    async def _run_spawn(self) -> tuple[int, bytes, int]:
        loop = asyncio.get_running_loop()
        argv = [os.fsencode(a) for a in shell_argv(self.command)]
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
        os.close(r)
        _, status = os.waitpid(self.pid, 0)
        self.returncode = _exit_code(os.waitstatus_to_exitcode(status))
        return self.returncode, out.value(), out.dropped

    async def _run_asyncio(self) -> tuple[int, bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            *shell_argv(self.command), env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self.pid = proc.pid
        out = _Output()
        assert proc.stdout is not None
        while data := await proc.stdout.read(65536):
            out.add(data)
        self.returncode = _exit_code(await proc.wait())
        return self.returncode, out.value(), out.dropped

    def signal(self, sig: int) -> None:
        if self.pid is not None and self.returncode is None:  # not reaped: the pid is still ours
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def suspend(self) -> None:
        if not self.suspended:
            self.signal(signal.SIGSTOP)
            self.suspended = True

    def resume(self) -> None:
        if self.suspended:
            self.signal(signal.SIGCONT)
            self.suspended = False

    async def terminate(self) -> None:
        """SIGTERM the item's process group, SIGKILL it after a grace period."""
        if self.pid is None or self.returncode is not None:
            return
        self.terminated = True
        self.signal(signal.SIGTERM)
        self.resume()
        deadline = time.monotonic() + TERM_GRACE
        while self.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.signal(signal.SIGKILL)


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
FAST_SPAWN = hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open") and hasattr(os, "POSIX_SPAWN_DUP2")
if FAST_SPAWN:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel older than 5.3
        FAST_SPAWN = False
