"""worker/quickack.py: a client that acknowledges every read at once, so that sshd's Nagle (on in
every session without a terminal) never waits on our delayed ACK (bench/session has the figures)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sshcluster import SshCluster
from worker import quickack
from worker.sshconn import SshTarget, connect

pytestmark = pytest.mark.skipif(quickack.QUICKACK is None, reason="TCP_QUICKACK is Linux's")


class FakeConn:
    def __init__(self, sock) -> None:
        self.sock, self.got = sock, []

    def get_extra_info(self, name):
        return self.sock if name == "socket" else None

    def data_received(self, data, datatype=None) -> None:
        self.got.append((data, datatype))


def quickack_on(sock) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)


def test_every_read_asks_for_an_immediate_ack() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        conn = FakeConn(client)
        quickack.install(conn)
        assert quickack_on(client) == 1  # from the start: the handshake's exchanges too
        for data in (b"first", b"second"):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # as the kernel does again
            conn.data_received(data)
            assert quickack_on(client) == 1
        conn.data_received(b"typed", 1)
        assert conn.got == [(b"first", None), (b"second", None), (b"typed", 1)]


def test_other_sockets_are_left_alone() -> None:
    a, b = socket.socketpair()
    with a, b:
        conn = FakeConn(a)
        quickack.install(conn)
        assert "data_received" not in vars(conn)
    conn = FakeConn(None)  # (a tunnelled connection has no socket of its own)
    quickack.install(conn)
    assert "data_received" not in vars(conn)


@pytest.mark.ssh
def test_ppss_connections_use_it(ssh_cluster: SshCluster) -> None:
    m = ssh_cluster.master

    async def go() -> None:
        conn = await connect(SshTarget(m.host, m.port, m.user, str(ssh_cluster.identity),
                                       str(ssh_cluster.known_hosts)))
        async with conn:
            assert "data_received" in vars(conn), "connect() without the prompt-ACK client"
            async with conn.start_sftp_client() as sftp:
                assert await sftp.exists(".")
    asyncio.run(go())
