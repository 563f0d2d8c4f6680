"""The worker: claim items, run them in N slots, record results, obey control.yaml.

A small ``Worker`` composes the parts, each a module of its own, all sharing one
``NodeState`` (nodestate.py):

  heartbeat.py     the status file (every second while it changes, lease/10 when not); the
                   master's clock; silence detection
  controlwatch.py  control.yaml (one stat a second), applied to running items
  leases.py        take-over of lost nodes' claims (watchring.py: the peers this node watches),
                   and of our own after a restart
  claimer.py       claiming ahead of need (sweep.py finds the candidates)
  endofjob.py      when nothing is left to claim: is the job finished? take what was left behind
  itemrun.py       an item's life: start, run (copy-mode transfer), commit
  joblog.py        the node's JSON-lines job log, in batches

One asyncio task each for: claiming, the heartbeat (status and control), watching for lost
nodes, the job log, and one per running item. The Worker itself dispatches queued claims to
free slots and handles signals.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

from .claimer import Claimer
from .claims import Claims
from .clock import Clock
from .controlwatch import ControlWatch
from .endofjob import EndOfJob
from .errors import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK, EXIT_STOPPED, JobError
from .haltwatch import HaltWatch
from .heartbeat import HEARTBEAT, Heartbeat
from .itemrun import ItemRunner
from .joblog import JobLog
from .joblogfix import restore_joblog
from .jobspec import JobSpec
from .leases import Leases
from .nodestate import NodeState
from .store import Store, StoreError
from .sweep import Sweeper
from .transfer import CopyTransfer


def default_node_name() -> str:
    return socket.gethostname().split(".")[0] or "node"


def valid_node_name(name: str) -> bool:
    return bool(name) and len(name) <= 64 and all(c.isalnum() or c in "._-" for c in name) \
        and not name.startswith(".")


class Worker:
    def __init__(self, store: Store, spec: JobSpec, node: str, slots: int, log=None,
                 job_path: str | None = None, transfer: CopyTransfer | None = None,
                 clock: Clock | None = None) -> None:
        log = log or (lambda text: print(f"ppss-worker[{node}]: {text}", file=sys.stderr, flush=True))
        self.st = st = NodeState(store, spec, node, slots, log, clock or Clock())
        claims = Claims(store, st.token,
                        make_output_dirs=spec.transfer == "shared" and "OUTPUT_DIR" in spec.command)
        self.heartbeat = Heartbeat(st)
        self.control = ControlWatch(st, self.heartbeat.master_now)
        self.leases = Leases(st, claims, self.heartbeat.master_now)
        sweeper = Sweeper(store, spec, node, files=transfer.files if transfer else store,
                          master_now=self.heartbeat.master_now)
        self.claimer = Claimer(st, claims, sweeper, lead=transfer.lead_time if transfer else None)
        self.leases.room = self.claimer.room  # take-overs stay within the claim-ahead bound
        self.end = EndOfJob(st, claims, self.leases, self.heartbeat, self.claimer.target_queue)
        self.joblog = JobLog(store, node, st.clock)
        self.items = ItemRunner(st, claims, self.heartbeat, self.joblog, transfer,
                                job_path or store.root, self.claimer.note_finished, self.claimer.rate)
        self.claims = claims
        self.halt = HaltWatch(st, on_halt=self.control.poll)

    async def release_queue(self) -> None:
        st = self.st
        claims = list(st.queue)
        st.queue.clear()
        if claims:
            await asyncio.gather(*(self.claims.release(c) for c in claims))

    async def dispatch(self) -> int:
        st = self.st
        while True:
            if st.fatal:
                raise st.fatal
            state, slots = st.effective()
            if state == "running":
                while st.queue and st.may_start(slots):
                    self.items.start(st.queue.popleft())
            elif st.queue and state in ("paused", "halted", "stopped"):
                await self.release_queue()
            code = self.exit_code(state)
            if code is not None:
                return code
            await st.wait_kick(HEARTBEAT)

    def exit_code(self, state: str) -> int | None:
        """The exit status once the worker is done, else None."""
        st = self.st
        if st.interrupted and not st.tasks:
            return EXIT_INTERRUPTED if st.interrupted == signal.SIGINT else 128 + st.interrupted
        if state == "stopped" and not st.tasks and not st.queue:
            if st.spec.watch:  # stopping is how a watched job ends
                return EXIT_ITEMS_FAILED if st.counters.failed_this_run else EXIT_OK
            return EXIT_STOPPED
        if st.finished and not st.tasks and not st.running and not st.queue:
            return EXIT_ITEMS_FAILED if st.counters.job_failed else EXIT_OK
        return None

    def interrupt(self, signum: int) -> None:
        st = self.st
        if st.interrupted:
            return
        st.interrupted = signum
        st.log(f"{signal.Signals(signum).name}: stopping running items and releasing claims")
        for r in st.running.values():
            asyncio.create_task(r.proc.terminate())
        st.kick()

    async def start(self) -> list[asyncio.Task]:
        st = self.st
        # one round trip: our previous status, control.yaml, the job root's modes (for our files)
        await asyncio.gather(self.leases.recover_own(), self.control.poll(), st.store.modes())
        # Our status file goes out while the claimer reads the item list (and makes its first
        # locks); no token of this run goes on the master before the status (the claimer's gate).
        first = self.claimer.gate = asyncio.ensure_future(self.heartbeat.write())
        claiming = asyncio.create_task(self.claimer.loop(self.end))
        try:
            await first
        except BaseException:
            claiming.cancel()
            await asyncio.gather(claiming, return_exceptions=True)
            raise
        state, slots = st.effective()
        st.log(f"started: job {st.store.label}, {slots} slots, state {state}")
        tasks = [asyncio.create_task(self.heartbeat.loop(self.control)),
                 asyncio.create_task(self.leases.loop()),
                 asyncio.create_task(self.joblog.loop()),
                 claiming]
        if st.spec.halt:
            tasks.append(asyncio.create_task(self.halt.loop()))
        for task in tasks:
            task.add_done_callback(st.task_done)
        return tasks

    async def stop_on_error(self, exc: BaseException) -> None:
        """A fatal error (the master refused a write, its disk is full, the job is corrupt): end
        the running items and give their claims back as on SIGTERM (what cannot be given back
        stays listed in our status, for a restart or another node to take back), then say why
        in our final status and flush the job log. Nothing is recorded failed for it."""
        st = self.st
        st.fatal = st.fatal or exc
        if isinstance(exc, Exception):
            st.error = str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}"
        await self.items.abort_all()
        queued = list(st.queue)
        st.queue.clear()
        st.queue.extend(await self.items.give_back(queued))
        if isinstance(exc, Exception):
            await self.joblog.flush_quietly(st.log)
            await self.heartbeat.write_final()

    async def run(self, handle_signals: bool = True) -> int:
        """Run the job on this node; the exit status. A serving worker (serve.py) runs several
        and handles the signals itself (``handle_signals=False``)."""
        st = self.st
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.interrupt, sig)
        helpers = await self.start()
        try:
            code = await self.dispatch()
        except BaseException as exc:
            await self.stop_on_error(exc)
            raise
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            for sig in signals:
                loop.remove_signal_handler(sig)
        await self.release_queue()
        # (one round trip for the three: the job log's last lines, our final status, finished.json)
        await asyncio.gather(self.joblog.flush(), self.heartbeat.write(), self.end.marked())
        if st.finished and not st.spec.watch:
            try:
                restored = await restore_joblog(st.store, st.spec, st.node, self.joblog,
                                                self.heartbeat.master_now, self.end.node_names)
                if restored:
                    st.log(f"job log: {restored} lines lost to a crash restored from the records")
            except StoreError as exc:
                st.log(f"job log not checked: {exc}")
        c = st.counters
        st.log(f"{st.reported_state()}: {c.done} done, {c.failed} failed on this node"
               + (f", {c.lost_leases} late results refused" if c.lost_leases else ""))
        return code
