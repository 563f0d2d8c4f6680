"""issue 9.10: a job directory is private to the master account (directories 0700, files
0600) from init on, and so is everything workers create in it, over SFTP and locally;
`init --group GROUP` shares it (setgid directories the group can write in, files it can read)."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from sshcluster import SshCluster
from test_fault_tolerance import LEASE, assert_exactly_once, make_job  # noqa: F401  (fixture)
from ppss_helpers import Job, items_n


def modes(root: Path) -> dict[str, set[str]]:
    """Permission bits (octal) of every directory and file under root, root included."""
    out: dict[str, set[str]] = {"dirs": {oct(stat.S_IMODE(root.stat().st_mode))}, "files": set()}
    for p in root.rglob("*"):
        st = p.lstat()
        out["dirs" if stat.S_ISDIR(st.st_mode) else "files"].add(oct(stat.S_IMODE(st.st_mode)))
    return out


def run_job(job: Job, items: list[bytes]) -> None:
    job.create(items, 'echo "$ITEM"; test "$ITEM" != "item 0003"', "--lease", str(LEASE))
    job.start("w1", 2)
    job.wait_ok("w1", 60, code=1)
    assert_exactly_once(job, items, failed={b"item 0003": 1})


def test_a_job_is_private_by_default_over_sftp(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    job = make_job(ssh_cluster)
    run_job(job, items_n(12))
    assert modes(job.dir) == {"dirs": {"0o700"}, "files": {"0o600"}}


def test_a_local_job_is_private_by_default(tmp_path: Path) -> None:
    job = Job(tmp_path / "job")
    old = os.umask(0o022)
    try:
        run_job(job, items_n(12))
    finally:
        os.umask(old)
    assert modes(job.dir) == {"dirs": {"0o700"}, "files": {"0o600"}}


def some_group() -> grp.struct_group:
    for name in ("users", "daemon", "nogroup"):
        try:
            return grp.getgrnam(name)
        except KeyError:
            continue
    pytest.skip("no group to share the job with")


def test_init_group_shares_the_job(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    if os.geteuid() != 0:
        pytest.skip("changing a directory's group to another one needs root (or membership)")
    group = some_group()
    job = make_job(ssh_cluster)
    job.create(items_n(12), 'echo "$ITEM"', "--lease", str(LEASE), "--group", group.gr_name)
    job.start("w1", 2)
    job.wait_ok("w1", 60)
    assert modes(job.dir) == {"dirs": {"0o2770"}, "files": {"0o640"}}
    assert {p.stat().st_gid for p in (job.dir, *job.dir.rglob("*"))} == {group.gr_gid}
