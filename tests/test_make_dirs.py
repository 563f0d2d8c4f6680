"""put_tree's directory maker (``make_dirs``) against a server that runs requests out of
order, and on trees with files in the way: pure logic over a fake SFTP client (the real sshd
cases are in test_sftp_pipelined.py)."""

from __future__ import annotations

import asyncio
import posixpath

import asyncssh
import pytest

from worker.store.sftp import make_dirs


class FakeSftp:
    """Directories and files by path; ``deepest_first`` answers deeper mkdirs first (a
    server free to reorder), so a child can be refused before its parent is made."""

    def __init__(self, dirs=(), files=(), deepest_first=False, locked=()) -> None:
        self.dirs, self.files, self.locked = set(dirs) | {"/"}, set(files), set(locked)
        self.deepest_first = deepest_first
        self.calls: list[tuple[str, str]] = []

    async def mkdir(self, path: str, attrs=None) -> None:
        if self.deepest_first:
            await asyncio.sleep(0.001 * (10 - path.count("/")))
        self.calls.append(("mkdir", path))
        if path in self.dirs or path in self.files:
            raise asyncssh.SFTPFailure("Failure")
        if posixpath.dirname(path) not in self.dirs:
            raise asyncssh.SFTPNoSuchFile("No such file")
        if posixpath.dirname(path) in self.locked:
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        self.dirs.add(path)

    async def stat(self, path: str):
        self.calls.append(("stat", path))
        if path in self.dirs:
            return asyncssh.SFTPAttrs(permissions=0o040755)
        if path in self.files:
            return asyncssh.SFTPAttrs(permissions=0o100644)
        raise asyncssh.SFTPNoSuchFile("No such file")


async def test_in_order_server_one_round_no_stat() -> None:
    sftp, known = FakeSftp(dirs={"/r"}), {"/r"}
    await make_dirs(sftp, {"/r/a/b/c", "/r/a/x"}, known)
    assert sftp.calls == [("mkdir", "/r/a"), ("mkdir", "/r/a/b"), ("mkdir", "/r/a/x"), ("mkdir", "/r/a/b/c")]
    assert {"/r/a", "/r/a/b", "/r/a/b/c", "/r/a/x"} <= known <= sftp.dirs


async def test_out_of_order_server_children_made_again_after_their_parents() -> None:
    sftp, known = FakeSftp(dirs={"/r"}, deepest_first=True), {"/r"}
    await make_dirs(sftp, {"/r/a/b/c"}, known)
    assert {"/r/a", "/r/a/b", "/r/a/b/c"} <= sftp.dirs and "/r/a/b/c" in known
    assert len(sftp.calls) == 5  # all three, then each child once its parent is made


async def test_existing_directories_cost_one_stat_of_the_deepest() -> None:
    sftp, known = FakeSftp(dirs={"/r", "/r/a", "/r/a/b"}), set()
    await make_dirs(sftp, {"/r/a/b"}, known)
    assert [c for c in sftp.calls if c[0] == "stat"] == [("stat", "/r/a/b")]
    assert {"/r", "/r/a", "/r/a/b"} <= known


@pytest.mark.parametrize("deepest_first", [False, True])
async def test_a_file_in_the_way_is_named(deepest_first) -> None:
    sftp = FakeSftp(dirs={"/r"}, files={"/r/a"}, deepest_first=deepest_first)
    with pytest.raises(asyncssh.SFTPFailure, match="/r/a: not a directory"):
        await make_dirs(sftp, {"/r/a/b/c"}, {"/r"})


async def test_a_known_directory_gone_raises_for_put_tree_to_retry() -> None:
    sftp, known = FakeSftp(dirs={"/r"}), {"/r", "/r/gone"}
    with pytest.raises(asyncssh.SFTPNoSuchFile):
        await make_dirs(sftp, {"/r/gone/new"}, known)
    known.discard("/r/gone")  # what put_tree does (it forgets them all)
    await make_dirs(sftp, {"/r/gone/new"}, known)
    assert "/r/gone/new" in sftp.dirs


async def test_a_lost_connection_is_not_taken_for_a_missing_directory() -> None:
    class Lost(FakeSftp):
        async def mkdir(self, path, attrs=None):
            raise asyncssh.SFTPConnectionLost("lost")
    with pytest.raises(asyncssh.SFTPConnectionLost):
        await make_dirs(Lost(dirs={"/r"}), {"/r/a"}, {"/r"})


async def test_a_parent_that_refuses_is_the_error_told() -> None:
    """A new directory in a parent the account cannot write: "Permission denied" (the parent's
    mkdir), not the "No such file" of the directories below it."""
    sftp = FakeSftp(dirs={"/r", "/r/ro"}, locked={"/r/ro"})
    with pytest.raises(asyncssh.SFTPPermissionDenied):
        await make_dirs(sftp, {"/r/ro/new/item"}, {"/r", "/r/ro"})
