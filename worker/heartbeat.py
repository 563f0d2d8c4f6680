"""The heartbeat: this node's status file on the master, and the master's clock as seen from here.

The status file (``nodes/<node>.json``) is rewritten every second while what it says changes
(items start and end, counters), every ``beat_period(lease)`` seconds (lease/10, between 1 and
10 s) when nothing changes (an idle or paused node), and soon after a control change took effect. Its mtime, set by the master, is how this node reads the master's clock.
A node silent longer than half the lease (frozen, cut off, asleep) may have lost the claims it
made before: each is checked before it starts (claimed ahead, it never ran yet).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import replace

from . import __version__
from . import layout as L
from .controlwatch import ControlWatch
from .errors import PpssError
from .jobstatus import NodeStatus, RunningItem
from .nodestate import NodeState
from .store import NO_SPACE, StoreError
from .store.base import remove_leftover

HEARTBEAT = 1.0  # status file (the heartbeat) at most every second, while it changes
CONTROL_POLL = 1.0  # control.yaml looked at (one stat) every second: a change is seen within 2 s
CONTROL_SETTLE = 0.2
STATUS_FAILURES = 3  # the master refused our status this many times in a row (3 s): stop


def beat_period(lease: float) -> float:
    """How often an unchanged status file is rewritten: ten times per lease (a node is lost
    after a lease of silence), at least every second and at most every 10 s."""
    return min(10.0, max(HEARTBEAT, lease / 10))


class Heartbeat:
    def __init__(self, st: NodeState) -> None:
        self.st = st
        self.started = st.clock.wall()
        self.written = (0.0, 0.0)  # (master mtime, local monotonic) of our last heartbeat
        self.last_beat = 0.0  # clock.awake() of our last heartbeat on the master
        self.suspect: set[str] = set()  # claimed ahead before a long silence
        self.last_said: NodeStatus | None = None  # what the last status file said (time aside)

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

    def changed(self) -> bool:
        return replace(self.status(), updated=0.0) != self.last_said

    async def write(self) -> None:
        st = self.st
        status = self.status()
        path = L.status_path(st.node)
        tmp = f"{path}.tmp-{secrets.token_hex(4)}"
        try:
            await st.store.write(tmp, status.to_json())
            mono = st.clock.monotonic()
            # the rename and the stat of the result in one round trip (answered in order)
            _, entry = await asyncio.gather(st.store.replace(tmp, path), st.store.stat(path))
        except BaseException:
            await remove_leftover(st.store, tmp)
            raise
        self.last_said = replace(status, updated=0.0)
        if entry:
            beat = st.clock.awake()
            if self.last_beat and beat - self.last_beat > st.spec.lease / 2:
                self.suspect |= {c.lock for c in st.queue}
            self.written, self.last_beat = (entry.mtime, mono), beat

    async def write_final(self) -> None:
        """The status a worker leaves when it stops on an error (state ``error``, the reason).
        A full master has no room for a new file (and what one frees, another worker takes):
        the status is written over our old status file, in place."""
        st = self.st
        try:
            await self.write()
            return
        except PpssError as exc:  # (a lost connection too)
            if NO_SPACE not in str(exc):
                st.log(f"final status not written: {exc}")
                return
        try:
            status = self.status()
            if await st.store.overwrite(L.status_path(st.node), status.to_json()):
                self.last_said = replace(status, updated=0.0)
            else:
                await self.write()  # no old status file (none was ever written)
        except PpssError as exc:
            st.log(f"final status not written: {exc}")

    def must_verify(self, lock: str) -> bool:
        """Check the claim is still ours before starting it? (Once per suspect claim.)"""
        verify = lock in self.suspect or self.st.clock.awake() - self.last_beat > self.st.spec.lease / 2
        self.suspect.discard(lock)
        return verify

    async def loop(self, control: ControlWatch) -> None:
        """control.yaml every second (one stat); the status file every second while it changes,
        every beat_period(lease) when it does not, and soon after a control change, once the
        change took effect, so the console sees it within 2 s."""
        failures = 0
        clock = self.st.clock
        last_status = clock.monotonic()  # the worker's start wrote it and polled control.yaml
        beat = beat_period(self.st.spec.lease)
        while True:
            await asyncio.sleep(CONTROL_POLL)
            try:
                changed = await control.poll()
                if changed:
                    await asyncio.sleep(CONTROL_SETTLE)  # let the dispatcher start or stop items
                since = clock.monotonic() - last_status
                if changed or since >= beat or (since >= HEARTBEAT and self.changed()):
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
