"""The store package: one error mapping, `async with`, the FaultyStore wrapper, asyncssh internals."""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import socket

import asyncssh
import pytest

from worker.errors import ConnectError
from worker.sshconn import is_retryable
from worker.store import pipelined
from worker.store import Fault, FaultyStore, FileServer, LocalStore, SftpStore, Store, StoreError, mapped_errors


@pytest.fixture
def store(tmp_path):
    return LocalStore(str(tmp_path))


def test_os_and_sftp_errors_map_to_one_line_store_errors() -> None:
    with pytest.raises(StoreError, match=r"^job/x: no space left on the master$"):
        with mapped_errors("job/x"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(StoreError, match=r"^job/y: denied$"):
        with mapped_errors("job/y"):
            raise asyncssh.SFTPPermissionDenied("denied")
    with pytest.raises(asyncssh.SFTPConnectionLost):  # a lost connection is the SFTP store's to handle
        with mapped_errors("job/z"):
            raise asyncssh.SFTPConnectionLost("gone")


async def test_local_store_reports_what_and_where(store, tmp_path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(StoreError, match=rf"^{tmp_path}/file/sub: Not a directory$"):
        await store.write("file/sub", b"y")
    assert await store.read("missing") is None
    assert await store.mkdir("d") and not await store.mkdir("d")
    assert await store.rename("d", "e") and not await store.rename("d", "f")


async def check_overwrite(store) -> None:
    """In place over an existing file, the rest cut off; a missing file is said, not made."""
    await store.write("f", b"a long old content\n")
    assert await store.overwrite("f", b"short") and await store.read("f") == b"short"
    assert await store.overwrite("f", b"longer than short") and await store.read("f") == b"longer than short"
    assert not await store.overwrite("absent", b"x") and await store.read("absent") is None


async def test_local_store_overwrites_in_place(store) -> None:
    await check_overwrite(store)


async def test_store_is_an_async_context_manager(store) -> None:
    async with store as s:
        await s.append("log", b"a")
        assert store._append_fds
    assert not store._append_fds  # closed on the way out


def test_store_kinds_implement_the_interfaces() -> None:
    for kind in (LocalStore, SftpStore, FaultyStore):
        assert issubclass(kind, Store) and not inspect.isabstract(kind)
        assert issubclass(kind, FileServer)
    with pytest.raises(TypeError):
        Store()  # the interface alone cannot be used


async def test_faulty_store_injects_enospc_at_the_nth_matching_write(store) -> None:
    faulty = FaultyStore(store, [Fault("nospace", at=2, op="write", path="logs/*")])
    await store.mkdir("logs")
    await faulty.write("other", b"")  # not matching: passes, not counted
    await faulty.write("logs/a", b"1")
    with pytest.raises(StoreError, match=r"logs/b: no space left on the master"):
        await faulty.write("logs/b", b"2")
    await faulty.write("logs/c", b"3")  # count=1: only the second one
    assert faulty.log == [("nospace", "write", "logs/b")]
    assert await store.read("logs/b") is None and await store.read("logs/c") == b"3"


async def test_faulty_store_denied_and_lost(store) -> None:
    faulty = FaultyStore(store, [Fault("denied", op="mkdir", count=0), Fault("lost", at=3, op="stat")])
    for _ in range(3):  # count=0: from the first on, every time
        with pytest.raises(StoreError, match="Permission denied"):
            await faulty.mkdir("d")
    await faulty.stat("x")
    await faulty.stat("x")
    with pytest.raises(ConnectError, match="connection to the master lost"):
        await faulty.stat("x")
    # atomic writes go through the wrapped primitives too
    faulty.faults = [Fault("nospace", op="replace")]
    with pytest.raises(StoreError):
        await faulty.write_atomic("f", b"x")
    assert await store.listdir("") == []  # the temporary file was removed


def test_fault_rejects_unknown_kinds_and_ops() -> None:
    with pytest.raises(ValueError, match="fault kind"):
        Fault("flood")
    with pytest.raises(ValueError, match="fault op"):
        Fault("lost", op="chmod")


def test_connect_errors_are_retryable_or_fatal_by_class() -> None:
    assert not is_retryable(asyncssh.HostKeyNotVerifiable("changed"))
    assert not is_retryable(asyncssh.PermissionDenied("no"))
    assert not is_retryable(socket.gaierror(socket.EAI_NONAME, "unknown"))
    assert is_retryable(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert is_retryable(asyncio.TimeoutError())
    assert is_retryable(asyncssh.DisconnectError(asyncssh.DISC_TOO_MANY_CONNECTIONS, "too many"))
    assert not is_retryable(ValueError("a bug, not a network problem"))


def test_sftp_request_coalescing_rests_on_this_asyncssh() -> None:
    """The SFTP store's coalescing writer replaces asyncssh's private ``_handler._writer``
    (pyproject.toml bounds asyncssh below 2.25): fail loudly when the internal moves."""
    assert "self._writer.write(" in inspect.getsource(asyncssh.sftp.SFTPHandler.send_packet)
    assert "self._writer" in inspect.getsource(asyncssh.sftp.SFTPHandler.__init__)
    assert "_handler" in inspect.getsource(asyncssh.sftp.SFTPClient.__init__)
    # its hold counts the requests awaiting an answer: registered before the packet is written
    send = inspect.getsource(asyncssh.sftp.SFTPClientHandler._send_request)
    assert send.index("self._requests[pktid] = waiter") < send.index("self.send_packet(")
    # pipelined.py writes requests with _send_request and reads answers as _make_request does
    make = inspect.getsource(asyncssh.sftp.SFTPClientHandler._make_request)
    for line in ("self._send_request(pkttype, args, waiter)", "resptype, resp = await waiter",
                 "return_type = self._return_types.get(pkttype)",
                 "result = self._packet_handlers[resptype](self, resp)"):
        assert line in make, line
    assert "self._loop = loop" in inspect.getsource(asyncssh.sftp.SFTPClientHandler.__init__)


def test_quiet_logging_rests_on_this_asyncssh() -> None:
    """quietlog swaps the private ``_logger`` of a connection and of an SFTP handler, and
    their packet-logging methods: fail loudly when those move."""
    assert "self._logger = " in inspect.getsource(asyncssh.sftp.SFTPHandler.__init__)
    assert "self._logger = " in inspect.getsource(asyncssh.connection.SSHConnection.__init__)
    assert "self._logger = " in inspect.getsource(asyncssh.channel.SSHChannel.__init__)
    assert "handler.log_sent_packet(" in inspect.getsource(asyncssh.connection.SSHConnection.send_packet)
    for cls in (asyncssh.sftp.SFTPHandler, asyncssh.connection.SSHConnection, asyncssh.channel.SSHChannel):
        assert "self._logger" in inspect.getsource(cls.logger.fget)
        assert "log_sent_packet" in dir(cls) and "log_received_packet" in dir(cls)
    # what is skipped is asyncssh's formatting, done before it asks the logger
    assert "isEnabledFor" not in inspect.getsource(asyncssh.logging.SSHLogger.log)


async def test_asyncssh_debug_lines_built_only_when_read(ssh_cluster, tmp_path, caplog, monkeypatch) -> None:
    from asyncssh.logging import SSHLogger

    from worker.address import parse_address
    from worker.store import open_store

    built, named = [], []
    real_log, real_name = SSHLogger.log, asyncssh.packet.SSHPacketLogger._log_packet
    monkeypatch.setattr(SSHLogger, "log", lambda self, *a, **kw: built.append(a) or real_log(self, *a, **kw))
    monkeypatch.setattr(asyncssh.packet.SSHPacketLogger, "_log_packet",
                        lambda self, *a: named.append(type(self).__name__) or real_name(self, *a))
    address = parse_address(ssh_cluster.master.url(str(tmp_path)))
    async with await open_store(address, str(ssh_cluster.identity), str(ssh_cluster.known_hosts)) as store:
        assert store.quiet_logs  # the private loggers were found and replaced
        caplog.set_level(logging.INFO, logger="asyncssh")
        built.clear()
        named.clear()
        assert await store.mkdir("quiet")
        assert [a for a in built if a[0] < logging.INFO] == []  # no debug line was built
        assert named == []  # nor a packet named: not by the SFTP handler, its channel or the connection
        caplog.set_level(logging.DEBUG, logger="asyncssh")
        asyncssh.set_debug_level(3)
        try:
            assert await store.mkdir("heard")
        finally:
            asyncssh.set_debug_level(1)
        text = caplog.text
        assert "Sending mkdir (pipelined)" in text  # a line for each request, as asyncssh's calls write
        assert "Sent FXP_MKDIR (14)" in text  # and, at level 3, the SFTP packets
        assert "Sent MSG_CHANNEL_DATA (94)" in text  # and the connection's


async def test_sftp_store_coalesces_requests_against_a_real_sshd(ssh_cluster, tmp_path) -> None:
    from worker.address import parse_address
    from worker.store import open_store

    address = parse_address(ssh_cluster.master.url(str(tmp_path)))
    async with await open_store(address, str(ssh_cluster.identity), str(ssh_cluster.known_hosts)) as store:
        assert store.coalesced  # the private writer was found and replaced
        assert pipelined._direct(store._sftp._handler)  # OpenSSH's SFTP v3: requests written straight
        assert all(await asyncio.gather(*(store.mkdir(f"d{i}") for i in range(20))))
        await store.write("f", b"x" * 100_000)
        assert await store.read("f") == b"x" * 100_000
        with pytest.raises(StoreError, match=r"/missing/f: No such file"):
            await store.write("missing/f", b"")
        await check_overwrite(store)
