"""A jobs root: a directory of jobs on the master, and the operations on it (docs/protocol.md).

    ROOT/fleet.yaml            fleet-wide steering (worker.fleet)
    ROOT/active/NAME           an empty file per job that may still have work: the only list a
                               serving worker reads each cycle
    ROOT/NAME/...              a job, laid out as ever
    ROOT/NAME/finished.json    {"done", "failed", "at"}: written when the job was found finished
    ROOT/NAME/retried.json     {"count": N}: failed records moved to history by retry
    ROOT/NAME/failed-history/ab/<id>.<attempt>   failed records of retried attempts (kept)

A directory is a job iff it holds job.yaml; an address holding none is a root. Every function
takes the root's Store (paths relative to the root); ``job_store`` gives a job's view of it that
shares the same connection.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field

from . import layout as L
from .errors import JobError, UsageError
from .fleet import FLEET_FILE
from .control import ControlError, parse_control
from .jobspec import JobSpec
from .jobstatus import (FINAL_STATES, FINISHED_FILE, RETRIED_FILE, JobStatus, json_mapping, read_job_status,
                        read_nodes, read_spec, retried_count)
from .store import Store

ACTIVE_DIR = "active"
HISTORY_DIR = "failed-history"
TRASH_PREFIX = ".trash-"
RESERVED = {ACTIVE_DIR, L.NODES_DIR, L.TMP_DIR, FLEET_FILE}
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
BATCH = 64


def valid_job_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and name not in RESERVED and ".tmp-" not in name


def check_job_name(name: str) -> str:
    if not valid_job_name(name):
        raise UsageError(f"{name!r} is not a job name under a root (letters, digits, _ . + -; "
                         f"not starting with . or -; not {', '.join(sorted(RESERVED))})")
    return name


class JobView(Store):
    """A job of a root seen as its own Store: paths prefixed with NAME/, the root's connection."""

    def __init__(self, parent: Store, name: str, in_root: bool = True) -> None:
        self.parent = parent
        self.name = name
        self.in_root = in_root  # the parent is a jobs root (retry marks the job active there)
        self.root = parent.path(name)
        self.label = parent.where(name)

    def _p(self, rel: str) -> str:
        if rel.startswith("/"):
            return rel  # an absolute path on the master (a source directory): as the root's store
        return f"{self.name}/{rel}" if rel else self.name

    async def make_root(self) -> None:
        await self.parent.make_root()
        await self.parent.mkdir(self.name)

    async def mkdir(self, rel, mode=None):  # the job's own modes (private, or shared by init --group)
        return await self.parent.mkdir(self._p(rel), (await self.modes())[0] if mode is None else mode)

    async def share(self, rel, gid, mode): return await self.parent.share(self._p(rel), gid, mode)
    async def rmdir(self, rel): return await self.parent.rmdir(self._p(rel))
    async def remove(self, rel): return await self.parent.remove(self._p(rel))
    async def rename(self, src, dst): return await self.parent.rename(self._p(src), self._p(dst))
    async def replace(self, src, dst): return await self.parent.replace(self._p(src), self._p(dst))
    async def read(self, rel): return await self.parent.read(self._p(rel))
    async def read_range(self, rel, offset, size): return await self.parent.read_range(self._p(rel), offset, size)
    async def write(self, rel, data, mode=None):
        return await self.parent.write(self._p(rel), data, (await self.modes())[1] if mode is None else mode)

    async def append(self, rel, data, mode=None):
        return await self.parent.append(self._p(rel), data, (await self.modes())[1] if mode is None else mode)
    async def truncate(self, rel, size): return await self.parent.truncate(self._p(rel), size)
    async def overwrite(self, rel, data): return await self.parent.overwrite(self._p(rel), data)
    async def scandir(self, rel): return await self.parent.scandir(self._p(rel))
    async def stat(self, rel): return await self.parent.stat(self._p(rel))
    async def realpath(self, path): return await self.parent.realpath(path)
    async def get_file(self, remote, local): return await self.parent.get_file(remote, local)
    async def put_tree(self, local_dir, remote_dir, files=None):
        return await self.parent.put_tree(local_dir, remote_dir, files)

    async def close(self) -> None:
        pass  # the root's store owns the connection


