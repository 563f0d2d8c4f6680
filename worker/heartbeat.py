"""The heartbeat: this node's status file on the master, and the master's clock as seen from here.

The status file (``nodes/<node>.json``) is rewritten once a second and soon after a control
change took effect. Its mtime, set by the master, is how this node reads the master's clock.
A node silent longer than half the lease (frozen, cut off, asleep) may have lost the claims it
made before: each is checked before it starts (claimed ahead, it never ran yet).
"""

from __future__ import annotations

import asyncio
import os

from . import __version__
from . import layout as L
from .controlwatch import ControlWatch
from .errors import PpssError
from .jobstatus import NodeStatus, RunningItem
from .nodestate import NodeState
from .store import NO_SPACE, StoreError

HEARTBEAT = 1.0  # status file (the heartbeat) every second
CONTROL_POLL = 0.5  # control.yaml looked at twice a second
CONTROL_SETTLE = 0.2
STATUS_FAILURES = 3  # the master refused our status this many times in a row (3 s): stop


class Heartbeat:
    def __init__(self, st: NodeState) -> None:
        self.st = st
        self.started = st.clock.wall()
        self.written = (0.0, 0.0)  # (master mtime, local monotonic) of our last heartbeat
        self.last_beat = 0.0  # clock.awake() of our last heartbeat on the master
        self.suspect: set[str] = set()  # claimed ahead before a long silence

    def master_now(self) -> float:
        mtime, mono = self.written
        return mtime + (self.st.clock.monotonic() - mono) if mtime else self.st.clock.wall()

    def status(self) -> NodeStatus:
        st, c = self.st, self.st.counters
        _, slots = st.effective()
        return NodeStatus(
            name=st.node, state=st.reported_state(), host=st.host, pid=os.getpid(),
            run_id=st.run_id, slots=slots, done=c.done, failed=c.failed, added=c.added,
            lost_leases=c.lost_leases, draining=st.draining,
            running=tuple(RunningItem(r.claim.lock, L.item_to_json(r.claim.item), r.slot, r.started)
                          for r in st.running.values()),
            # Claimed ahead, and finished but not yet committed: held either way.
            claims=tuple((c.lock, L.item_to_json(c.item))
                         for c in (*st.queue, *st.committing.values())),
            error=st.error or st.control_error, started=self.started, updated=st.clock.wall(),
            version=__version__)

    async def write(self) -> None:
        st = self.st
        await st.store.write_atomic(L.status_path(st.node), self.status().to_json())
        mono = st.clock.monotonic()
        entry = await st.store.stat(L.status_path(st.node))
        if entry:
            beat = st.clock.awake()
            if self.last_beat and beat - self.last_beat > st.spec.lease / 2:
                self.suspect |= {c.lock for c in st.queue}
            self.written, self.last_beat = (entry.mtime, mono), beat

    async def write_final(self) -> None:
        """The status a worker leaves when it stops on an error (state ``error``, the reason).
        A full master has no room for a new file: our old status file makes that room."""
        st = self.st
        try:
            await self.write()
            return
        except PpssError as exc:  # (a lost connection too)
            if NO_SPACE not in str(exc):
                st.log(f"final status not written: {exc}")
                return
        try:
            await st.store.remove(L.status_path(st.node))
            await self.write()
        except PpssError as exc:
            st.log(f"final status not written: {exc}")

    def must_verify(self, lock: str) -> bool:
        """Check the claim is still ours before starting it? (Once per suspect claim.)"""
        verify = lock in self.suspect or self.st.clock.awake() - self.last_beat > self.st.spec.lease / 2
        self.suspect.discard(lock)
        return verify

    async def loop(self, control: ControlWatch) -> None:
        """control.yaml twice a second, the status file once a second — and soon after a
        control change, once the change took effect, so the console sees it within 2 s."""
        last_status = 0.0
        failures = 0
        clock = self.st.clock
        while True:
            try:
                changed = await control.poll()
                if changed:
                    await asyncio.sleep(CONTROL_SETTLE)  # let the dispatcher start or stop items
                if changed or clock.monotonic() - last_status >= HEARTBEAT:
                    last_status = clock.monotonic()
                    await self.write()
                    failures = 0
            except StoreError as exc:
                # Not a lost connection (the store retries those): the master refuses our
                # status (job directory gone, not writable, full). Say it; stop if it lasts.
                failures += 1
                if failures >= STATUS_FAILURES:
                    raise
                self.st.log(str(exc))
            await asyncio.sleep(CONTROL_POLL)
