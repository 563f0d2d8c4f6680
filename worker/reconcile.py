"""The full check of a job against its item list: what is finished, held, lost or never claimed.

Run by a worker when it finds nothing left to claim, and by ``ppss-console status --recount``.
It lists the sharded directories (work proportional to the job, so it is not on any hot path),
repairs records a crash left half-written, and tells the caller what still needs running.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from . import layout as L
from .claims import Candidate, record_bytes
from .jobspec import JobSpec
from .store import Store


@dataclass
class ScanResult:
    total: int = 0
    done: int = 0
    failed: int = 0
    unclaimed: list[Candidate] = field(default_factory=list)       # no lock, no retry entry
    stale: list[tuple[str, str, bytes]] = field(default_factory=list)  # (lock, dead token, item)
    orphans: list[tuple[str, bytes]] = field(default_factory=list)  # lock with no holder, old
    inflight: dict[str, bytes] = field(default_factory=dict)       # id -> item, held by a live node
    queued: int = 0                                                # waiting in retry/
    repaired: int = 0

    @property
    def complete(self) -> bool:
        return self.done + self.failed >= self.total

    @property
    def unresolved(self) -> dict[str, bytes]:
        out = dict(self.inflight)
        out.update({c.lock.split(".")[0]: c.item for c in self.unclaimed})
        out.update({lock.split(".")[0]: item for lock, _, item in self.stale})
        out.update({lock.split(".")[0]: item for lock, item in self.orphans})
        return out


async def _list_shards(store: Store, top: str, shards) -> dict[str, list]:
    lists = await asyncio.gather(*(store.scandir(f"{top}/{s}") for s in shards))
    return {s: entries or [] for s, entries in zip(shards, lists)}


async def iter_items(store: Store, spec: JobSpec):
    """Every item of the job, chunk by chunk (a few chunks read ahead), then watched additions."""
    step = 8
    paths = [L.chunk_path(i) for i in range(spec.chunks)]
    if spec.watch:
        names = await store.listdir(L.ITEMS_DIR) or []
        paths += [f"{L.ITEMS_DIR}/{n}" for n in sorted(names) if n.startswith(L.WATCH_PREFIX)]
    seen: set[bytes] | None = set() if spec.watch else None
    for start in range(0, len(paths), step):
        blobs = await asyncio.gather(*(store.read(p) for p in paths[start:start + step]))
        for blob in blobs:
            for item in L.decode_chunk(blob or b""):
                if seen is not None:
                    if item in seen:
                        continue
                    seen.add(item)
                yield item


async def count_records(store: Store) -> tuple[int, int]:
    done, failed = await asyncio.gather(_list_shards(store, L.DONE_DIR, L.SHARDS),
                                        _list_shards(store, L.FAILED_DIR, L.SHARDS))
    count = lambda d: sum(1 for es in d.values() for e in es if ".tmp-" not in e.name)
    return count(done), count(failed)


async def scan(store: Store, spec: JobSpec, live_tokens: set[str], master_now: float,
               only: dict[str, bytes] | None = None, repair: bool = True) -> ScanResult:
    """Check every item (or just ``only``: id -> item) and sort the unfinished ones."""
    shards = L.SHARDS if only is None else sorted({L.shard(i) for i in only})
    done_l, failed_l, locks_l, retry = await asyncio.gather(
        _list_shards(store, L.DONE_DIR, shards), _list_shards(store, L.FAILED_DIR, shards),
        _list_shards(store, L.LOCKS_DIR, shards), store.listdir(L.RETRY_DIR))
    done_ids = {e.name for es in done_l.values() for e in es}
    failed_ids = {e.name for es in failed_l.values() for e in es}
    locks: dict[str, list] = {}
    for es in locks_l.values():
        for e in es:
            ident, attempt = L.parse_lock_name(e.name)
            locks.setdefault(ident, []).append((attempt, e))
    lock_names = {e.name for es in locks_l.values() for e in es}
    retry_names = [n for n in retry or () if ".tmp-" not in n]
    # An entry whose lock exists was claimed by a node that died before removing it.
    stale_entries = [n for n in retry_names if n in lock_names]
    retry_ids = {L.parse_lock_name(n)[0] for n in retry_names if n not in lock_names}
    result = ScanResult()
    todo: list[tuple[str, bytes]] = []

    async def items():
        if only is not None:
            for ident, item in only.items():
                yield ident, item
        else:
            async for item in iter_items(store, spec):
                yield L.item_id(item), item

    async for ident, item in items():
        result.total += 1
        if ident in done_ids:
            result.done += 1
        elif ident in failed_ids:
            result.failed += 1
        elif ident in retry_ids:
            result.queued += 1
        elif ident not in locks:
            result.unclaimed.append(Candidate(ident, item))
        else:
            todo.append((ident, item))
    # Look inside the newest lock of each item that is neither recorded nor queued.
    newest = {ident: max(locks[ident], key=lambda pair: pair[0]) for ident, _ in todo}
    contents = await asyncio.gather(*(store.listdir(L.lock_path(newest[i][1].name)) for i, _ in todo))
    repairs = []
    for (ident, item), names in zip(todo, contents):
        attempt, entry = newest[ident]
        lock = entry.name
        names = names or []
        if L.FAILED_MARK in names:
            if attempt <= spec.retries:
                result.queued += 1
                repairs.append(store.write(f"{L.RETRY_DIR}/{L.lock_name(ident, attempt + 1)}", item))
            else:
                result.failed += 1
                repairs.append(store.write(L.failed_path(ident), record_bytes(
                    {"id": ident, "item": L.item_to_json(item), "attempt": attempt, "exit": None,
                     "repaired": True})))
        else:
            tokens = [n for n in names if "@" in n]
            if any(t in live_tokens for t in tokens):
                result.inflight[ident] = item
            elif tokens:
                result.stale.append((lock, tokens[0], item))
            elif master_now - entry.mtime > spec.lease:
                result.orphans.append((lock, item))
            else:
                result.inflight[ident] = item  # being claimed right now
    if only is None:
        repairs += [store.remove(f"{L.RETRY_DIR}/{n}") for n in stale_entries]
    if repair and repairs:
        await asyncio.gather(*repairs)
        result.repaired = len(repairs)
    return result


def parse_record(blob: bytes) -> dict:
    try:
        return json.loads(blob)
    except ValueError:
        return {}
