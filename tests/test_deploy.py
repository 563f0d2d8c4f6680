"""ppss-console deploy / start / erase against real sshd, onto fresh unprivileged accounts.

As root, the module creates throwaway users (``useradd -m``, removed with ``userdel -r``) that
have nothing of ppss, and one sshd per node account. The master is the current user (root) on
its own sshd; nodes reach it with a separate node key that deploy installs. Wheels come from the
operator-side cache (``~/.cache/ppss/wheels``; filled from PyPI on the first run).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sshcluster import SshCluster, keygen, sshd_available

pytestmark = pytest.mark.ssh

CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
CONSOLE = [sys.executable, "-m", "ppss_tui"]


def _require_root_and_sshd() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("deploy tests create throwaway node accounts with useradd: run them as root")
    if not sshd_available():
        problems.append("/usr/sbin/sshd not found: install openssh-server")
    for tool in ("useradd", "userdel") if os.geteuid() == 0 else ():
        if not shutil.which(tool):
            problems.append(f"{tool} not found (package passwd)")
    if problems:
        if CI:
            pytest.fail("CI is set but " + "; ".join(problems), pytrace=False)
        pytest.skip("; ".join(problems))


def console(*args: str, timeout: float = 180, input: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([*CONSOLE, *args], capture_output=True, text=True, timeout=timeout,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL)
    if args[0] != "status":
        print(f"$ ppss-console {' '.join(args)}  -> exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def pids_of_uid(uid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def worker_pids(uid: int) -> list[int]:
    pids = []
    for pid in pids_of_uid(uid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ppss-worker" in cmdline:
            pids.append(pid)
    return pids


FAKE_CRONTAB = """#!/bin/sh
F="$HOME/.fake-crontab"
case "$1" in
  -l) [ -f "$F" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }; cat "$F" ;;
  -r) rm -f "$F" ;;
  -) cat > "$F" ;;
  *) echo "fake crontab: unsupported $*" >&2; exit 2 ;;
