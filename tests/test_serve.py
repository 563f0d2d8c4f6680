"""Serving workers (``ppss-worker ROOT``) against a REAL OpenSSH master (tests/sshcluster.py): jobs
made before and while they run, priorities, halt, draining a node through fleet.yaml, a serving
worker SIGKILLed mid-job and restarted, retry, and the fleet stop that ends them (exit 0).
The slot pool's rules in detail, on a fake clock: tests/test_serve_inproc.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ppss_helpers import Job, assert_exactly_once, assert_ok, console, items_n, kill_group, wait_for, \
    worker_argv
from worker import layout as L
from worker.control import parse_control

pytestmark = [pytest.mark.ssh, pytest.mark.timeout(240)]


class Site:
    """A cluster file naming a jobs root on the ssh master, and serving workers on it."""

    def __init__(self, cluster, tmp_path: Path) -> None:
        self.cluster = cluster
        self.root = tmp_path / "root"
        self.root.mkdir()
        self.dir = tmp_path / "site"
        self.dir.mkdir()
        (self.dir / "ppss.yaml").write_text(
            f"master: {cluster.master.url(str(self.root))}\nidentity: {cluster.identity}\n"
            f"known_hosts: {cluster.known_hosts}\nnodes:\n"
            + "".join(f"  - {{name: n{i}, host: {n.host}, port: {n.port}}}\n"
                      for i, n in enumerate(cluster.nodes, 1)))
        self.procs: dict[str, subprocess.Popen] = {}

    def console(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        res = console(*args, cwd=self.dir, input=input)
        assert_ok(res, code=res.returncode if args[0] == "status" and res.returncode == 1 else 0)
        return res

    def job(self, name: str) -> Job:
        return Job(self.root / name, self.cluster)

    def init(self, name: str, items: list[bytes], command: str, *extra: str) -> Job:
        self.console("init", name, "--source-file", "-", "--null", "--command", command, *extra,
                     input=b"".join(i + b"\0" for i in items))
        return self.job(name)

    def serve(self, node: str, slots: int = 2) -> subprocess.Popen:
        err = open(self.dir / f"{node}.stderr", "ab")
        proc = subprocess.Popen(worker_argv(self.cluster.master.url(str(self.root)), "--slots", str(slots),
                                            "--node-name", node, cluster=self.cluster),
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        err.close()
        self.procs[node] = proc
        return proc

    def stderr(self, node: str) -> str:
        return (self.dir / f"{node}.stderr").read_text(errors="replace")

    def wait(self, node: str, code: int = 0, timeout: float = 60) -> None:
        try:
            rc = self.procs[node].wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{node} still running; stderr:\n{self.stderr(node)}") from None
        assert rc == code and "Traceback" not in self.stderr(node), (rc, self.stderr(node))

    def finished(self, name: str) -> bool:
        return (self.root / name / "finished.json").exists() and not (self.root / "active" / name).exists()

    def detached(self, name: str, *nodes: str) -> bool:
        """Every node's serving status lists the job no more (its job log flushed)."""
        def jobs(node):
            path = self.root / L.status_path(node)
            return json.loads(path.read_text())["jobs"] if path.exists() else [name]
        return all(name not in jobs(n) for n in nodes)

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                kill_group(proc)
                proc.wait(10)


@pytest.fixture
def site(ssh_cluster, tmp_path: Path):
    s = Site(ssh_cluster, tmp_path)
    yield s
    s.cleanup()


def test_three_serving_workers_finish_a_job_made_before_and_one_made_while_they_run(site) -> None:
    """The issue's "done when": three workers started once; a retry after the cause is fixed."""
    first = site.job("first")
    site.init("first", items_n(40, "first"), first.timed("sleep 0.05"))
    for node in ("n1", "n2", "n3"):
        site.serve(node)
    wait_for(lambda: site.finished("first"), 60, "the first job finished")
    flag = site.dir / "fixed"
    second = site.job("second")
    items = items_n(30, "second")
    made = time.monotonic()
    site.init("second", items, second.timed(f'case "$ITEM" in *5) test -e {flag} || exit 9;; esac; sleep 0.05'))
    wait_for(lambda: second.executions(), 15, "the second job taken up")
    assert time.monotonic() - made < 8  # "within a few seconds" (2 s cycle, a loaded machine)
    wait_for(lambda: site.finished("second") and site.detached("second", "n1", "n2", "n3"), 60,
             "the second job finished")
    bad = [i for i in items if i.endswith(b"5")]
    assert_exactly_once(second, items, failed={i: 9 for i in bad})
    assert {e[1] for e in first.executions() + second.executions()} == {"n1", "n2", "n3"}
    flag.touch()
    site.console("retry", "second", "--exit", "9")
    wait_for(lambda: site.finished("second") and not list((second / L.RETRY_DIR).iterdir()), 60,
             "the retried items")
    status = json.loads(site.console("status", "second", "--json").stdout)
    assert (status["done"], status["failed"], status["pending"]) == (30, 0, 0), status
    done, failed = second.records()
    assert sorted(done) == sorted(L.item_id(i) for i in items) and set(done.values()) == {1} and not failed
    ran = [e[0].encode() for e in second.executions()]  # successful runs only (a failure exits first)
    assert sorted(ran) == sorted(items), "every item's successful run exactly once"
    assert_exactly_once(first, items_n(40, "first"), executions=[L.item_id(e[0].encode()) for e in first.executions()])
    nodes = {n: json.loads((site.root / L.status_path(n)).read_text()) for n in ("n1", "n2", "n3")}
    assert {s["state"] for s in nodes.values()} == {"serving"}
    site.console("stop", "--fleet")
    for node in ("n1", "n2", "n3"):
        site.wait(node, 0)
        assert json.loads((site.root / L.status_path(node)).read_text())["state"] == "stopped"


