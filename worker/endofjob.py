"""The end of the job: when nothing is left to claim, is every item finished?

First the nodes' counters (they never over-count: a commit is counted once, by the node whose
fence succeeded); when they fall short and no other live node is busy, a scan of the job
directory (``reconcile.scan``) decides, and the items nobody will finish (held by a lost run,
orphaned locks, never claimed) are claimed here up to the claim-ahead bound, and the rest is
offered to every node through the retry queue.

The node whose check finds the job finished writes ``finished.json`` (``{"done", "failed",
"at"}``). The other draining nodes look for that one small file every END_CHECK at most (more
often in a small fleet: ``look_pace``) and read every node's counters themselves only every
END_FULL_CHECK, so a fleet's tail costs the master O(N) requests, not O(N²). Of two nodes
starting to drain together, at least one reads the other's final counters (each writes its
status, then reads), so the last to drain always finds the end.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Awaitable, Callable

from . import layout as L
from .claims import Candidate, Claim, Claims
from .heartbeat import HEARTBEAT, Heartbeat
from .jobstatus import (FINAL_STATES, FINISHED_FILE, RETRIED_FILE, NodeStatus, json_mapping, look_pace,
                        node_entries, read_nodes, retried_count)
from .leases import Leases
from .nodestate import NodeState
from .reconcile import ScanResult, scan
from .store import StoreError

END_CHECK = 0.1  # how often (at most: look_pace) a worker with nothing left to claim looks for finished.json,
END_CHECK_FAST_FOR = 2.0  # during the first seconds of waiting,
END_CHECK_SLOW = 1.0  # and after that;
END_FULL_CHECK = 2.0  # how often it reads every node's counters itself (and scans when they fall short)
END_OFFERS = 1024  # items left behind one end-of-job check offers to the retry queue at most
CLAIM_BATCH = 64  # retry entries written at once


class EndOfJob:
    def __init__(self, st: NodeState, claims: Claims, leases: Leases, heartbeat: Heartbeat,
                 target_queue: Callable[[], int]) -> None:
        self.st, self.claims, self.leases, self.heartbeat = st, claims, leases, heartbeat
        self.target_queue = target_queue
        self.draining_since = 0.0
        self.last_check = 0.0  # the last full check (every node's counters)
        self.counts = (0, 0)  # (done, failed) of the job, as the check that found it finished counted
        self.counted = (-1, -1)  # our own (done, failed) at the last full check
        self.marking: asyncio.Future | None = None  # writing finished.json
        self.node_names: list[str] | None = None  # the job's nodes at the last full check
        self.rescan = False  # the last check scanned and left work: check fully at the next look
        self.last_scan: ScanResult | None = None
        self.last_recovery = 0.0
        self.last_full_scan = st.clock.monotonic()  # while others are busy: a full check per lease

    async def nothing_to_claim(self, look: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Called when the sweeper found nothing: wait a little; True once the job is finished.
        ``look``: the claimer's next look for work, made during the pause while draining."""
        st, clock = self.st, self.st.clock
        if st.spec.watch:
            # A watched job ends only when stopped; meanwhile recover what lost nodes left.
            if clock.monotonic() - self.last_recovery > max(END_CHECK, st.spec.lease / 2):
                self.last_recovery = clock.monotonic()
                await self.check()
            await st.wait_kick(HEARTBEAT)
            return False
        # Nothing left to claim: finished once every item has a final record.
        if st.running or st.queue or st.commit_tasks():
            st.draining = False  # (items taken over): drain again after them, with a full check
            await st.wait_kick(HEARTBEAT)
            return False
        mine = (st.counters.done, st.counters.failed)
        # A check that scanned and left work (items taken back, locks unresolved) goes on at the
        # look's pace; otherwise finished.json says the end, and a full check is a fallback.
        full = self.rescan or clock.monotonic() - self.last_check >= END_FULL_CHECK
        listed = None
        if not st.draining or mine != self.counted:  # (items taken back since the last check)
            if not st.draining:
                st.draining, self.draining_since = True, clock.monotonic()
            # Our final counters, for the others' end check; nodes/ is listed meanwhile (the
            # files are read once ours is written: of two nodes ending together, one sees the other's).
            _, listed = await asyncio.gather(self.heartbeat.write(), node_entries(st.store))
            full, self.counted = True, mine
        if full:
            self.last_check = clock.monotonic()
            if await self.check(listed):
                # finished.json goes out while the worker writes its final status (engine.run)
                self.marking = asyncio.ensure_future(self.mark_finished())
                return True
        # Look often while the others are finishing their last items, then less (the look
        # and the pause overlap: a master far away costs no extra round trip per look).
        waited = clock.monotonic() - self.draining_since
        fleet = len(self.node_names) if self.node_names is not None else 1 << 20  # (unknown: the slowest)
        every = look_pace(fleet, END_CHECK) if waited < END_CHECK_FAST_FOR else END_CHECK_SLOW
        pause = asyncio.ensure_future(asyncio.sleep(every))
        looking = asyncio.ensure_future(look()) if look is not None and not full else None
        try:
            if not full and await self.found_finished():
                return True  # at once: the rest of the pause was for a look that found nothing
            await pause
            if looking is not None:
                await looking
        finally:
            pause.cancel()
            if looking is not None and not looking.done():
                looking.cancel()
                await asyncio.gather(looking, return_exceptions=True)
        return False

    async def marked(self) -> None:
        """finished.json written (if this node found the end): awaited before the worker ends."""
        if self.marking is not None:
            await self.marking

    async def found_finished(self) -> bool:
        """Has another node found the job finished (finished.json)? Its counts become ours."""
        mark = json_mapping(await self.st.store.read(FINISHED_FILE))
        if mark is None:
            return False
        try:
            self.st.counters.job_failed = max(0, int(mark.get("failed", 0)))
        except (TypeError, ValueError):
            return False
        return True

    async def mark_finished(self) -> None:
        """Tell the other draining nodes (and the console): finished.json (another node's, if
        there, has the same counts: replaced)."""
        st = self.st
        done, failed = self.counts
        data = {"done": done, "failed": failed, "at": round(self.heartbeat.master_now(), 3)}
        try:
            await st.store.write_atomic(FINISHED_FILE, json.dumps(data).encode())
        except StoreError as exc:  # the others find the end by their own checks
            st.log(f"finished.json not written: {exc}")

    async def check(self, listed: list | None = None) -> bool:
        """Is every item finished? If not, take what nobody will finish (lost, orphaned, dropped).
        ``listed``: nodes/ listed already (node_entries)."""
        st = self.st
        nodes, retried = await asyncio.gather(read_nodes(st.store, self.heartbeat.master_now(), listed),
                                              st.store.read(RETRIED_FILE))  # (one round trip)
        self.node_names = [n.name for n in nodes]
        others = [n for n in nodes if n.name != st.node]
        done = st.counters.done + sum(n.done for n in others)
        failed = st.counters.failed + sum(n.failed for n in others)
        if not st.spec.watch and done + failed >= st.spec.total:
            # Net of the failed records `retry` moved to history (their items run again).
            failed -= retried_count(retried)
            if done + failed >= st.spec.total:
                st.counters.job_failed, self.counts = failed, (done, failed)
                return True  # the counters add up: no listing needed
        # Others still sweeping or holding items may finish everything: wait for them (a full
        # check per lease at most), unless they too have nothing left to do.
        busy = any((n.held_locks() or not n.draining) and n.state not in FINAL_STATES
                   for n in others if not n.is_lost(st.spec.lease))
        self.rescan = False
        if busy and st.clock.monotonic() - self.last_full_scan < st.spec.lease:
            return False  # others are finishing their items; lost ones are taken by Leases.loop
        self.last_full_scan = st.clock.monotonic()
        result, full = await self.scan(nodes)
        if full and result.complete:
            await self.finish(result)
            return True
        await self.take_left_behind(result)
        self.rescan = True
        return False

    async def scan(self, nodes: list[NodeStatus]) -> tuple[ScanResult, bool]:
        """Scan what the last scan left unresolved (or everything); True if it was a full scan."""
        st = self.st
        live = self.leases.live_tokens(nodes)
        only = self.last_scan.unresolved if self.last_scan and not self.last_scan.complete else None
        result = await scan(st.store, st.spec, live, self.heartbeat.master_now(), only=only)
        if only is not None and not result.unresolved and not result.queued:
            # Everything we were waiting on is resolved: confirm with a full check.
            only = None
            result = await scan(st.store, st.spec, live, self.heartbeat.master_now())
        self.last_scan = result
        return result, only is None

    async def finish(self, result: ScanResult) -> None:
        st = self.st
        st.counters.job_failed, self.counts = result.failed, (result.done, result.failed)
        # The nodes' counters fell short (a node crashed just after a commit): keep the
        # exact figures where `status` finds them.
        await st.store.write_atomic(L.RECOUNT_FILE, json.dumps(
            {"done": result.done, "failed": result.failed, "node": st.node}).encode())

    async def take_left_behind(self, result: ScanResult) -> None:
        """Claim what nobody will finish, no more than the claim-ahead bound; offer the rest to
        every node through the retry queue, so the tail spreads over the live nodes."""
        st = self.st
        room = max(1, self.target_queue() - len(st.queue) - len(st.running))
        ahead: list[Claim] = await self.leases.take_back(result.stale) if result.stale else []
        ahead, offered = await self.leases.keep_within_bound(ahead, room)
        graves = await asyncio.gather(*(st.store.rename(L.lock_path(lock),
                                                        f"{L.GRAVE_DIR}/{lock}.{secrets.token_hex(3)}")
                                        for lock, _ in result.orphans))
        cands = [Candidate(lock, item) for (lock, item), ok in zip(result.orphans, graves) if ok]
        cands += result.unclaimed
        take, offer = cands[:max(0, room - len(ahead))], cands[max(0, room - len(ahead)):][:END_OFFERS]
        ahead += await self.claims.claim(take)
        for i in range(0, len(offer), CLAIM_BATCH):
            await asyncio.gather(*(st.store.write_atomic(f"{L.RETRY_DIR}/{c.lock}", c.item)
                                   for c in offer[i:i + CLAIM_BATCH]))
        offered += len(offer)
        if ahead or offered:
            st.log(f"end of job check: took {len(ahead)} items left behind"
                   + (f", offered {offered} to every node (retry queue)" if offered else ""))
            st.queue.extend(ahead)
            st.kick()
