"""The halt rule, watched by every worker of a job with ``halt:`` in job.yaml.

When this node's failed count grew, at most every ``HALT_CHECK`` seconds, the job's counts are
added up from the nodes' status files (net of items moved to history by ``retry``) and
``jobops.apply_halt`` rewrites control.yaml with ``state: halted`` and the reason if the
failures passed the threshold (halt.py). The control watch then sees ``halted`` like any other
state: nothing new starts, claims ahead are released, running items finish. Two workers
noticing at once write the same thing.
"""

from __future__ import annotations

import asyncio

from .control import ControlError
from .jobops import apply_halt
from .jobstatus import RETRIED_FILE, read_nodes, retried_count
from .nodestate import NodeState
from .store import StoreError

HALT_CHECK = 1.0


class HaltWatch:
    def __init__(self, st: NodeState, on_halt=None) -> None:
        self.st = st
        self.seen_failed = 0
        self.on_halt = on_halt  # reread control.yaml at once: this node stops starting items now

    async def check(self) -> str | None:
        """Apply the rule now if our failures grew; the reason if the job was halted."""
        st = self.st
        if not st.spec.halt or st.counters.failed <= self.seen_failed or st.control.state != "running":
            return None
        self.seen_failed = st.counters.failed
        nodes, retried = await asyncio.gather(read_nodes(st.store), st.store.read(RETRIED_FILE))
        others = [n for n in nodes if n.name != st.node]
        done = st.counters.done + sum(n.done for n in others)
        failed = st.counters.failed + sum(n.failed for n in others) - retried_count(retried)
        reason = await apply_halt(st.store, st.spec, done, failed)
        if reason:
            st.log(f"halted: {reason} (job.yaml halt: {st.spec.halt}); resume to run on")
            if self.on_halt:
                await self.on_halt()
        return reason

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(HALT_CHECK)
            try:
                await self.check()
            except (StoreError, ControlError) as exc:
                self.st.log(str(exc))
