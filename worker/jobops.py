"""Creating and steering a job: what ``ppss-console init|pause|resume|stop|failed`` do.

These live beside the worker because they are the protocol: the console's screens and its
headless subcommands call the same functions, so both views always agree.
"""

from __future__ import annotations

import asyncio
import grp
import hashlib
import json
from dataclasses import dataclass

from . import layout as L
from .control import Control, ControlError, parse_control
from .errors import JobError, UsageError
from .halt import halt_reason, parse_halt
from .jobspec import TRANSFERS, JobSpec
from .store import Store
from .store.base import GROUP_MODES

WRITE_BATCH = 64


@dataclass(frozen=True)
class InitResult:
    spec: JobSpec
    duplicates: int


def split_items(data: bytes, null: bool, where: str) -> list[bytes]:
    """One item per line (or per NUL), byte-exact: nothing trimmed, empty entries skipped."""
    sep = b"\0" if null else b"\n"
    items = [part for part in data.split(sep) if part]
    if not null:
        for n, item in enumerate(data.split(b"\n"), 1):
            if b"\0" in item:
                raise UsageError(f"{where}: line {n} holds a NUL byte, which a command cannot receive "
                                 "(use --null for NUL-separated items)")
    return items


async def init_job(store: Store, command: str, items: list[bytes], source_kind: str, source: str,
                   retries: int = 0, lease: float = 60.0, transfer: str = "shared",
                   output_dir: str | None = None, file_server: str | None = None,
                   watch: bool = False, recurse: bool = True,
                   chunk_size: int = L.CHUNK_SIZE, timeout: float | None = None, priority: int = 0,
                   halt: str | None = None, group: str | None = None) -> InitResult:
    if not command.strip():
        raise UsageError("--command is empty")
    if retries < 0:
        raise UsageError("--retries must be 0 or more")
    if lease < 5:
        raise UsageError("--lease must be at least 5 seconds")
    if timeout is not None and not timeout > 0:  # (also refuses NaN)
        raise UsageError("--timeout must be a positive number of seconds")
    if transfer not in TRANSFERS:
        raise UsageError(f"--transfer must be one of {', '.join(TRANSFERS)}")
    if halt is not None:
        parse_halt(halt, "--halt")
    if await store.exists(L.JOB_FILE):
        raise JobError(f"{store.where('')}: a job already exists there (job.yaml); "
                       "choose another path or remove the old job first")
    existing = await store.listdir("")
    if existing:
        raise JobError(f"{store.where('')}: directory is not empty; a job needs a new or empty directory")
    seen: set[str] = set()
    unique: list[bytes] = []
    for item in items:
        ident = L.item_id(item)
        if ident not in seen:
            seen.add(ident)
            unique.append(item)
    if not unique and not watch:
        raise UsageError(f"{source}: no items (empty source)")
    gid = group_id(group) if group is not None else None
    await store.make_root()  # private to the master account (0700, files 0600)...
    if gid is not None:  # ...or shared with a group: setgid, group-writable directories
        await store.share("", gid, GROUP_MODES[0])
        store.job_modes = GROUP_MODES
    await asyncio.gather(*(store.mkdir(d) for d in (*L.TOP_DIRS, L.OUTPUT_DIR)))
    sharded = [f"{top}/{s}" for top in (*L.SHARDED_DIRS, L.OUTPUT_DIR) for s in L.SHARDS]
    for i in range(0, len(sharded), 256):
        await asyncio.gather(*(store.mkdir(d) for d in sharded[i:i + 256]))
    chunks = [unique[i:i + chunk_size] for i in range(0, len(unique), chunk_size)]
    for i in range(0, len(chunks), WRITE_BATCH):
        await asyncio.gather(*(store.write(L.chunk_path(i + j), L.encode_chunk(c))
                               for j, c in enumerate(chunks[i:i + WRITE_BATCH])))
    spec = JobSpec(command=command, total=len(unique), chunks=len(chunks), chunk_size=chunk_size,
                   source_kind=source_kind, source=source, retries=retries, lease=float(lease),
                   timeout=None if timeout is None else float(timeout),
                   transfer=transfer, output_dir=output_dir, file_server=file_server, watch=watch,
                   recurse=recurse, created=round(await store.now(), 3), priority=int(priority),
                   halt=halt)
    await store.write_atomic(L.CONTROL_FILE, Control().to_yaml())
    await store.write_atomic(L.JOB_FILE, spec.to_yaml())  # last: its presence means "ready"
    return InitResult(spec, len(items) - len(unique))


