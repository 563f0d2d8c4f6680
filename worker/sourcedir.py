"""Listing a source directory on the master: every regular file, whatever bytes its name holds."""

from __future__ import annotations

import asyncio
import posixpath

from .errors import JobError, PpssError
from .store import Entry, Store

PARALLEL_DIRS = 32


async def walk_files(store: Store, root: str, recurse: bool = True,
                     others: list[str] | None = None) -> list[tuple[bytes, Entry]]:
    """(absolute path as bytes, entry) for every regular file under the absolute path ``root``.

    Entries that are neither files nor directories (symlinks, fifos...) go to ``others``."""
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
                elif e.is_dir:
                    if recurse:
                        pending.append(full)
                elif others is not None:
                    others.append(full)
    return out


async def list_source_dir(store: Store, path: str, recurse: bool) -> list[bytes]:
    return (await scan_source_dir(store, path, recurse))[0]


async def scan_source_dir(store: Store, path: str, recurse: bool,
                          follow_symlinks: bool = False) -> tuple[list[bytes], int]:
    """(items, how many symlinks and other non-files were not taken).

    ``follow_symlinks``: a symlink whose target is a regular file inside the source is an item
    (under the link's own path); links that lead outside the source, to directories or nowhere
    are still left out and counted."""
    root = await store.realpath(path)
    others: list[str] = []
    items = [p for p, _ in await walk_files(store, root, recurse, others)]
    if not follow_symlinks or not others:
        return items, len(others)
    skipped = 0
    for link in others:
        try:
            target = await store.realpath(link)
            entry = await store.stat(target) if target.startswith(root.rstrip("/") + "/") else None
        except PpssError:
            entry = None
        if entry is not None and entry.is_file:
            items.append(link.encode("utf-8", "surrogateescape"))
        else:
            skipped += 1
    return items, skipped
