"""Job-log lines lost to a crash, restored from the records once the job has ended.

A node writes its job log in batches (joblog.py): a SIGKILL loses the last half-second of
lines, though their records are on the master. When the job has ended, the last node to end
compares the records with the job log and appends a line (``"restored": true``) for every
record without one. It costs a listing of the records and a read of every job log, so it runs
only after a crash: a run that found its predecessor had not ended cleanly leaves a mark
(``tmp/joblog-suspect``), and a node that is silent or in error at the end is one too.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Callable

from . import layout as L
from .jobspec import JobSpec
from .jobstatus import FINAL_STATES, NodeStatus, look_pace, read_named_nodes, read_nodes
from .joblog import JobLog
from .reconcile import iter_items
from .store import Store

SUSPECT = f"{L.TMP_DIR}/joblog-suspect"
GONE_AFTER = 3.0  # a node silent this long (three heartbeats) writes no more lines
QUIET_POLL = 0.1  # how often (at most: look_pace) the first nodes to end look for the others' final status
FINAL_EVENTS = ("done", "failed")


def clean_end(status: NodeStatus) -> bool:
    return status.state in FINAL_STATES


async def note_unclean(store: Store) -> None:
    """This node's previous run did not end cleanly: the job log may lack its last lines."""
    await store.mkdir(SUSPECT)


async def others_quiet(store: Store, node: str, now: Callable[[], float] | None = None,
                       names: list[str] | None = None) -> list[NodeStatus] | None:
    """The other nodes once none is still working, or None when another node ended after us: it
    read our final status after writing its own, so it waits for the rest and restores. (Of two
    nodes ending together, at least one reads the other's final status: the later one.)"""
    working: set[str] = set()
    waited = 0.0
    while True:
        if names is not None and now is not None:  # the nodes the end check saw: no listing
            found = await read_named_nodes(store, [n for n in names if n != node], now())
        else:
            found = await read_nodes(store, now() if now else None)
        others = [n for n in found if n.name != node]
        if any(n.name in working and clean_end(n) for n in others):
            return None
        if all(quiet(n) for n in others):
            return others
        if waited >= GONE_AFTER + 2:
            return None
        working = {n.name for n in others if not quiet(n)}
        pause = look_pace(len(others) + 1, QUIET_POLL) if waited < 1.0 else 1.0
        await asyncio.sleep(pause)
        waited += pause


def quiet(status: NodeStatus) -> bool:
    """Writes no more job-log lines: ended, in error, or silent for three heartbeats."""
    return clean_end(status) or status.state == "error" or (status.last_seen_s or 0) > GONE_AFTER


async def restore_joblog(store: Store, spec: JobSpec, node: str, joblog: JobLog,
                         now: Callable[[], float] | None = None, names: list[str] | None = None) -> int:
    """At the end of the job: restore missing job-log lines if a crash may have lost some.
    ``names``: the nodes of the job as the end-of-job check found them (a node that started
    since then ended after us: it checks)."""
    others, suspect = await asyncio.gather(others_quiet(store, node, now, names), store.exists(SUSPECT))
    if others is None:
        return 0
    if not any(not clean_end(n) for n in others):
        if not suspect:
            return 0
    else:
        await store.mkdir(SUSPECT)
    mine = f"{L.TMP_DIR}/joblog-restoring-{secrets.token_hex(4)}"
    if not await store.rename(SUSPECT, mine):
        return 0  # another node restores
    try:
        return await restore_lines(store, spec, joblog)
    finally:
        await store.rmdir(mine)


async def restore_lines(store: Store, spec: JobSpec, joblog: JobLog) -> int:
    done, failed = await asyncio.gather(_records(store, L.DONE_DIR), _records(store, L.FAILED_DIR))
    logged = await _logged(store)
    missing_done, missing_failed = done - logged, failed - logged
    if not missing_done and not missing_failed:
        return 0
    for ident in sorted(missing_failed):
        try:
            rec = json.loads(await store.read(L.failed_path(ident)) or b"")
        except ValueError:
            rec = {"id": ident}
        joblog.write({"event": "failed", **rec, "restored": True})
    if missing_done:
        async for item in iter_items(store, spec):
            ident = L.item_id(item)
            if ident in missing_done:
                joblog.write({"event": "done", "id": ident, "item": L.item_to_json(item), "restored": True})
    await joblog.flush()
    return len(missing_done) + len(missing_failed)


async def _records(store: Store, top: str) -> set[str]:
    lists = await asyncio.gather(*(store.listdir(f"{top}/{s}") for s in L.SHARDS))
    return {n for names in lists for n in names or () if ".tmp-" not in n}


async def _logged(store: Store) -> set[str]:
    names = [n for n in await store.listdir(L.JOBLOG_DIR) or () if n.endswith(".jsonl")]
    blobs = await asyncio.gather(*(store.read(f"{L.JOBLOG_DIR}/{n}") for n in names))
    out: set[str] = set()
    for blob in blobs:
        for line in (blob or b"").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line torn by the crash
            if isinstance(event, dict) and event.get("event") in FINAL_EVENTS:
                out.add(str(event.get("id")))
    return out
