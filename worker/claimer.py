"""Claiming ahead: keep the slots fed, holding only as many items as this node will soon start.

The claimer asks the sweeper for candidates (retry queue first, then the item chunks), claims
them in one pipelined batch and queues the winners for the dispatcher. When nothing is left to
claim it hands over to the end-of-job check.
"""

from __future__ import annotations

import asyncio
import math
from typing import Callable
from collections import deque

from . import layout as L
from .appendfile import AppendFile
from .claims import Candidate, Claim, Claims
from .endofjob import EndOfJob
from .heartbeat import HEARTBEAT
from .nodestate import NodeState
from .sweep import Sweeper

CLAIM_AHEAD_S = 0.05  # claim what this node will start within this long, plus the claim's own time
AHEAD_MAX = 64  # items claimed ahead at most, beyond twice the slots (a bound for very quick items)
LATENCY_SMOOTH = 0.3  # weight of the newest claim's duration in the running estimate
START_AHEAD = 4  # beyond twice the slots and the items finished, until the rate is settled (RATE_MIN_ITEMS over RATE_MIN_SPAN)
RATE_MIN_ITEMS = 8
RATE_MIN_SPAN = 0.5  # s
PROBE = 64  # candidates looked at at once (one stat each) after a batch that won nothing
BATCH_SHARE = 4  # a batch claims a 1/BATCH_SHARE of the target at least, while the slots are fed


def claim_ahead(rate: float, latency: float, slots: int, lead: float = 0.0) -> int:
    """Items to hold beyond the slots: the bandwidth-delay product, the node's rate (items/s)
    times the time a claim takes (its round trips, measured) plus a margin, so a slot never
    waits on the master. Long items (rate x latency well below 1) get 1: the rest stays free
    for other nodes. An unknown rate (0) gets 1 too. ``lead``: how long an item takes to be
    ready once claimed (copy mode: fetching its file, done ahead while the slots run)."""
    if rate <= 0:
        return 1
    want = rate * (CLAIM_AHEAD_S + 2 * latency + lead)
    return max(1, min(2 * max(1, slots) + AHEAD_MAX, math.ceil(want)))