def job_store(root: Store, name: str) -> JobView:
    return JobView(root, name)


def root_of(store: Store) -> tuple[Store, str] | None:
    """(root store, job name) when ``store`` is a job seen through its root, else None."""
    return (store.parent, store.name) if isinstance(store, JobView) and store.in_root else None


async def is_job(store: Store, name: str) -> bool:
    """Does ROOT/NAME hold a job (job.yaml)?"""
    return await store.exists(f"{name}/{L.JOB_FILE}")


async def is_root(store: Store) -> bool:
    """Is the address of ``store`` a root (holds no job.yaml: also an empty or missing dir)?"""
    return not await store.exists(L.JOB_FILE)


async def list_active(store: Store) -> list[str]:
    """The jobs that may still have work: ROOT/active/ (one listing, whatever the root holds)."""
    names = await store.listdir(ACTIVE_DIR) or []
    return sorted(n for n in names if valid_job_name(n))


async def mark_active(store: Store, name: str) -> None:
    """Create ROOT/active/NAME (an empty file): serving workers take the job up."""
    await store.mkdir(ACTIVE_DIR)
    await store.write(f"{ACTIVE_DIR}/{name}", b"")


async def mark_finished(store: Store, name: str, done: int, failed: int, at: float | None = None) -> None:
    """The end-of-job check found NAME finished: write finished.json (atomically), THEN remove
    active/NAME (a crash between leaves it active: the next worker's check writes it again).
    ``done``/``failed`` are the job's counts, failed net of retried (as JobStatus counts them)."""
    job = job_store(store, name)
    if at is None:
        at = await job.now()
    data = json.dumps({"done": int(done), "failed": int(failed), "at": round(float(at), 3)}).encode()
    await job.write_atomic(FINISHED_FILE, data)
    await store.remove(f"{ACTIVE_DIR}/{name}")


@dataclass(frozen=True)
class JobInfo:
    name: str
    state: str
    priority: int
    total: int
    done: int
    failed: int
    running: int
    pending: int
    created: float
    halted: str | None = None  # the reason, when halted
    status: JobStatus | None = field(default=None, compare=False, repr=False)  # None: from finished.json

    def to_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "priority": self.priority, "total": self.total,
                "done": self.done, "failed": self.failed, "running": self.running,
                "pending": self.pending, "created": self.created}


def job_info(name: str, status: JobStatus) -> JobInfo:
    control = status.control
    return JobInfo(name, status.state, status.priority, status.total, status.done, status.failed,
                   status.running, status.pending, status.spec.created_epoch,
                   control.halted if control is not None and control.state == "halted" else None, status)


async def list_jobs(store: Store) -> list[JobInfo]:
    """Every job of the root (active/ and every subdirectory with job.yaml), with its counts and
    state, by priority (highest first) then age (oldest first). A finished job (finished.json)
    costs three small reads; the others a full status read."""
    entries = await store.scandir("")
    if entries is None:
        raise JobError(f"{store.where('')}: no such directory (a jobs root is made by ppss-console init NAME)")
    names = {e.name for e in entries if e.is_dir and valid_job_name(e.name)} | set(await list_active(store))
    names = sorted(names)
    infos: list[JobInfo] = []
    for i in range(0, len(names), 16):
        found = await asyncio.gather(*(_job_info(store, n) for n in names[i:i + 16]))
        infos += [info for info in found if info is not None]
    infos.sort(key=lambda j: (-j.priority, j.created, j.name))
    return infos


