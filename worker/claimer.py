"""Claiming ahead: keep the slots fed, holding only as many items as this node will soon start.

The claimer asks the sweeper for candidates (retry queue first, then the item chunks), claims
them in one pipelined batch and queues the winners for the dispatcher. When nothing is left to
claim it hands over to the end-of-job check.
"""

from __future__ import annotations

import math
from collections import deque

from . import layout as L
from .claims import Candidate, Claim, Claims
from .endofjob import EndOfJob
from .heartbeat import HEARTBEAT
from .nodestate import NodeState
from .sweep import Sweeper

CLAIM_AHEAD_S = 0.05  # claim what this node will start within this long


class Claimer:
    def __init__(self, st: NodeState, claims: Claims, sweeper: Sweeper) -> None:
        self.st = st
        self.claims = claims
        self.sweeper = sweeper
        self.finished_at: deque[float] = deque(maxlen=32)  # when recent items ended (for the rate)

    def note_finished(self) -> None:
        self.finished_at.append(self.st.clock.monotonic())

    def target_queue(self) -> int:
        """How many items to hold (running + claimed ahead): the slots, plus enough to cover a
        claim's round trips at the current rate: many for quick items, one for long ones (which
        then stay free for other nodes)."""
        _, slots = self.st.effective()
        ahead = 1
        if len(self.finished_at) >= 2:
            span = self.finished_at[-1] - self.finished_at[0]
            rate = (len(self.finished_at) - 1) / span if span > 0 else float("inf")
            ahead = max(1, math.ceil(min(2 * slots + 4, rate * CLAIM_AHEAD_S)))  # rate may be inf
        return max(1, slots) + ahead

    async def loop(self, end: EndOfJob) -> None:
        st = self.st
        while True:
            state, _ = st.effective()
            want = self.target_queue() - len(st.queue) - len(st.running)
            if state != "running" or want <= 0:
                await st.wait_kick(HEARTBEAT)
                continue
            candidates = await self.sweeper.next(want)
            if candidates:
                st.draining = False
                await self.claim(candidates)
            elif await end.nothing_to_claim():
                st.finished = True
                st.kick()
                return

    async def claim(self, candidates: list[Candidate]) -> None:
        won = await self.claims.claim(candidates)
        self.sweeper.note_busy(candidates, {c.lock for c in won})
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
            await self.st.store.append(f"{L.ITEMS_DIR}/{L.WATCH_PREFIX}{self.st.node}", L.encode_chunk(mine))
            self.st.counters.added += len(mine)