esac
"""


def cron_lines(acct: "Account") -> list[str]:
    path = acct.home / ".fake-crontab"
    return path.read_text().splitlines() if path.exists() else []


class Account:
    """A throwaway unprivileged login account with the test client key authorized."""

    def __init__(self, suffix: str, public_key: str) -> None:
        self.name = f"ppsst{secrets.token_hex(3)}{suffix}"
        # "*": no password, yet not a locked account (sshd refuses locked ones, "!")
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", self.name], check=True, capture_output=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(public_key + "\n")
        for p in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, self.uid, self.gid)

    def remove(self) -> None:
        for pid in pids_of_uid(self.uid):  # only processes of this throwaway account
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        subprocess.run(["userdel", "-r", self.name], capture_output=True)


def write_cluster(path: Path, master_url: str, cluster: SshCluster, node_key: Path, nodes: list[dict]) -> Path:
    import yaml
    path.write_text(yaml.safe_dump({
        "master": master_url, "identity": str(cluster.identity), "known_hosts": str(cluster.known_hosts),
        "node_key": str(node_key), "nodes": nodes}, sort_keys=False))
    return path


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    _require_root_and_sshd()
    base = tmp_path_factory.mktemp("deploy")
    cluster = SshCluster(base / "ssh", n_nodes=0)
    accounts: list[Account] = []
    nopy_bin = Path(tempfile.mkdtemp(prefix="ppss-nopy-bin-"))
    try:
        e = Env()
        e.base, e.cluster = base, cluster
        # The key nodes use to reach the master: not the operator's key.
        e.node_key = base / "node_key"
        node_pub = keygen(e.node_key, "ppss-test-node")
        with open(cluster.authorized_keys, "a") as fh:
            fh.write(node_pub + "\n")
        e.accounts = {}
        e.servers = {}
        for label in ("a", "b", "n"):
            acct = Account(label, cluster.client_key_pub)
            accounts.append(acct)
            e.accounts[label] = acct
        extra = [f"AuthorizedKeysFile .ssh/authorized_keys {cluster.authorized_keys.resolve()}"]
        # A node whose login PATH has every tool of /usr/bin and /bin except python.
        os.chmod(nopy_bin, 0o755)
        for d in ("/usr/bin", "/bin"):
            for name in os.listdir(d):
                if not name.startswith("python") and not (nopy_bin / name).exists():
                    (nopy_bin / name).symlink_to(os.path.join(d, name))
        # This machine may have no cron: nodes a and b get a stand-in crontab (a file per account).
        cron_bin = nopy_bin / "fakecron"
        cron_bin.mkdir(mode=0o755)
        (cron_bin / "crontab").write_text(FAKE_CRONTAB)
        os.chmod(cron_bin / "crontab", 0o755)
        for label, acct in e.accounts.items():
            cfg = list(extra)
            if label == "n":
                cfg.insert(0, f"SetEnv PATH={nopy_bin}")
            else:
                cfg.insert(0, f"SetEnv PATH={cron_bin}:/usr/local/bin:/usr/bin:/bin")
            e.servers[label] = cluster.add_server(f"node-{label}", user=acct.name, extra_config=cfg)
        e.jobs = base / "jobs"
        e.jobs.mkdir()
        e.nodes = [{"name": f"n{label}", "host": "127.0.0.1", "port": e.servers[label].port,
                    "user": e.accounts[label].name, "slots": 2} for label in ("a", "b")]
        yield e
    finally:
        cluster.close()
        for acct in accounts:
            acct.remove()
        shutil.rmtree(nopy_bin, ignore_errors=True)


def make_job(e: Env, name: str, command: str, n_items: int) -> tuple[str, Path]:
    url = e.cluster.master.url(str(e.jobs / name))
    items = e.base / f"{name}.items"
    items.write_text("".join(f"item {i} 'q' $(x)\n" for i in range(n_items)))
    r = console("init", url, "--source-file", str(items), "--command", command,
                "-i", str(e.cluster.identity), "--known-hosts", str(e.cluster.known_hosts))
    assert r.returncode == 0, r.stderr
    return url, write_cluster(e.base / f"{name}.yaml", url, e.cluster, e.node_key, e.nodes)


def job_status(e: Env, url: str) -> dict:
    r = console("status", url, "--json", "-i", str(e.cluster.identity), "--known-hosts", str(e.cluster.known_hosts))
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def lines_by_node(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        name, _, rest = line.partition(" ")
        out[name] = rest.strip()
    return out


def test_deploy_start_and_the_job_completes(env):
    # Slow enough that both workers are still running when start checks on them (~1 s).
    url, cfile = make_job(env, "job1", 'sleep 0.3; printf "%s\\n" "$ITEM" | md5sum; id -un', 40)
    from ppss_tui.wheels import node_wheel_version
    env.deployed_version = node_wheel_version()
    r = console("deploy", "--cluster", str(cfile), "--autostart")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    for node in ("na", "nb"):
        assert lines[node].startswith("installed") and "autostart @reboot added" in lines[node], r.stdout
    for label in ("a", "b"):
        acct = env.accounts[label]
        d = acct.home / ".ppss"
        key = d / "master_key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.stat().st_uid == acct.uid
        assert key.read_bytes() == env.node_key.read_bytes()
        assert env.cluster.master.known_hosts_line().split()[1] in (d / "known_hosts").read_text()
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert (d / "venv" / "bin" / "ppss-worker").exists()
        # the node needs only the worker: no console, no textual
        assert not list((d / "venv").glob("lib/python*/site-packages/textual"))
        assert not list((d / "venv").glob("lib/python*/site-packages/ppss_tui"))
        (cron,) = cron_lines(acct)
        assert cron.startswith("@reboot /bin/sh ") and f"{d}/worker-" in cron

    r = console("start", "--cluster", str(cfile))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    assert lines["na"].startswith("started") and lines["nb"].startswith("started"), r.stdout

    deadline = time.monotonic() + 60
    while True:
        status = job_status(env, url)
        if status["done"] == status["total"] == 40:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["failed"] == 0
    assert {n["name"] for n in status["nodes"]} <= {"na", "nb"}
    # items really ran under the node accounts
    logs = b"".join(p.read_bytes() for p in (env.jobs / "job1" / "logs").rglob("*.log"))
    assert any(env.accounts[x].name.encode() in logs for x in ("a", "b"))


def test_second_deploy_is_up_to_date_and_upgrades_in_place(env, monkeypatch):
    cfile = env.base / "job1.yaml"
    from ppss_tui import cli, wheels
    version = wheels.node_wheel_version()
    r = console("deploy", "--cluster", str(cfile), "--autostart")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    # (a worker/ edit in this tree during the run is a genuine upgrade)
    same = version == env.deployed_version == wheels.node_wheel_version()
    for node in ("na", "nb"):
        assert lines[node].startswith("up to date" if same else "upgraded") and "autostart @reboot already set" in lines[node], r.stdout
    assert len(cron_lines(env.accounts["a"])) == 1

    # A different worker build: the same command upgrades in place (run in-process to fake it).
    fake = "0.0.1+gtestupgrade"
    monkeypatch.setattr(wheels, "node_wheel_version", lambda: fake)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["deploy", "--cluster", str(cfile)])
        assert exit_info.value.code == 0
    finally:
        (wheels.cache_root() / "ppss" / f"ppss-{fake}-py3-none-any.whl").unlink(missing_ok=True)
    monkeypatch.undo()
    r = console("deploy", "--cluster", str(cfile))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    for node in ("na", "nb"):
        assert lines[node].startswith("upgraded") and f"ppss {fake} -> " in lines[node], r.stdout


def test_deploy_repairs_a_broken_venv(env):
    """A node whose venv lost a module (not importable) is reinstalled in place: "repaired"."""
    cfile = env.base / "job1.yaml"
    site = next((env.accounts["a"].home / ".ppss" / "venv" / "lib").glob("python3.*/site-packages"))
    shutil.rmtree(site / "yaml")
    r = console("deploy", "--cluster", str(cfile))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    assert lines["na"].startswith("repaired") and lines["nb"].startswith("up to date"), r.stdout
    assert (site / "yaml" / "__init__.py").stat().st_uid == env.accounts["a"].uid
    # the node got the console's bytecode with the wheels (same Python version here): checked-hash
    # .pyc files (flags 3), which the node's own imports would not have written (time stamps, 0)
    (pyc,) = (site / "yaml" / "__pycache__").glob("__init__.cpython-3*.pyc")
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11
    assert not (site.parent.parent.parent / "bin" / "pip").exists()  # a venv without pip
    # damaged so that only importing shows it (every file there, with its RECORD size): the node
    # -> master check's import fails, deploy reinstalls the venv and checks again
    init = site / "yaml" / "__init__.py"
    size = init.stat().st_size
    head = b'raise ImportError("damaged")\n'
    init.write_bytes(head + b"#" * (size - len(head) - 1) + b"\n")
    r = console("deploy", "--cluster", str(cfile))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    assert lines["na"].startswith("repaired") and lines["nb"].startswith("up to date"), r.stdout
    assert b"damaged" not in init.read_bytes() and "master login ok" in lines["na"]


def test_start_twice_runs_one_worker_per_node(env):
    url, cfile = make_job(env, "job2", 'sleep 0.5; echo "$ITEM"', 60)
    r = console("start", "--cluster", str(cfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(v.startswith("started") for k, v in lines_by_node(r.stdout).items() if k in ("na", "nb")), r.stdout
    r = console("start", "--cluster", str(cfile))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    assert lines["na"].startswith("running") and lines["nb"].startswith("running"), r.stdout
    for label in ("a", "b"):
        assert len(worker_pids(env.accounts[label].uid)) == 1
    status = job_status(env, url)
    assert status["done"] < status["total"]  # still running: erase will stop it


def test_erase_stops_and_removes(env):
    cfile = env.base / "job2.yaml"
    r = console("erase", "--cluster", str(cfile))  # stdin is not a terminal: needs --yes
    assert r.returncode == 2 and "--yes" in r.stderr
    r = console("erase", "--cluster", str(cfile), "--yes", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = lines_by_node(r.stdout)
    for label, node in (("a", "na"), ("b", "nb")):
        assert lines[node].startswith("erased") and "stopped worker" in lines[node], r.stdout
        assert "removed the @reboot crontab line" in lines[node]
        assert cron_lines(env.accounts[label]) == []
        assert not (env.accounts[label].home / ".ppss").exists()
        assert worker_pids(env.accounts[label].uid) == []
    r = console("erase", "--cluster", str(cfile), "--yes")
    assert r.returncode == 0
    assert all(v.startswith("nothing") for k, v in lines_by_node(r.stdout).items() if k in ("na", "nb"))
    r = console("start", "--cluster", str(cfile))
    assert r.returncode == 6 and "not deployed" in r.stdout


def test_deploy_refuses_root_reports_missing_python_and_unreachable(env):
    url = env.cluster.master.url(str(env.jobs / "job1"))
    nodes = [
        {"name": "rootnode", "host": "127.0.0.1", "port": env.cluster.master.port, "user": "root"},
        {"name": "nopython", "host": "127.0.0.1", "port": env.servers["n"].port, "user": env.accounts["n"].name},
        {"name": "gone", "host": "127.0.0.1", "port": 1, "user": "nobody"},
    ]
    cfile = write_cluster(env.base / "bad.yaml", url, env.cluster, env.node_key, nodes)
    root_ppss_before = Path("/root/.ppss").exists()
    r = console("deploy", "--cluster", str(cfile), timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr  # unreachable wins over failed
    lines = lines_by_node(r.stdout)
    assert lines["rootnode"].startswith("FAILED") and "root account" in lines["rootnode"], r.stdout
    assert lines["nopython"].startswith("FAILED") and "no python3" in lines["nopython"], r.stdout
    assert lines["gone"].startswith("UNREACHABLE") and "127.0.0.1:1" in lines["gone"], r.stdout
    assert not (env.accounts["n"].home / ".ppss").exists()
    assert Path("/root/.ppss").exists() == root_ppss_before  # refused before touching anything