async def _job_info(store: Store, name: str) -> JobInfo | None:
    job = job_store(store, name)
    spec_data, finished_data, control_data = await asyncio.gather(
        job.read(L.JOB_FILE), job.read(FINISHED_FILE), job.read(L.CONTROL_FILE))
    if spec_data is None:
        return None  # not a job (or one being created: job.yaml comes last)
    spec = JobSpec.from_yaml(spec_data, job.where(L.JOB_FILE))
    finished = json_mapping(finished_data)
    if finished is None:
        return job_info(name, await read_job_status(job, spec))
    try:
        control = parse_control(control_data or b"", job.where(L.CONTROL_FILE))
    except ControlError:
        control = None
    priority = control.priority if control is not None and control.priority is not None else spec.priority
    done, failed = int(finished.get("done", 0) or 0), int(finished.get("failed", 0) or 0)
    return JobInfo(name, "finished", priority, max(spec.total, done + failed), done, failed, 0, 0,
                   spec.created_epoch)


def _matches(rec: dict, exit_code: int | None, match: str | None) -> bool:
    if exit_code is not None and rec.get("exit") != exit_code:
        return False
    if match is not None and match not in str(rec.get("output_tail") or ""):
        return False
    return True


async def _failed_records(store: Store) -> list[tuple[str, dict]]:
    """(id, record) of every failed record of the job."""
    lists = await asyncio.gather(*(store.listdir(f"{L.FAILED_DIR}/{s}") for s in L.SHARDS))
    names = [n for ns in lists for n in ns or () if ".tmp-" not in n]
    out = []
    for i in range(0, len(names), 128):
        blobs = await asyncio.gather(*(store.read(L.failed_path(n)) for n in names[i:i + 128]))
        for name, blob in zip(names[i:i + 128], blobs):
            try:
                rec = json.loads(blob or b"{}")
            except ValueError:
                rec = {}
            out.append((name, rec if isinstance(rec, dict) else {}))
    return out


def _item_bytes(ident: str, rec: dict) -> bytes | None:
    """The item of a failed record, if the record holds it and it is the item of ``ident``."""
    if "item" not in rec:
        return None
    item = L.item_from_json(str(rec["item"]))
    return item if L.item_id(item) == ident else None


async def _add_count(store: Store, rel: str, key: str, delta: int) -> None:
    """Read-modify-write of a small JSON counter file (one writer at a time: the console)."""
    data = await store.read(rel)
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        value = {}
    value = value if isinstance(value, dict) else {}
    value[key] = max(0, int(value.get(key, 0) or 0) + delta)
    await store.write_atomic(rel, json.dumps(value).encode())


def history_path(ident: str, attempt: int) -> str:
    return f"{HISTORY_DIR}/{L.shard(ident)}/{ident}.{attempt}"


async def retry_failed(store: Store, exit_code: int | None = None, match: str | None = None,
                       ids: Collection[str] | None = None) -> int:
    """Offer the job's failed items (all, or with that exit code, or TEXT in their output, or
    those ``ids``: a group of the console's failed view) again as new attempts; returns how many.
    Steps, per batch (docs/protocol.md, "retry"):
      1. rename failed/ab/<id> -> failed-history/ab/<id>.<attempt>   (kept as history)
      2. retried.json count += the records moved (and recount.json's failed -= them)
      3. write retry/<id>.<attempt+1> with the item's bytes (atomically), for every node to claim
    then remove finished.json and create ROOT/active/NAME (under a root). Counts are right at
    once: failed = node counters - retried.count. An item is offered only after it is counted
    out of the failed, so the counters never add up to more than the finished items."""
    await read_spec(store)
    wanted = None if ids is None else set(ids)
    records = [(i, r) for i, r in await _failed_records(store)
               if _matches(r, exit_code, match) and (wanted is None or i in wanted)]
    todo = []
    for ident, rec in records:
        item = _item_bytes(ident, rec)
        if item is None:
            continue  # a torn record without the item: a full check rewrites it (repaired)
        todo.append((ident, int(rec.get("attempt") or 1), item))
    moved_total = 0
    for i in range(0, len(todo), BATCH):
        batch = todo[i:i + BATCH]
        await asyncio.gather(*(store.mkdir(HISTORY_DIR), *(store.mkdir(f"{HISTORY_DIR}/{L.shard(t[0])}")
                                                            for t in batch)))
        moved = await asyncio.gather(*(_to_history(store, ident, attempt) for ident, attempt, _ in batch))
        done = [t for t, ok in zip(batch, moved) if ok]
        if not done:
            continue
        await _add_count(store, RETRIED_FILE, "count", len(done))
        if await store.exists(L.RECOUNT_FILE):
            await _add_count(store, L.RECOUNT_FILE, "failed", -len(done))
        await asyncio.gather(*(store.write_atomic(f"{L.RETRY_DIR}/{L.lock_name(ident, attempt + 1)}", item)
                               for ident, attempt, item in done))
        moved_total += len(done)
    if moved_total:
        await reopen(store)
    return moved_total


