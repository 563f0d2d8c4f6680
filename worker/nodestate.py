"""The state the worker's parts share: who we are, what we hold, what control.yaml says.

Every part (heartbeat, control watch, leases, claimer, end of job, item runner) reads and
changes this one object; all run on one event loop, so no locking is needed. ``kick`` wakes
the dispatcher and the claimer.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections import deque
from dataclasses import dataclass

from . import layout as L
from .claims import Claim
from .clock import Clock, wait_event
from .control import Control
from .counters import Counters
from .fleet import most_restrictive
from .jobspec import JobSpec
from .runner import ItemProcess
from .store import Store


@dataclass
class Running:
    claim: Claim
    slot: int
    started: float
    proc: ItemProcess


class NodeState:
    def __init__(self, store: Store, spec: JobSpec, node: str, slots: int, log, clock: Clock) -> None:
        self.store, self.spec, self.node, self.cli_slots, self.log, self.clock = store, spec, node, slots, log, clock
        self.host = socket.gethostname()
        self.run_id = secrets.token_hex(4)
        self.token = L.owner_token(node, self.run_id)
        self.counters = Counters()
        self.queue: deque[Claim] = deque()  # claimed ahead, not started
        self.running: dict[str, Running] = {}
        self.committing: dict[str, Claim] = {}  # finished, result being recorded
        self.tasks: set[asyncio.Task] = set()  # one per started item
        self.wake = asyncio.Event()
        self.control = Control()
        self.control_error = ""
        self.error = ""
        self.draining = False  # nothing left to claim: waiting for the job's end
        self.finished = False
        self.interrupted: int | None = None
        self.fatal: BaseException | None = None
        self.pool = None  # a serving worker's SlotPool (slotpool.py); None: this job's own slots
        self.exhausted = False  # the last sweep found nothing to claim
        self.detached = False  # a serving worker dropped the job (gone from active/): as stopped

    def effective(self) -> tuple[str, int]:
        state, slots = self.control.for_node(self.node)
        if self.pool is not None:
            state = most_restrictive(state, self.pool.state)
            slots = min(self.pool.slots, slots) if slots is not None else self.pool.slots
        if self.interrupted or self.detached or self.fatal:  # (a fatal error: nothing more is claimed)
            state = "stopped"
        return state, self.cli_slots if slots is None else slots

    def priority(self) -> int:
        """control.yaml's priority, else job.yaml's (higher first)."""
        return self.spec.priority if self.control.priority is None else self.control.priority

    def may_start(self, slots: int) -> bool:
        """A free slot for this job (and, serving a root, for the node: slotpool.py)."""
        return len(self.running) < slots and (self.pool is None or self.pool.may_start(self))

    def reported_state(self) -> str:
        state, _ = self.effective()
        if self.error:
            return "error"
        if self.finished:
            return "finished"
        if state == "stopped":
            return "stopping" if self.running else "stopped"
        return state

    def kick(self) -> None:
        self.wake.set()
        if self.pool is not None:
            self.pool.kick_all()  # a slot freed or an item queued here matters to the other jobs

    async def wait_kick(self, timeout: float) -> None:
        self.wake.clear()
        await wait_event(self.wake, timeout)

    def task_done(self, task: asyncio.Task) -> None:
        """Done callback of every task (items and helpers): the first failure ends the worker."""
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() and not self.fatal:
            self.fatal = task.exception()
        self.kick()

    def commit_tasks(self) -> int:
        return sum(1 for t in self.tasks if not t.done())
