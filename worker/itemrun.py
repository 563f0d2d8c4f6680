"""An item's life on this node: start it in a free slot, run it (fetching and uploading its
files in copy mode), then record the result.

The result is committed after the slot is freed, so a slot never waits on the network. The
order of a commit: the next attempt's retry entry (if it will be retried), the fence (rename
of our token: done record, or the attempt's failed mark), the job-log line, then the item's
log and failed record. A fence that fails means another node took the item over: the result
is discarded, logged as ``lost_lease``. Items ending close together are committed together
(commithold.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import replace
from typing import Callable

from . import layout as L
from .claims import Claim, Claims, record, record_bytes
from .commithold import CommitHold
from .heartbeat import Heartbeat
from .joblog import JobLog
from .nodestate import NodeState, Running
from .runner import ItemProcess, Result
from .store import StoreError
from .transfer import CopyTransfer, TransferError

LOG_TAIL = 4096
TRANSFER_FAILED = 254  # the exit status recorded when fetching or uploading an item failed
ABORT_WAIT = 30.0  # a fatal error: how long running items get to end and be given back


class ItemRunner:
    def __init__(self, st: NodeState, claims: Claims, heartbeat: Heartbeat, joblog: JobLog,
                 transfer: CopyTransfer | None, job_path: str, on_finished: Callable[[], None],
                 rate: Callable[[], float] = lambda: 0.0) -> None:
        self.st, self.claims, self.heartbeat, self.joblog = st, claims, heartbeat, joblog
        self.transfer = transfer
        self.job_path = job_path
        self.on_finished = on_finished
        self.base_env = dict(os.environb) if hasattr(os, "environb") else {}
        self.prefetching: dict[str, asyncio.Task] = {}  # copy mode: lock -> fetch of a queued item
        self.hold = CommitHold(st, rate)  # items ending close together: their commits go out together

    def free_slot(self) -> int:
        used = {r.slot for r in self.st.running.values()}
        slot = 1
        while slot in used:
            slot += 1
        return slot

    def item_env(self, claim: Claim, slot: int, item: bytes, out: str) -> dict:
        env = dict(self.base_env)
        env.update({b"ITEM": item, b"ITEM_ID": claim.ident.encode(),
                    b"PPSS_NODE": self.st.node.encode(), b"PPSS_SLOT": str(slot).encode(),
                    b"PPSS_ATTEMPT": str(claim.attempt).encode(), b"OUTPUT_DIR": os.fsencode(out),
                    b"PPSS_JOB": os.fsencode(self.job_path)})
        return env

    def start(self, claim: Claim) -> None:
        st = self.st
        slot = self.free_slot()
        out = os.path.join(self.job_path, L.output_path(claim.ident))
        proc = ItemProcess(st.spec.command, self.item_env(claim, slot, claim.item, out), timeout=st.spec.timeout)
        st.running[claim.lock] = Running(claim, slot, st.clock.wall(), proc)
        task = asyncio.create_task(self.run_one(claim, proc, self.heartbeat.must_verify(claim.lock)))
        st.tasks.add(task)
        task.add_done_callback(st.task_done)
        self.prefetch()

    def prefetch(self) -> None:
        """Copy mode: fetch the next queued items' files while the slots run (as many as the
        slots); drop fetches of items no longer queued (released)."""
        st = self.st
        if not self.transfer:
            return
        _, slots = st.effective()
        queued = [c for _, c in zip(range(max(1, slots)), st.queue)]
        keep = {c.lock for c in queued} | st.running.keys()
        for lock in [lock for lock in self.prefetching if lock not in keep]:
            self.prefetching.pop(lock).cancel()
        for c in queued:
            if c.lock not in self.prefetching:
                task = asyncio.create_task(self.transfer.fetch(c.ident, c.item))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved later
                self.prefetching[c.lock] = task

    async def still_holds(self, claim: Claim) -> bool:
        """After a long silence: be seen alive again, then check the claim is still ours."""
        st = self.st
        try:
            await self.heartbeat.write()
        except StoreError as exc:
            st.log(str(exc))
        if await self.claims.holds(claim):
            return True
        st.running.pop(claim.lock, None)
        st.counters.lost_leases += 1
        st.log(f"lease lost on {L.display_item(claim.item, 60)}: not started (another node runs it)")
        self.joblog.write({"event": "lost_lease", **record(claim, st.node, st.host, None, st.clock.wall(), 0.0),
                           "not_started": True})
        st.kick()
        return False

    async def run_one(self, claim: Claim, proc: ItemProcess, verify: bool = False) -> None:
        st = self.st
        if verify and not await self.still_holds(claim):
            return
        work, result = None, None
        if self.transfer:
            work, result = await self.fetch(claim, proc)
        if result is None and (st.interrupted or st.fatal):
            st.running.pop(claim.lock, None)
            st.queue.extend(await self.give_back([claim]))
            return
        ran = result is None
        if ran:
            result = await proc.run()
        st.committing[claim.lock] = claim
        st.running.pop(claim.lock, None)
        self.on_finished()
        st.kick()
        self.prefetch()
        try:
            if ran and work:  # the upload too is off the slot: the next item runs meanwhile
                try:
                    result = await self.upload(proc, claim, result)
                except StoreError:  # the master refused the upload (full, not writable): not the item's fault
                    self.transfer.cleanup(work)
                    st.queue.extend(await self.give_back([claim]))
                    raise
            await self.settle(claim, result, work, killed=ran and proc.terminated)
        finally:
            st.committing.pop(claim.lock, None)

    async def fetch(self, claim: Claim, proc: ItemProcess) -> tuple[str | None, Result | None]:
        """Copy mode: fetch the item; (work dir, None), or (None, the failure's result)."""
        task = self.prefetching.pop(claim.lock, None)
        try:
            work, local, out = await (task or self.transfer.fetch(claim.ident, claim.item))
        except TransferError as exc:
            return None, Result(TRANSFER_FAILED, f"ppss: {exc}\n".encode(), time.time(), 0.0)
        proc.env.update({b"ITEM": os.fsencode(local), b"OUTPUT_DIR": os.fsencode(out)})
        return work, None

    async def upload(self, proc: ItemProcess, claim: Claim, result: Result) -> Result:
        if result.exit_code == 0:
            try:
                notes = await self.transfer.upload(claim.item, os.fsdecode(proc.env[b"OUTPUT_DIR"]))
                result = replace(result, output=result.output + notes) if notes else result
            except TransferError as exc:
                result = Result(TRANSFER_FAILED, result.output + f"ppss: {exc}\n".encode(),
                                result.started, result.duration, result.truncated)
        return result

    async def settle(self, claim: Claim, result: Result, work: str | None, killed: bool) -> None:
        st = self.st
        if (st.interrupted or st.fatal) and killed and result.exit_code != 0:
            # We stopped it (a signal, or a fatal error on the master): give it back to run
            # again. (One that finished despite the signal, or before it, is recorded.)
            st.queue.extend(await self.give_back([claim]))
            return
        if work:
            if result.exit_code == 0:
                self.transfer.cleanup(work)
            else:
                result = replace(result, output=result.output + f"ppss: work directory kept: {work}\n".encode())
        await self.commit(claim, result)

    async def abort_all(self, grace: float = ABORT_WAIT) -> None:
        """End every running item (whole tree) and wait for their tasks to give them back."""
        st = self.st
        await asyncio.gather(*(r.proc.terminate() for r in list(st.running.values())),
                             return_exceptions=True)
        pending = [t for t in st.tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)

    async def give_back(self, claims: list[Claim]) -> list[Claim]:
        """Release each claim; the ones the master refused stay ours (returned), listed in our
        status for a restart of this node, or another node, to take back."""
        results = await asyncio.gather(*(self.claims.release(c) for c in claims), return_exceptions=True)
        kept = [c for c, r in zip(claims, results) if isinstance(r, BaseException)]
        errors = [r for r in results if isinstance(r, StoreError)]
        if kept:
            self.st.log(f"{len(kept)} claims not given back ({errors[0] if errors else 'error'}): "
                        "left to be taken back")
        return kept

    async def commit(self, claim: Claim, result: Result) -> None:
        """Stage the log and failed record under temporary names, queue the retry, fence, then
        publish (renames only). A master error before the fence gives the claim back and stops
        the worker: the item runs again, once the cause is fixed; nothing half-written remains."""
        st = self.st
        await self.hold.turn()
        ok = result.exit_code == 0
        will_retry = not ok and claim.attempt <= st.spec.retries
        rec = record(claim, st.node, st.host, result.exit_code, result.started, result.duration,
                     **({"reason": result.reason} if result.reason else {}))
        tail = result.output[-LOG_TAIL:].decode("utf-8", "replace")
        files = []
        if result.output or not ok:
            files.append((L.log_path(claim.ident), self.log_text(claim, result)))
        if not ok and not will_retry:
            files.append((L.failed_path(claim.ident), record_bytes({**rec, "output_tail": tail})))
        staged: list[tuple[str, str]] = []
        next_lock = None
        try:
            staged = await self.stage(files)
            next_lock = await self.claims.requeue(claim) if will_retry else None
            fenced = await (self.claims.commit_done(claim) if ok else self.claims.commit_failed(claim))
        except StoreError:
            await self.unstage(staged, next_lock)
            st.queue.extend(await self.give_back([claim]))
            raise
        if not fenced:
            await self.unstage(staged, None)
            await self.discard(claim, rec, next_lock)
            return
        self.joblog.write({"event": "done" if ok else ("retry" if will_retry else "failed"), **rec,
                           **({"output_tail": tail} if tail else {})})
        if ok:
            st.counters.done += 1
        elif not will_retry:
            st.counters.failed += 1
            st.counters.failed_this_run += 1
        await asyncio.gather(*(st.store.replace(tmp, final) for tmp, final in staged))

    async def stage(self, files: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
        """Write each (final name, data) under a temporary name; [(temporary, final)]."""
        staged = [(f"{final}.tmp-{secrets.token_hex(4)}", final) for final, _ in files]
        results = await asyncio.gather(*(self.st.store.write(tmp, data) for (tmp, _), (_, data)
                                         in zip(staged, files)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.unstage(staged, None)
            raise failed[0]
        return staged

    async def unstage(self, staged: list[tuple[str, str]], next_lock: str | None) -> None:
        """Best effort: remove what a commit that did not happen left (never masks its error)."""
        paths = [tmp for tmp, _ in staged] + ([f"{L.RETRY_DIR}/{next_lock}"] if next_lock else [])
        await asyncio.gather(*(self.st.store.remove(p) for p in paths), return_exceptions=True)

    async def discard(self, claim: Claim, rec: dict, next_lock: str | None) -> None:
        """Our claim was taken over (we were silent longer than the lease): not ours to record."""
        st = self.st
        if next_lock:
            await st.store.remove(f"{L.RETRY_DIR}/{next_lock}")
        st.counters.lost_leases += 1
        st.log(f"lease lost on {L.display_item(claim.item, 60)}: result discarded (another node runs it)")
        self.joblog.write({"event": "lost_lease", **rec})

    def log_text(self, claim: Claim, result: Result) -> bytes:
        head = (f"# item: {L.display_item(claim.item)}\n# id: {claim.ident}  attempt: {claim.attempt}\n"
                f"# node: {self.st.node}  host: {self.st.host}\n"
                f"# start: {time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(result.started))}"
                f"  duration: {result.duration:.3f} s  exit: {result.exit_code}\n")
        if result.reason:
            head += f"# reason: {result.reason}\n"
        if result.truncated:
            head += f"# (first {result.truncated} bytes of output dropped)\n"
        return head.encode() + result.output
