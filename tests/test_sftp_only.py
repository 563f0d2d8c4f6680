"""issue 9.9: a node key is SFTP-only only when sshd reads its keys from a file the account
cannot replace. Real sshd, a throwaway account (root needed for useradd)."""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncssh
import pytest

from ppss_helpers import assert_ok, console, run_worker, status_json
from sshcluster import SshCluster, sshd_available, ssh_run
from worker.sftpcheck import authorized_keys_files, expand, key_can_rewrite_authorized_keys

RESTRICT = 'restrict,command="internal-sftp" '


def test_authorized_keys_files_parsing() -> None:
    assert authorized_keys_files("", "u") == ()
    assert authorized_keys_files("# AuthorizedKeysFile x\nPort 22\n", "u") == ()
    conf = ("AuthorizedKeysFile /etc/ssh/authorized_keys/%u .ssh/k2\nAuthorizedKeysFile ignored\n")
    assert authorized_keys_files(conf, "u") == ("/etc/ssh/authorized_keys/%u", ".ssh/k2")
    conf = "Match User other\n  AuthorizedKeysFile /x/%u\nMatch User ppss*\n  AuthorizedKeysFile=/y/%u\n"
    assert authorized_keys_files(conf, "ppss1") == ("/y/%u",)
    assert authorized_keys_files(conf, "bob") == ()
    conf = "AuthorizedKeysFile .ssh/a\nMatch User ppss1\n  AuthorizedKeysFile /etc/k/%u\n"
    assert authorized_keys_files(conf, "ppss1") == ("/etc/k/%u",)
    assert authorized_keys_files(conf, "bob") == (".ssh/a",)
    assert expand("%h/.ssh/%u-%U %%", "/home/a", "a", 7) == "/home/a/.ssh/a-7 %"
    assert expand("~/.ssh/k", "/home/a", "a", 7) == ".ssh/k"


class Account:
    def __init__(self) -> None:
        self.name = f"ppssq{secrets.token_hex(3)}"
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", self.name], check=True, capture_output=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)

    def own(self, *paths: Path) -> None:
        for p in paths:
            os.chown(p, self.uid, self.gid)

    def remove(self) -> None:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == self.uid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
        subprocess.run(["userdel", "-r", self.name], capture_output=True)


@pytest.fixture
def setup(fresh_cluster):
    if os.geteuid() != 0 or not shutil.which("useradd") or not sshd_available():
        pytest.skip("needs root, useradd and sshd")
    cluster = fresh_cluster(n_nodes=0)
    acct = Account()
    keys_dir = Path(tempfile.mkdtemp(prefix="ppss-keys-", dir="/tmp"))  # root-owned, 0755
    os.chmod(keys_dir, 0o755)
    try:
        yield cluster, acct, keys_dir
    finally:
        acct.remove()
        shutil.rmtree(keys_dir, ignore_errors=True)


def _shell_works(server, cluster: SshCluster) -> bool:
    return "shell-42" in ssh_run(server, cluster, "echo", "shell-$((6*7))").stdout


async def _sftp_session(cluster: SshCluster, server, action):
    async with asyncssh.connect(server.host, **cluster.connect_kwargs(server)) as conn:
        return await action(conn)


def _put_own_authorized_keys(cluster: SshCluster, server) -> None:
    """The attack: over SFTP only, replace ~/.ssh/authorized_keys with an unrestricted key."""
    async def attack(conn):
        async with conn.start_sftp_client() as sftp:
            if not await sftp.exists(".ssh"):
                await sftp.mkdir(".ssh")
            async with sftp.open(".ssh/authorized_keys", "w") as f:
                await f.write(cluster.client_key_pub + "\n")
    asyncio.run(_sftp_session(cluster, server, attack))


@pytest.mark.ssh
def test_default_setup_key_can_rewrite_its_authorized_keys(setup) -> None:
    cluster, acct, _ = setup
    ssh_dir = acct.home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(RESTRICT + cluster.client_key_pub + "\n")
    acct.own(ssh_dir, ssh_dir / "authorized_keys")
    server = cluster.add_server("default", user=acct.name,
                                extra_config=["AuthorizedKeysFile .ssh/authorized_keys"])
    assert not _shell_works(server, cluster)  # restricted: no shell ...
    before = sorted(os.listdir(ssh_dir))
    assert asyncio.run(_sftp_session(cluster, server, lambda c: key_can_rewrite_authorized_keys(
        c, sshd_config="/nonexistent")))
    assert sorted(os.listdir(ssh_dir)) == before and not list(acct.home.glob(".ppss-probe-*"))
    _put_own_authorized_keys(cluster, server)  # ... until it rewrites its own keys over SFTP
    assert _shell_works(server, cluster), "the warning is justified: SFTP-only was not true"


@pytest.mark.ssh
def test_root_owned_authorized_keys_file_is_sftp_only(setup, tmp_path: Path) -> None:
    cluster, acct, keys_dir = setup
    keys_file = keys_dir / acct.name
    keys_file.write_text(RESTRICT + cluster.client_key_pub + "\n")
    os.chmod(keys_file, 0o644)  # root-owned, readable (sshd reads it as the account)
    setting = f"AuthorizedKeysFile {keys_dir}/%u"
    (keys_dir / "sshd_config").write_text(f"Port 22\n{setting}\nSubsystem sftp internal-sftp\n")
    server = cluster.add_server("documented", user=acct.name, extra_config=[setting])
    assert not _shell_works(server, cluster)
    assert not asyncio.run(_sftp_session(cluster, server, lambda c: key_can_rewrite_authorized_keys(
        c, sshd_config=str(keys_dir / "sshd_config"))))
    _put_own_authorized_keys(cluster, server)  # written, but sshd does not read it
    assert not _shell_works(server, cluster), "a key under a root-owned AuthorizedKeysFile got a shell"
    assert keys_file.read_text().startswith(RESTRICT)

    async def overwrite(conn):
        async with conn.start_sftp_client() as sftp:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open(str(keys_file), "w") as f:
                    await f.write("x")
    asyncio.run(_sftp_session(cluster, server, overwrite))
    # The job still runs over SFTP with that key.
    items = tmp_path / "items"
    items.write_bytes(b"a\n$(touch pwned)\n")
    url = server.url(str(acct.home / "job"))
    assert_ok(console("init", url, "--source-file", str(items), "--command",
                      'printf %s "$ITEM" > "$OUTPUT_DIR/item"', cluster=cluster))
    assert_ok(run_worker(url, "--slots", "2", "-n", "sftponly", cluster=cluster, cwd=tmp_path))
    assert status_json(url, cluster=cluster)["done"] == 2
    assert not list(tmp_path.rglob("pwned"))
