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
    def __init__(self, command: str, env: dict, cwd: str | None = None) -> None:
        self.command = command
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.suspended = False

    async def run(self) -> Result:
        started = time.time()
        t0 = time.monotonic()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *shell_argv(self.command), env=self.env, cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            msg = f"ppss: cannot start /bin/sh: {exc.strerror or exc}\n".encode()
            return Result(127, msg, started, time.monotonic() - t0)
        chunks: list[bytes] = []
        size = dropped = 0
        assert self.proc.stdout is not None
        while True:
            data = await self.proc.stdout.read(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            while size > OUTPUT_LIMIT and len(chunks) > 1:
                size -= len(chunks[0])
                dropped += len(chunks.pop(0))
        code = await self.proc.wait()
        output = b"".join(chunks)
        if len(output) > OUTPUT_LIMIT:
            dropped += len(output) - OUTPUT_LIMIT
            output = output[-OUTPUT_LIMIT:]
        if code < 0:
            code = 128 - code
        return Result(code, output, started, time.monotonic() - t0, dropped)

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
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
        if not self.proc or self.proc.returncode is not None:
            return
        self.signal(signal.SIGTERM)
        self.resume()
        try:
            await asyncio.wait_for(self.proc.wait(), TERM_GRACE)
        except asyncio.TimeoutError:
            self.signal(signal.SIGKILL)
