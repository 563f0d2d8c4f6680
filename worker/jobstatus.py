"""Node status files and the job's totals, as both the worker and the console read them.

Each worker rewrites ``nodes/<node>.json`` about once a second (temporary file, then rename);
the file's modification time on the master is the node's heartbeat, so ages are measured on
the master's clock only. Totals come from these files and job.yaml, never from a listing of
the per-item directories (``recount`` does that, on demand).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from . import layout as L
from .control import Control, ControlError, parse_control
from .errors import JobError
from .jobspec import JobSpec
from .store import Store

FINISHED_FILE = "finished.json"  # {"done", "failed", "at"}: the job under a root is finished
RETRIED_FILE = "retried.json"    # {"count": N}: failed records moved to history by retry

# States a node reports; "lost" is derived (heartbeat older than the lease).
NODE_STATES = ("starting", "running", "paused", "suspended", "stopping", "stopped", "finished",
               "error", "lost")
FINAL_STATES = ("stopped", "finished")
LOOK_MIN = 0.02  # at the end of a job, nodes look for what the others write at most this often,
LOOK_PER_NODE = 0.002  # less often in a larger fleet (~500 files read a second in all)


def look_pace(nodes: int, most: float) -> float:
    """Seconds between two looks at the other nodes' end-of-job files (finished.json, their
    final status): quick in a small fleet, where the looks cost the master little; from
    ``most / LOOK_PER_NODE`` nodes on, every ``most`` seconds (a large fleet's tail as before)."""
    return min(most, max(LOOK_MIN, LOOK_PER_NODE * nodes))


@dataclass(frozen=True)
class RunningItem:
    lock: str
    item: str  # lossless JSON form (layout.item_to_json)
    slot: int
    started: float


@dataclass(frozen=True)
class NodeStatus:
    name: str
    state: str = "starting"
    host: str = ""
    pid: int = 0
    run_id: str = ""
    slots: int = 0
    done: int = 0
    failed: int = 0
    added: int = 0  # items found in a watched directory
    lost_leases: int = 0
    draining: bool = False  # nothing left to claim; waiting for the job's end
    running: tuple[RunningItem, ...] = ()
    claims: tuple[tuple[str, str], ...] = ()  # (lock, item) held but not running yet
    error: str = ""
    started: float = 0.0
    updated: float = 0.0
    version: str = ""
    last_seen_s: float | None = None  # filled in by readers, from the file's mtime

    def to_json(self) -> bytes:
        data = {
            "name": self.name, "state": self.state, "host": self.host, "pid": self.pid,
            "run_id": self.run_id, "slots": self.slots, "done": self.done, "failed": self.failed,
            "added": self.added, "lost_leases": self.lost_leases, "draining": self.draining,
            "running": [{"lock": r.lock, "item": r.item, "slot": r.slot, "started": r.started}
                        for r in self.running],
            "claims": [{"lock": lock, "item": item} for lock, item in self.claims],
            "error": self.error, "started": self.started, "updated": self.updated,
            "version": self.version,
        }
        return json.dumps(data, ensure_ascii=True).encode()

    @classmethod
    def from_json(cls, data: bytes, last_seen_s: float | None = None) -> "NodeStatus":
        d = json.loads(data)
        return cls(
            name=str(d["name"]), state=str(d.get("state", "starting")), host=str(d.get("host", "")),
            pid=int(d.get("pid", 0)), run_id=str(d.get("run_id", "")), slots=int(d.get("slots", 0)),
            done=int(d.get("done", 0)), failed=int(d.get("failed", 0)), added=int(d.get("added", 0)),
            lost_leases=int(d.get("lost_leases", 0)), draining=bool(d.get("draining", False)),
            running=tuple(RunningItem(r["lock"], r["item"], int(r.get("slot", 0)), float(r.get("started", 0)))
                          for r in d.get("running", ())),
            claims=tuple((c["lock"], c["item"]) for c in d.get("claims", ())),
            error=str(d.get("error", "")), started=float(d.get("started", 0)),
            updated=float(d.get("updated", 0)), version=str(d.get("version", "")),
            last_seen_s=last_seen_s)

    def held_locks(self) -> list[tuple[str, str]]:
        return [(r.lock, r.item) for r in self.running] + list(self.claims)

    def is_lost(self, lease: float) -> bool:
        return (self.state not in FINAL_STATES and self.last_seen_s is not None
                and self.last_seen_s > lease)

    def effective_state(self, lease: float) -> str:
        return "lost" if self.is_lost(lease) else self.state


@dataclass(frozen=True)
class JobStatus:
    spec: JobSpec
    nodes: tuple[NodeStatus, ...]
    control: Control | None
    control_error: str = ""
    retry_pending: int = 0
    now: float = 0.0
    recount: tuple[int, int] = (0, 0)  # exact (done, failed) of the last full check, if any
    retried: int = 0  # failed records moved to history by `retry` (retried.json)
    finished_mark: dict | None = None  # finished.json of a job under a root, if present

    @property
    def total(self) -> int:
        return self.spec.total + sum(n.added for n in self.nodes)

    # Node counters never over-count; they can fall short after a crash, which the end-of-job
    # check corrects (recount.json). Either figure is a lower bound: take the larger.
    @property
    def done(self) -> int:
        return max(sum(n.done for n in self.nodes), self.recount[0])

    @property
    def failed(self) -> int:
        # Retried items left the failed records (recount.json is adjusted by retry likewise).
        return max(sum(n.failed for n in self.nodes) - self.retried, self.recount[1], 0)

    @property
    def running(self) -> int:
        return sum(len(n.running) for n in self.nodes
                   if n.effective_state(self.spec.lease) not in ("lost", *FINAL_STATES))

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - self.running)

    @property
    def finished(self) -> bool:
        return self.done + self.failed >= self.total and not self.spec.watch

    @property
    def priority(self) -> int:
        """control.yaml's priority, else job.yaml's."""
        if self.control is not None and self.control.priority is not None:
            return self.control.priority
        return self.spec.priority

    @property
    def state(self) -> str:
        """The job's state: finished, stopped, halted, paused (suspended too) or running."""
        if self.finished_mark is not None or self.finished:
            return "finished"
        control = self.control.state if self.control else "running"
        return {"suspended": "paused"}.get(control, control)

    def to_dict(self) -> dict:
        lease = self.spec.lease
        return {
            "total": self.total, "done": self.done, "failed": self.failed,
            "running": self.running, "pending": self.pending,
            "nodes": [{"name": n.name, "state": n.effective_state(lease), "slots": n.slots,
                       "done": n.done, "failed": n.failed, "running": len(n.running),
                       "last_seen_s": None if n.last_seen_s is None else round(n.last_seen_s, 1),
                       "error": n.error}
                      for n in self.nodes],
        }


