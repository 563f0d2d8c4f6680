"""issue 9.1, 9.2, 9.3, 9.11 over real sshd: a master that refuses writes, a full master, a
corrupt job. The worker stops with one line and exit status 4, gives its running items back
(never a failed record for them), leaves its final status (`error`, the reason), and once the
cause is fixed a restarted worker finishes every item exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sshcluster import SshCluster
from test_fault_tolerance import LEASE, assert_exactly_once, make_job  # noqa: F401  (fixture)
from ppss_helpers import items_n
from worker import layout as L

pytestmark = pytest.mark.ssh


def only_line(err: str, fragment: str) -> None:
    """The worker said why in one line (no traceback, no 'Task exception was never retrieved')."""
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert any(fragment in line for line in err.splitlines()), err


def first_free_shard(items: list[bytes], after: int) -> tuple[bytes, str]:
    """An item at or after position ``after`` whose lock shard holds no earlier item."""
    early = {L.shard(L.item_id(i)) for i in items[:after]}
    for item in items[after:]:
        shard = L.shard(L.item_id(item))
        if shard not in early:
            return item, shard
    raise AssertionError("no free shard")


async def init_small_chunks(job, items: list[bytes]) -> None:
    """The job made in this process (chunks of 10 items; the console has no option for it)."""
    store = await job.init_here(items, 'true "$ITEM"', chunk_size=10, lease=float(LEASE))
    await store.close()


def immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@pytest.fixture
def chattr_ok(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    if os.geteuid() != 0 or not shutil.which("chattr") or subprocess.run(
            ["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip("needs root and chattr +i (a directory even root cannot write in)")
    immutable(probe, False)


def test_a_refused_lock_shard_writes_nothing_off(ssh_cluster: SshCluster, make_job, chattr_ok) -> None:  # noqa: F811
    """The issue's case: items of `sleep`, one worker; a lock shard not yet claimed refuses
    writes (chattr +i: root, which the test servers log in as, ignores chmod 000)."""
    items = items_n(16)
    job = make_job(ssh_cluster)
    job.create(items, 'sleep 1; : "$ITEM"', "--lease", str(LEASE))
    item, shard = first_free_shard(items, 6)
    shard_dir = job / f"{L.LOCKS_DIR}/{shard}"
    immutable(shard_dir, True)
    try:
        job.start("w1", 2)
        assert job.wait("w1", 60) == 4
    finally:
        immutable(shard_dir, False)
    err = job.stderr("w1")
    only_line(err, f"{L.LOCKS_DIR}/{shard}/")
    done, failed = job.records()
    assert not failed, failed  # nothing written off (was: exit 143 records)
    assert 0 < len(done) < len(items)
    status = job.node_status("w1")
    assert status["state"] == "error" and f"{L.LOCKS_DIR}/{shard}/" in status["error"], status
    assert not status["running"], status
    text = job.console("status").stdout  # the operator reads why, headless too
    assert re.search(rf"^w1: worker error: .*{L.LOCKS_DIR}/{shard}/", text, re.M), text
    assert len(job.joblog("w1")) == len(done)  # flushed on the way out
    job.start("w1", 2)
    job.wait_ok("w1", 60)
    assert_exactly_once(job, items)


@pytest.mark.parametrize("damage", ["emptied", "truncated", "missing"])
def test_a_corrupt_item_list_is_reported_not_waited_on(ssh_cluster: SshCluster, make_job, damage) -> None:  # noqa: F811
    """issue 9.3: `: > JOB/items/000001` made the worker wait forever; now one line naming the
    chunk, exit status 4, and the error in the node's status."""
    items = items_n(30)
    job = make_job(ssh_cluster)
    asyncio.run(init_small_chunks(job, items))
    chunk = job / L.chunk_path(1)
    if damage == "emptied":
        chunk.write_bytes(b"")
    elif damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:-7])
    else:
        chunk.unlink()
    job.start("w1", 2)
    assert job.wait("w1", 30) == 4
    err = job.stderr("w1")
    only_line(err, f"{L.chunk_path(1)}: item list chunk")
    status = job.node_status("w1")
    assert status["state"] == "error" and L.chunk_path(1) in status["error"], status
    assert not job.records()[1]  # nothing written off


