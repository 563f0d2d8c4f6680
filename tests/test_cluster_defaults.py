"""The cluster file drives every command over real sshd (runs as any user who has sshd).

Issue 10's "done when": from a directory with ppss.yaml (master, identity, an empty known_hosts)
and an empty ~/.ssh, ``trust --yes``, ``init NAME``, a worker, and ``status NAME --json`` work
with no -i, --known-hosts or address on the command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sshcluster import SshCluster

pytestmark = pytest.mark.ssh

CONSOLE = [sys.executable, "-m", "ppss_tui"]
WORKER = [sys.executable, "-m", "worker"]


def run(argv, cwd: Path, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PPSS_CLUSTER", "SSH_AUTH_SOCK")}
    env["HOME"] = str(home)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def site(ssh_cluster: SshCluster, tmp_path: Path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)  # empty
    work = tmp_path / "work"
    work.mkdir()
    (work / "known_hosts").write_text("")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (work / "ppss.yaml").write_text(
        f"master: {ssh_cluster.master.url(str(jobs))}\nidentity: {ssh_cluster.identity}\n"
        f"known_hosts: known_hosts\nnodes:\n" + "".join(
            f"  - {{name: n{i}, host: {n.host}, port: {n.port}, user: {n.user}}}\n"
            for i, n in enumerate(ssh_cluster.nodes[:2], 1)))
    return ssh_cluster, home, work, jobs


def test_trust_init_worker_status_with_only_the_cluster_file(site):
    cluster, home, work, jobs = site
    r = run([*CONSOLE, "status", "j1"], work, home)
    assert r.returncode == 3 and "host key unknown" in r.stderr, r.stderr  # an empty known_hosts
    r = run([*CONSOLE, "trust"], work, home)  # not a terminal: asks for --yes, writes nothing
    assert r.returncode == 2 and "--yes" in r.stderr and (work / "known_hosts").read_text() == ""
    r = run([*CONSOLE, "trust", "--yes"], work, home)
    assert r.returncode == 0, r.stderr
    assert f"added 3 keys to {work / 'known_hosts'}" in r.stdout
    assert len(r.stdout.splitlines()) == 4  # one table line per host, then the summary
    for server in (cluster.master, *cluster.nodes[:2]):
        assert server.known_hosts_line() in (work / "known_hosts").read_text()
    assert not (home / ".ssh" / "known_hosts").exists()
    r = run([*CONSOLE, "trust", "--yes"], work, home)
    assert r.returncode == 0 and "every host is already trusted" in r.stdout

    items = work / "items.txt"
    items.write_text("".join(f"item {i}\n" for i in range(20)))
    r = run([*CONSOLE, "init", "j1", "--source-file", str(items), "--command", "true"], work, home)
    assert r.returncode == 0, r.stderr
    assert (jobs / "j1" / "job.yaml").exists()
    url = cluster.master.url(str(jobs / "j1"))
    w = run([*WORKER, url, "--slots", "2", "-q", "-i", str(cluster.identity),
             "--known-hosts", str(work / "known_hosts")], work, home)
    assert w.returncode == 0, w.stderr
    r = run([*CONSOLE, "status", "j1", "--json"], work, home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["done"] == 20
    # -i and --known-hosts on the command line override the cluster file's
    r = run([*CONSOLE, "status", "j1", "--known-hosts", str(home / "nope")], work, home)
    assert r.returncode == 3 and f"known_hosts file {home / 'nope'} does not exist" in r.stderr


def test_trust_prompt_names_the_file_and_a_changed_key_is_refused(site, monkeypatch, capsys):
    from ppss_tui import prompt
    from ppss_tui.clusterfile import load_cluster
    from ppss_tui.trust import trust_cluster
    cluster, home, work, jobs = site
    c = load_cluster(str(work / "ppss.yaml"))
    asked = []
    monkeypatch.setattr(prompt.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "n")
    assert asyncio.run(trust_cluster(c, yes=False)) == 1
    assert asked == [f"Trust these 3 keys and add them to {work / 'known_hosts'}? [y/N] "]
    assert (work / "known_hosts").read_text() == ""
    # a known host offering another key: refused, nothing added
    other = cluster.nodes[2].known_hosts_line().split(" ", 1)[1]
    (work / "known_hosts").write_text(f"[{cluster.master.host}]:{cluster.master.port} {other}\n")
    capsys.readouterr()
    assert asyncio.run(trust_cluster(c, yes=True)) == 3
    out = capsys.readouterr().out
    assert "HOST KEY CHANGED" in out and f"{cluster.master.host}:{cluster.master.port}" in out
    assert "added 2 keys" in out  # the new ones still are; the changed one is left alone


def test_init_over_sftp_counts_and_follows_symlinks(site):
    cluster, home, work, jobs = site
    (work / "known_hosts").write_text(cluster.known_hosts.read_text())
    src = work / "src"
    (src / "d").mkdir(parents=True)
    (src / "a").write_text("a")
    (src / "d" / "b").write_text("b")
    (src / "in").symlink_to("d/b")
    (src / "out").symlink_to("/etc/hostname")
    (src / "dangling").symlink_to("nowhere")
    r = run([*CONSOLE, "init", "plain", "--source-dir", str(src), "--command", "true"], work, home)
    assert r.returncode == 0, r.stderr
    assert "2 items" in r.stdout and "not followed: 3 symlinks" in r.stdout and "--follow-symlinks" in r.stdout
    r = run([*CONSOLE, "init", "follow", "--source-dir", str(src), "--follow-symlinks", "--command", "true"],
            work, home)
    assert r.returncode == 0, r.stderr
    assert "3 items" in r.stdout and "not followed: 2 symlinks" in r.stdout
    assert "ppss-console start" in r.stdout
