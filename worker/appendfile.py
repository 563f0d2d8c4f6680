"""A file on the master that only this node appends to (its job log, the items it found in a
watched directory): each append lands whole or not at all.

A full disk makes sftp-server write part of a request and then fail. The part is cut off again
(the file's length is known: one writer), so no torn entry stays for the next append to be glued
to. An entry torn by a crash of an earlier run (a length this run never knew) is ended by the
first append: it stays an entry of its own, which readers skip. An append that did not come back
(cancelled at the worker's end, the connection lost) may have landed whole: it is kept, and the
length looked at again before the next append.
"""

from __future__ import annotations

import asyncio

from .store import Store, StoreError


class AppendFile:
    def __init__(self, store: Store, rel: str, end: bytes) -> None:
        self.store, self.rel, self.end = store, rel, end
        self.size: int | None = None  # the file's length as this run knows it (None: to look at)

    async def append(self, data: bytes) -> None:
        if self.size is None:
            data = await self._mend() + data
        try:
            await self.store.append(self.rel, data)
        except StoreError:  # refused by the master (a full disk: part of it may be there)
            await self._cut_back()
            raise
        except BaseException:
            self.size = None
            raise
        self.size += len(data)

    async def _mend(self) -> bytes:
        entry = await self.store.stat(self.rel)
        self.size = entry.size if entry else 0
        if not self.size:
            return b""
        last = await self.store.read_range(self.rel, self.size - 1, 1)
        return b"" if last in (self.end, None, b"") else self.end

    async def _cut_back(self) -> None:
        """Quietly (the append's error is the one to tell) and shielded (a worker ending on that
        error cancels its tasks)."""
        cut = asyncio.ensure_future(self.store.truncate(self.rel, self.size))
        try:
            await asyncio.shield(cut)
        except BaseException:  # noqa: BLE001
            pass
