"""The full check of a job against its item list: what is finished, held, lost or never claimed.

Run by a worker when it finds nothing left to claim, and by ``ppss-console status --recount``.
It lists the sharded directories (work proportional to the job, so it is not on any hot path),
repairs records a crash left half-written, and tells the caller what still needs running.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from . import layout as L
from .claims import Candidate, record_bytes
from .jobspec import JobSpec
from .store import Store
from .sweep import chunk_items


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
        for i, blob in enumerate(blobs, start):
            listed = chunk_items(blob, i, spec, store.where(paths[i])) if i < spec.chunks \
                else L.decode_chunk(blob or b"")
            for item in listed:
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


SHARD_BATCH = 16  # shards listed at once: bounds memory to a few shards' listings


@dataclass
class _Listing:
    """What the shard listings say: the unfinished locks, and how many ids have a lock."""
    pending: dict[str, tuple[int, object]] = field(default_factory=dict)  # id -> newest (attempt, lock entry)
    locked: int = 0                                    # distinct ids with a lock
    lock_names: set[str] = field(default_factory=set)  # names of unfinished locks (for retry entries)
    finals_only: set[str] = field(default_factory=set)  # with `only`: those that have a record


async def scan(store: Store, spec: JobSpec, live_tokens: set[str], master_now: float,
               only: dict[str, bytes] | None = None, repair: bool = True) -> ScanResult:
    """Check every item (or just ``only``: id -> item) and sort the unfinished ones.

    Memory stays small for a million items: shards are listed a few at a time and only counts
    and the unfinished locks are kept. The item list is read only when something is unfinished,
    and the set of every locked id is built only when some item may have no lock at all.
    """
    shards = L.SHARDS if only is None else sorted({L.shard(i) for i in only})
    retry = await store.listdir(L.RETRY_DIR)
    retry_names = [n for n in retry or () if ".tmp-" not in n]
    result = ScanResult()
    listing = await _list_records(store, shards, only, result)
    pending = listing.pending
    # A retry entry whose lock exists was claimed by a node that died before removing it.
    queued_ids = {L.parse_lock_name(n)[0] for n in retry_names if n not in listing.lock_names}
    stale_entries = [n for n in retry_names if n in listing.lock_names]
    result.total = len(only) if only is not None else spec.total
    unclaimed_possible = listing.locked + len(queued_ids - pending.keys()) < result.total or spec.watch
    if only is None and not pending and not unclaimed_possible:
        return result  # every item has a record: nothing to read
    all_locked = await _all_locked(store, shards) if unclaimed_possible and only is None else None
    items_of = await _match_items(store, spec, only, pending, queued_ids, all_locked, result)
    result.queued = len(queued_ids - pending.keys())
    repairs, maybe_orphans = await _sort_pending(store, spec, live_tokens, master_now, pending, items_of,
                                                 retry_names, result)
    if maybe_orphans:
        await _confirm_orphans(store, spec, master_now, maybe_orphans, result)
    if only is not None:
        # Items we were waiting on that now have neither lock, record nor retry entry.
        settled = pending.keys() | queued_ids | listing.finals_only
        result.unclaimed += [Candidate(i, item) for i, item in only.items() if i not in settled]
    else:
        repairs += [store.remove(f"{L.RETRY_DIR}/{n}") for n in stale_entries]
    if repair and repairs:
        await asyncio.gather(*repairs)
        result.repaired = len(repairs)
    return result


async def _list_records(store: Store, shards, only: dict[str, bytes] | None, result: ScanResult) -> _Listing:
    """List the done, failed and lock shards a batch at a time; count the records."""
    out = _Listing()
    for start in range(0, len(shards), SHARD_BATCH):
        batch = shards[start:start + SHARD_BATCH]
        done_l, failed_l, locks_l = await asyncio.gather(
            _list_shards(store, L.DONE_DIR, batch), _list_shards(store, L.FAILED_DIR, batch),
            _list_shards(store, L.LOCKS_DIR, batch))
        for shard in batch:
            final = {e.name for e in done_l[shard]} | {e.name for e in failed_l[shard]}
            newest: dict[str, tuple[int, object]] = {}
            for e in locks_l[shard]:
                ident, attempt = L.parse_lock_name(e.name)
                if ident not in newest or attempt > newest[ident][0]:
                    newest[ident] = (attempt, e)
            if only is not None:
                final &= only.keys()
                out.finals_only |= final
                newest = {i: v for i, v in newest.items() if i in only}
            result.done += len({e.name for e in done_l[shard]} & final)
            result.failed += len({e.name for e in failed_l[shard]} & final)
            out.locked += len(newest)
            for ident, value in newest.items():
                if ident not in final:
                    out.pending[ident] = value
                    out.lock_names.add(value[1].name)
    return out


async def _all_locked(store: Store, shards) -> set[bytes]:
    """The ids of every lock (only when some item may have none)."""
    all_locked: set[bytes] = set()
    for start in range(0, len(shards), SHARD_BATCH):
        lists = await asyncio.gather(*(store.listdir(f"{L.LOCKS_DIR}/{s}")
                                       for s in shards[start:start + SHARD_BATCH]))
        for names in lists:
            all_locked.update(bytes.fromhex(L.parse_lock_name(n)[0]) for n in names or () if _is_id(n))
    return all_locked


async def _match_items(store: Store, spec: JobSpec, only: dict[str, bytes] | None, pending: dict,
                       queued_ids: set[str], all_locked: set[bytes] | None,
                       result: ScanResult) -> dict[str, bytes]:
    """One pass over the item list: the bytes of the unfinished items, and the unclaimed ones."""
    items_of: dict[str, bytes] = {}
    counted = 0

    async def items():
        if only is not None:
            for pair in only.items():
                yield pair
        else:
            async for item in iter_items(store, spec):
                yield L.item_id(item), item

    async for ident, item in items():
        counted += 1
        if ident in pending:
            items_of[ident] = item
        elif ident in queued_ids:
            continue
        elif all_locked is not None and bytes.fromhex(ident) not in all_locked:
            result.unclaimed.append(Candidate(ident, item))
    if spec.watch and only is None:
        result.total = counted
    return items_of


async def _sort_pending(store: Store, spec: JobSpec, live_tokens: set[str], master_now: float,
                        pending: dict, items_of: dict[str, bytes], retry_names: list[str],
                        result: ScanResult) -> tuple[list, list[tuple[str, str, bytes]]]:
    """Sort each unfinished lock: failed attempt, in flight, stale (dead holder) or maybe orphaned.
    Returns the repairs to make and the locks that may be orphans."""
    todo = [(ident, items_of[ident]) for ident in pending if ident in items_of]
    contents = await asyncio.gather(*(store.listdir(L.lock_path(pending[i][1].name)) for i, _ in todo))
    repairs = []
    maybe_orphans: list[tuple[str, str, bytes]] = []
    for (ident, item), names in zip(todo, contents):
        attempt, entry = pending[ident]
        lock = entry.name
        names = names or []
        if L.FAILED_MARK in names:
            recent = master_now - entry.mtime <= spec.lease
            repair = _failed_attempt(store, spec, ident, attempt, item, retry_names, result, recent)
            if repair is not None:
                repairs.append(repair)
            continue
        tokens = [n for n in names if "@" in n]
        if any(t in live_tokens for t in tokens):
            result.inflight[ident] = item
        elif tokens:
            result.stale.append((lock, tokens[0], item))
        elif master_now - entry.mtime > spec.lease:
            maybe_orphans.append((ident, lock, item))
        else:
            result.inflight[ident] = item  # being claimed right now, or just finished
    return repairs, maybe_orphans


def _failed_attempt(store: Store, spec: JobSpec, ident: str, attempt: int, item: bytes,
                    retry_names: list[str], result: ScanResult, recent: bool = False):
    """A failed attempt's lock: its retry is queued, or must be, or the item failed for good
    (its failed record is written here; while the lock is younger than the lease, its node may
    be between the fence and publishing that record: in flight until then). Returns the repair
    to make, if any."""
    if any(L.parse_lock_name(n) == (ident, attempt + 1) for n in retry_names):
        result.queued += 1
        return None
    if attempt <= spec.retries:
        result.queued += 1
        return store.write_atomic(f"{L.RETRY_DIR}/{L.lock_name(ident, attempt + 1)}", item)
    if recent:
        result.inflight[ident] = item
        return None
    result.failed += 1
    return write_if_absent(store, L.failed_path(ident), record_bytes(
        {"id": ident, "item": L.item_to_json(item), "attempt": attempt, "exit": None, "repaired": True}))


async def write_if_absent(store: Store, rel: str, data: bytes) -> None:
    """A repaired record, unless the real one is there by then: the node that failed the item
    may be between its fence and publishing its record (a scan cannot tell that from a crash);
    its record (with the exit status) wins, never the repair (a rename that refuses a target)."""
    tmp = f"{rel}.tmp-{secrets.token_hex(4)}"
    await store.write(tmp, data)
    if not await store.rename(tmp, rel):
        await store.remove(tmp)


async def _confirm_orphans(store: Store, spec: JobSpec, master_now: float,
                           maybe_orphans: list[tuple[str, str, bytes]], result: ScanResult) -> None:
    # The lock's mtime from the shard listing is older than its contents: a lock emptied since
    # (taken over then committed, or released) was modified then. Only one still unmodified
    # for the lease lost its claimer between the two mkdirs.
    fresh = await asyncio.gather(*(store.stat(L.lock_path(lock)) for _, lock, _ in maybe_orphans))
    for (ident, lock, item), entry in zip(maybe_orphans, fresh):
        if entry is not None and master_now - entry.mtime > spec.lease:
            result.orphans.append((lock, item))
        else:
            result.inflight[ident] = item


def _is_id(name: str) -> bool:
    ident = name.split(".", 1)[0]
    return len(ident) == 24 and all(c in "0123456789abcdef" for c in ident)
