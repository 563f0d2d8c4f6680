"""The end-of-job check (worker/reconcile.py) on a local job directory built by hand."""

from __future__ import annotations

import os
import time

import pytest

from ppss_helpers import Job, items_n
from worker import layout as L
from worker.jobstatus import read_spec
from worker.reconcile import count_records, scan

ITEMS = items_n(20)


@pytest.fixture
async def job(tmp_path):
    store = await Job(tmp_path / "job").init_here(ITEMS, retries=1, lease=10, chunk_size=7)
    return store, tmp_path / "job"


def lock_dir(root, lock):
    return root / L.lock_path(lock)


def make_done(root, item):
    ident = L.item_id(item)
    os.mkdir(lock_dir(root, ident))
    os.mkdir(root / L.done_path(ident))


async def test_sorts_every_unfinished_kind(job):
    store, root = job
    for item in ITEMS[:14]:
        make_done(root, item)
    unclaimed, orphan, stale, failed_attempt, live, fresh = (L.item_id(i) for i in ITEMS[14:20])
    os.mkdir(lock_dir(root, orphan))
    os.utime(lock_dir(root, orphan), (time.time() - 60, time.time() - 60))
    os.makedirs(lock_dir(root, stale) / "gone@dead")
    os.makedirs(lock_dir(root, failed_attempt) / L.FAILED_MARK)
    os.makedirs(lock_dir(root, live) / "n1@live")
    os.mkdir(lock_dir(root, fresh))  # claimed a moment ago, holder not written yet
    spec = await read_spec(store)

    result = await scan(store, spec, {"n1@live"}, time.time())

    assert (result.total, result.done, result.failed) == (20, 14, 0)
    assert [c.lock for c in result.unclaimed] == [unclaimed]
    assert result.unclaimed[0].item == ITEMS[14]
    assert result.orphans == [(orphan, ITEMS[15])]
    assert result.stale == [(stale, "gone@dead", ITEMS[16])]
    assert set(result.inflight) == {live, fresh}
    # The failed first attempt lost its retry entry (crash between the two steps): repaired.
    assert (root / L.RETRY_DIR / L.lock_name(failed_attempt, 2)).read_bytes() == ITEMS[17]
    assert result.queued == 1 and not result.complete

    # Waiting on just those: a second look reads only their shards.
    only = result.unresolved
    make_done(root, ITEMS[14])
    (lock_dir(root, live) / "n1@live").rename(root / L.done_path(live))
    again = await scan(store, spec, {"n1@live"}, time.time(), only=only)
    assert again.done == 2
    assert live not in again.inflight and fresh in again.inflight
    assert not again.unclaimed


async def test_complete_job_needs_no_item_list(job):
    store, root = job
    for item in ITEMS[:19]:
        make_done(root, item)
    ident = L.item_id(ITEMS[19])
    os.makedirs(lock_dir(root, L.lock_name(ident, 2)) / L.FAILED_MARK)
    os.mkdir(lock_dir(root, ident))
    (root / L.failed_path(ident)).write_bytes(b'{"exit": 1}\n')
    for chunk in (root / L.ITEMS_DIR).iterdir():
        chunk.unlink()  # the item list is not read when every item has a record
    spec = await read_spec(store)
    result = await scan(store, spec, set(), time.time())
    assert result.complete and (result.done, result.failed) == (19, 1)
    assert await count_records(store) == (19, 1)


async def test_exhausted_attempts_get_a_failed_record(job):
    store, root = job
    for item in ITEMS[1:]:
        make_done(root, item)
    ident = L.item_id(ITEMS[0])
    os.makedirs(lock_dir(root, ident) / L.FAILED_MARK)
    os.makedirs(lock_dir(root, L.lock_name(ident, 2)) / L.FAILED_MARK)
    spec = await read_spec(store)  # retries=1: two attempts, both failed
    # Just fenced: its node may be publishing the record right now; in flight, nothing written.
    result = await scan(store, spec, set(), time.time())
    assert ident in result.inflight and not result.complete and result.failed == 0
    assert not (root / L.failed_path(ident)).exists()
    # Older than the lease: the node died between the two steps; the record is written here.
    old = time.time() - spec.lease - 10
    os.utime(lock_dir(root, L.lock_name(ident, 2)), (old, old))
    result = await scan(store, spec, set(), time.time())
    assert result.failed == 1 and result.complete
    assert b'"repaired": true' in (root / L.failed_path(ident)).read_bytes()
    # ...and a record its node published meanwhile is never replaced by the repair
    from worker.reconcile import write_if_absent
    (root / L.failed_path(ident)).write_bytes(b'{"exit": 9}\n')
    await write_if_absent(store, L.failed_path(ident), b'{"exit": null, "repaired": true}\n')
    assert (root / L.failed_path(ident)).read_bytes() == b'{"exit": 9}\n'
    assert not [f for f in (root / L.failed_path(ident)).parent.iterdir() if ".tmp-" in f.name]


async def test_stale_retry_entry_is_removed(job):
    store, root = job
    for item in ITEMS[1:]:
        make_done(root, item)
    ident = L.item_id(ITEMS[0])
    (root / L.RETRY_DIR / ident).write_bytes(ITEMS[0])  # released, then claimed by a node that died
    os.makedirs(lock_dir(root, ident) / "n2@dead")
    spec = await read_spec(store)
    result = await scan(store, spec, set(), time.time())
    assert result.stale == [(ident, "n2@dead", ITEMS[0])]
    assert not (root / L.RETRY_DIR / ident).exists()
