"""worker/directauth.py: with a key file named, the login sends its signed request at once (one
round trip) instead of "none", then the unsigned offer, then the signed request (three)."""

from __future__ import annotations

import asyncio
import subprocess

import asyncssh
import pytest

from sshcluster import SshCluster
from worker import directauth
from worker.errors import ConnectError
from worker.sshconn import SshTarget, connect, connect_options

MSG_USERAUTH_REQUEST = 50


def test_this_asyncssh_has_what_it_rests_on() -> None:
    assert directauth.available()


def counting(factory):
    """``factory`` whose connections count the authentication requests they send."""
    class Counting(factory):
        sent: list[int] = []

        def connection_made(self, conn) -> None:
            super().connection_made(conn)
            send = conn.send_packet

            def send_packet(pkttype, *args, **kw):
                if pkttype == MSG_USERAUTH_REQUEST:
                    Counting.sent.append(pkttype)
                return send(pkttype, *args, **kw)
            conn.send_packet = send_packet
    return Counting


async def login(cluster: SshCluster, factory=None, identity=None) -> int:
    m = cluster.master
    target = SshTarget(m.host, m.port, m.user, str(identity or cluster.identity), str(cluster.known_hosts))
    opts = connect_options(target)
    client = counting(factory or opts["client_factory"])
    opts["client_factory"] = client
    async with await asyncssh.connect(m.host, **opts) as conn:
        async with conn.start_sftp_client() as sftp:
            assert await sftp.exists(".")
    return len(client.sent)


def test_a_key_file_logs_in_with_one_request(ssh_cluster: SshCluster) -> None:
    assert asyncio.run(login(ssh_cluster)) == 1
    # (asyncssh's own way: "none", the unsigned offer, the signed request)
    assert asyncio.run(login(ssh_cluster, directauth.QuickAckClient)) == 3


def test_a_refused_key_is_still_refused_in_one_line(ssh_cluster: SshCluster, tmp_path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    m = ssh_cluster.master
    with pytest.raises(ConnectError, match=r"login refused \(no accepted key for that account\)$") as err:
        asyncio.run(connect(SshTarget(m.host, m.port, m.user, str(other), str(ssh_cluster.known_hosts))))
    assert "\n" not in str(err.value)
