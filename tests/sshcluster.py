"""Real OpenSSH ``sshd`` servers on 127.0.0.1 for integration tests (no mocks).

``SshCluster(base_dir, n_nodes)`` creates, inside ``base_dir``:

* one client key pair (``id_ed25519``, private key mode 0600 from creation),
* ``authorized_keys`` holding its public key (shared by every server),
* ``known_hosts`` listing every server as ``[127.0.0.1]:PORT ssh-ed25519 ...``,
* one directory per server ("master", "node1".."nodeN") with its own host
  key, ``sshd_config``, pid file and ``sshd.log``.

Each server is ``/usr/sbin/sshd -D -e -f CONFIG`` run as a child process and
listening on 127.0.0.1 only, on a random free port.  The login account is the
current user (``pwd.getpwuid(os.getuid())``).

Root and non-root
-----------------
* As root (CI) sshd uses privilege separation, which needs ``/run/sshd``
  (created here, mode 0755, if missing) and the ``sshd`` system user that the
  openssh-server package creates.  ``PermitRootLogin yes`` is set only so
  that root can log into its own test servers.
* As a non-root user sshd runs without privilege separation and can only
  authenticate that same user; this works because ``UsePAM no`` is set, the
  port is > 1024, the host key is created (and so owned) by that user and
  ``StrictModes no`` tolerates the temp directory permissions.  The account
  must be a normal login account: sshd refuses system accounts such as
  ``nobody`` ("account is locked").  Checked with OpenSSH 9.2 (Debian 12).

Nothing here imports pytest; see ``tests/conftest.py`` for the fixtures.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 10.0
PORT_ATTEMPTS = 5

_live: set[SshServer] = set()
MakeCluster = Callable[..., "SshCluster"]  # type of the ``fresh_cluster`` fixture


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK)


def _tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{name} not found (install openssh-client)")
    return path


def keygen(path: Path, comment: str) -> str:
    """Create an ed25519 key pair at ``path`` (0600) and return the public key line."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(
        [_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _banner(host: str, port: int, timeout: float = 1.0) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as s:
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"SSH-"):
            s.sendall(b"SSH-2.0-sshcluster_probe\r\n")  # keeps sshd's error log quiet
        return data


def _ensure_privsep_dir() -> None:
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)


