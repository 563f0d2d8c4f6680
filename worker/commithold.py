"""Holding a commit a moment, so that the commits of items ending close together go out together.

Every request to the master costs a packet each way: its encryption, a send, the master's
wake-up, the answer's decryption. A batch of requests made in one event-loop turn goes out as
one packet (store/sftp.py's coalescing writer), so the fences of several items cost little more
than one. When this node finishes items quickly enough that more are expected to end within
HOLD (``rate × HOLD ≥ EXPECTED``), a finished item's commit waits up to HOLD for them, or until
HOLD_MAX are waiting. Slower items are committed at once: there is nothing to batch with them.

Nothing waits when the node has nothing else running or queued (the last items of the job, a
pause) or when it is stopping (a signal, a fatal error). A held commit is an item listed in the
node's status as being committed, like any other: a node lost during the hold costs at most
``rate × HOLD`` more re-runs of items a few milliseconds long (docs/protocol.md, "Which items
may run twice").
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .nodestate import NodeState

HOLD = 0.01  # s: how long a finished item's commit may wait for others
HOLD_MAX = 16  # commits waiting at most: the next one sends them all
EXPECTED = 2.0  # items expected to end within HOLD for a hold to be worth it


class CommitHold:
    def __init__(self, st: NodeState, rate: Callable[[], float]) -> None:
        self.st = st
        self.rate = rate  # items/s this node finishes lately (claimer.py)
        self.waiting: asyncio.Future | None = None  # the commits held now go out when it is done
        self.count = 0
        self.timer: asyncio.TimerHandle | None = None

    def worth_holding(self) -> bool:
        st = self.st
        if st.interrupted or st.fatal or not (st.running or st.queue):
            return False
        return self.rate() * HOLD >= EXPECTED

    async def turn(self) -> None:
        """Return when this commit may go out (with the others held now)."""
        if not self.worth_holding():
            self.release()  # (and those held: the last item ended, or we are stopping)
            return
        if self.waiting is None:
            loop = asyncio.get_running_loop()
            self.waiting = loop.create_future()
            self.timer = loop.call_later(HOLD, self.release)
        waiting = self.waiting
        self.count += 1
        if self.count >= HOLD_MAX:
            self.release()
        await asyncio.shield(waiting)  # (one commit cancelled does not release the others)

    def release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(None)
        self.waiting, self.count = None, 0
