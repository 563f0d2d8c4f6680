"""A store wrapper for tests: a fault injected at the Nth matching operation.

    store = FaultyStore(LocalStore(root), [Fault("nospace", at=3, op="write", path="*/logs/*")])

``kind`` is ``nospace`` (ENOSPC), ``denied`` (EACCES) or ``lost`` (the connection to the master
dropped). ENOSPC and EACCES go through the same error mapping as the real stores, so callers
see the ``StoreError`` they would see in production; ``lost`` raises ``ConnectError`` (what an
SFTP store without reconnect raises). ``count`` faults in a row (``0``: every one from then on).
"""

from __future__ import annotations

import errno
import fnmatch
import os
from dataclasses import dataclass, field

from ..errors import ConnectError
from .base import Entry, Store
from .errors import mapped_errors

KINDS = {"nospace": errno.ENOSPC, "denied": errno.EACCES, "lost": None}
OPS = ("mkdir", "share", "rmdir", "remove", "rename", "replace", "read", "read_range", "write", "append",
       "truncate", "overwrite", "scandir", "stat", "realpath", "get_file", "put_tree")


@dataclass
class Fault:
    kind: str
    at: int = 1  # the Nth matching operation (1: the first)
    op: str | None = None  # only this operation (a name from OPS)
    path: str | None = None  # only paths matching this fnmatch pattern
    count: int = 1
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.op is not None and self.op not in OPS:
            raise ValueError(f"fault op {self.op!r}: one of {', '.join(OPS)}")

    def matches(self, op: str, path: str) -> bool:
        return (self.op is None or self.op == op) and (self.path is None or fnmatch.fnmatchcase(path, self.path))

    def fires(self, op: str, path: str) -> bool:
        if not self.matches(op, path):
            return False
        self.seen += 1
        if self.seen < self.at or (self.count and self.fired >= self.count):
            return False
        self.fired += 1
        return True


class FaultyStore(Store):
    """Passes every operation to ``inner`` except the faulty ones; ``log`` lists what fired."""

    def __init__(self, inner: Store, faults: list[Fault]) -> None:
        self.inner = inner
        self.root = inner.root
        self.label = inner.label
        self.faults = faults
        self.log: list[tuple[str, str, str]] = []  # (kind, op, path) of each fault injected

    def _check(self, op: str, path: str) -> None:
        for fault in self.faults:
            if fault.fires(op, path):
                self.log.append((fault.kind, op, path))
                if fault.kind == "lost":
                    raise ConnectError(f"{self.inner.label}: connection to the master lost (injected)")
                with mapped_errors(self.where(path) if op not in ("get_file", "put_tree") else path):
                    code = KINDS[fault.kind]
                    raise OSError(code, os.strerror(code))

    async def _do(self, op: str, path: str, *args):
        self._check(op, path)
        return await getattr(self.inner, op)(*args)

    async def mkdir(self, rel: str, mode: int | None = None) -> bool: return await self._do("mkdir", rel, rel, mode)
    async def share(self, rel: str, gid: int, mode: int) -> None: return await self._do("share", rel, rel, gid, mode)
    async def rmdir(self, rel: str) -> bool: return await self._do("rmdir", rel, rel)
    async def remove(self, rel: str) -> bool: return await self._do("remove", rel, rel)
    async def rename(self, src: str, dst: str) -> bool: return await self._do("rename", src, src, dst)
    async def replace(self, src: str, dst: str) -> None: return await self._do("replace", dst, src, dst)
    async def read(self, rel: str) -> bytes | None: return await self._do("read", rel, rel)
    async def write(self, rel: str, data: bytes, mode: int | None = None) -> None:
        return await self._do("write", rel, rel, data, mode)
    async def append(self, rel: str, data: bytes, mode: int | None = None) -> None:
        return await self._do("append", rel, rel, data, mode)
    async def truncate(self, rel: str, size: int) -> None: return await self._do("truncate", rel, rel, size)
    async def overwrite(self, rel: str, data: bytes) -> bool: return await self._do("overwrite", rel, rel, data)
    async def scandir(self, rel: str) -> list[Entry] | None: return await self._do("scandir", rel, rel)
    async def stat(self, rel: str) -> Entry | None: return await self._do("stat", rel, rel)
    async def realpath(self, path: str) -> str: return await self._do("realpath", path, path)

    async def read_range(self, rel: str, offset: int, size: int) -> bytes | None:
        return await self._do("read_range", rel, rel, offset, size)

    async def now(self) -> float:
        return await self.inner.now()

    async def get_file(self, remote: str, local: str) -> None:
        return await self._do("get_file", remote, remote, local)

    async def put_tree(self, local_dir: str, remote_dir: str, files: list[str] | None = None) -> int:
        return await self._do("put_tree", remote_dir, local_dir, remote_dir, files)

    async def close(self) -> None:
        await self.inner.close()
