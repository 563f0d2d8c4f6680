"""This node's job log: one JSON line per event (``joblog/<node>.jsonl``), appended in batches."""

from __future__ import annotations

import asyncio
import json

from . import layout as L
from .appendfile import AppendFile
from .clock import Clock, wait_event
from .errors import PpssError
from .store import Store

JOBLOG_BATCH = 64
JOBLOG_FLUSH = 0.5


class JobLog:
    def __init__(self, store: Store, node: str, clock: Clock) -> None:
        self.node, self.clock = node, clock
        self.file = AppendFile(store, L.joblog_path(node), b"\n")
        self.buffer: list[str] = []
        self.kick = asyncio.Event()

    def write(self, event: dict) -> None:
        """Queue a line (written within JOBLOG_FLUSH seconds, or at once when a batch is full)."""
        event = {"time": round(self.clock.wall(), 3), **event}
        self.buffer.append(json.dumps(event, ensure_ascii=True) + "\n")
        if len(self.buffer) >= JOBLOG_BATCH:
            self.kick.set()

    async def flush(self) -> None:
        if self.buffer:
            data, self.buffer = "".join(self.buffer).encode(), []
            await self.file.append(data)

    async def flush_quietly(self, log) -> None:
        """On the way out after an error: flush what we can, say what we could not."""
        try:
            await self.flush()
        except PpssError as exc:  # the master's error, or the connection lost
            log(f"job log not flushed: {exc}")

    async def loop(self) -> None:
        while True:
            await wait_event(self.kick, JOBLOG_FLUSH)
            self.kick.clear()
            await self.flush()