@pytest.fixture
def small_master(tmp_path: Path):
    """A mount point for a tmpfs of a few MB: the master's disk, made to fill up."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "3m") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        path.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {res.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def grow(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def assert_nothing_partial(job) -> None:
    """No empty or half-written record, log or status file, no temporary name left over."""
    for top in (L.DONE_DIR, L.FAILED_DIR, L.LOGS_DIR, L.NODES_DIR, L.RETRY_DIR, L.OUTPUT_DIR):
        for f in (job / top).rglob("*"):
            assert ".tmp-" not in f.name, f
            if f.is_file():
                assert f.stat().st_size > 0, f"empty file {f}"


def test_a_full_master_writes_nothing_off(ssh_cluster: SshCluster, make_job, small_master) -> None:  # noqa: F811
    """issue 9.2: a 3 MB master fills with item logs. The worker says "no space left on the
    master" naming the path (SFTP itself only says "Failure"), gives its items back, leaves no
    empty or half-written file, shows `error` in its status; with room again, a restart finishes."""
    items = items_n(24)
    job = make_job(ssh_cluster)
    small_master(job.dir)
    job.create(items, 'head -c 400000 /dev/zero | tr "\\0" x; echo "$ITEM"', "--lease", str(LEASE))
    job.start("w1", 2)
    job.start("w2", 2)
    assert job.wait("w1", 60) == 4 and job.wait("w2", 60) == 4
    for node in ("w1", "w2"):
        only_line(job.stderr(node), "no space left on the master")
        status = job.node_status(node)
        assert status is not None and status["state"] == "error", status
        assert "no space left on the master" in status["error"], status
    done, failed = job.records()
    assert not failed, failed
    assert len(done) < len(items)
    assert_nothing_partial(job)
    grow(job.dir, "64m")
    job.start("w1", 2)
    job.wait_ok("w1", 60)
    assert_exactly_once(job, items)
    assert_nothing_partial(job)


def test_a_full_master_in_copy_mode_leaves_no_partial_output(ssh_cluster: SshCluster, make_job,  # noqa: F811
                                                              small_master, tmp_path: Path) -> None:
    """Copy mode: uploads fill the master. Items whose command succeeded are given back (not
    recorded failed with exit 254), no partial output sits under its final name, the worker
    says one line (no "Task exception was never retrieved" tracebacks); a restart finishes."""
    master = small_master(tmp_path / "master")
    src = tmp_path / "src"
    src.mkdir()
    items = []
    for i in range(16):
        (src / f"f{i:02d}").write_text(f"item {i:02d}\n")
        items.append(str(src / f"f{i:02d}").encode())
    out = master / "out"
    job = make_job(ssh_cluster, "master/job")
    job.init("--transfer", "copy", "--output-dir", str(out), "--lease", str(LEASE), "--command",
             'head -c 500000 /dev/zero > "$OUTPUT_DIR/big"; cat "$ITEM" > "$OUTPUT_DIR/small"', items=items)
    job.start("c1", 2, "--work-dir", str(tmp_path / "work1"))
    assert job.wait("c1", 60) == 4
    only_line(job.stderr("c1"), "no space left on the master")
    assert not job.records()[1]
    assert job.node_status("c1")["state"] == "error"

    def outputs_whole() -> None:
        for f in out.rglob("*"):
            assert ".tmp-" not in f.name, f
            if f.is_file():
                assert f.stat().st_size == (500000 if f.name == "big" else len("item 00\n")), f
    outputs_whole()
    assert_nothing_partial(job)
    grow(master, "64m")
    job.start("c1", 2, "--work-dir", str(tmp_path / "work1"))
    job.wait_ok("c1", 60)
    assert_exactly_once(job, items)
    outputs_whole()
    assert len(list(out.rglob("big"))) == len(items)


def test_a_worker_started_on_a_full_master_says_so(ssh_cluster: SshCluster, make_job, small_master) -> None:  # noqa: F811
    """Already full when the worker starts: one line, "no space left on the master" (over SFTP
    the server says only "Failure"), exit status 4; with room again it runs the job."""
    items = items_n(10)
    job = make_job(ssh_cluster)
    small_master(job.dir)
    job.create(items, 'echo "$ITEM"', "--lease", str(LEASE))
    filler = job.dir / "tmp" / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    job.start("w1", 2)
    assert job.wait("w1", 30) == 4
    only_line(job.stderr("w1"), "no space left on the master")
    assert not job.records()[1]
    filler.unlink()
    job.start("w1", 2)
    job.wait_ok("w1", 60)
    assert_exactly_once(job, items)


@pytest.mark.parametrize("kind", ["local", "sftp"])
async def test_an_append_that_does_not_fit_is_cut_back(ssh_cluster: SshCluster, small_master, tmp_path: Path,
                                                       kind: str) -> None:
    """A full disk makes the server write part of an append and fail (sftp-server's "short
    write", a short os.write): the part is cut off, so the next append does not glue a line to
    half a line (the job log, the watched items)."""
    from worker.address import parse_address
    from worker.appendfile import AppendFile
    from worker.store import LocalStore, StoreError, open_store

    master = small_master(tmp_path / "master", "1m")
    (master / "log").write_bytes(b'{"line": 1}\n')
    filler = master / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=200"], capture_output=True)
    if kind == "local":
        store = LocalStore(str(master))
    else:
        address = parse_address(ssh_cluster.master.url(str(master)))
        store = await open_store(address, str(ssh_cluster.identity), str(ssh_cluster.known_hosts))
    async with store:
        log = AppendFile(store, "log", b"\n")
        await log.append(b'{"line": 2}\n')
        with pytest.raises(StoreError, match=r"/log: no space left on the master$"):
            await log.append(b'{"big": "' + b"x" * 600_000 + b'"}\n')
        assert (master / "log").read_bytes() == b'{"line": 1}\n{"line": 2}\n'
        filler.unlink()
        await log.append(b'{"line": 3}\n')
    assert (master / "log").read_bytes() == b'{"line": 1}\n{"line": 2}\n{"line": 3}\n'


async def test_an_append_cancelled_after_it_went_out_is_kept(tmp_path: Path) -> None:
    """The worker's end cancels the job log's loop, maybe while an append is out (sent, its reply
    not back): what the master wrote stays (it is the job log's last lines), and the next append
    goes after it."""
    from worker.appendfile import AppendFile
    from worker.store import LocalStore

    class ReplyLate(LocalStore):  # the write lands, then the reply takes its time
        late = True

        async def append(self, rel, data, mode=None):
            await super().append(rel, data, mode)
            if self.late:
                await asyncio.sleep(10)

    store = ReplyLate(str(tmp_path))
    log = AppendFile(store, "log", b"\n")
    task = asyncio.ensure_future(log.append(b'{"line": 1}\n'))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (tmp_path / "log").read_bytes() == b'{"line": 1}\n'
    store.late = False
    await log.append(b'{"line": 2}\n')
    assert (tmp_path / "log").read_bytes() == b'{"line": 1}\n{"line": 2}\n'
    await store.close()