def group_id(group: str) -> int:
    """``init --group``: a group name (as this host knows it: the same directory service as the
    master's) or a numeric gid."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UsageError(f"--group {group}: no such group here (give its numeric gid on the master)") from None


async def update_control(store: Store, change) -> Control:
    """Read control.yaml, apply ``change(Control) -> Control`` and replace it atomically.

    A malformed file is never overwritten: the error names it and the line.
    """
    if not await store.exists(L.JOB_FILE):
        raise JobError(f"{store.where('')}: not a ppss job (no {L.JOB_FILE})")
    data = await store.read(L.CONTROL_FILE)
    control = parse_control(data or b"", store.where(L.CONTROL_FILE))
    new = change(control)
    await store.write_atomic(L.CONTROL_FILE, new.to_yaml())
    return new


async def set_state(store: Store, state: str, node: str | None = None) -> Control:
    return await update_control(store, lambda c: c.with_state(state, node))


async def apply_halt(store: Store, spec: JobSpec, done: int, failed: int) -> str | None:
    """The halt rule applied: if the job's failures passed ``halt:``, rewrite control.yaml with
    ``state: halted`` and the reason, and return the reason (None: nothing to do). Called by a
    worker that notices; a malformed control.yaml is left alone (ControlError)."""
    data = await store.read(L.CONTROL_FILE)
    control = parse_control(data or b"", store.where(L.CONTROL_FILE))
    reason = halt_reason(spec, control, done, failed)
    if reason is not None:
        await store.write_atomic(L.CONTROL_FILE, control.with_halt(reason).to_yaml())
    return reason


async def resume_halted(store: Store, failed: int) -> Control | None:
    """`resume` of a halted job: running, with ``halt_ignore_below: failed`` recorded so it does
    not halt again until failures grow past the threshold from there. None if not halted."""
    data = await store.read(L.CONTROL_FILE)
    control = parse_control(data or b"", store.where(L.CONTROL_FILE))
    if control.state != "halted":
        return None
    new = control.resumed(failed)
    await store.write_atomic(L.CONTROL_FILE, new.to_yaml())
    return new


async def set_slots(store: Store, node: str, slots: int | None) -> Control:
    return await update_control(store, lambda c: c.with_slots(node, slots))


def control_stamp(data: bytes | None) -> str | None:
    """What identifies a version of control.yaml: a hash of its bytes (None: no file).
    (mtime and size would miss an edit of the same length within SFTP's one-second mtimes.)"""
    return None if data is None else hashlib.blake2b(data, digest_size=16).hexdigest()


async def write_control_text(store: Store, text: bytes, expect_stamp: str | None) -> str:
    """Save an edited control.yaml: validated first, refused if it changed since it was read
    (``expect_stamp`` is ``control_stamp`` of what the editor opened). Returns the new stamp."""
    parse_control(text, store.where(L.CONTROL_FILE))
    current = control_stamp(await store.read(L.CONTROL_FILE))
    if current != expect_stamp:
        raise ControlError(f"{store.where(L.CONTROL_FILE)} was changed by someone else since you "
                           "opened it; reload to see their change")
    await store.write_atomic(L.CONTROL_FILE, text)
    return control_stamp(text)


async def failed_items(store: Store, limit: int | None = None) -> list[dict]:
    lists = await asyncio.gather(*(store.listdir(f"{L.FAILED_DIR}/{s}") for s in L.SHARDS))
    names = [(s, n) for s, ns in zip(L.SHARDS, lists) for n in ns or () if ".tmp-" not in n]
    if limit is not None:
        names = names[:limit]
    blobs = []
    for i in range(0, len(names), 128):
        blobs += await asyncio.gather(*(store.read(f"{L.FAILED_DIR}/{s}/{n}") for s, n in names[i:i + 128]))
    out = []
    for blob in blobs:
        try:
            out.append(json.loads(blob or b"{}"))
        except ValueError:
            continue
    return out
