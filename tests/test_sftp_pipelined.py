"""The SFTP store's pipelined operations (fewer round trips to a far master) against a real
sshd: reads, writes and listings of every size give what the plain asyncssh calls give; the
output upload makes only the directories it does not know and recovers when one goes away."""

from __future__ import annotations

import asyncio
import os

import asyncssh
import pytest

from worker.address import parse_address
from worker.store import StoreError, open_store
from worker.store import pipelined
from worker.store.pipelined import QUICK_MAX

pytestmark = pytest.mark.ssh


@pytest.fixture(params=["direct", "asyncssh-calls"])
async def store(ssh_cluster, tmp_path, request, monkeypatch):
    """The store, its pipelined steps written straight on the SFTP handler (as with OpenSSH),
    and through asyncssh's own calls (as with a server of another SFTP version)."""
    monkeypatch.setattr(pipelined, "DIRECT", request.param == "direct")
    address = parse_address(ssh_cluster.master.url(str(tmp_path / "root")))
    (tmp_path / "root").mkdir()
    async with await open_store(address, str(ssh_cluster.identity), str(ssh_cluster.known_hosts)) as s:
        yield s


@pytest.mark.parametrize("size", [0, 1, 1000, QUICK_MAX, QUICK_MAX + 1, 3 * QUICK_MAX + 17])
async def test_read_and_write_any_size(store, tmp_path, size) -> None:
    data = os.urandom(size)
    await store.write("f", data)
    assert (tmp_path / "root" / "f").read_bytes() == data
    assert await store.read("f") == data
    await store.write("f", b"short")  # truncated, not overlaid
    assert await store.read("f") == b"short"


async def test_read_missing_and_unreadable(store, tmp_path) -> None:
    assert await store.read("missing") is None
    (tmp_path / "root" / "d").mkdir()
    with pytest.raises(StoreError, match=r"/root/d/f/g: No such file"):
        await store.write("d/f/g", b"x")
    if os.getuid() != 0:  # root reads anything
        (tmp_path / "root" / "secret").write_bytes(b"x")
        os.chmod(tmp_path / "root" / "secret", 0)
        with pytest.raises(StoreError, match="secret"):
            await store.read("secret")


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250, 1000])
async def test_listing_of_any_length(store, tmp_path, n) -> None:
    d = tmp_path / "root" / "d"
    d.mkdir()
    for i in range(n):
        (d / f"name-{i:05d}").write_bytes(b"")
    assert sorted(await store.listdir("d")) == sorted(os.listdir(d))
    assert await store.listdir("missing") is None


async def test_put_tree_makes_each_directory_once_and_again_when_it_went(store, tmp_path) -> None:
    local = tmp_path / "out"
    (local / "a" / "b").mkdir(parents=True)
    (local / "top.txt").write_bytes(b"1")
    (local / "a" / "b" / "deep.txt").write_bytes(b"2")
    remote = str(tmp_path / "root" / "results" / "x" / "y")
    calls = _requests_sent(store)
    assert await store.put_tree(str(local), remote) == 2
    assert (tmp_path / "root" / "results" / "x" / "y" / "a" / "b" / "deep.txt").read_bytes() == b"2"
    first = len(calls)
    assert ("mkdir", str(tmp_path / "root" / "results" / "x" / "y" / "a" / "b")) in calls
    assert await store.put_tree(str(local), remote) == 2
    assert len(calls) == first  # every directory known: no mkdir at all
    # A directory it knew is removed behind its back: made again, upload complete.
    import shutil
    shutil.rmtree(tmp_path / "root" / "results" / "x")
    assert await store.put_tree(str(local), remote) == 2
    assert (tmp_path / "root" / "results" / "x" / "y" / "top.txt").read_bytes() == b"1"
    # A file where a directory must go: one readable error, not a loop.
    shutil.rmtree(tmp_path / "root" / "results" / "x")
    (tmp_path / "root" / "results" / "x").write_bytes(b"")
    with pytest.raises((StoreError, asyncssh.SFTPError)):
        await store.put_tree(str(local), remote)


@pytest.mark.parametrize("size", [0, 5000, 3 * QUICK_MAX])
async def test_get_file_small_in_one_request_large_in_blocks(store, tmp_path, size) -> None:
    data = os.urandom(size)
    (tmp_path / "root" / "src").write_bytes(data)
    await store.get_file(str(tmp_path / "root" / "src"), str(tmp_path / "got"))
    assert (tmp_path / "got").read_bytes() == data
    with pytest.raises(StoreError, match="no such file"):
        await store.get_file(str(tmp_path / "root" / "missing"), str(tmp_path / "got2"))


