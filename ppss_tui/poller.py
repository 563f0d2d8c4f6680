"""Pollers: read the master and the nodes, build immutable snapshots, hand them to callbacks.

No Textual here (tests/test_console_headless.py): the app passes ``on_snapshot`` and
``on_master`` callbacks and wraps what they receive in its own messages.

* The master: one ``Store`` (``worker.store.open_store``: one SSH connection with SFTP, reused,
  reconnecting). Each poll reads job.yaml once, then the node status files, control.yaml and
  the retry queue: work proportional to the number of nodes, never to the number of items.
  ``statusread.StatusReader`` reads only the status files that changed and parses them (and a
  snapshot of many nodes is built) in a worker thread: the screen answers keys meanwhile.
  An exact recount of the done/failed records runs now and then, in its own task.
* Each node: one SSH connection of its own (``worker.sshconn.connect``, at most
  ``CONNECT_LIMIT`` handshakes at once to stay under sshd's MaxStartups), kept open and reused;
  one exec per poll (``cat /proc/loadavg /proc/meminfo``) for the load and free memory.

* A jobs root (the cluster's ``master:`` holds no job.yaml, ``worker.jobsroot``): the same
  connection lists the root's jobs every ``jobs_interval`` (``list_jobs``: state and counts
  per job, a rate each) and polls the selected job as above; ``select(name)`` switches it.

Every loop is sequential (a poll never overlaps the previous one) and every network step has
a timeout, so a slow or dead host only makes its own row stale. A separate publisher posts a
snapshot every interval whatever the hosts do, so the screen never freezes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import asyncssh

from worker.errors import ConnectError, PpssError
from worker.jobspec import JobSpec
from worker.jobsroot import JobInfo, is_root, job_info, job_store, list_jobs
from worker.jobstatus import read_job_status, read_spec
from worker.reconcile import count_records
from worker.sshconn import connect
from worker.store import Store, open_store

from .access import JobAccess
from .snapshot import (CONNECTING, JobSnapshot, UNREACHABLE, UP, NodeHealth, RateMeter, build_snapshot,
                       classify_connect_error, job_rows, parse_proc)
from .statusread import StatusReader, blocking

CONNECT_LIMIT = 8
MASTER_TIMEOUT = 10.0
NODE_TIMEOUT = 8.0
PROBE_COMMAND = "cat /proc/loadavg /proc/meminfo"
RECOUNT_EVERY = 600.0
THREAD_BUILD_NODES = 200   # a snapshot of more nodes is built in a worker thread


class Poller:
    def __init__(self, cluster, on_snapshot: Callable[[JobSnapshot], None],
                 on_master: Callable[[JobAccess], None] = lambda access: None, clock: Callable[[], float] = time.time,
                 interval: float = 1.5, node_interval: float = 3.0, recount_every: float | None = RECOUNT_EVERY,
                 connect_limit: int = CONNECT_LIMIT, probe_nodes: bool = True, jobs_interval: float = 3.0,
                 offload: bool = True) -> None:
        """``offload=False``: read every status file each poll and parse and build on the event
        loop (the way before ``statusread``; bench/console_scale.py's baseline)."""
        self.cluster = cluster
        self.on_snapshot = on_snapshot
        self.on_master = on_master
        self.clock = clock
        self.interval = interval
        self.node_interval = node_interval
        self.recount_every = recount_every
        self.probe_nodes = probe_nodes
        self.connect_sem = asyncio.Semaphore(connect_limit)
        self.job = cluster.master.display()
        self.conn_store: Store | None = None   # what open_store gave: the job, or the jobs root
        self.store: Store | None = None        # the job polled (None: a root with no job selected)
        self.root: Store | None = None         # the jobs root, if the master is one
        self.jobs: list[JobInfo] = []
        self.jobs_rates: dict[str, RateMeter] = {}
        self.jobs_interval = jobs_interval
        self.jobs_at: float | None = None
        self.selected = ""
        self.offload = offload
        self.reader = StatusReader(threads=offload)
        self._build_lock = asyncio.Lock()
        self.spec: JobSpec | None = None
        self.status = None
        self.master_state = CONNECTING
        self.master_error = ""
        self.taken = 0.0
        self.health: dict[str, NodeHealth] = {n.name: NodeHealth(CONNECTING) for n in cluster.nodes}
        self.job_rate = RateMeter()
        self.node_rates: dict[str, RateMeter] = {}
        self.recount: tuple[int, int] | None = None
        self.recount_at: float | None = None
        self.conns: dict[str, asyncssh.SSHClientConnection] = {}
        self.polls = 0
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ---- lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        """Run every loop until cancelled (the app runs this as a Textual worker)."""
        self._tasks = [asyncio.create_task(self.master_loop()), asyncio.create_task(self.publish_loop())]
        if self.probe_nodes:
            self._tasks += [asyncio.create_task(self.node_loop(n)) for n in self.cluster.nodes]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.close()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()
        self.store = self.root = None
        if self.conn_store is not None:
            store, self.conn_store = self.conn_store, None
            try:
                async with asyncio.timeout(5):
                    await store.close()
            except (TimeoutError, OSError, asyncssh.Error):
                pass

    def kick(self) -> None:
        """Poll the master now (after a change) instead of at the next interval."""
        self._kick.set()

    # ---- snapshots --------------------------------------------------------------------------
    def snapshot(self):
        snap = build_snapshot(self.job, self.status, self.cluster.nodes, self.health, self.job_rate,
                              self.node_rates, self.taken, self.master_state, self.master_error,
                              self.recount, self.recount_at)
        if self.root is None:
            return snap
        jobs, rates = self.jobs, self.jobs_rates
        if self.status is not None and self.selected:  # the selected job's row as fresh as its dashboard
            jobs = [job_info(j.name, self.status) if j.name == self.selected else j for j in jobs]
            rates = {**rates, self.selected: self.job_rate}
        return dataclasses.replace(snap, root=self.cluster.master.display(), selected=self.selected,
                                   jobs=job_rows(jobs, rates))

    def publish(self) -> None:
        self.on_snapshot(self.snapshot())

    async def build(self) -> JobSnapshot:
        """A snapshot; of many nodes, built in a worker thread (no poll result lands meanwhile)."""
        if not self.offload or len(self.health) + len(self.node_rates) < THREAD_BUILD_NODES:
            return self.snapshot()
        async with self._build_lock:
            return await asyncio.to_thread(self.snapshot)

    async def publish_async(self) -> None:
        self.on_snapshot(await self.build())

    async def publish_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.publish_async()

    # ---- the master -----------------------------------------------------------------------
    async def open_master(self) -> None:
        m = self.cluster.master
        async with asyncio.timeout(MASTER_TIMEOUT):
            store = await open_store(m, self.cluster.identity, self.cluster.known_hosts)
            self.conn_store = store
            root = await is_root(store)
        if root:
            self.root = store
        else:
            self.store = store
            self.on_master(JobAccess(store))

    def select(self, name: str) -> None:
        """Show (and steer) the root's job NAME from now on; its rates start over."""
        if self.root is None or name == self.selected:
            return
        self.selected = name
        self.store = job_store(self.root, name)
        self.job = f"{self.cluster.master.display().rstrip('/')}/{name}"
        self.spec = self.status = None
        self.reader = StatusReader(threads=self.offload)
        self.job_rate, self.node_rates = RateMeter(), {}
        self.recount = self.recount_at = None
        self.on_master(JobAccess(self.store))
        self.kick()

    async def poll_jobs(self) -> None:
        """The root's jobs with their counts; a rate each; the first job selected if none is."""
        if self.offload and blocking(self.root):
            self.jobs = await asyncio.to_thread(asyncio.run, list_jobs(self.root))
        else:
            self.jobs = await list_jobs(self.root)
        self.jobs_at = now = self.clock()
        for info in self.jobs:
            self.jobs_rates.setdefault(info.name, RateMeter()).add(now, info.done + info.failed)
        names = [j.name for j in self.jobs]
        if self.selected not in names and names:
            busy = [j.name for j in self.jobs if j.state != "finished"]
            self.select((busy or names)[0])
        elif not names:  # the last job was removed
            self.selected, self.store, self.status = "", None, None

    async def poll_master(self) -> None:
        """One poll: job.yaml once, then status files, control.yaml and the retry queue (and
        under a jobs root, the list of jobs every ``jobs_interval``)."""
        if self.conn_store is None:
            await self.open_master()
        async with asyncio.timeout(MASTER_TIMEOUT):
            if self.root is not None and (self.jobs_at is None or self.store is None
                                          or self.clock() - self.jobs_at >= self.jobs_interval):
                await self.poll_jobs()
            store = self.store
            if store is None:
                self.master_state, self.master_error, self.taken = UP, "", self.clock()
                return
            spec, reader = self.spec or await read_spec(store), self.reader
            status = await (reader.read(store, spec) if self.offload else read_job_status(store, spec))
        if store is self.store:  # not switched to another job meanwhile
            self.spec = spec
            async with self._build_lock:
                self.record(status, self.clock())

    def record(self, status, now: float) -> None:
        self.status, self.taken = status, now
        self.master_state, self.master_error = UP, ""
        self.job_rate.add(now, status.done + status.failed)
        for n in status.nodes:
            self.node_rates.setdefault(n.name, RateMeter()).add(now, n.done + n.failed)
        self.polls += 1

    async def master_loop(self) -> None:
        delay = self.interval
        recount: asyncio.Task | None = None
        while True:
            try:
                await self.poll_master()
                delay = self.interval
            except asyncio.TimeoutError:
                self.master_state, self.master_error = "error", f"{self.job}: no answer within {MASTER_TIMEOUT:.0f} s"
                delay = min(30.0, delay * 2)
            except PpssError as exc:
                self.master_state, self.master_error = "error", str(exc)
                if isinstance(exc, ConnectError) and self.store is None:
                    delay = min(30.0, max(delay, 2.0) * 2)
            except (OSError, asyncssh.Error) as exc:
                self.master_state, self.master_error = "error", f"{self.job}: {exc}"
                delay = min(30.0, delay * 2)
            await self.publish_async()
            if (self.recount_every and self.store is not None and self.spec is not None
                    and (recount is None or recount.done())
                    and (self.recount_at is None or self.clock() - self.recount_at >= self.recount_every)):
                recount = asyncio.create_task(self.do_recount())
            self._kick.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            except TimeoutError:
                pass

    async def do_recount(self) -> None:
        """Exact done/failed from the record directories (lists them: only now and then)."""
        self.recount_at, store = self.clock(), self.store
        try:
            recount = await count_records(store)
            if store is self.store:
                self.recount = recount
        except (PpssError, OSError, asyncssh.Error):
            pass

    # ---- the nodes ------------------------------------------------------------------------
    async def node_loop(self, spec) -> None:
        name, target = spec.name, spec.target(self.cluster)
        delay = self.node_interval
        while True:
            conn = self.conns.get(name)
            try:
                if conn is None:
                    async with self.connect_sem, asyncio.timeout(NODE_TIMEOUT + 7):
                        conn = await connect(target)
                    self.conns[name] = conn
                async with asyncio.timeout(NODE_TIMEOUT):
                    result = await conn.run(PROBE_COMMAND, check=False)
                load, free, total = parse_proc(str(result.stdout or ""))
                self.health[name] = NodeHealth(UP, load=load, mem_free=free, mem_total=total, checked=self.clock())
                delay = self.node_interval
            except ConnectError as exc:
                state, reason, fingerprint = classify_connect_error(str(exc))
                self.health[name] = NodeHealth(state, reason, fingerprint, checked=self.clock())
                # Host key and login problems need the operator; retry them slowly.
                delay = 30.0 if state != UNREACHABLE else min(60.0, max(delay, 2.5) * 2)
            except (asyncio.TimeoutError, OSError, asyncssh.Error) as exc:
                reason = "no answer" if isinstance(exc, asyncio.TimeoutError) else (
                    getattr(exc, "reason", "") or str(exc) or type(exc).__name__)
                self.health[name] = NodeHealth(UNREACHABLE, f"{spec.label()}: {reason}", checked=self.clock())
                dropped = self.conns.pop(name, None)
                if dropped is not None:
                    dropped.close()
                delay = min(60.0, max(delay, 2.5) * 2)
            await asyncio.sleep(delay)
