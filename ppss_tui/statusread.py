"""A job's status read for the console, cheaply at 1,000 nodes, without stalling the screen.

``worker.jobstatus.read_job_status`` reads and parses every node status file on every call. The
console polls every 1.5 s, so here (no Textual; the result is the same ``JobStatus``):

* A node's status file is read again only when its size or mtime changed since the last poll, or
  it changed within ``MTIME_STEP`` before that read (SFTP mtimes have one-second steps: a later
  rewrite within the same second would look unchanged). A finished, stopped or lost node costs
  nothing after that; a live worker rewrites its file every second, so it is read each poll.
* It is read with one READ of the size the listing gave: open, read, close (a whole-file read
  asks the size first: one more round trip per file). A file rewritten longer meanwhile reads
  as torn JSON and is read again whole.
* The JSON of the files read is parsed in a worker thread (``asyncio.to_thread``), so a key is
  answered between thread switches instead of behind 1,000 parses.
* On a local master (``LocalStore``: plain blocking syscalls) the whole read runs in a thread.

tests/test_console_logic.py checks the result equals ``read_job_status``'s on the same job.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from worker import layout as L
from worker.jobsroot import JobView
from worker.jobspec import JobSpec
from worker.jobstatus import JobStatus, NodeStatus, read_job_status
from worker.store import LocalStore, Store

MTIME_STEP = 2.0
PARSE_INLINE = 16   # fewer changed files than this are parsed on the event loop (a thread costs more)


@dataclass(frozen=True)
class _Cached:
    size: int
    mtime: float
    read_at: float              # the master's clock when it was read
    status: NodeStatus | None   # None: empty, torn or foreign (skipped, as read_nodes does)


def blocking(store: Store) -> bool:
    """Does this store do plain blocking I/O (a local master, or a job view of one)? A wrapper
    may say so with ``blocking_io = True`` (bench/console_scale.py's counting store)."""
    while isinstance(store, JobView):
        store = store.parent
    return isinstance(store, LocalStore) or getattr(store, "blocking_io", False) is True


def parse_status(blob: bytes | None) -> NodeStatus | None:
    if not blob:
        return None
    try:
        return NodeStatus.from_json(blob)
    except (ValueError, KeyError, TypeError):
        return None


def parse_all(blobs: list[bytes | None]) -> list[NodeStatus | None]:
    return [parse_status(b) for b in blobs]


class StatusReader:
    """Reads one job's status, remembering the node files it read (one reader per job)."""

    def __init__(self, threads: bool = True) -> None:
        self.threads = threads
        self.cache: dict[str, _Cached] = {}
        self.files_read = 0     # node status files read by the last poll (bench/console_scale.py)

    async def read(self, store: Store, spec: JobSpec) -> JobStatus:
        if self.threads and blocking(store):
            inline = StatusReader(threads=False)
            inline.cache = self.cache
            status = await asyncio.to_thread(asyncio.run, inline.read(store, spec))
            self.cache, self.files_read = inline.cache, inline.files_read
            return status
        return await self._read(store, spec)

    async def _read(self, store: Store, spec: JobSpec) -> JobStatus:
        """As ``worker.jobstatus.read_job_status``, but the node files incrementally."""
        return await read_job_status(store, spec, self.read_nodes)

    def _stale(self, entry) -> bool:
        c = self.cache.get(entry.name)
        return (c is None or c.size != entry.size or c.mtime != entry.mtime
                or entry.mtime >= c.read_at - MTIME_STEP)

    async def _read_file(self, store: Store, entry) -> bytes | None:
        rel = f"{L.NODES_DIR}/{entry.name}"
        return await (store.read_range(rel, 0, entry.size) if entry.size > 0 else store.read(rel))

    async def _reread_cut(self, store: Store, stale: list, blobs: list, parsed: list) -> None:
        """A file that did not parse and filled the size listed may have grown since: read it whole."""
        for i, (entry, blob, status) in enumerate(zip(stale, blobs, parsed)):
            if status is None and blob and len(blob) == entry.size:
                parsed[i] = parse_status(await store.read(f"{L.NODES_DIR}/{entry.name}"))

    async def read_nodes(self, store: Store, now: float) -> list[NodeStatus]:
        entries = await store.scandir(L.NODES_DIR) or []
        entries = [e for e in entries if e.name.endswith(".json") and not e.is_dir]
        stale = [e for e in entries if self._stale(e)]
        blobs = await asyncio.gather(*(self._read_file(store, e) for e in stale))
        if self.threads and len(blobs) >= PARSE_INLINE:
            parsed = await asyncio.to_thread(parse_all, blobs)
        else:
            parsed = parse_all(blobs)
        await self._reread_cut(store, stale, blobs, parsed)
        self.files_read = len(stale)
        cache = {e.name: self.cache[e.name] for e in entries if e.name in self.cache}
        cache.update({e.name: _Cached(e.size, e.mtime, now, st) for e, st in zip(stale, parsed)})
        self.cache = cache
        nodes = [dataclasses.replace(c.status, last_seen_s=max(0.0, now - e.mtime))
                 for e in entries if (c := cache[e.name]).status is not None]
        nodes.sort(key=lambda n: n.name)
        return nodes
