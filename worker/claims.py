"""Claiming, committing and releasing items: the lock-directory protocol (docs/protocol.md).

  claim     mkdir locks/ab/<lock>            exactly one claimer wins
            mkdir locks/ab/<lock>/<token>    who holds it (node@run)
  take over rename <lock>/<old token> -> <lock>/<my token>     (exactly one wins)
  done      rename <lock>/<my token> -> done/ab/<id>            (fails if the claim was taken)
  failed    rename <lock>/<my token> -> <lock>/failed           (likewise), then failed/ab/<id>
  release   write retry/<lock> (atomically), rmdir <lock>/<token>, rmdir <lock>
  retry     write retry/<lock of next attempt>, then commit the attempt as failed
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from . import layout as L
from .store import Store, StoreError, refused_mkdir


@dataclass(frozen=True)
class Candidate:
    lock: str
    item: bytes
    from_retry: bool = False


@dataclass
class Claim:
    lock: str
    item: bytes
    from_retry: bool = False

    @property
    def ident(self) -> str:
        return L.parse_lock_name(self.lock)[0]

    @property
    def attempt(self) -> int:
        return L.parse_lock_name(self.lock)[1]


class Claims:
    def __init__(self, store: Store, token: str, make_output_dirs: bool = False) -> None:
        # Output dirs cost a mkdir per item on the master: made only for commands that use them.
        self.store = store
        self.token = token
        self.make_output_dirs = make_output_dirs

    def token_path(self, lock: str, token: str | None = None) -> str:
        return f"{L.lock_path(lock)}/{token or self.token}"

    async def claim(self, candidates: list[Candidate], before_tokens=None, contended: bool = False) -> list[Claim]:
        """Try to claim every candidate (pipelined); return the ones this node won.
        ``before_tokens``: awaited between the locks and the tokens (the worker's first status
        write: a token must not appear before its run's status file). ``contended``: the batch
        may well be lost (helping in a chunk): its first lock is looked at in the same round trip.

        A claim cancelled half-way (the worker stopping) lets its requests finish and undoes what
        they won: a lock must not stay without its token (it would hold its item until its lease
        ran out, nobody being able to tell it from a claim being made)."""
        if not candidates:
            return []
        winners = await self._lock(candidates, contended)
        if not winners:
            return []
        if before_tokens is not None:
            try:
                await before_tokens
            except BaseException:  # (our locks, no token yet: nothing else to undo)
                await asyncio.gather(*(self.store.rmdir(L.lock_path(c.lock)) for c in winners),
                                     return_exceptions=True)
                raise
        ops = [self.store.mkdir(self.token_path(c.lock)) for c in winners]
        if self.make_output_dirs:
            ops += [self.store.mkdir(L.output_path(L.parse_lock_name(c.lock)[0])) for c in winners]
        ops += [self.store.remove(f"{L.RETRY_DIR}/{c.lock}") for c in winners if c.from_retry]
        tokens = asyncio.gather(*ops, return_exceptions=True)
        try:
            results = await asyncio.shield(tokens)
        except asyncio.CancelledError:
            await _end_of(tokens)
            await asyncio.gather(*(self.unclaim(c) for c in winners), return_exceptions=True)
            raise
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:  # give the whole batch back (a lock without its token, as above)
            await asyncio.gather(*(self.unclaim(c) for c in winners), return_exceptions=True)
            raise failed[0]
        return [Claim(c.lock, c.item, c.from_retry) for c in winners]

    async def _lock(self, candidates: list[Candidate], contended: bool) -> list[Candidate]:
        """mkdir every candidate's lock; the ones won."""
        # SFTP v3 reports "exists" and "disk full" alike: a batch all lost looks at its first lock.
        # When that is likely, in the same round trip (the server answers in order: after its
        # mkdir); else after, which costs a request only when it happens (usually one item a batch).
        await self.store.modes()  # (known by now: nothing goes out before the mkdirs)
        looks = [self.store.stat(L.lock_path(candidates[0].lock))] if contended else []
        locking = asyncio.gather(*(self.store.mkdir(L.lock_path(c.lock)) for c in candidates), *looks,
                                 return_exceptions=True)
        try:
            results = await asyncio.shield(locking)
        except asyncio.CancelledError:
            results = await _end_of(locking)
            await asyncio.gather(*(self.store.rmdir(L.lock_path(c.lock)) for c, ok in zip(candidates, results)
                                   if ok is True), return_exceptions=True)
            raise
        won, looked = results[:len(candidates)], results[len(candidates):]
        errors = [r for r in won if isinstance(r, BaseException)]
        winners = [c for c, ok in zip(candidates, won) if ok is True]
        if errors:  # the master refused one (a shard not writable): undo the others, say why
            await asyncio.gather(*(self.store.rmdir(L.lock_path(c.lock)) for c in winners),
                                 return_exceptions=True)
            raise errors[0]
        if not winners:
            first = looked[0] if looked else None
            if first is None or isinstance(first, BaseException):  # (or looked before the mkdir went)
                first = await self.store.stat(L.lock_path(candidates[0].lock))
            if first is None:
                raise StoreError(f"{self.store.where(L.lock_path(candidates[0].lock))}: "
                                 f"{await refused_mkdir(self.store)}")
        return winners

    async def drop_done_entries(self, lost: list[Candidate]) -> int:
        """Retry entries whose claim was lost: an entry whose item is done already is stale (the
        item was given back, then taken from its chunk, not from the entry): removed, so that it
        does not keep the job looking unfinished. Returns how many."""
        entries = [c for c in lost if c.from_retry]
        done = await asyncio.gather(*(self.store.exists(L.done_path(L.parse_lock_name(c.lock)[0]))
                                      for c in entries))
        stale = [c for c, d in zip(entries, done) if d]
        await asyncio.gather(*(self.store.remove(f"{L.RETRY_DIR}/{c.lock}") for c in stale))
        return len(stale)

    async def take_over(self, lock: str, old_token: str, item: bytes) -> Claim | None:
        if await self.store.rename(self.token_path(lock, old_token), self.token_path(lock)):
            return Claim(lock, item)
        return None

    async def commit_done(self, claim: Claim) -> bool:
        """Fence and record in one step: our token becomes the done record; False if we lost it."""
        return await self.store.rename(self.token_path(claim.lock), L.done_path(claim.ident))

    async def commit_failed(self, claim: Claim) -> bool:
        """Fence: our token becomes the attempt's failed mark; False if we lost the claim."""
        return await self.store.rename(self.token_path(claim.lock), f"{L.lock_path(claim.lock)}/{L.FAILED_MARK}")

    async def release(self, claim: Claim) -> None:
        """Give a claim back untouched, so any node (this one too) can claim it again."""
        await self.store.write_atomic(f"{L.RETRY_DIR}/{claim.lock}", claim.item)
        if await self.store.rmdir(self.token_path(claim.lock)):
            await self.store.rmdir(L.lock_path(claim.lock))

    async def unclaim(self, c: Candidate) -> None:
        """Give back a claim whose token may not have been made (a claim that failed half-way)."""
        await self.store.write_atomic(f"{L.RETRY_DIR}/{c.lock}", c.item)
        await self.store.rmdir(self.token_path(c.lock))
        await self.store.rmdir(L.lock_path(c.lock))

    async def requeue(self, claim: Claim) -> str:
        """Offer the next attempt of a failed item to every node; returns its lock name."""
        nxt = L.lock_name(claim.ident, claim.attempt + 1)
        await self.store.write_atomic(f"{L.RETRY_DIR}/{nxt}", claim.item)
        return nxt

    async def holds(self, claim: Claim) -> bool:
        return await self.store.exists(self.token_path(claim.lock))


UNDO_WAIT = 5.0  # s a cancelled claim waits for its answers, to undo what it won


async def _end_of(fut: asyncio.Future):
    """Its outcome once it has ended, within UNDO_WAIT (the master unreachable: the claims
    won are left to their leases, as after a crash), else the cancellation goes on."""
    await asyncio.wait([fut], timeout=UNDO_WAIT)
    if not fut.done():
        fut.cancel()
        raise asyncio.CancelledError
    return fut.result()


def record(claim: Claim, node: str, host: str, exit_code: int, started: float, duration: float,
           **extra) -> dict:
    return {"id": claim.ident, "item": L.item_to_json(claim.item), "node": node, "host": host,
            "exit": exit_code, "attempt": claim.attempt, "start": round(started, 3),
            "duration": round(duration, 3), **extra}


def record_bytes(rec: dict) -> bytes:
    return (json.dumps(rec, ensure_ascii=True) + "\n").encode()
