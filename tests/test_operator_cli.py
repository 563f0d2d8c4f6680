"""The operator's command line without SSH: one command registry, the cluster file as default for
every command, --version, node ranges, --node checks, init's symlink report (local masters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppss_tui import cli
from ppss_tui.clusterfile import ClusterFileError, parse_cluster

CONSOLE = [sys.executable, "-m", "ppss_tui"]


def run(*args: str, cwd: Path | str, env: dict | None = None, input: str | None = None):
    full_env = {k: v for k, v in os.environ.items() if k != "PPSS_CLUSTER"}
    full_env.update(env or {})
    return subprocess.run([*CONSOLE, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=60, input=input, stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory with ppss.yaml whose master is a local job path, and a small source tree."""
    (tmp_path / "jobs").mkdir()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("a\n")
    (src / "sub" / "b").write_text("b\n")
    (src / "link").symlink_to("a")            # inside the source: followed with --follow-symlinks
    (src / "passwd").symlink_to("/etc/passwd")  # outside: never
    (src / "dirlink").symlink_to("sub")       # a directory: never
    (src / "dangling").symlink_to("nowhere")
    (tmp_path / "ppss.yaml").write_text(
        f"master: {tmp_path}/jobs/main\nnodes:\n  - ppss@node[01-03]\n  - {{host: 'h[1-2]', name: 'w[1-2]'}}\n")
    return tmp_path


def test_one_registry_holds_every_command_and_each_has_its_own_help():
    parser = cli.build_parser()
    names = [c.name for c in cli.COMMANDS]
    assert {"init", "status", "pause", "failed", "trust", "check", "deploy", "start", "erase", "demo"} <= set(names)
    texts = {}
    for name in names:
        args = parser.parse_args([name, "-c", "x.yaml"] + (["--command", "c", "--source-file", "f"]
                                                           if name == "init" else []))
        assert args.handler.name == name and args.cluster == "x.yaml"
        texts[name] = cli.build_parser()._subparsers._group_actions[0].choices[name].format_help()
    # the bug: start --help showed deploy's text (its exit statuses mention erase and --autostart)
    assert "Start the deployed worker" in texts["start"]
    assert "erase not confirmed" not in texts["start"] and "--autostart" not in texts["start"]
    assert "Install the worker" not in texts["start"]
    assert "--autostart" in texts["deploy"] and "--yes" in texts["erase"]