async def _to_history(store: Store, ident: str, attempt: int) -> bool:
    target = history_path(ident, attempt)
    if await store.rename(L.failed_path(ident), target):
        return True
    if await store.exists(target) and await store.exists(L.failed_path(ident)):
        # Retried before up to here (a crash): keep both histories, under distinct names.
        return await store.rename(L.failed_path(ident), f"{target}.{secrets.token_hex(3)}")
    return False


async def reopen(store: Store) -> None:
    """The job has work again: remove finished.json, then (under a root) create active/NAME.
    A job opened by its own address is under a root when its parent has active/ and no job.yaml
    (reached as ``../``, so the console's view of a job needs no root store)."""
    await store.remove(FINISHED_FILE)
    parent = root_of(store)
    if parent:
        await mark_active(*parent)
        return
    name = posixpath.basename(store.root.rstrip("/"))
    if isinstance(store, JobView) or not valid_job_name(name):
        return
    if await store.exists(f"../{ACTIVE_DIR}") and not await store.exists(f"../{L.JOB_FILE}"):
        await store.write(f"../{ACTIVE_DIR}/{name}", b"")


async def live_holders(store: Store) -> list[str]:
    """Nodes of the job with a fresh heartbeat and not in a final state (they run it, or may)."""
    spec = await read_spec(store)
    nodes = await read_nodes(store)
    return [n.name for n in nodes if n.state not in FINAL_STATES and not n.is_lost(spec.lease)]


async def remove_job(store: Store, name: str, force: bool = False) -> None:
    """Delete ROOT/NAME: refused (JobError, exit 4) while live nodes hold or run it, or while it is
    neither finished nor stopped, unless ``force``. Steps: remove active/NAME; rename NAME to
    .trash-NAME-<rand> (so no half job stays under its name); remove that tree."""
    job = job_store(store, name)
    if not await is_job(store, name):
        raise JobError(f"{store.where(name)}: not a ppss job (no {L.JOB_FILE})")
    if not force:
        live = await live_holders(job)
        if live:
            raise JobError(f"{store.where(name)}: {len(live)} live node(s) ({', '.join(live[:5])}) "
                           "hold or run this job; stop it first (ppss-console stop) or --force")
        status = await read_job_status(job)
        if status.state not in ("finished", "stopped"):
            raise JobError(f"{store.where(name)}: the job is {status.state}, not finished or stopped; "
                           "stop it first (ppss-console stop) or --force")
    await store.remove(f"{ACTIVE_DIR}/{name}")
    trash = f"{TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
    if not await store.rename(name, trash):
        raise JobError(f"{store.where(name)}: cannot move the job aside to remove it")
    await remove_tree(store, trash)


async def remove_tree(store: Store, rel: str) -> None:
    """Remove a directory tree through the store (files in batches, then directories)."""
    entries = await store.scandir(rel)
    if entries is None:
        return
    files = [e for e in entries if not e.is_dir]
    for i in range(0, len(files), 128):
        await asyncio.gather(*(store.remove(f"{rel}/{e.name}") for e in files[i:i + 128]))
    dirs = [e for e in entries if e.is_dir]
    for i in range(0, len(dirs), 16):
        await asyncio.gather(*(remove_tree(store, f"{rel}/{e.name}") for e in dirs[i:i + 16]))
    await store.rmdir(rel)


async def retried_total(store: Store) -> int:
    return retried_count(await store.read(RETRIED_FILE))
