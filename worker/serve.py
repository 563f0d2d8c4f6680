"""ppss-worker ROOT: serve a jobs root, running the items of every runnable job on it.

Every ``CYCLE`` seconds the serving worker lists ROOT/active/ and stats ROOT/fleet.yaml (reread
when it changed): nothing else, whatever number of finished jobs the root holds. Each active job
not attached yet gets a per-job ``Worker`` (engine.py) over a view of the root's store (the SAME
connection, paths prefixed with NAME/: jobsroot.JobView), sharing the node's ``SlotPool``
(slotpool.py), which also carries the node's fleet state. A job whose Worker ended is detached:

  finished  finished.json written and active/NAME removed (jobsroot.mark_finished); parked
            until active/NAME disappears (then taken up again if it reappears: a retry)
  stopped   parked until active/NAME or the job's control.yaml changes (a resume)
  error     parked for ``ERROR_RETRY`` seconds, then attached again
  gone      active/NAME removed while attached (rm): the job's Worker stops as if stopped

ROOT/nodes/<node>.json says what this serving worker does (state, slots, jobs, updated).
SIGTERM/SIGINT: every job releases its claims (running items terminated), exit 143/130.
A fleet stop (fleet.yaml, for all or this node): running items finish, claims released, exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from . import __version__
from . import layout as L
from .clock import Clock, wait_event
from .control import ControlError
from .engine import Worker
from .errors import EXIT_INTERRUPTED, EXIT_OK, JobError
from .fleet import FLEET_FILE, LastGood
from .jobsroot import ACTIVE_DIR, job_store, mark_active, mark_finished, valid_job_name
from .jobstatus import read_job_status, read_spec
from .leases import _pid_alive
from .slotpool import SlotPool
from .store import Store, StoreError

CYCLE = 2.0  # active/ and fleet.yaml looked at every 2 s
ERROR_RETRY = 30.0  # a job whose worker failed is attached again after this long
FOREVER = float("inf")

# (job store, spec, name) -> (copy-mode transfer or None, its closer or None)
TransferFactory = Callable[[Store, object, str], Awaitable[tuple[object, Callable | None]]]


@dataclass
class Attached:
    worker: Worker
    task: asyncio.Task
    mark: float  # mtime of active/NAME when attached
    close: Callable | None = None


@dataclass
class Parked:
    mark: float | None  # mtime of active/NAME when detached
    until: float = FOREVER  # attach again after this (monotonic)
    control: tuple | None = field(default=None)  # control.yaml stamp of a stopped job


class Server:
    def __init__(self, root: Store, node: str, slots: int, log=None, clock: Clock | None = None,
                 root_path: str | None = None, transfers: TransferFactory | None = None,
                 cycle: float = CYCLE) -> None:
        self.root, self.node, self.cli_slots, self.period = root, node, slots, cycle
        self.log = log or (lambda text: None)
        self.clock = clock or Clock()
        self.root_path = root_path or root.root
        self.transfers = transfers
        self.pool = SlotPool(slots)
        self.jobs: dict[str, Attached] = {}
        self.parked: dict[str, Parked] = {}
        self.fleet = LastGood(root.where(FLEET_FILE))
        self.fleet_stamp: tuple | None = None
        self.interrupted: int | None = None
        self.wake = asyncio.Event()
        self.started = self.clock.wall()
        self.last_error = ""
        self.skew = 0.0  # the master's clock minus ours
        self.host = socket.gethostname()

    # -- the cycle -------------------------------------------------------------------------

    async def cycle(self) -> None:
        entries, fleet_entry = await asyncio.gather(self.root.scandir(ACTIVE_DIR), self.root.stat(FLEET_FILE))
        await self.read_fleet(fleet_entry)
        active = {e.name: e.mtime for e in entries or () if valid_job_name(e.name)}
        for name, a in list(self.jobs.items()):
            if a.task.done():
                await self.detach(name, a)
            elif name not in active and not a.worker.st.detached:
                self.log(f"job {name}: no longer in {ACTIVE_DIR}/ (removed?): dropping it")
                a.worker.st.detached = True
                a.worker.st.kick()
        await self.unpark(active)
        if self.stopping():
            return
        for name in sorted(active):
            if name not in self.jobs and name not in self.parked:
                await self.attach(name, active[name])

    async def read_fleet(self, entry) -> None:
        stamp = (entry.mtime, entry.size) if entry else None
        # As control.yaml: a same-size edit within the stamp's second is caught by rereading a
        # file changed in the last 3 s (master clock: ours plus the skew measured at start).
        if stamp != self.fleet_stamp or (entry and self.clock.wall() + self.skew - entry.mtime < 3):
            self.fleet_stamp = stamp
            data = await self.root.read(FLEET_FILE) if entry else None
            error = self.fleet.error
            self.fleet.update(data)
            if self.fleet.error and self.fleet.error != error:
                self.log(f"{self.fleet.error}; keeping the last good fleet state")
        state, slots = self.fleet.fleet.for_node(self.node)
        before = (self.pool.state, self.pool.slots)
        self.pool.set(self.cli_slots if slots is None else slots, state)
        if (self.pool.state, self.pool.slots) != before:
            self.log(f"fleet: {self.pool.state}, {self.pool.slots} slots")

    async def unpark(self, active: dict[str, float]) -> None:
        """Forget parked jobs that left active/ or were marked again (retry, resume), or whose
        wait is over; a stopped job is taken up again when its control.yaml changes."""
        now = self.clock.monotonic()
        stopped = [n for n, p in self.parked.items() if p.control is not None and n in active]
        stamps = await asyncio.gather(*(self.control_stamp(n) for n in stopped))
        changed = {n for n, s in zip(stopped, stamps) if s != self.parked[n].control}
        for name, p in list(self.parked.items()):
            if name not in active or active[name] != p.mark or now >= p.until or name in changed:
                del self.parked[name]

    async def control_stamp(self, name: str) -> tuple | None:
        entry = await self.root.stat(f"{name}/{L.CONTROL_FILE}")
        return (entry.mtime, entry.size) if entry else None

    def stopping(self) -> bool:
        return bool(self.interrupted) or self.pool.state == "stopped"

    # -- attach / detach -------------------------------------------------------------------

    async def attach(self, name: str, mark: float) -> None:
        store = job_store(self.root, name)
        close = None
        try:
            spec = await read_spec(store)
            transfer = None
            if spec.transfer == "copy" and self.transfers is not None:
                transfer, close = await self.transfers(store, spec, name)
            worker = Worker(store, spec, self.node, self.pool.slots, log=self.job_log(name),
                            job_path=f"{self.root_path.rstrip('/')}/{name}", transfer=transfer, clock=self.clock)
        except Exception as exc:  # one bad job (a job.yaml of wrong types...) never ends the others
            what = str(exc) if isinstance(exc, (JobError, OSError)) else f"{store.where(L.JOB_FILE)}: {exc!r}"
            self.log(f"job {name}: {what}; trying again in {ERROR_RETRY:g} s")
            self.parked[name] = Parked(mark, self.clock.monotonic() + ERROR_RETRY)
            if close is not None:
                await close()
            return
        self.pool.join(worker.st)
        task = asyncio.create_task(worker.run(handle_signals=False))
        task.add_done_callback(lambda _t: self.wake.set())
        self.jobs[name] = Attached(worker, task, mark, close)

    def job_log(self, name: str):
        return lambda text: self.log(f"{name}: {text}")

    async def detach(self, name: str, a: Attached) -> None:
        del self.jobs[name]
        st = a.worker.st
        self.pool.leave(st)
        if a.close is not None:
            await a.close()
        exc = a.task.exception() if not a.task.cancelled() else None
        if exc is not None:
            what = str(exc) if isinstance(exc, JobError) else repr(exc)
            self.log(f"job {name}: {what}; trying again in {ERROR_RETRY:g} s")
            self.parked[name] = Parked(a.mark, self.clock.monotonic() + ERROR_RETRY)
        elif st.finished:
            self.parked[name] = Parked(a.mark)
            await self.finished(name, st)
        elif st.control.for_node(self.node)[0] == "stopped" and not self.interrupted and not st.detached:
            # Stopped by its own control.yaml (not by the fleet): wait for a resume.
            self.parked[name] = Parked(a.mark, control=await self.control_stamp(name))

    async def finished(self, name: str, st) -> None:
        """Our end-of-job check found the job finished: finished.json, then active/NAME goes.
        A retry that came in meanwhile (its items wait in retry/) marks it active again."""
        job = job_store(self.root, name)
        try:
            status = await read_job_status(job, st.spec)
            await mark_finished(self.root, name, status.done, status.failed)
            if [n for n in await job.listdir(L.RETRY_DIR) or () if ".tmp-" not in n]:
                await job.remove("finished.json")
                await mark_active(self.root, name)
        except (StoreError, ControlError) as exc:
            self.log(f"job {name}: finished, but {exc}; trying again in {ERROR_RETRY:g} s")
            self.parked[name].until = self.clock.monotonic() + ERROR_RETRY

    # -- run -------------------------------------------------------------------------------

    def interrupt(self, signum: int) -> None:
        if self.interrupted:
            return
        self.interrupted = signum
        self.log(f"{signal.Signals(signum).name}: stopping every job (running items terminated, claims released)")
        for a in self.jobs.values():
            a.worker.interrupt(signum)
        self.wake.set()

    async def run(self, handle_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.interrupt, sig)
        try:
            await self.refuse_twin()
            for rel in (L.NODES_DIR, L.TMP_DIR):
                await self.root.mkdir(rel)
            self.skew = await self.root.now() - self.clock.wall()
            self.log(f"serving {self.root.label}: {self.cli_slots} slots")
            await self.serve()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        await self.write_status(final=True)
        if self.interrupted:
            return EXIT_INTERRUPTED if self.interrupted == signal.SIGINT else 128 + self.interrupted
        self.log("fleet stop: every job released; exiting")
        return EXIT_OK

    async def refuse_twin(self) -> None:
        """A serving worker of the same name already running on this host: refuse to start."""
        try:
            prev = json.loads(await self.root.read(L.status_path(self.node)) or b"{}")
        except ValueError:
            return
        if not isinstance(prev, dict) or prev.get("state") == "stopped" or prev.get("host") != self.host:
            return
        pid = prev.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            raise JobError(f"a serving worker named {self.node!r} is already running here (pid {pid})")

    async def serve(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self.cycle()
                await self.write_status()
                self.last_error = ""
            except (StoreError, ControlError) as exc:
                if str(exc) != self.last_error:  # said once while it lasts
                    self.log(str(exc))
                self.last_error = str(exc)
            if self.stopping() and not self.jobs:
                return
            await wait_event(self.wake, self.period)

    def state(self, final: bool = False) -> str:
        if final:
            return "stopped"
        if self.stopping():
            return "stopping"
        return "paused" if self.pool.state == "paused" else "serving"

    async def write_status(self, final: bool = False) -> None:
        data = {"name": self.node, "state": self.state(final), "host": self.host, "pid": os.getpid(), "slots": self.pool.slots,
                "used": self.pool.used(), "jobs": sorted(self.jobs), "fleet_error": self.fleet.error,
                "started": self.started, "updated": self.clock.wall(), "version": __version__}
        try:
            await self.root.write_atomic(L.status_path(self.node), json.dumps(data).encode())
        except StoreError as exc:
            if not final:
                raise
            self.log(str(exc))
