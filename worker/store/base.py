"""The interface every job-directory store implements, and the file-server interface.

Paths given to a ``Store`` are relative to the job root. A ``Store`` is an async context
manager: ``async with await open_store(...) as store:`` closes it on the way out.

Atomic primitives the protocol rests on:
  mkdir  -> True if this call created it, False if it already existed (the claim)
  rename -> True if this call moved it, False if the source was gone or the target existed
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import secrets
import time
from abc import abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import JobError


class StoreError(JobError):
    """An I/O failure on the master, with what and where."""


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    mtime: float
    size: int
    is_file: bool = False
    mode: int = 0  # permission bits (with setgid), where the store knows them


PRIVATE_MODES = (0o700, 0o600)  # (directories, files): a job is private to the master account
GROUP_MODES = (0o2770, 0o640)   # init --group: setgid directories the group can write in


@runtime_checkable
class FileServer(Protocol):
    """Copy mode's file transfer: absolute paths on the server's host <-> local paths."""

    async def get_file(self, remote: str, local: str) -> None: ...

    async def put_tree(self, local_dir: str, remote_dir: str, files: list[str] | None = None) -> int:
        """Upload ``files`` (paths relative to ``local_dir``; default: every file under it) to
        the same paths below ``remote_dir``; returns how many."""


def tree_files(local_dir: str) -> list[str]:
    """Every file under ``local_dir``, relative to it (put_tree's default list)."""
    return [os.path.relpath(os.path.join(here, name), local_dir)
            for here, _dirs, names in os.walk(local_dir) for name in names]


class Store(AbstractAsyncContextManager):
    """A job directory: the primitives each kind implements, and what is built on them."""

    root: str
    label: str
    job_modes: tuple[int, int] | None = None  # known, or set by init --group

    async def modes(self) -> tuple[int, int]:
        """(directory mode, file mode) of what this store creates: as the job root says (a root
        the group may write in is a shared job), private until the root exists."""
        if self.job_modes is None:
            entry = await self.stat("")
            if entry is None:
                return PRIVATE_MODES
            self.job_modes = GROUP_MODES if entry.mode & 0o020 else PRIVATE_MODES
        return self.job_modes

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def where(self, rel: str) -> str:
        if rel.startswith("/"):  # an absolute path on the master (copy mode's files): the host, then it
            scheme, sep, rest = self.label.partition("://")
            return f"{scheme}://{rest.split('/', 1)[0]}{rel}" if sep else rel
        return f"{self.label}/{rel}" if rel else self.label

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def write_atomic(self, rel: str, data: bytes) -> None:
        """Readers see the old file or the new one, never a part (a temporary name, then rename);
        a failure leaves nothing behind (a full disk can leave the temporary file half-written)."""
        tmp = f"{rel}.tmp-{secrets.token_hex(4)}"
        try:
            await self.write(tmp, data)
            await self.replace(tmp, rel)
        except BaseException:
            await remove_leftover(self, tmp)
            raise

    async def make_root(self) -> None:
        """Create the job root and its parents (absolute, or relative to the login home)."""
        # Absolute paths, so mkdir does not join them to the (not yet existing) root.
        prefix = "/" if self.root.startswith("/") else (await self.realpath("~")).rstrip("/") + "/"
        parts = [p for p in self.root.split("/") if p and p != "."]
        for i in range(1, len(parts)):  # parents as the account's umask makes them
            await self.mkdir(prefix + "/".join(parts[:i]), mode=0o777)
        await self.mkdir(prefix + "/".join(parts), mode=PRIVATE_MODES[0])

    async def now(self) -> float:
        """The master's clock: the modification time of a file written now."""
        rel = f"tmp/clock-{secrets.token_hex(4)}"
        await self.write(rel, b"")
        entry = await self.stat(rel)
        await self.remove(rel)
        return entry.mtime if entry else time.time()

    @abstractmethod
    async def mkdir(self, rel: str, mode: int | None = None) -> bool: ...
    @abstractmethod
    async def share(self, rel: str, gid: int, mode: int) -> None:
        """chown to group ``gid`` and chmod ``mode`` (init --group, on the job root)."""
    @abstractmethod
    async def rmdir(self, rel: str) -> bool: ...
    @abstractmethod
    async def remove(self, rel: str) -> bool: ...
    @abstractmethod
    async def rename(self, src: str, dst: str) -> bool: ...
    @abstractmethod
    async def replace(self, src: str, dst: str) -> None: ...
    @abstractmethod
    async def read(self, rel: str) -> bytes | None: ...
    @abstractmethod
    async def write(self, rel: str, data: bytes, mode: int | None = None) -> None: ...
    @abstractmethod
    async def append(self, rel: str, data: bytes, mode: int | None = None) -> None: ...
    @abstractmethod
    async def truncate(self, rel: str, size: int) -> None:
        """Cut ``rel`` to ``size`` bytes (a failed append's part, appendfile.py)."""
    @abstractmethod
    async def overwrite(self, rel: str, data: bytes) -> bool:
        """Write ``data`` over an existing file in place, cutting what is left (False: no such
        file). Not atomic; it needs no new room when ``data`` fits the file's blocks, so it is
        the last resort on a full master."""
    @abstractmethod
    async def scandir(self, rel: str) -> list[Entry] | None: ...
    @abstractmethod
    async def stat(self, rel: str) -> Entry | None: ...
    @abstractmethod
    async def realpath(self, path: str) -> str: ...

    async def close(self) -> None:
        pass

    async def read_range(self, rel: str, offset: int, size: int) -> bytes | None:
        """``size`` bytes at ``offset`` (for log tails), without fetching the whole file."""
        data = await self.read(rel)
        return None if data is None else data[offset:offset + size]

    async def listdir(self, rel: str) -> list[str] | None:
        entries = await self.scandir(rel)
        return None if entries is None else [e.name for e in entries]

    async def exists(self, rel: str) -> bool:
        return await self.stat(rel) is not None


async def remove_leftover(store: Store, rel: str) -> None:
    """After a failed write (a full disk can leave it half-written): remove ``rel``, quietly (the
    first error is the one to tell) and shielded (a worker ending on that error cancels its
    tasks, and a cancelled cleanup would leave the file behind)."""
    cleanup = asyncio.ensure_future(store.remove(rel))
    try:
        await asyncio.shield(cleanup)
    except BaseException:  # noqa: BLE001
        pass
