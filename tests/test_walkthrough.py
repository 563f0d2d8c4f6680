"""README.md's "A real cluster in five minutes", run as written over real sshd.

The commands come from the README itself: the fenced block after ``<!-- walkthrough -->``. Only
the site is substituted: ``ppss@master``, ``ppss@node1`` and ``ppss@node2`` become throwaway
accounts (``useradd``; three different users) each behind its own sshd on its own loopback
address, ``/srv/`` a temporary directory on this machine. The operator's ``$HOME`` is new, so its
``~/.ssh`` starts empty. ``ssh-copy-id`` lines (a password login, outside ppss) are done by the
test writing the key into that account's ``~/.ssh/authorized_keys``; the bare ``ppss-console``
line opens the real console on a pseudo-terminal and quits it with ``q``.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import secrets
import select
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest

from sshcluster import SshServer, sshd_available

pytestmark = pytest.mark.ssh

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- walkthrough -->"
CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def readme_steps(text: str | None = None) -> list[str]:
    """The walkthrough block's commands, one per entry (a here-document is one entry)."""
    text = README.read_text() if text is None else text
    assert MARKER in text, f"README.md lost its {MARKER} marker"
    m = re.match(r"\s*```sh\n(.*?)\n```", text.split(MARKER, 1)[1], re.S)
    assert m, f"README.md: no ```sh block right after {MARKER}"
    steps: list[str] = []
    lines = iter(m.group(1).splitlines())
    for line in lines:
        here = re.search(r"<<'?(\w+)'?", line)
        if here:
            body = [line]
            for more in lines:
                body.append(more)
                if more == here.group(1):
                    break
            steps.append("\n".join(body) + "\n")
        elif line.strip():
            steps.append(line)
    return steps


def test_readme_walkthrough_block_is_found():
    steps = readme_steps()
    words = [s.split()[0] + (" " + s.split()[1] if s.split()[0] == "ppss-console" and len(s.split()) > 1
                             and not s.split()[1].startswith("#") else "") for s in steps]
    for needed in ("ssh-keygen", "ssh-copy-id", "cat", "ppss-console trust", "ppss-console init",
                   "ppss-console deploy", "ppss-console check", "ppss-console start", "ppss-console status",
                   "ppss-console", "ppss-console erase"):
        assert needed in words, (needed, words)
    heredoc = next(s for s in steps if s.startswith("cat > ppss.yaml"))
    assert heredoc.rstrip().endswith("EOF") and "nodes:" in heredoc


class Account:
    """A throwaway login account with an empty ~/.ssh (keys arrive by ssh-copy-id)."""

    def __init__(self, role: str) -> None:
        self.name = f"ppssw{secrets.token_hex(3)}{role}"
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", self.name], check=True, capture_output=True)
        import pwd
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        (self.home / ".ssh").mkdir(mode=0o700)
        os.chown(self.home / ".ssh", self.uid, self.gid)

    def authorize(self, public_key: str) -> None:
        path = self.home / ".ssh" / "authorized_keys"
        with open(path, "a") as fh:
            fh.write(public_key.strip() + "\n")
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o600)

    def chown(self, path: Path) -> None:
        for p in [path, *path.rglob("*")]:
            os.lchown(p, self.uid, self.gid)

    def remove(self) -> None:
        import signal
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == self.uid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        time.sleep(0.2)
        subprocess.run(["userdel", "-r", self.name], capture_output=True)


def _require_root() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("the walkthrough creates throwaway accounts with useradd: run it as root")
    if not sshd_available():
        problems.append("/usr/sbin/sshd not found: install openssh-server")
    for tool in ("useradd", "userdel", "ssh-keygen") if not problems else ():
        if not shutil.which(tool):
            problems.append(f"{tool} not found")
    if problems:
        if CI:
            pytest.fail("CI is set but " + "; ".join(problems), pytrace=False)
        pytest.skip("; ".join(problems))