class Claimer:
    def __init__(self, st: NodeState, claims: Claims, sweeper: Sweeper,
                 lead: Callable[[], float] | None = None) -> None:
        self.st = st
        self.lead = lead or (lambda: 0.0)
        self.claims = claims
        self.sweeper = sweeper
        self.finished_at: deque[float] = deque(maxlen=32)  # when recent items ended (for the rate)
        self.finished_count = 0  # items ended on this node
        self.first_finished = 0.0  # when the first of them ended
        self.latency = 0.0  # how long finding and claiming a batch takes (smoothed), s
        self.missed = False  # the last batch won nothing: look ahead (``candidates``)
        self.spare: list[Candidate] = []  # free candidates found by looking ahead, not yet tried
        self.drain_look: list[Candidate] | None = None  # found while the end of the job was looked for
        self.gate: asyncio.Future | None = None  # claim (or end) only once this is done
        self.watched = AppendFile(st.store, f"{L.ITEMS_DIR}/{L.WATCH_PREFIX}{st.node}", b"\0")

    def note_finished(self) -> None:
        now = self.st.clock.monotonic()
        if not self.finished_at:
            self.first_finished = now
        self.finished_at.append(now)
        self.finished_count += 1

    def rate(self) -> float:
        """Items/s this node finishes lately (0: not known). Measured up to now, so items that
        became long lower it at once."""
        if len(self.finished_at) < 2:
            return 0.0
        span = self.st.clock.monotonic() - self.finished_at[0]
        return (len(self.finished_at) - 1) / span if span > 0 else 0.0

    def target_queue(self) -> int:
        """How many items to hold (running + claimed ahead): the slots plus ``claim_ahead``.
        Until the rate rests on enough items over enough time (two slots ending together make a
        huge rate), the look-ahead stays within a start-up bound, so a node that starts first
        does not hoard a short job: twice the slots and START_AHEAD, plus one per item finished
        (a slow start: a node that really is quick, with the master far away, is not held to a
        few items per round trip for RATE_MIN_SPAN)."""
        _, slots = self.st.effective()
        ahead = claim_ahead(self.rate(), self.latency, slots, self.lead())
        if not self.rate_settled():
            ahead = min(ahead, 2 * max(1, slots) + START_AHEAD + self.finished_count)
        return max(1, slots) + ahead

    def rate_settled(self) -> bool:
        """RATE_MIN_ITEMS ended, the first of them RATE_MIN_SPAN ago or more (counted since the
        first, not within the rate's window: at 64 items/s and more, the 32 items it holds span
        less than RATE_MIN_SPAN, and the bound held for good: one round trip per item)."""
        return (self.finished_count >= RATE_MIN_ITEMS
                and self.st.clock.monotonic() - self.first_finished >= RATE_MIN_SPAN)

    def room(self) -> int:
        """How many more items this node may hold now (the claim-ahead bound)."""
        return max(0, self.target_queue() - len(self.st.queue) - len(self.st.running))

    def worth_claiming(self, want: int) -> bool:
        """Claim ``want`` now? Each batch costs two packets each way whatever its size, so while
        the queue still feeds every slot, a batch waits until it is a 1/BATCH_SHARE of the
        target (the queue then still holds the rest: most of CLAIM_AHEAD_S and the claim's
        round trips)."""
        if want <= 0:
            return False
        _, slots = self.st.effective()
        return want >= self.target_queue() // BATCH_SHARE or len(self.st.queue) < max(1, slots)

    async def loop(self, end: EndOfJob) -> None:
        st = self.st
        while True:
            state, _ = st.effective()
            want = self.room()
            if st.pool is not None and state == "running":
                want = st.pool.claim_allowance(st, want)  # serving a root: the node's slots are shared
            if state != "running" or not self.worth_claiming(want):
                await st.wait_kick(HEARTBEAT)
                continue
            began, probing = st.clock.monotonic(), self.missed
            if self.drain_look is not None:  # (looked for meanwhile: no second look)
                candidates, self.drain_look = self.drain_look[:want], (self.drain_look[want:] or None)
            else:
                candidates = await self.candidates(want)
            # The worker's first status write (engine.start): no token of ours on the master
            # before it (the locks may be made meanwhile), no end check either.
            gate, self.gate = self.gate, None
            if gate is not None and not candidates:
                await gate
            st.exhausted = not candidates
            if candidates:
                st.draining = False
                await self.claim(candidates, gate)
                if not probing:
                    took = st.clock.monotonic() - began
                    self.latency += LATENCY_SMOOTH * (took - self.latency)
            elif await end.nothing_to_claim(self.look_while_draining):
                st.finished = True
                st.kick()
                return

    async def look_while_draining(self) -> None:
        """The next look for work (items given back, offered by an end check), made while the
        end of the job is looked for: one round trip per look instead of two in a row."""
        self.drain_look = await self.candidates(max(1, self.room()))

    async def candidates(self, want: int) -> list[Candidate]:
        """The next ``want`` candidates. After a batch that won nothing (we are going through
        items others took), look ahead: ``stat`` the locks of up to PROBE candidates at once
        and offer only the free ones (the rest of them kept for the next batches), so a run of
        taken items costs one round trip per PROBE, not two per batch."""
        if self.spare:
            out, self.spare = self.spare[:want], self.spare[want:]
            return out
        if not self.missed or self.sweeper.help is not None:  # (a helper looks for itself: chunkhelp.py)
            return await self.sweeper.next(want)
        while True:
            cands = await self.sweeper.next(PROBE)
            if not cands:
                return []
            held = await asyncio.gather(*(self.st.store.stat(L.lock_path(c.lock)) for c in cands))
            taken = [c for c, h in zip(cands, held) if h is not None]
            free = [c for c, h in zip(cands, held) if h is None]
            if taken:
                self.sweeper.note_busy(taken, set())
            if free:
                self.spare = free[want:]
                return free[:want]

    def held_here(self) -> set[str]:
        """The locks of items this node runs, has queued or is committing."""
        st = self.st
        return {*st.running, *st.committing, *(c.lock for c in st.queue)}

    async def claim(self, candidates: list[Candidate], gate: asyncio.Future | None = None) -> None:
        # An item this node still runs may be offered again: its claim was given back for it
        # (to the retry queue, by a node that took over ours while we were silent) or found
        # free in its chunk. It is not claimed again here until that run has ended: a claim
        # of the same lock under the same token would let the old run's commit pass the
        # fence, a result of a claim we had lost. (Lost, as it is: another node runs it.)
        here = self.held_here()
        fresh = [c for c in candidates if c.lock not in here]
        won = await self.claims.claim(fresh, gate, contended=self.sweeper.help is not None)
        if gate is not None:
            await gate  # (also when nothing was won: awaited once, before anything else)
        won_locks = {c.lock for c in won}
        if any(c.from_retry and c.lock not in won_locks for c in fresh):
            await self.claims.drop_done_entries([c for c in fresh if c.lock not in won_locks])
        self.missed = bool(fresh) and not won  # (nothing tried, nothing learnt)
        if not won:
            self.spare = []  # (found free by a look-ahead a while ago: taken since, like these)
        self.sweeper.note_busy(candidates, won_locks)
        if won:
            await self.register_watched(candidates, won)
            self.st.queue.extend(won)
            self.st.kick()

    async def register_watched(self, candidates: list[Candidate], won: list[Claim]) -> None:
        """Items found in a watched directory join the item list (one append file per node)."""
        new = {c.item for c in candidates if c.lock == L.item_id(c.item) and not c.from_retry
               and c.item in self.sweeper.watch_known}
        mine = [c.item for c in won if c.item in new]
        if mine:
            await self.watched.append(L.encode_chunk(mine))
            self.st.counters.added += len(mine)
