"""Pilot tests of the console against real sshd servers (tests/sshcluster.py) and real workers.

The master is a real sshd (the console reads it over SFTP); ppss-worker processes run here and
report under the names of the cluster file's nodes, whose own sshd servers the console probes
for load and memory. Keys change control.yaml on the master and the workers obey.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppss_tui.app import PpssConsole
from ppss_tui.clusterfile import load_cluster
from ppss_tui.snapshot import HOSTKEY_CHANGED, UNREACHABLE, UP
from ppss_tui.widgets import NodeDetail, NodeTable
from sshcluster import free_port
from worker.control import parse_control
from worker.jobstatus import NodeStatus

pytestmark = pytest.mark.ssh


def _ssh_opts(cluster) -> list[str]:
    return ["-i", str(cluster.identity), "--known-hosts", str(cluster.known_hosts)]


def _init_job(cluster, job: Path, n_items: int, command: str) -> str:
    url = cluster.master.url(str(job))
    items = job.parent / "items.txt"
    items.write_text("".join(f"item-{i:05d}\n" for i in range(n_items)))
    subprocess.run(["ppss-console", "init", url, "--source-file", str(items), "--command", command,
                    *_ssh_opts(cluster)], check=True, capture_output=True, timeout=30)
    return url


def _write_cluster(tmp_path: Path, cluster, url: str, nodes: list[str]) -> Path:
    path = tmp_path / "ppss.yaml"
    lines = [f"master: {url}", f"identity: {cluster.identity}", f"known_hosts: {cluster.known_hosts}", "nodes:"]
    lines += [f"  - {n}" for n in nodes]
    path.write_text("\n".join(lines) + "\n")
    return path


def _node_entry(server) -> str:
    return f"{{name: {server.name}, host: {server.host}, port: {server.port}, user: {server.user}}}"


def _status(job: Path, node: str) -> NodeStatus | None:
    try:
        return NodeStatus.from_json((job / "nodes" / f"{node}.json").read_bytes())
    except (OSError, ValueError):
        return None


def _control(job: Path):
    return parse_control((job / "control.yaml").read_bytes())


async def _wait(pilot, cond, what: str, timeout: float = 8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")


def _cell(app, node: str, column: str) -> str:
    table = app.screen.query_one(NodeTable)
    try:
        return str(table.get_cell(node, column))
    except Exception:  # noqa: BLE001 - row not there yet
        return ""


@pytest.fixture
def workers():
    procs: list[subprocess.Popen] = []

    def start(url, cluster, node, slots=2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "worker", url, "--slots", str(slots), "--node-name", node, "-q",
             *_ssh_opts(cluster)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def test_nodes_appear_and_keys_steer_the_workers(ssh_cluster, tmp_path, workers):
    job = tmp_path / "job"
    url = _init_job(ssh_cluster, job, 2000, 'sleep 0.2; : "$ITEM"')
    n1, n2, n3 = ssh_cluster.nodes
    path = _write_cluster(tmp_path, ssh_cluster, url, [_node_entry(n) for n in (n1, n2, n3)])
    for node in ("node1", "node2"):
        workers(url, ssh_cluster, node)
    app = PpssConsole(load_cluster(str(path)), interval=0.4, node_interval=1.0, recount_every=None)
    async with app.run_test(size=(180, 45)) as pilot:
        # Nodes appear with their counts, read from the master; load and memory from each node.
        await _wait(pilot, lambda: all(int(_cell(app, n, "done").replace(",", "") or 0) > 0
                                       for n in ("node1", "node2")), "done counts of node1 and node2")
        await _wait(pilot, lambda: all(_cell(app, n, "conn") == UP and _cell(app, n, "load") != "-"
                                       for n in ("node1", "node2", "node3")), "nodes up with load")
        assert _cell(app, "node1", "state") == "running"
        assert _cell(app, "node3", "state") == "no worker"
        assert "GiB" in _cell(app, "node1", "mem") or "MiB" in _cell(app, "node1", "mem")
        snap = app.snapshot
        assert snap.done == sum(app.snapshot.node(n).done for n in ("node1", "node2")) and snap.total == 2000
        assert app.access is not None
        table = app.screen.query_one(NodeTable)
        assert table.selected == "node1"

        # P: every node paused, in control.yaml on the master, and the workers obey.
        await pilot.press("P")
        await _wait(pilot, lambda: _control(job).state == "paused", "control.yaml state: paused")
        await _wait(pilot, lambda: all(_status(job, n).state == "paused" for n in ("node1", "node2")),
                    "both workers paused")
        await _wait(pilot, lambda: _cell(app, "node2", "state") == "paused", "table shows paused")
        # R: every node runs again.
        await pilot.press("R")
        await _wait(pilot, lambda: _control(job).state == "running", "control.yaml state: running")
        await _wait(pilot, lambda: all(_status(job, n).state == "running" for n in ("node1", "node2")),
                    "both workers running")
        # p: only the selected node (node1) pauses.
        await pilot.press("p")
        await _wait(pilot, lambda: _control(job).nodes.get("node1") is not None
                    and _control(job).nodes["node1"].state == "paused", "control.yaml nodes.node1 paused")
        await _wait(pilot, lambda: _status(job, "node1").state == "paused", "node1's worker paused")
        assert _status(job, "node2").state == "running"
        # +: node1 gets one more slot (2 -> 3) and its worker takes it.
        await pilot.press("plus")
        await _wait(pilot, lambda: _control(job).nodes["node1"].slots == 3, "control.yaml nodes.node1 slots 3")
        await _wait(pilot, lambda: _status(job, "node1").slots == 3, "node1's worker uses 3 slots")
        await _wait(pilot, lambda: _cell(app, "node1", "slots").endswith("/3"), "table shows 3 slots")
        assert _control(job).nodes["node1"].state == "paused"  # the slot change kept the pause


async def test_unreachable_node_and_changed_host_key_are_shown(fresh_cluster, tmp_path):
    cluster = fresh_cluster(1)
    job = tmp_path / "job"
    url = _init_job(cluster, job, 3, "true")
    node = cluster.nodes[0]
    cluster.rotate_host_key(node)  # known_hosts keeps the old key
    ghost = f"{{name: ghost, host: 127.0.0.1, port: {free_port()}, user: {node.user}}}"
    path = _write_cluster(tmp_path, cluster, url, [_node_entry(node), ghost])
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(node.host_key_path) + ".pub"],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    app = PpssConsole(load_cluster(str(path)), interval=0.4, node_interval=1.0, recount_every=None)
    async with app.run_test(size=(180, 45)) as pilot:
        await _wait(pilot, lambda: _cell(app, "ghost", "conn") == UNREACHABLE, "ghost unreachable")
        assert "cannot connect" in app.snapshot.node("ghost").conn_reason
        await _wait(pilot, lambda: _cell(app, "node1", "conn").startswith(HOSTKEY_CHANGED), "node1 key changed")
        row = app.snapshot.node("node1")
        assert row.fingerprint == fingerprint
        assert _cell(app, "node1", "conn") == HOSTKEY_CHANGED
        # The detail line shows the full fingerprint of the selected node.
        detail = str(app.screen.query_one(NodeDetail).render())
        assert fingerprint in detail and "HOST KEY CHANGED" in detail
        # The master itself is fine.
        await _wait(pilot, lambda: app.snapshot.master_state == "up" and app.snapshot.total == 3, "master up")


# ---- a jobs root: the jobs list, switching the job keys act on, retrying a failed group ----------

ROOT_COMMAND = 'case "$ITEM" in bad-*) echo "cannot read $ITEM: unsupported format"; exit 3;; esac'


def _jobs_root(ssh_cluster, tmp_path: Path) -> tuple[Path, Path]:
    """ROOT with jobs alpha (6 items, 3 of them fail with exit 3) and beta, made by the command line."""
    root = tmp_path / "root"
    n1 = ssh_cluster.nodes[0]
    path = _write_cluster(tmp_path, ssh_cluster, ssh_cluster.master.url(str(root)), [_node_entry(n1)])
    (tmp_path / "alpha.txt").write_text("".join(f"{k}-{i}\n" for i in range(3) for k in ("ok", "bad")))
    (tmp_path / "beta.txt").write_text("".join(f"b-{i}\n" for i in range(4)))
    for name in ("alpha", "beta"):
        subprocess.run(["ppss-console", "init", name, "-c", str(path), "--source-file",
                        str(tmp_path / f"{name}.txt"), "--command", ROOT_COMMAND if name == "alpha" else "true"],
                       check=True, capture_output=True, timeout=30)
    return root, path


def _job_row(app, name: str):
    snap = app.snapshot
    return next((j for j in snap.jobs if j.name == name), None) if snap else None


async def test_jobs_root_list_switch_and_retry_a_failed_group(ssh_cluster, tmp_path, workers):
    from ppss_tui.screens.failed import FailedScreen
    from ppss_tui.widgets import JobsTable
    root, path = _jobs_root(ssh_cluster, tmp_path)
    url = ssh_cluster.master.url(str(root / "alpha"))
    run = workers(url, ssh_cluster, "node1")  # a single-job worker runs alpha to its end
    assert run.wait(60) == 1, run.stderr.read()[-2000:]   # 1: finished with failed items
    app = PpssConsole(load_cluster(str(path)), interval=0.4, node_interval=1.0, recount_every=None,
                      jobs_interval=0.4)
    async with app.run_test(size=(120, 40)) as pilot:
        # Both jobs listed with their state; the job with work left (beta) is selected first.
        await _wait(pilot, lambda: app.snapshot and {j.name for j in app.snapshot.jobs} == {"alpha", "beta"},
                    "two jobs listed")
        await _wait(pilot, lambda: _job_row(app, "alpha") and _job_row(app, "alpha").state == "finished"
                    and _job_row(app, "alpha").failed == 3, "alpha finished with 3 failed")
        assert _job_row(app, "beta").state == "running" and _job_row(app, "beta").total == 4
        assert app.snapshot.selected == "beta"
        await _wait(pilot, lambda: app.snapshot.total == 4, "beta's dashboard")
        jobs = app.screen.query_one(JobsTable)
        assert jobs.display and [r.name for r in jobs.jobs] == [j.name for j in app.snapshot.jobs]

        # j focuses the jobs list; the cursor selects alpha: its dashboard, and keys act on it.
        await pilot.press("j")
        assert jobs.has_focus
        names = [r.name for r in jobs.jobs]
        await pilot.press("up" if names.index("alpha") < names.index("beta") else "down")
        await _wait(pilot, lambda: app.snapshot.selected == "alpha" and app.snapshot.total == 6
                    and app.snapshot.failed == 3, "alpha's dashboard")
        assert app.snapshot.job.endswith("/alpha") and app.snapshot.job_state == "finished"
        await _wait(pilot, lambda: getattr(app.access.store, "name", "") == "alpha", "keys steer alpha")
        await pilot.press("P")
        await _wait(pilot, lambda: _control(root / "alpha").state == "paused", "alpha paused")
        assert _control(root / "beta").state == "running"  # the other job is untouched
        await pilot.press("R")
        await _wait(pilot, lambda: _control(root / "alpha").state == "running", "alpha running")

        # The failed view: one group (exit 3, the item masked); r retries exactly its items.
        await pilot.press("f")
        await _wait(pilot, lambda: isinstance(app.screen, FailedScreen) and app.screen.groups, "failed groups")
        groups = app.screen.groups
        assert len(groups) == 1 and groups[0].count == 3 and groups[0].exit == 3
        assert groups[0].last_line == "cannot read $ITEM: unsupported format"
        await pilot.press("r")
        await _wait(pilot, lambda: any("3 items queued again" in n.message for n in app._notifications),
                    "retry notice")
        await _wait(pilot, lambda: not app.screen.groups, "failed view reloaded: nothing failed")
        assert len(list((root / "alpha" / "retry").iterdir())) == 3
        assert len(list((root / "alpha" / "failed-history").rglob("*"))) >= 3
        # The counts drop at once: alpha's dashboard and its row in the jobs list.
        await _wait(pilot, lambda: app.snapshot.failed == 0 and app.snapshot.pending == 3, "alpha: 0 failed, 3 waiting")
        await _wait(pilot, lambda: _job_row(app, "alpha").failed == 0
                    and _job_row(app, "alpha").state == "running", "jobs list: alpha running, 0 failed")
        assert (root / "active" / "alpha").exists()  # serving workers take it up again
        assert _job_row(app, "beta").failed == 0