class Site:
    """master + node1 + node2: three accounts, three sshd on 127.0.0.10/11/12, a /srv stand-in."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.accounts: dict[str, Account] = {}
        self.servers: dict[str, SshServer] = {}
        for i, role in enumerate(("master", "node1", "node2")):
            acct = Account(role[0] + role[-1])
            self.accounts[role] = acct
            server = SshServer(role, base / "sshd" / role, base / "sshd" / "unused", user=acct.name,
                               extra_config=[f"ListenAddress 127.0.0.{10 + i}",
                                             "AuthorizedKeysFile .ssh/authorized_keys"])
            server.host = f"127.0.0.{10 + i}"
            self.servers[role] = server
            server.start()
        master = self.accounts["master"]
        self.srv = base / "srv"
        (self.srv / "jobs").mkdir(parents=True)
        data = self.srv / "data"
        (data / "deeper").mkdir(parents=True)
        self.items = []
        for i in range(24):
            p = data / ("deeper" if i % 3 == 0 else ".") / f"file {i} 'q' $(x).txt"
            p.write_text(f"line {i}\n" * (i + 1))
            self.items.append(p.resolve())
        master.chown(self.srv)
        self.home = base / "operator"  # the operator's new $HOME: no ~/.ssh yet
        self.home.mkdir(mode=0o700)
        self.work = base / "work"
        self.work.mkdir()

    def login(self, role: str) -> str:
        s = self.servers[role]
        return f"{self.accounts[role].name}@{s.host}:{s.port}"

    def substitute(self, step: str) -> str:
        for role in ("master", "node1", "node2"):
            step = step.replace(f"ppss@{role}", self.login(role))
        return step.replace("/srv/", f"{self.srv}/")

    def env(self) -> dict[str, str]:
        from ppss_tui.wheels import cache_root
        env = {k: v for k, v in os.environ.items() if k not in ("PPSS_CLUSTER", "SSH_AUTH_SOCK")}
        env.update(HOME=str(self.home), PPSS_WHEEL_CACHE=str(cache_root()),
                   PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        env.pop("XDG_CONFIG_HOME", None)
        return env

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        for acct in self.accounts.values():
            acct.remove()


@pytest.fixture(scope="module")
def site():
    _require_root()
    base = Path(tempfile.mkdtemp(prefix="ppss-walk-"))
    os.chmod(base, 0o755)  # the master account reaches /srv below it
    s = None
    try:
        s = Site(base)
        yield s
    finally:
        if s is not None:
            s.close()
        shutil.rmtree(base, ignore_errors=True)


def ssh_copy_id(site: Site, step: str) -> None:
    """``ssh-copy-id -i KEY.pub USER@HOST:PORT``: what the real one does after the password prompt."""
    argv = shlex.split(step.split("#")[0])
    key = Path(argv[argv.index("-i") + 1].replace("~", str(site.home), 1))
    user = argv[-1].split("@")[0]
    (acct,) = [a for a in site.accounts.values() if a.name == user]
    acct.authorize(key.read_text())


def run_console_on_a_terminal(site: Site, expect: list[str], timeout: float = 60) -> str:
    """The bare ``ppss-console``: open it on a pseudo-terminal, wait for ``expect``, press q."""
    master_fd, slave_fd = pty.openpty()
    fcntl.ioctl(slave_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**site.env(), "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "ppss_tui"], cwd=site.work, env=env, stdin=slave_fd,
                            stdout=slave_fd, stderr=slave_fd, start_new_session=True)
    os.close(slave_fd)
    seen = b""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(e.encode() in seen for e in expect):
            ready, _, _ = select.select([master_fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master_fd, 65536)
                except OSError:
                    break
        os.write(master_fd, b"q")
        end = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master_fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(master_fd, 65536)
                except OSError:
                    break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master_fd)
    text = seen.decode(errors="replace")
    missing = [e for e in expect if e not in text]
    assert not missing and code == 0, (missing, code, text[-3000:])
    return text


def test_readme_walkthrough_runs_as_written(site):
    env = site.env()
    outputs: dict[str, str] = {}
    for raw in readme_steps():
        step = site.substitute(raw)
        if step.startswith("ssh-copy-id"):
            ssh_copy_id(site, step)
            continue
        if step.split("#")[0].strip() == "ppss-console":
            wait_until_done(site, env)
            outputs["console"] = run_console_on_a_terminal(
                site, [site.servers["node1"].host, site.servers["node2"].host])
            continue
        r = subprocess.run(["sh", "-c", step], cwd=site.work, env=env, capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
        print(f"$ {step}\n-> exit {r.returncode}\n{r.stdout}{r.stderr}")
        assert r.returncode == 0, f"README step failed: {raw}\n{r.stdout}{r.stderr}"
        words = raw.split("#")[0].split()
        outputs[" ".join(words[:2])] = r.stdout + r.stderr

    known = (site.work / "known_hosts").read_text()
    assert all(f"[{s.host}]:{s.port}" in known for s in site.servers.values())
    assert "ok" in outputs["ppss-console deploy"] and "master login ok" in outputs["ppss-console deploy"]
    assert "check: 2 of 2 nodes ok" in outputs["ppss-console check"]
    # ssh-copy-id gave the node key the whole master account: check says so
    assert outputs["ppss-console check"].count("WARNING: the node key can rewrite") == 2
    # every item was gzipped on a node and uploaded to the master's output directory
    out = site.srv / "gz"
    made = sorted(p for p in out.rglob("*.gz"))
    assert len(made) == len(site.items), made
    import gzip
    for item in site.items:
        rel = item.relative_to((site.srv / "data").resolve())
        (gz,) = [p for p in made if p.parent.relative_to(out) == rel]
        assert gzip.decompress(gz.read_bytes()) == item.read_bytes()
    # the items ran on the two nodes (their names are in the job log)
    nodes = {json.loads(line)["node"] for p in (site.srv / "jobs" / "gz" / "joblog").glob("*.jsonl")
             for line in p.read_text().splitlines()}
    assert nodes <= {site.servers["node1"].host, site.servers["node2"].host} and nodes
    # erase: workers gone, deployment gone, and the master's authorized_keys line named
    erase = outputs["ppss-console erase"]
    assert "erase: 2 of 2 nodes ok" in erase, erase
    node_pub = (site.home / ".ssh" / "ppss_node.pub").read_text().split()
    assert node_pub[1] in erase and "authorized_keys" in erase
    for role in ("node1", "node2"):
        assert not (site.accounts[role].home / ".ppss").exists()


def wait_until_done(site: Site, env: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run([sys.executable, "-m", "ppss_tui", "status", "--json"], cwd=site.work, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode in (0, 1), r.stderr
        status = json.loads(r.stdout)
        if status["done"] + status["failed"] >= status["total"]:
            assert status["failed"] == 0, status
            return status
        assert time.monotonic() < deadline, status
        time.sleep(1)


def console(site: Site, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "ppss_tui", *args], cwd=site.work, env=site.env(),
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    print(f"$ ppss-console {' '.join(args)} -> exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def node_lines(out: str, site: Site) -> dict[str, str]:
    lines = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        lines[name] = rest.strip()
    return {role: lines.get(site.servers[role].host, "") for role in ("node1", "node2")}


def test_check_names_each_broken_link(site):
    """After the walkthrough (erased): check fails, one line each, on every link it promises."""
    r = console(site, "check")
    lines = node_lines(r.stdout, site)
    assert r.returncode == 6 and all(v.startswith("FAILED") and "run ppss-console deploy" in v
                                     for v in lines.values()), r.stdout
    assert console(site, "deploy").returncode == 0

    # the master no longer accepts the node key
    master_keys = site.accounts["master"].home / ".ssh" / "authorized_keys"
    saved = master_keys.read_text()
    node_pub = (site.home / ".ssh" / "ppss_node.pub").read_text().split()[1]
    master_keys.write_text("".join(line + "\n" for line in saved.splitlines() if node_pub not in line))
    r = console(site, "check")
    lines = node_lines(r.stdout, site)
    assert r.returncode == 6, r.stdout
    assert all("the master refuses the node's login" in v and "ppss_node.pub" in v for v in lines.values()), lines
    r = console(site, "deploy")  # the summary: both nodes in one group (their install paths differ)
    assert r.returncode != 0 and re.search(r"^  FAILED \(2\): .*the master refuses the node's login", r.stdout,
                                           re.M), r.stdout
    master_keys.write_text(saved)

    # an authorized_keys the master account cannot write: no warning
    os.chown(master_keys, 0, 0)
    os.chmod(master_keys, 0o644)
    r = console(site, "check")
    assert r.returncode == 0 and "WARNING" not in r.stdout, r.stdout
    site.accounts["master"].chown(master_keys)

    # node1 does not know the master's host key
    kh = site.accounts["node1"].home / ".ppss" / "known_hosts"
    saved_kh = kh.read_bytes()
    kh.write_bytes(b"")
    r = console(site, "check")
    lines = node_lines(r.stdout, site)
    assert r.returncode == 6 and "does not know" in lines["node1"] and "host key" in lines["node1"], r.stdout
    assert lines["node2"].startswith("ok"), r.stdout
    kh.write_bytes(saved_kh)

    # a shared-mode job: the nodes' accounts cannot write the job's output, then cannot see the source
    master = site.servers["master"]
    job = f"ssh://{site.accounts['master'].name}@{master.host}:{master.port}{site.srv}/jobs/shared"
    r = console(site, "init", job, "--source-dir", f"{site.srv}/data", "--command", 'cp "$ITEM" "$OUTPUT_DIR"')
    assert r.returncode == 0, r.stderr
    r = console(site, "check", job)
    lines = node_lines(r.stdout, site)
    assert r.returncode == 6, r.stdout
    assert all("output directory" in v and "write access" in v for v in lines.values()), lines
    os.chmod(site.srv / "data", 0o700)
    try:
        r = console(site, "check", job)
        lines = node_lines(r.stdout, site)
        assert all(f"source {site.srv}/data not visible" in v for v in lines.values()), lines
    finally:
        os.chmod(site.srv / "data", 0o755)

    # this machine cannot log into node2
    node2_keys = site.accounts["node2"].home / ".ssh" / "authorized_keys"
    saved2 = node2_keys.read_text()
    node2_keys.write_text("")
    r = console(site, "check")
    lines = node_lines(r.stdout, site)
    assert r.returncode == 3 and lines["node2"].startswith("UNREACHABLE") and "login refused" in lines["node2"]
    assert lines["node1"].startswith("ok") and "check: 1 of 2 nodes ok (1 with a WARNING), 1 unreachable" in r.stdout
    node2_keys.write_text(saved2)
    assert console(site, "erase", "--yes").returncode == 0