def _descendants(root_pid: int) -> list[int]:
    """All live descendants of ``root_pid`` (scans /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class SshServer:
    """One real sshd on 127.0.0.1.  ``start()`` after ``stop()`` reuses the port and host key."""

    host = "127.0.0.1"

    def __init__(self, name: str, workdir: Path, authorized_keys: Path, user: str | None = None,
                 extra_config: list[str] | None = None) -> None:
        self.name = name
        self.user = user or pwd.getpwuid(os.getuid()).pw_name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.authorized_keys = authorized_keys
        self.extra_config = list(extra_config or [])
        self.config_path = workdir / "sshd_config"
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        self.pid_path = workdir / "sshd.pid"
        self.log_path = workdir / "sshd.log"
        self.port: int = 0  # chosen on first start, then kept
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key_pub = ""
        self._log_offset = 0
        self.new_host_key()

    # -- keys / config ---------------------------------------------------
    def new_host_key(self) -> None:
        """Generate a fresh host key (takes effect at the next ``start()``)."""
        self.host_key_pub = " ".join(keygen(self.host_key_path, f"host-{self.name}").split()[:2])

    def _write_config(self) -> None:
        # extra_config replaces the defaults of the keywords it names (for most keywords sshd
        # keeps the first value, for some, such as MaxStartups, the last: so never both).
        overridden = {line.split()[0].lower() for line in self.extra_config if line.strip()}
        lines = [
            *self.extra_config,
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pid_path}",
            f"AuthorizedKeysFile {self.authorized_keys.resolve()}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin yes",
            "Subsystem sftp internal-sftp",
            "MaxSessions 10",
            "MaxStartups 10:30:100",
            "LogLevel ERROR",
        ]
        lines = self.extra_config + [line for line in lines[len(self.extra_config):]
                                     if line.split()[0].lower() not in overridden]
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- lifecycle ---------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start sshd (no-op if running).  First start picks a free port; later ones reuse it."""
        if self.running:
            return
        if not sshd_available():
            raise RuntimeError(f"{SSHD} not found (install openssh-server)")
        _ensure_privsep_dir()
        fixed = self.port != 0
        errors: list[str] = []
        for _attempt in range(PORT_ATTEMPTS):
            if not fixed:
                self.port = free_port()
            if self._try_start():
                return
            errors.append(self._log_tail())
            if not self._bind_failed(errors[-1]):
                break
            if fixed:
                time.sleep(0.5)  # same port: wait for whoever holds it
        self.proc = None
        raise RuntimeError(
            f"sshd {self.name!r} failed to start on {self.host}:{self.port} "
            f"({len(errors)} attempt(s)); log {self.log_path}:\n{errors[-1] if errors else ''}"
        )

    def _try_start(self) -> bool:
        self._write_config()
        self.pid_path.unlink(missing_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            # sshd writes its PidFile only after the listen socket is bound, so a
            # banner from another process that raced us onto this port is never
            # mistaken for ours.
            if self._pid_file_is_ours():
                try:
                    if _banner(self.host, self.port).startswith(b"SSH-2.0"):
                        _live.add(self)
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        self._terminate(signal.SIGKILL)
        self._append_log(f"[sshcluster] timed out after {START_TIMEOUT}s waiting for SSH-2.0 banner\n")
        return False

    def _pid_file_is_ours(self) -> bool:
        try:
            return self.proc is not None and self.pid_path.read_text().strip() == str(self.proc.pid)
        except OSError:
            return False

    def _append_log(self, text: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(text)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    @staticmethod
    def _bind_failed(log: str) -> bool:
        return "Address already in use" in log or "Cannot bind any address" in log

    def _terminate(self, sig: int, timeout: float = 5.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        _live.discard(self)

    def stop(self) -> None:
        """SIGTERM the listening sshd.  Established sessions survive, as with a real restart."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the listening sshd (established sessions survive; see ``drop_sessions``)."""
        self._terminate(signal.SIGKILL)

    def drop_sessions(self) -> int:
        """SIGKILL every process spawned by the running sshd (connections and their
        commands), simulating a host crash for clients.  Returns how many were killed."""
        if not self.running:
            return 0
        assert self.proc is not None
        pids = _descendants(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return len(pids)

    # -- addressing ----------------------------------------------------------
    def url(self, path: str = "") -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}/{path.lstrip('/')}"

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_pub}"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SshServer {self.name} {self.user}@{self.host}:{self.port} {state}>"


class SshCluster:
    """A client identity plus servers "master", "node1".."nodeN", all trusting it."""

    def __init__(self, base_dir: Path, n_nodes: int = 3, user: str | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.user = user or pwd.getpwuid(os.getuid()).pw_name
        self.identity = self.base_dir / "id_ed25519"
        self.authorized_keys = self.base_dir / "authorized_keys"
        self.known_hosts = self.base_dir / "known_hosts"
        self.client_key_pub = keygen(self.identity, "ppss-test-client")
        self.authorized_keys.write_text(self.client_key_pub + "\n")
        self.servers: dict[str, SshServer] = {}
        try:
            self.master = self.add_server("master")
            self.nodes = [self.add_server(f"node{i}") for i in range(1, n_nodes + 1)]
        except BaseException:
            self.close()
            raise

    def add_server(self, name: str, user: str | None = None,
                   extra_config: list[str] | None = None) -> SshServer:
        """Create and start a server, and add it to ``known_hosts``.

        ``user``: the account its URL names (default: the cluster's). Another account can only
        log in when sshd runs as root and can read that account's authorized keys: pass e.g.
        ``extra_config=["AuthorizedKeysFile .ssh/authorized_keys"]`` (sshd reads the file as
        that user, so the shared one in a private temp directory would not do).
        """
        if name in self.servers:
            raise ValueError(f"server {name!r} already exists")
        server = SshServer(name, self.base_dir / name, self.authorized_keys, user or self.user,
                           extra_config)
        self.servers[name] = server
        server.start()
        self.write_known_hosts()
        return server

    def write_known_hosts(self) -> None:
        lines = [s.known_hosts_line() for s in self.servers.values() if s.port]
        self.known_hosts.write_text("".join(line + "\n" for line in lines))

    def rotate_host_key(self, server: SshServer) -> None:
        """Give ``server`` a NEW host key and restart it on the same port.
        ``known_hosts`` is deliberately left with the old key."""
        server.stop()
        server.new_host_key()
        server.start()

    def connect_kwargs(self, server: SshServer) -> dict[str, Any]:
        """Keyword arguments for ``asyncssh.connect(server.host, **kwargs)``."""
        return {
            "port": server.port,
            "username": server.user,
            "client_keys": [str(self.identity)],
            "known_hosts": str(self.known_hosts),
        }

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> SshCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ssh_command(server: SshServer, cluster: SshCluster, *cmd: str) -> list[str]:
    """argv for the real OpenSSH client, isolated from ~/.ssh and /etc/ssh config."""
    return [
        _tool("ssh"), "-F", "none",
        "-i", str(cluster.identity),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={cluster.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        "-p", str(server.port),
        f"{server.user}@{server.host}",
        *cmd,
    ]


def ssh_run(server: SshServer, cluster: SshCluster, *cmd: str, timeout: float = 60,
            check: bool = False, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` on ``server`` with the real ``ssh`` client (text mode, output captured)."""
    return subprocess.run(
        ssh_command(server, cluster, *cmd), input=input, capture_output=True, text=True,
        timeout=timeout, check=check, stdin=None if input is not None else subprocess.DEVNULL,
    )


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.kill()
