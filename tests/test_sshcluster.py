"""Tests of the real-sshd fixture itself (tests/sshcluster.py)."""

from __future__ import annotations

import os
import pwd
import socket
import stat
from pathlib import Path

import asyncssh
import pytest

from sshcluster import MakeCluster, SshCluster, SshServer, ssh_run

pytestmark = pytest.mark.ssh


async def _listdir_home(cluster: SshCluster, server: SshServer) -> tuple[str, list[str]]:
    """Connect exactly as product code would and sftp-list the login home dir."""
    async with asyncssh.connect(
        server.host,
        port=server.port,
        username=server.user,
        client_keys=[str(cluster.identity)],
        known_hosts=str(cluster.known_hosts),
    ) as conn:
        async with conn.start_sftp_client() as sftp:
            return await sftp.realpath("."), await sftp.listdir(".")


@pytest.mark.asyncio
async def test_asyncssh_sftp_to_every_server(ssh_cluster: SshCluster) -> None:
    assert [s.name for s in ssh_cluster.servers.values()] == ["master", "node1", "node2", "node3"]
    home = os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir)
    for server in ssh_cluster.servers.values():
        cwd, names = await _listdir_home(ssh_cluster, server)
        assert cwd == home
        assert {".", ".."} <= set(names)


def test_layout_and_addressing(ssh_cluster: SshCluster) -> None:
    assert stat.S_IMODE(ssh_cluster.identity.stat().st_mode) == 0o600
    lines = ssh_cluster.known_hosts.read_text().splitlines()
    assert lines == [s.known_hosts_line() for s in ssh_cluster.servers.values()]
    m = ssh_cluster.master
    assert m.host_key_pub.startswith("ssh-ed25519 AAAA")
    assert m.known_hosts_line() == f"[127.0.0.1]:{m.port} {m.host_key_pub}"
    assert m.url("/data/x") == f"ssh://{m.user}@127.0.0.1:{m.port}/data/x"
    assert ssh_cluster.nodes == [ssh_cluster.servers[f"node{i}"] for i in (1, 2, 3)]


def test_real_ssh_client(ssh_cluster: SshCluster) -> None:
    for server in ssh_cluster.servers.values():
        res = ssh_run(server, ssh_cluster, "echo", "hello-$((6*7))")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "hello-42"


def test_servers_run_simultaneously_on_distinct_ports(ssh_cluster: SshCluster) -> None:
    servers = list(ssh_cluster.servers.values())
    assert len(servers) >= 3
    assert len({s.port for s in servers}) == len(servers)
    assert len({s.host_key_pub for s in servers}) == len(servers)
    for s in servers:
        assert s.running
        with socket.create_connection((s.host, s.port), timeout=5) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0")


@pytest.mark.asyncio
async def test_rotated_host_key_is_refused(fresh_cluster: MakeCluster) -> None:
    cluster = fresh_cluster(1)
    node = cluster.nodes[0]
    old_key, port = node.host_key_pub, node.port
    await _listdir_home(cluster, node)

    cluster.rotate_host_key(node)
    assert node.port == port and node.running
    assert node.host_key_pub != old_key
    assert node.known_hosts_line() not in cluster.known_hosts.read_text()

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await _listdir_home(cluster, node)
    res = ssh_run(node, cluster, "true")
    assert res.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in res.stderr
    await _listdir_home(cluster, cluster.master)  # others unaffected


@pytest.mark.asyncio
async def test_stop_then_start_same_port(fresh_cluster: MakeCluster) -> None:
    cluster = fresh_cluster(1)
    master = cluster.master
    port, key = master.port, master.host_key_pub
    master.stop()
    assert not master.running
    with pytest.raises(OSError):
        await _listdir_home(cluster, master)

    master.start()
    assert (master.port, master.host_key_pub) == (port, key)
    await _listdir_home(cluster, master)

    master.kill()
    assert not master.running
    master.start()
    assert master.port == port
    await _listdir_home(cluster, master)


@pytest.mark.asyncio
async def test_drop_sessions_breaks_open_connection(fresh_cluster: MakeCluster) -> None:
    cluster = fresh_cluster(0)
    master = cluster.master
    async with asyncssh.connect(master.host, **cluster.connect_kwargs(master)) as conn:
        assert (await conn.run("echo ok", check=True)).stdout == "ok\n"
        assert master.drop_sessions() >= 1
        with pytest.raises((asyncssh.Error, OSError)):
            await conn.run("echo again", check=True)
    await _listdir_home(cluster, master)  # listener still serves new connections


def test_add_server_updates_known_hosts(fresh_cluster: MakeCluster) -> None:
    cluster = fresh_cluster(0)
    extra = cluster.add_server("extra")
    assert extra.known_hosts_line() in cluster.known_hosts.read_text()
    assert ssh_run(extra, cluster, "true").returncode == 0
    with pytest.raises(ValueError):
        cluster.add_server("extra")


@pytest.mark.usefixtures("require_sshd")
def test_port_race_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sshcluster

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = sshcluster.free_port
        monkeypatch.setattr(sshcluster, "free_port", lambda: next(ports, None) or real_free_port())
        (tmp_path / "authorized_keys").write_text("")
        server = SshServer("racer", tmp_path / "racer", tmp_path / "authorized_keys")
        try:
            server.start()
            assert server.running and server.port != taken
            assert "Address already in use" in server.log_path.read_text()
        finally:
            server.stop()


@pytest.mark.usefixtures("require_sshd")
def test_start_failure_reports_sshd_log(tmp_path: Path) -> None:
    (tmp_path / "authorized_keys").write_text("")
    server = SshServer("broken", tmp_path / "broken", tmp_path / "authorized_keys",
                       extra_config=["NoSuchOption yes"])
    with pytest.raises(RuntimeError, match="(?s)failed to start.*NoSuchOption"):
        server.start()
    assert not server.running