async def read_spec(store: Store) -> JobSpec:
    data = await store.read(L.JOB_FILE)
    if data is None:
        raise JobError(f"{store.where('')}: not a ppss job (no {L.JOB_FILE}); create one with ppss-console init")
    return JobSpec.from_yaml(data, store.where(L.JOB_FILE))


async def read_control(store: Store) -> Control:
    data = await store.read(L.CONTROL_FILE)
    return parse_control(data or b"", store.where(L.CONTROL_FILE))


async def node_entries(store: Store) -> list:
    """The status files in nodes/ (their entries: names and mtimes)."""
    entries = await store.scandir(L.NODES_DIR) or []
    return [e for e in entries if e.name.endswith(".json") and not e.is_dir]


async def read_nodes(store: Store, now: float | None = None, entries: list | None = None) -> list[NodeStatus]:
    """Every node's status; ``entries``: from a listing made before (node_entries)."""
    if entries is None:
        entries = await node_entries(store)
    if now is None:
        now = await store.now()
    blobs = await asyncio.gather(*(store.read(f"{L.NODES_DIR}/{e.name}") for e in entries))
    return _parsed_nodes(blobs, entries, now)


async def read_named_nodes(store: Store, names: list[str], now: float) -> list[NodeStatus]:
    """The status files of these nodes, without listing nodes/ (two round trips, not four)."""
    paths = [L.status_path(n) for n in names]
    blobs, entries = await asyncio.gather(asyncio.gather(*(store.read(p) for p in paths)),
                                          asyncio.gather(*(store.stat(p) for p in paths)))
    return _parsed_nodes(blobs, entries, now)


def _parsed_nodes(blobs, entries, now: float) -> list[NodeStatus]:
    """Each status file read (its age from its entry's mtime), sorted by name; a missing, torn or
    foreign file is skipped rather than failing the whole view."""
    nodes = []
    for blob, entry in zip(blobs, entries):
        if not blob or entry is None:
            continue
        try:
            nodes.append(NodeStatus.from_json(blob, max(0.0, now - entry.mtime)))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(nodes, key=lambda n: n.name)


async def read_job_status(store: Store, spec: JobSpec | None = None, nodes_reader=None) -> JobStatus:
    """The job's totals and nodes. ``nodes_reader(store, now)`` reads the nodes' status files
    (default ``read_nodes``; the console passes one that rereads only changed files)."""
    spec = spec or await read_spec(store)
    now = await store.now()
    nodes, control_data, retry, recount_data, retried_data, finished_data = await asyncio.gather(
        (nodes_reader or read_nodes)(store, now), store.read(L.CONTROL_FILE), store.listdir(L.RETRY_DIR),
        store.read(L.RECOUNT_FILE), store.read(RETRIED_FILE), store.read(FINISHED_FILE))
    recount = (0, 0)
    try:
        data = json.loads(recount_data) if recount_data else {}
        recount = (int(data.get("done", 0)), int(data.get("failed", 0)))
    except (ValueError, TypeError, AttributeError):
        pass
    control, error = None, ""
    try:
        control = parse_control(control_data or b"", store.where(L.CONTROL_FILE))
    except ControlError as exc:
        error = str(exc)
    retry_pending = len([n for n in retry or () if ".tmp-" not in n])
    return JobStatus(spec, tuple(nodes), control, error, retry_pending, now, recount,
                     retried_count(retried_data), json_mapping(finished_data))


def json_mapping(data: bytes | None) -> dict | None:
    """A small JSON object file (finished.json...), None if absent or torn."""
    try:
        value = json.loads(data) if data else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def retried_count(data: bytes | None) -> int:
    """retried.json's count (0 if absent or unreadable)."""
    try:
        return max(0, int((json_mapping(data) or {}).get("count", 0)))
    except (TypeError, ValueError):
        return 0
