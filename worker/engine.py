"""The worker: claim items, run them in N slots, record results, obey control.yaml.

One asyncio task each for: feeding (claiming ahead of need), the heartbeat (status file and
control file, once a second), watching for lost nodes, and one per running item. Results are
committed in the item's task after its slot is freed, so a slot never waits on the network.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, replace

from . import __version__
from . import layout as L
from .claims import Candidate, Claim, Claims, record, record_bytes
from .control import Control, ControlError, parse_control
from .errors import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK, EXIT_STOPPED, JobError
from .jobspec import JobSpec
from .jobstatus import FINAL_STATES, NodeStatus, RunningItem, read_nodes
from .reconcile import ScanResult, scan
from .runner import ItemProcess, Result
from .store import LocalStore, Store, StoreError
from .sweep import Sweeper
from .transfer import CopyTransfer, TransferError

HEARTBEAT = 1.0  # status file (the heartbeat) every second
CONTROL_POLL = 0.5  # control.yaml looked at twice a second
CONTROL_SETTLE = 0.2
END_CHECK = 0.2  # how often a worker with nothing left to claim looks at the others' counters,
END_CHECK_FAST_FOR = 10.0  # during the first seconds of waiting,
END_CHECK_SLOW = 1.0  # and after that
CLAIM_AHEAD_S = 0.05  # claim what this node will start within this long
END_CLAIMS = 256  # items left behind that one end-of-job check claims at most
LOG_TAIL = 4096
TRANSFER_FAILED = 254  # the exit status recorded when fetching or uploading an item failed
JOBLOG_BATCH = 64
JOBLOG_FLUSH = 0.5


@dataclass
class Running:
    claim: Claim
    slot: int
    started: float
    proc: ItemProcess


def default_node_name() -> str:
    return socket.gethostname().split(".")[0] or "node"


def valid_node_name(name: str) -> bool:
    return bool(name) and len(name) <= 64 and all(c.isalnum() or c in "._-" for c in name) \
        and not name.startswith(".")


class Worker:
    def __init__(self, store: Store, spec: JobSpec, node: str, slots: int,
                 log=None, job_path: str | None = None, transfer: CopyTransfer | None = None) -> None:
        self.store = store
        self.spec = spec
        self.node = node
        self.cli_slots = slots
        self.host = socket.gethostname()
        self.run_id = secrets.token_hex(4)
        self.token = L.owner_token(node, self.run_id)
        self.job_path = job_path or store.root
        self.transfer = transfer
        self.claims = Claims(store, self.token,
                             make_output_dirs=spec.transfer == "shared" and "OUTPUT_DIR" in spec.command)
        self.sweeper = Sweeper(store, spec, node, files=transfer.files if transfer else store,
                               master_now=self.master_now)
        self.added = 0  # items this node found in a watched directory
        self.log = log or (lambda text: print(f"ppss-worker[{node}]: {text}", file=sys.stderr, flush=True))
        self.queue: deque[Claim] = deque()
        self.committing: dict[str, Claim] = {}  # finished, result being recorded
        self.draining = False  # nothing left to claim: waiting for the job's end
        self.draining_since = 0.0
        self.finished_at: deque[float] = deque(maxlen=32)  # when recent items ended (for the rate)
        self.running: dict[str, Running] = {}
        self.tasks: set[asyncio.Task] = set()
        self.control = Control()
        self.control_stamp: tuple | None = None
        self.control_error = ""
        self.error = ""
        self.wake = asyncio.Event()
        self.done = 0
        self.failed = 0
        self.lost_leases = 0
        self.failed_this_run = 0
        self.interrupted: int | None = None
        self.finished = False
        self.fatal: BaseException | None = None
        self.started = time.time()
        self.status_written = (0.0, 0.0)  # (master mtime, local monotonic) of our last heartbeat
        self.last_scan: ScanResult | None = None
        self.last_recovery = 0.0
        self.last_full_scan = time.monotonic()  # while others are busy: a full check per lease
        self.job_failed = 0  # failed items of the whole job, known at the end
        self.lost_seen: set[tuple[str, str]] = set()
        self.base_env = dict(os.environb) if hasattr(os, "environb") else {}
        self.joblog_buffer: list[str] = []
        self.kick_joblog = asyncio.Event()
        # Silent longer than half the lease (frozen, cut off, asleep): claims made before may have
        # been taken over, so each is checked before it starts (claimed ahead: never ran yet).
        self.last_beat = 0.0  # awake_clock() of our last heartbeat on the master
        self.suspect: set[str] = set()

    # ---- state ---------------------------------------------------------------------------
    def effective(self) -> tuple[str, int]:
        state, slots = self.control.for_node(self.node)
        if self.interrupted:
            state = "stopped"
        return state, self.cli_slots if slots is None else slots

    def reported_state(self) -> str:
        state, _ = self.effective()
        if self.error:
            return "error"
        if self.finished:
            return "finished"
        if state == "stopped":
            return "stopping" if self.running else "stopped"
        return state

    def master_now(self) -> float:
        mtime, mono = self.status_written
        return mtime + (time.monotonic() - mono) if mtime else time.time()

    def kick(self) -> None:
        self.wake.set()

    # ---- status and control ----------------------------------------------------------------
    def status(self) -> NodeStatus:
        _, slots = self.effective()
        return NodeStatus(
            name=self.node, state=self.reported_state(), host=self.host, pid=os.getpid(),
            run_id=self.run_id, slots=slots, done=self.done, failed=self.failed, added=self.added,
            lost_leases=self.lost_leases, draining=self.draining,
            running=tuple(RunningItem(r.claim.lock, L.item_to_json(r.claim.item), r.slot, r.started)
                          for r in self.running.values()),
            # Claimed ahead, and finished but not yet committed: held either way.
            claims=tuple((c.lock, L.item_to_json(c.item))
                         for c in (*self.queue, *self.committing.values())),
            error=self.error or self.control_error, started=self.started, updated=time.time(),
            version=__version__)

    async def write_status(self) -> None:
        await self.store.write_atomic(L.status_path(self.node), self.status().to_json())
        mono = time.monotonic()
        entry = await self.store.stat(L.status_path(self.node))
        if entry:
            beat = awake_clock()
            if self.last_beat and beat - self.last_beat > self.spec.lease / 2:
                self.suspect |= {c.lock for c in self.queue}
            self.status_written, self.last_beat = (entry.mtime, mono), beat

    async def poll_control(self) -> bool:
        """Reread control.yaml if it changed; True if the node's effective state or slots did."""
        entry = await self.store.stat(L.CONTROL_FILE)
        stamp = (entry.mtime, entry.size) if entry else None
        # SFTP v3 mtimes are whole seconds: a same-size edit within the same second keeps the
        # stamp, so a file changed in the last few seconds is read again whatever its stamp.
        if stamp == self.control_stamp and not (entry and self.master_now() - entry.mtime < 3):
            return False
        data = await self.store.read(L.CONTROL_FILE)
        try:
            control = parse_control(data or b"", self.store.where(L.CONTROL_FILE))
        except ControlError as exc:
            if self.control_error != str(exc):
                self.log(f"{exc}; keeping the last good control state")
            self.control_error = str(exc)
            self.control_stamp = stamp
            return False
        before = self.effective()
        self.control, self.control_error, self.control_stamp = control, "", stamp
        changed = self.effective() != before
        if changed:
            state, slots = self.effective()
            self.log(f"control: {state}, {slots} slots")
        self.apply_control()
        return changed

    def apply_control(self) -> None:
        state, _ = self.effective()
        for r in self.running.values():
            if state == "suspended":
                r.proc.suspend()
            else:
                r.proc.resume()
        self.kick()

    async def heartbeat_loop(self) -> None:
        """control.yaml twice a second, the status file once a second — and soon after a
        control change, once the change took effect, so the console sees it within 2 s."""
        last_status = 0.0
        while True:
            try:
                changed = await self.poll_control()
                if changed:
                    await asyncio.sleep(CONTROL_SETTLE)  # let the dispatcher start or stop items
                if changed or time.monotonic() - last_status >= HEARTBEAT:
                    await self.write_status()
                    last_status = time.monotonic()
            except StoreError as exc:
                self.log(str(exc))
            await asyncio.sleep(CONTROL_POLL)

    # ---- lost nodes -----------------------------------------------------------------------
    def live_tokens(self, nodes: list[NodeStatus]) -> set[str]:
        live = {self.token}
        for n in nodes:
            if n.name != self.node and not n.is_lost(self.spec.lease):
                live.add(L.owner_token(n.name, n.run_id))
        return live

    async def take_over_lost(self) -> int:
        nodes = await read_nodes(self.store, self.master_now())
        taken = 0
        for n in nodes:
            if n.name == self.node or not n.is_lost(self.spec.lease):
                continue
            key = (n.name, n.run_id, n.updated)
            if key in self.lost_seen:
                continue
            self.lost_seen.add(key)
            held = n.held_locks()
            if not held:
                continue
            old = L.owner_token(n.name, n.run_id)
            claims = await asyncio.gather(*(self.claims.take_over(lock, old, L.item_from_json(item))
                                            for lock, item in held))
            won = [c for c in claims if c]
            if won:
                self.log(f"node {n.name} silent for {n.last_seen_s:.0f} s (lease {self.spec.lease:.0f} s): "
                         f"took over {len(won)} of its items")
                self.queue.extendleft(won)
                taken += len(won)
                self.kick()
        return taken

    async def lost_watch_loop(self) -> None:
        period = max(1.0, min(5.0, self.spec.lease / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await self.take_over_lost()
            except StoreError as exc:
                self.log(str(exc))

    # ---- startup ---------------------------------------------------------------------------
    async def check_name_and_recover(self) -> None:
        """Refuse a second live worker of the same name; take back our own earlier claims."""
        path = L.status_path(self.node)
        blob, entry = await asyncio.gather(self.store.read(path), self.store.stat(path))
        if not blob or not entry:
            return
        try:
            prev = NodeStatus.from_json(blob, max(0.0, await self.store.now() - entry.mtime))
        except (ValueError, KeyError, TypeError):
            return
        self.done, self.failed, self.lost_leases = prev.done, prev.failed, prev.lost_leases
        self.added = prev.added
        alive = prev.state not in FINAL_STATES and not prev.is_lost(self.spec.lease)
        if alive and prev.pid != os.getpid():
            if prev.host != self.host:
                raise JobError(f"a worker named {self.node!r} is already running on {prev.host} "
                               f"(heartbeat {prev.last_seen_s:.0f} s ago); choose another --node-name")
            if _pid_alive(prev.pid):
                raise JobError(f"a worker named {self.node!r} is already running here (pid {prev.pid})")
        old = L.owner_token(self.node, prev.run_id)
        held = prev.held_locks()
        if held:
            claims = await asyncio.gather(*(self.claims.take_over(lock, old, L.item_from_json(item))
                                            for lock, item in held))
            won = [c for c in claims if c]
            if won:
                self.log(f"took back {len(won)} unfinished items of this node's previous run")
                self.queue.extend(won)

    # ---- feeding ---------------------------------------------------------------------------
    def target_queue(self) -> int:
        """How many items to hold (running + claimed ahead): the slots, plus enough to cover a
        claim's round trips at the current rate: many for quick items, one for long ones (which
        then stay free for other nodes)."""
        _, slots = self.effective()
        ahead = 1
        if len(self.finished_at) >= 2:
            span = self.finished_at[-1] - self.finished_at[0]
            rate = (len(self.finished_at) - 1) / span if span > 0 else float("inf")
            ahead = max(1, min(2 * slots + 4, math.ceil(rate * CLAIM_AHEAD_S)))
        return max(1, slots) + ahead

    async def feed_loop(self) -> None:
        while True:
            state, slots = self.effective()
            want = self.target_queue() - len(self.queue) - len(self.running)
            if state != "running" or want <= 0:
                await self.wait_kick(HEARTBEAT)
                continue
            candidates = await self.sweeper.next(want)
            if candidates:
                self.draining = False
                won = await self.claims.claim(candidates)
                self.sweeper.note_busy(candidates, {c.lock for c in won})
                if won:
                    await self.register_watched(candidates, won)
                    self.queue.extend(won)
                    self.kick()
                continue
            if self.spec.watch:
                # A watched job ends only when stopped; meanwhile recover what lost nodes left.
                if time.monotonic() - self.last_recovery > max(END_CHECK, self.spec.lease / 2):
                    self.last_recovery = time.monotonic()
                    await self.end_check()
                await self.wait_kick(HEARTBEAT)
                continue
            # Nothing left to claim: finished once every item has a final record.
            if self.running or self.queue or self.commit_tasks():
                await self.wait_kick(HEARTBEAT)
                continue
            if not self.draining:
                self.draining = True
                self.draining_since = time.monotonic()
                await self.write_status()  # our final counters, for the others' end check
            if await self.end_check():
                self.finished = True
                self.kick()
                return
            # Look often while the others are finishing their last items, then less.
            waited = time.monotonic() - self.draining_since
            await asyncio.sleep(END_CHECK if waited < END_CHECK_FAST_FOR else END_CHECK_SLOW)

    async def register_watched(self, candidates: list[Candidate], won: list[Claim]) -> None:
        """Items found in a watched directory join the item list (one append file per node)."""
        new = {c.item for c in candidates if c.lock == L.item_id(c.item) and not c.from_retry
               and c.item in self.sweeper.watch_known}
        mine = [c.item for c in won if c.item in new]
        if mine:
            await self.store.append(f"{L.ITEMS_DIR}/{L.WATCH_PREFIX}{self.node}", L.encode_chunk(mine))
            self.added += len(mine)

    def commit_tasks(self) -> int:
        return sum(1 for t in self.tasks if not t.done())

    async def end_check(self) -> bool:
        """Is every item finished? If not, take what nobody will finish (lost, orphaned, dropped)."""
        nodes = await read_nodes(self.store, self.master_now())
        others = [n for n in nodes if n.name != self.node]
        # The nodes' counters never over-count (a commit is counted once, by the node whose fence
        # succeeded), so when they add up to the total the job is finished: no listing needed.
        done = self.done + sum(n.done for n in others)
        failed = self.failed + sum(n.failed for n in others)
        if not self.spec.watch and done + failed >= self.spec.total:
            self.job_failed = failed
            return True
        # Others still sweeping or holding items may finish everything: wait for them (a full
        # check per lease at most), unless they too have nothing left to do.
        busy = any((n.held_locks() or not n.draining) and n.state not in FINAL_STATES
                   for n in others if not n.is_lost(self.spec.lease))
        if busy and time.monotonic() - self.last_full_scan < self.spec.lease:
            return False  # others are finishing their items; lost ones are taken by lost_watch_loop
        self.last_full_scan = time.monotonic()
        if os.environ.get("PPSS_DEBUG"):
            self.log(f"end check: counters {done}+{failed} of {self.spec.total}, busy={busy}; scanning")
        live = self.live_tokens(nodes)
        only = self.last_scan.unresolved if self.last_scan and not self.last_scan.complete else None
        result = await scan(self.store, self.spec, live, self.master_now(), only=only)
        if only is not None and not result.unresolved and not result.queued:
            # Everything we were waiting on is resolved: confirm with a full check.
            only = None
            result = await scan(self.store, self.spec, live, self.master_now())
        self.last_scan = result
        if only is None and result.complete:
            self.job_failed = result.failed
            # The nodes' counters fell short (a node crashed just after a commit): keep the
            # exact figures where `status` finds them.
            await self.store.write_atomic(L.RECOUNT_FILE, json.dumps(
                {"done": result.done, "failed": result.failed, "node": self.node}).encode())
            return True
        ahead: list[Claim] = []
        if result.stale:
            claims = await asyncio.gather(*(self.claims.take_over(lock, tok, item)
                                            for lock, tok, item in result.stale))
            ahead += [c for c in claims if c]
        graves = await asyncio.gather(*(self.store.rename(L.lock_path(lock),
                                                          f"{L.GRAVE_DIR}/{lock}.{secrets.token_hex(3)}")
                                        for lock, _ in result.orphans))
        cands = [Candidate(lock, item) for (lock, item), ok in zip(result.orphans, graves) if ok]
        # A bounded number at a time: the next check (2 s later) takes more.
        cands = (cands + result.unclaimed)[:max(END_CLAIMS, self.target_queue())]
        for i in range(0, len(cands), 64):
            ahead += await self.claims.claim(cands[i:i + 64])
        if ahead:
            self.log(f"end of job check: took {len(ahead)} items left behind")
            self.queue.extend(ahead)
            self.kick()
        return False

    async def wait_kick(self, timeout: float) -> None:
        self.wake.clear()
        await wait_event(self.wake, timeout)

    # ---- running items ---------------------------------------------------------------------
    def free_slot(self) -> int:
        used = {r.slot for r in self.running.values()}
        slot = 1
        while slot in used:
            slot += 1
        return slot

    def item_env(self, claim: Claim, slot: int, item: bytes, out: str) -> dict:
        env = dict(self.base_env)
        env.update({b"ITEM": item, b"ITEM_ID": claim.ident.encode(),
                    b"PPSS_NODE": self.node.encode(), b"PPSS_SLOT": str(slot).encode(),
                    b"PPSS_ATTEMPT": str(claim.attempt).encode(), b"OUTPUT_DIR": os.fsencode(out),
                    b"PPSS_JOB": os.fsencode(self.job_path)})
        return env

    def start(self, claim: Claim) -> None:
        slot = self.free_slot()
        out = os.path.join(self.job_path, L.output_path(claim.ident))
        proc = ItemProcess(self.spec.command, self.item_env(claim, slot, claim.item, out),
                           timeout=self.spec.timeout)
        self.running[claim.lock] = Running(claim, slot, time.time(), proc)
        verify = claim.lock in self.suspect or awake_clock() - self.last_beat > self.spec.lease / 2
        self.suspect.discard(claim.lock)
        task = asyncio.create_task(self.run_one(claim, proc, verify))
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() and not self.fatal:
            self.fatal = task.exception()
        self.kick()

    async def still_holds(self, claim: Claim) -> bool:
        """After a long silence: be seen alive again, then check the claim is still ours."""
        try:
            await self.write_status()
        except StoreError as exc:
            self.log(str(exc))
        if await self.claims.holds(claim):
            return True
        self.running.pop(claim.lock, None)
        self.lost_leases += 1
        self.log(f"lease lost on {L.display_item(claim.item, 60)}: not started (another node runs it)")
        self.joblog({"event": "lost_lease", **record(claim, self.node, self.host, None, time.time(), 0.0),
                     "not_started": True})
        self.kick()
        return False

    async def run_one(self, claim: Claim, proc: ItemProcess, verify: bool = False) -> None:
        if verify and not await self.still_holds(claim):
            return
        work = None
        if self.transfer:
            try:
                work, local, out = await self.transfer.fetch(claim.ident, claim.item)
                proc.env.update({b"ITEM": os.fsencode(local), b"OUTPUT_DIR": os.fsencode(out)})
            except TransferError as exc:
                result = Result(TRANSFER_FAILED, f"ppss: {exc}\n".encode(), time.time(), 0.0)
                proc = None
        if proc is not None and self.interrupted:
            self.running.pop(claim.lock, None)
            await self.claims.release(claim)
            return
        if proc is not None:
            result = await proc.run()
            if work and result.exit_code == 0:
                try:
                    notes = await self.transfer.upload(claim.item, out)
                    result = replace(result, output=result.output + notes) if notes else result
                except TransferError as exc:
                    result = Result(TRANSFER_FAILED, result.output + f"ppss: {exc}\n".encode(),
                                    result.started, result.duration, result.truncated)
        self.committing[claim.lock] = claim
        self.running.pop(claim.lock, None)
        self.finished_at.append(time.monotonic())
        self.kick()
        try:
            await self.settle(claim, result, work, killed=proc is not None and proc.terminated)
        finally:
            self.committing.pop(claim.lock, None)

    async def settle(self, claim: Claim, result: Result, work: str | None, killed: bool) -> None:
        if self.interrupted and killed and result.exit_code != 0:
            # We stopped it: give it back to run again. (One that finished despite the signal,
            # or before it, is recorded like any other.)
            await self.claims.release(claim)
            return
        if work:
            if result.exit_code == 0:
                self.transfer.cleanup(work)
            else:
                result = replace(result, output=result.output + f"ppss: work directory kept: {work}\n".encode())
        await self.commit(claim, result)

    async def commit(self, claim: Claim, result: Result) -> None:
        ok = result.exit_code == 0
        will_retry = not ok and claim.attempt <= self.spec.retries
        next_lock = await self.claims.requeue(claim) if will_retry else None
        fenced = await (self.claims.commit_done(claim) if ok else self.claims.commit_failed(claim))
        rec = record(claim, self.node, self.host, result.exit_code, result.started, result.duration,
                     **({"reason": result.reason} if result.reason else {}))
        tail = result.output[-LOG_TAIL:].decode("utf-8", "replace")
        if not fenced:
            # Our claim was taken over (we were silent longer than the lease): not ours to record.
            if next_lock:
                await self.store.remove(f"{L.RETRY_DIR}/{next_lock}")
            self.lost_leases += 1
            self.log(f"lease lost on {L.display_item(claim.item, 60)}: result discarded "
                     "(another node runs it)")
            self.joblog({"event": "lost_lease", **rec})
            return
        self.joblog({"event": "done" if ok else ("retry" if will_retry else "failed"), **rec,
                     **({"output_tail": tail} if tail else {})})
        ops = []
        if result.output or not ok:
            ops.append(self.store.write(L.log_path(claim.ident), self.log_text(claim, result)))
        if ok:
            self.done += 1
        elif not will_retry:
            ops.append(self.store.write(L.failed_path(claim.ident), record_bytes({**rec, "output_tail": tail})))
            self.failed += 1
            self.failed_this_run += 1
        if ops:
            await asyncio.gather(*ops)

    def log_text(self, claim: Claim, result: Result) -> bytes:
        head = (f"# item: {L.display_item(claim.item)}\n# id: {claim.ident}  attempt: {claim.attempt}\n"
                f"# node: {self.node}  host: {self.host}\n"
                f"# start: {time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(result.started))}"
                f"  duration: {result.duration:.3f} s  exit: {result.exit_code}\n")
        if result.reason:
            head += f"# reason: {result.reason}\n"
        if result.truncated:
            head += f"# (first {result.truncated} bytes of output dropped)\n"
        return head.encode() + result.output

    def joblog(self, event: dict) -> None:
        """Queue a line for this node's JSON-lines job log (written in batches)."""
        event = {"time": round(time.time(), 3), **event}
        self.joblog_buffer.append(json.dumps(event, ensure_ascii=True) + "\n")
        if len(self.joblog_buffer) >= JOBLOG_BATCH:
            self.kick_joblog.set()

    async def flush_joblog(self) -> None:
        if self.joblog_buffer:
            data, self.joblog_buffer = "".join(self.joblog_buffer).encode(), []
            await self.store.append(L.joblog_path(self.node), data)

    async def joblog_loop(self) -> None:
        while True:
            await wait_event(self.kick_joblog, JOBLOG_FLUSH)
            self.kick_joblog.clear()
            await self.flush_joblog()

    # ---- the main loop ---------------------------------------------------------------------
    async def release_queue(self) -> None:
        claims = list(self.queue)
        self.queue.clear()
        if claims:
            await asyncio.gather(*(self.claims.release(c) for c in claims))

    async def dispatch(self) -> int:
        while True:
            if self.fatal:
                raise self.fatal
            state, slots = self.effective()
            if state == "running":
                while self.queue and len(self.running) < slots:
                    self.start(self.queue.popleft())
            elif self.queue and state in ("paused", "stopped"):
                await self.release_queue()
            if self.interrupted and not self.tasks:
                return EXIT_INTERRUPTED if self.interrupted == signal.SIGINT else 128 + self.interrupted
            if state == "stopped" and not self.tasks and not self.queue:
                if self.spec.watch:  # stopping is how a watched job ends
                    return EXIT_ITEMS_FAILED if self.failed_this_run else EXIT_OK
                return EXIT_STOPPED
            if self.finished and not self.tasks and not self.running and not self.queue:
                return EXIT_ITEMS_FAILED if self.job_failed else EXIT_OK
            await self.wait_kick(HEARTBEAT)

    def _helper_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() and not self.fatal:
            self.fatal = task.exception()
            self.kick()

    def interrupt(self, signum: int) -> None:
        if self.interrupted:
            return
        self.interrupted = signum
        self.log(f"{signal.Signals(signum).name}: stopping running items and releasing claims")
        for r in self.running.values():
            asyncio.create_task(r.proc.terminate())
        self.kick()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.interrupt, sig)
        await self.check_name_and_recover()
        await self.poll_control()
        await self.write_status()
        state, slots = self.effective()
        self.log(f"started: job {self.store.label}, {slots} slots, state {state}")
        helpers = [asyncio.create_task(self.heartbeat_loop()), asyncio.create_task(self.lost_watch_loop()),
                   asyncio.create_task(self.joblog_loop())]
        feeder = asyncio.create_task(self.feed_loop())
        for task in (*helpers, feeder):
            task.add_done_callback(self._helper_done)
        try:
            code = await self.dispatch()
        except BaseException as exc:
            for r in list(self.running.values()):  # their tasks remove them meanwhile
                await r.proc.terminate()
            self.error = str(exc) if isinstance(exc, JobError) else ""
            raise
        finally:
            for task in (*helpers, feeder):
                task.cancel()
            await asyncio.gather(*helpers, feeder, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        await self.release_queue()
        await self.flush_joblog()
        await self.write_status()
        self.log(f"{self.reported_state()}: {self.done} done, {self.failed} failed on this node"
                 + (f", {self.lost_leases} late results refused" if self.lost_leases else ""))
        return code


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for the event at most ``timeout`` seconds. (Python 3.11's wait_for can swallow a
    cancellation that races with the event; asyncio.timeout does not.)"""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass


def awake_clock() -> float:
    """Seconds on a clock that keeps counting while the host sleeps (CLOCK_BOOTTIME on Linux)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