def test_version_from_package_metadata(tmp_path):
    import importlib.metadata
    version = importlib.metadata.version("ppss")
    r = run("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"ppss-console {version}"
    r = subprocess.run([sys.executable, "-m", "worker", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"ppss-worker {version}"


def test_cluster_file_is_the_default_job_and_names_resolve_under_it(site):
    r = run("init", "--source-dir", "src", "--command", "cat", cwd=site)
    assert r.returncode == 0, r.stderr
    assert f"created job {site}/jobs/main: 2 items" in r.stdout
    assert "not followed: 4 symlinks" in r.stdout and "--follow-symlinks" in r.stdout
    assert "ppss-console start" in r.stdout and "ppss-worker" in r.stdout
    r = run("status", "--json", cwd=site)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"] == 2
    # a bare NAME is <cluster master>/NAME; init NAME creates it
    r = run("init", "sub1", "--source-dir", "src", "--follow-symlinks", "--command", "cat", cwd=site)
    assert r.returncode == 0, r.stderr
    assert (site / "jobs" / "main" / "sub1" / "job.yaml").exists()
    assert "3 items" in r.stdout and "not followed: 3 symlinks" in r.stdout
    # $PPSS_CLUSTER when there is no ./ppss.yaml; a full path still works without any cluster file
    elsewhere = site / "src"
    r = run("status", "sub1", "--json", cwd=elsewhere, env={"PPSS_CLUSTER": str(site / "ppss.yaml")})
    assert r.returncode == 0 and json.loads(r.stdout)["total"] == 3, r.stderr
    r = run("status", str(site / "jobs" / "main"), "--json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    r = run("status", "sub1", cwd=elsewhere)
    assert r.returncode == 2 and "bare name" in r.stderr and "PPSS_CLUSTER" in r.stderr
    assert "Traceback" not in r.stderr


def test_follow_symlinks_takes_only_files_inside_the_source(site):
    r = run("init", "j", "--source-dir", "src", "--follow-symlinks", "--command", "cat", cwd=site)
    assert r.returncode == 0, r.stderr
    items = (site / "jobs" / "main" / "j" / "items" / "000000").read_bytes().split(b"\0")
    assert sorted(i for i in items if i) == sorted(os.fsencode(site / "src" / p) for p in ("a", "link", "sub/b"))


def test_node_ranges_in_the_cluster_file():
    c = parse_cluster("master: /x\nnodes:\n  - ppss@node[01-03]:2222\n  - '10.0.0.[1-2]'\n"
                      "  - {host: 'h[1-2]', name: 'w[1-2]', slots: 2}\n")
    assert [(n.name, n.host, n.user, n.port) for n in c.nodes[:3]] == [
        ("node01", "node01", "ppss", 2222), ("node02", "node02", "ppss", 2222), ("node03", "node03", "ppss", 2222)]
    assert [n.name for n in c.nodes[3:5]] == ["10.0.0.1", "10.0.0.2"]
    assert [(n.name, n.host, n.slots) for n in c.nodes[5:]] == [("w1", "h1", 2), ("w2", "h2", 2)]
    with pytest.raises(ClusterFileError, match=r"nodes\[0\]: host 'node\[1-'"):
        parse_cluster("master: /x\nnodes: ['node[1-']\n")
    with pytest.raises(ClusterFileError, match="name 'w\\[1-3\\]' names 3 but host 'h\\[1-2\\]' 2"):
        parse_cluster("master: /x\nnodes: [{host: 'h[1-2]', name: 'w[1-3]'}]\n")
    with pytest.raises(ClusterFileError, match="'node2' appears twice"):
        parse_cluster("master: /x\nnodes: ['node[1-2]', 'node[2-3]']\n")


def test_user_ranges_pair_with_host_ranges():
    c = parse_cluster("master: /x\nnodes:\n  - ppss[1-3]@10.0.0.1[1-3]:2322\n  - {host: 'h[1-2]', user: u}\n")
    assert [(n.user, n.host, n.port) for n in c.nodes] == [
        ("ppss1", "10.0.0.11", 2322), ("ppss2", "10.0.0.12", 2322), ("ppss3", "10.0.0.13", 2322),
        ("u", "h1", None), ("u", "h2", None)]
    with pytest.raises(ClusterFileError, match=r"user 'u\[1-2\]' names 2 but host 'h\[1-3\]' 3"):
        parse_cluster("master: /x\nnodes: ['u[1-2]@h[1-3]']\n")
    with pytest.raises(ClusterFileError, match="user 'a b' is not an account name"):
        parse_cluster("master: /x\nnodes: [{host: h, user: 'a b'}]\n")


def test_pause_unknown_node_is_an_error_and_ranges_steer_several(site):
    assert run("init", "--source-file", "ppss.yaml", "--command", "cat", cwd=site).returncode == 0
    control = site / "jobs" / "main" / "control.yaml"
    before = control.read_bytes()
    r = run("pause", "--node", "NOSUCH", cwd=site)
    assert r.returncode == 2 and "unknown node NOSUCH" in r.stderr and "--force" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert control.read_bytes() == before  # nothing changed
    r = run("pause", "--node", "node[01-02]", cwd=site)
    assert r.returncode == 0 and "nodes node[01-02]: paused" in r.stdout, r.stderr
    import yaml
    nodes = yaml.safe_load(control.read_text())["nodes"]
    assert nodes == {"node01": {"state": "paused"}, "node02": {"state": "paused"}}
    r = run("pause", "--node", "x[1-2]", "--force", cwd=site)  # not started yet: accepted with --force
    assert r.returncode == 0, r.stderr
    # a node that has reported to the job is known without the cluster file listing it
    (site / "jobs" / "main" / "nodes" / "late.json").write_text("{}")
    r = run("resume", "--node", "late", cwd=site)
    assert r.returncode == 0, r.stderr
    r = run("pause", "--node", "node[1-", cwd=site)
    assert r.returncode == 2 and "not a node name or range" in r.stderr


def test_missing_known_hosts_file_names_trust(tmp_path):
    missing = tmp_path / "nothere"
    (tmp_path / "ppss.yaml").write_text(f"master: ssh://ppss@127.0.0.1:1/srv/job\nknown_hosts: {missing}\n")
    for args in (["status"], ["pause"], ["failed"], ["init", "--source-file", "ppss.yaml", "--command", "c"]):
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 3, r.stderr
        assert r.stderr.strip() == f"ppss-console: known_hosts file {missing} does not exist: run ppss-console trust"
    r = run(cwd=tmp_path)  # the console says it before opening
    assert r.returncode == 3 and f"known_hosts file {missing} does not exist" in r.stderr
    # the flag overrides the cluster file's setting
    other = tmp_path / "other"
    r = run("status", "--known-hosts", str(other), cwd=tmp_path)
    assert str(other) in r.stderr and r.returncode == 3


def test_no_cluster_file_for_node_commands_is_one_line(tmp_path):
    for args in (["deploy"], ["check"], ["trust"], ["start"], ["erase", "--yes"], []):
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert "no cluster file" in r.stderr and "Traceback" not in r.stderr


def test_worker_never_imports_clustershell():
    code = ("import importlib, pkgutil, sys, worker\n"
            "for m in pkgutil.walk_packages(worker.__path__, 'worker.'):\n"
            "    if m.name != 'worker.__main__': importlib.import_module(m.name)\n"
            "import ppss_tui.nodesel\n"  # proves the probe can see it: the console side does load it
            "print(sorted(k for k in sys.modules if k.startswith('ClusterShell'))[:1])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "['ClusterShell']", r.stderr
    code = code.replace("import ppss_tui.nodesel\n", "")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_worker_says_a_retried_connection_failure_once(capsys):
    from worker.cli import EventPrinter
    event = EventPrinter("n1")
    for _ in range(3):
        event("u@h:1: cannot connect: Connection refused")
    event("connection to u@h:1 lost; reconnecting")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "retrying in 0.5 s" in err[0] and "retrying" not in err[1]