async def test_put_tree_makes_a_new_directory_and_its_new_parents_in_one_batch(store, tmp_path) -> None:
    """Two uploads at once into new directories of one new parent (two slots of a node): each
    directory is made by one mkdir sent with its parents', none is looked at with a stat."""
    calls = _requests_sent(store)
    base = tmp_path / "root" / "results"
    await store.put_tree(str(_tree(tmp_path / "warm", "w")), str(base / "warm"))  # learns the ancestors
    calls.clear()
    ups = [store.put_tree(str(_tree(tmp_path / f"out{k}", f"{k}")), str(base / "pkg" / "doc" / f"item{k}"))
           for k in range(2)]
    assert await asyncio.gather(*ups) == [1, 1]
    made = sorted(p for kind, p in calls if kind == "mkdir")
    assert [kind for kind, _ in calls].count("stat") == 0, calls
    assert made == sorted([str(base / "pkg"), str(base / "pkg" / "doc")] * 2
                          + [str(base / "pkg" / "doc" / f"item{k}") for k in range(2)]), made
    for k in range(2):
        assert (base / "pkg" / "doc" / f"item{k}" / "f").read_bytes() == f"{k}".encode()
    # The same items again (a re-run): the directories are known, nothing is made or looked at.
    calls.clear()
    assert await asyncio.gather(*(store.put_tree(str(tmp_path / f"out{k}"), str(base / "pkg" / "doc" / f"item{k}"))
                                  for k in range(2))) == [1, 1]
    assert calls == []


async def test_put_tree_into_directories_another_node_made(store, tmp_path) -> None:
    """The directories exist already, made by someone else: the mkdirs fail, one stat of the
    deepest shows a directory, and the upload goes on; a file in the way is named."""
    base = tmp_path / "root" / "results"
    (base / "pkg" / "item").mkdir(parents=True)
    assert await store.put_tree(str(_tree(tmp_path / "out", "x")), str(base / "pkg" / "item")) == 1
    assert (base / "pkg" / "item" / "f").read_bytes() == b"x"
    (base / "pkg" / "plain").write_bytes(b"")
    with pytest.raises(StoreError, match=r"results/pkg/plain: not a directory"):
        await store.put_tree(str(tmp_path / "out"), str(base / "pkg" / "plain" / "item"))


def _requests_sent(store) -> list[tuple[str, str]]:
    """(kind, path) of each mkdir and stat the store sends from now on (counted where both of
    the store's ways to send a request meet: asyncssh's handler)."""
    handler = store._sftp._handler
    kinds = {asyncssh.sftp.FXP_MKDIR: "mkdir", asyncssh.sftp.FXP_STAT: "stat", asyncssh.sftp.FXP_LSTAT: "stat"}
    calls: list[tuple[str, str]] = []
    real = handler._send_request

    def send(pkttype, args, waiter):
        if pkttype in kinds:
            calls.append((kinds[pkttype], os.fsdecode(args[0][4:])))
        return real(pkttype, args, waiter)
    handler._send_request = send
    return calls


def _tree(path, data: str):
    path.mkdir(parents=True, exist_ok=True)
    (path / "f").write_text(data)
    return path


async def test_pipelined_steps_survive_a_dropped_connection(store, tmp_path, caplog) -> None:
    """The connection drops with pipelined requests out (a master restarted): every step is
    retried on the new connection and gives its answer; no answer is left unread."""
    import gc

    root = tmp_path / "root"
    for i in range(20):
        (root / f"f{i}").write_bytes(b"%d" % i * 1000)
    steps = [store.read(f"f{i}") for i in range(20)] + [store.write(f"w{i}", b"x" * 500) for i in range(20)]
    steps += [store.mkdir(f"d{i}") for i in range(20)]
    running = asyncio.gather(*steps)
    await asyncio.sleep(0)  # (all sent, none answered yet)
    store._conn.abort()
    results = await asyncio.wait_for(running, 30)
    assert results[:20] == [b"%d" % i * 1000 for i in range(20)]
    assert all((root / f"w{i}").read_bytes() == b"x" * 500 for i in range(20))
    assert all((root / f"d{i}").is_dir() for i in range(20))
    assert store.generation == 1
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