def test_priority_halt_and_a_drained_node(site) -> None:
    low = site.init("low", items_n(40, "low"), site.job("low").timed("sleep 0.3"))
    site.console("pause", "--fleet", "--node", "n2")
    site.serve("n1", slots=2)
    site.serve("n2", slots=2)
    wait_for(lambda: len(low.executions()) >= 2, 30, "the low job running")
    high = site.init("high", items_n(6, "high"), site.job("high").timed("sleep 0.3"), "--priority", "5")
    wait_for(lambda: site.finished("high"), 60, "the high job finished")
    assert not site.finished("low")
    hi = high.executions()
    first, last = min(e[2] for e in hi), max(e[3] for e in hi)
    assert len([e for e in low.executions() if first + 1.0 < e[2] < last]) <= 1  # after the take-up
    halting = site.init("halting", [b"bad 1", b"bad 2", b"bad 3", *items_n(40)],
                        'case "$ITEM" in bad*) exit 4;; esac; sleep 0.2', "--priority", "9", "--halt", "2")
    wait_for(lambda: parse_control((halting / L.CONTROL_FILE).read_bytes()).state == "halted", 60, "halted")
    status = site.console("status", "halting").stdout
    assert "halted" in status and "failed" in status, status
    wait_for(lambda: site.finished("low") and site.detached("low", "n1"), 60,
             "the low job finished while the other is halted")
    ran = {e[1] for e in low.executions() + high.executions()}
    assert ran == {"n1"}, ran  # n2 drained through fleet.yaml
    assert json.loads((site.root / L.status_path("n2")).read_text())["state"] == "paused"
    site.console("stop", "--fleet")
    site.wait("n1")
    site.wait("n2")
    assert_exactly_once(low, items_n(40, "low"))


def test_a_serving_worker_killed_mid_job_and_restarted_records_every_item_once(site) -> None:
    job = site.job("j")
    items = items_n(16)
    site.init("j", items, job.timed("sleep 0.4"), "--lease", "20")
    site.serve("n1", slots=3)
    wait_for(lambda: len(job.executions()) >= 4, 60, "some items done")
    kill_group(site.procs["n1"], signal.SIGKILL)
    site.procs["n1"].wait(10)
    site.serve("n1", slots=3)  # the same node name: it takes back its own claims at once
    wait_for(lambda: site.finished("j") and site.detached("j", "n1"), 90, "the job finished after the restart")
    err = site.stderr("n1")
    assert "took back" in err or "items left behind" in err, err  # its own claims, at once
    ids = [L.item_id(e[0].encode()) for e in job.executions()]
    assert_exactly_once(job, items, executions=ids, may_repeat=set(ids), joblog_may_miss=set(ids))
    site.console("stop", "--fleet")
    site.wait("n1")


def test_a_copy_mode_job_under_a_served_root(site, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    items = []
    for i in range(5):
        (src / f"f{i}").write_text("x" * (i + 1))
        items.append(str(src / f"f{i}").encode())
    out = tmp_path / "out"
    job = site.init("copyjob", items, 'wc -c < "$ITEM" > "$OUTPUT_DIR/size"', "--transfer", "copy",
                    "--output-dir", str(out))
    site.serve("n1", slots=2)
    wait_for(lambda: site.finished("copyjob") and site.detached("copyjob", "n1"), 60, "the copy-mode job")
    assert_exactly_once(job, items)
    sizes = sorted(int((out / str(src / f"f{i}").lstrip("/") / "size").read_text()) for i in range(5))
    assert sizes == [1, 2, 3, 4, 5]
    site.console("stop", "--fleet")
    site.wait("n1")


def test_a_jobs_tail_is_filled_by_the_next_job_over_ssh(site) -> None:
    a = site.init("a", [b"long", b"q1", b"q2", b"q3"], site.job("a").timed('[ "$ITEM" != long ] || sleep 3'))
    b = site.init("b", items_n(12, "b"), site.job("b").timed("sleep 0.3"))
    site.serve("n1", slots=4)
    wait_for(lambda: site.finished("a") and site.finished("b") and site.detached("b", "n1"), 60, "both jobs")
    long = [e for e in a.executions() if e[0] == "long"][0]
    during = [e for e in b.executions() if e[2] < long[3] - 0.5]
    assert len(during) >= 6, (long, b.executions())  # b held the 3 slots a's tail left
    assert_exactly_once(b, items_n(12, "b"))
    site.console("stop", "--fleet")
    site.wait("n1")


def test_sigterm_ends_a_serving_worker_with_143_and_its_claims_released(site) -> None:
    import os
    job = site.init("j", items_n(6), 'sleep 30; : "$ITEM"')
    proc = site.serve("n1", slots=2)
    wait_for(lambda: (job / L.status_path("n1")).exists()
             and len(json.loads((job / L.status_path("n1")).read_text())["running"]) == 2, 30, "two running")
    os.kill(proc.pid, signal.SIGTERM)
    site.wait("n1", 143, timeout=30)
    status = json.loads((job / L.status_path("n1")).read_text())
    assert status["state"] == "stopped" and not status["running"] and not status["claims"], status
    assert json.loads((site.root / L.status_path("n1")).read_text())["state"] == "stopped"
    assert "SIGTERM" in site.stderr("n1")
