"""Listing a source directory on the master: every regular file, whatever bytes its name holds."""

from __future__ import annotations

import asyncio
import posixpath

from .errors import JobError
from .store import Entry, Store

PARALLEL_DIRS = 32


async def walk_files(store: Store, root: str, recurse: bool = True) -> list[tuple[bytes, Entry]]:
    """(absolute path as bytes, entry) for every regular file under the absolute path ``root``."""
    out: list[tuple[bytes, Entry]] = []
    pending = [root]
    while pending:
        batch, pending = pending[:PARALLEL_DIRS], pending[PARALLEL_DIRS:]
        listings = await asyncio.gather(*(store.scandir(d) for d in batch))
        for directory, entries in zip(batch, listings):
            if entries is None:
                if directory == root:
                    raise JobError(f"{store.where('')}: source directory {root} does not exist on the master")
                continue  # removed while we listed
            for e in sorted(entries, key=lambda e: e.name):
                full = posixpath.join(directory, e.name)
                if e.is_file:
                    out.append((full.encode("utf-8", "surrogateescape"), e))
                elif e.is_dir and recurse:
                    pending.append(full)
    return out


async def list_source_dir(store: Store, path: str, recurse: bool) -> list[bytes]:
    root = await store.realpath(path)
    return [p for p, _ in await walk_files(store, root, recurse)]
