"""ppss-console's jobs-root commands as an operator runs them: init NAME under a root, jobs [--json],
retry (--exit, --match), rm (--yes, --force), pause|resume|stop --fleet [--node], a halted job's
status and resume. Local roots first, then a root on a REAL OpenSSH master (tests/sshcluster.py)
with real ppss-worker runs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from ppss_helpers import assert_ok, assert_one_line_error, console, finish, kill_group, run_worker, \
    start_worker, wait_for
from ppss_tui import deploy, remote
from ppss_tui.context import effective_cluster
from worker import layout as L
from worker.control import Control, parse_control

JOB_KEYS = ["name", "state", "priority", "total", "done", "failed", "running", "pending", "created"]
ITEMS = [b"ok-1", b"ok-2", b"bad-3", b"bad-4", b"worse-5", b"ok 6 'quoted' $(x)"]
# bad-* exit 3 printing "boom"; worse-* exit 7 printing "crash"; both succeed once $FIX exists.
COMMAND = ('case "$ITEM" in bad-*) [ -e "$FIX" ] || { echo "boom $ITEM"; exit 3; };; '
           'worse-*) [ -e "$FIX" ] || { echo "crash $ITEM"; exit 7; };; esac; '
           'printf "%s\\n" "$ITEM" >> "$LOG"')


def at(site: Path, *args: str, input: bytes | None = None, cluster=None):
    """ppss-console in the site directory (its ppss.yaml names the root)."""
    return console(*args, cwd=site, input=input, cluster=cluster)


@pytest.fixture
def local_site(tmp_path: Path) -> Path:
    (tmp_path / "ppss.yaml").write_text(f"master: {tmp_path}/root\nnodes:\n  - {{name: n1, host: h1}}\n")
    (tmp_path / "items").write_bytes(b"".join(i + b"\n" for i in ITEMS))
    return tmp_path


def jobs_json(site: Path, cluster=None) -> list[dict]:
    r = at(site, "jobs", "--json", cluster=cluster)
    assert_ok(r)
    return json.loads(r.stdout)


def test_init_name_under_a_root_marks_it_active_and_jobs_lists_it(local_site):
    assert_one_line_error(at(local_site, "jobs"), 4, "no such directory", "init NAME")
    r = at(local_site, "init", "j1", "--source-file", "items", "--command", "true", "--priority", "3",
           "--halt", "20%")
    assert_ok(r)
    root = local_site / "root"
    assert (root / "active" / "j1").is_file() and (root / "j1" / "job.yaml").is_file()
    spec = yaml.safe_load((root / "j1" / "job.yaml").read_text())
    assert spec["priority"] == 3 and spec["halt"] == "20%" and isinstance(spec["created"], float)
    assert_ok(at(local_site, "init", "j0", "--source-file", "items", "--command", "true"))
    listed = jobs_json(local_site)
    assert [j["name"] for j in listed] == ["j1", "j0"]  # priority first
    assert list(listed[0]) == JOB_KEYS
    assert listed[0] | {"created": 0} == {"name": "j1", "state": "running", "priority": 3, "total": 6, "done": 0,
                                         "failed": 0, "running": 0, "pending": 6, "created": 0}
    text = at(local_site, "jobs")
    assert_ok(text)
    assert text.stdout.splitlines()[0].split() == ["NAME", "STATE", "PRIO", "DONE", "FAILED", "RUNNING",
                                                   "PENDING", "CREATED"]
    # bad input: one line each, documented status
    assert_one_line_error(at(local_site, "init", "j2", "--source-file", "items", "--command", "true",
                             "--halt", "lots"), 2, "--halt", "N%")
    assert_one_line_error(at(local_site, "init", "active", "--source-file", "items", "--command", "true"),
                          2, "not a job name")
    assert_one_line_error(at(local_site, "jobs", str(root / "j1")), 4, "not a jobs root")
    assert_one_line_error(at(local_site, "init", "j1", "--source-file", "items", "--command", "true"),
                          4, "already exists")


def test_halted_job_status_jobs_and_resume(local_site):
    assert_ok(at(local_site, "init", "h", "--source-file", "items", "--command", "true", "--halt", "10%"))
    control = local_site / "root" / "h" / L.CONTROL_FILE
    control.write_bytes(Control().with_halt("12% failed").to_yaml())  # as the first worker to notice
    r = at(local_site, "status", "h")
    assert_ok(r)
    assert "halted: 12% failed" in r.stdout
    assert jobs_json(local_site)[0]["state"] == "halted"
    assert "halted: 12% failed" in at(local_site, "jobs").stdout
    (local_site / "root" / "active" / "h").unlink()  # as an init cut short before its marker
    assert_ok(at(local_site, "resume", "h"))
    assert (local_site / "root" / "active" / "h").is_file()
    after = parse_control(control.read_bytes())
    assert (after.state, after.halted, after.halt_ignore_below) == ("running", None, 0)
    assert "job state" not in at(local_site, "status", "h").stdout


def test_fleet_commands_edit_fleet_yaml(local_site):
    fleet = local_site / "root" / "fleet.yaml"
    (local_site / "root").mkdir()
    assert_ok(at(local_site, "pause", "--fleet", "--node", "n1"))
    assert yaml.safe_load(fleet.read_text()) == {"state": "running", "nodes": {"n1": {"state": "paused"}}}
    assert_one_line_error(at(local_site, "pause", "--fleet", "--node", "typo"), 2, "unknown node typo")
    assert_ok(at(local_site, "pause", "--fleet", "--node", "new[1-2]", "--force"))
    assert set(yaml.safe_load(fleet.read_text())["nodes"]) == {"n1", "new1", "new2"}
    assert_ok(at(local_site, "stop", "--fleet"))
    assert yaml.safe_load(fleet.read_text()) == {"state": "stopped", "nodes": {}}
    assert_ok(at(local_site, "resume", "--fleet"))
    assert yaml.safe_load(fleet.read_text())["state"] == "running"
    assert_one_line_error(at(local_site, "suspend", "--fleet"), 2, "--fleet takes pause, resume or stop")
    fleet.write_text("state: [\n")
    assert_one_line_error(at(local_site, "pause", "--fleet"), 4, "fleet.yaml", "line 2")
    assert fleet.read_text() == "state: [\n"  # never overwritten
    assert not [p for p in (local_site / "root").iterdir() if ".tmp-" in p.name]


def test_rm_asks_without_yes(local_site):
    assert_ok(at(local_site, "init", "j", "--source-file", "items", "--command", "true"))
    assert_one_line_error(at(local_site, "rm", "j"), 2, "--yes")
    assert (local_site / "root" / "j" / "job.yaml").exists()
    assert_one_line_error(at(local_site, "rm", "nope", "--yes"), 4, "not a ppss job")


def test_start_and_deploy_launch_the_worker_on_the_root(tmp_path):
    """With a root as the cluster's master, start/--autostart's launcher runs `ppss-worker ROOT`."""
    (tmp_path / "ppss.yaml").write_text("master: ssh://ppss@master:2222/srv/jobs\n"
                                        "nodes:\n  - {name: n1, host: h1, slots: 3}\n")
    args = type("Args", (), {"cluster": str(tmp_path / "ppss.yaml"), "job": None})()
    cluster = effective_cluster(args)
    payload = deploy.start_payload(cluster)
    assert payload.master_url == "ssh://ppss@master:2222/srv/jobs"
    text = remote.launcher(payload.master_url, "n1", 3, payload.job_hash, identity=True, known_hosts=True)
    line = next(ln for ln in text.splitlines() if "venv/bin/ppss-worker" in ln and "exec" not in ln)
    assert ('"$D/venv/bin/ppss-worker" ssh://ppss@master:2222/srv/jobs --node-name n1 --slots 3 '
            '-i "$D/master_key"') in line
    # the @reboot line runs the same launcher: a rebooted node serves the root again
    cron = remote.cron_line("/home/ppss/ppss", payload.job_hash)
    assert f"worker-{payload.job_hash}.sh' --wait " in cron  # at boot: wait for the master and the job
    assert '"$D/venv/bin/ppss-worker" ' in text and ' "$@" </dev/null' in text  # (the launcher passes it on)


# ---------------------------------------------------------------------------------------------
# over a real sshd


@pytest.fixture
def ssh_site(ssh_cluster, tmp_path: Path):
    root = tmp_path / "root"
    site = tmp_path / "site"
    site.mkdir()
    (site / "ppss.yaml").write_text(
        f"master: {ssh_cluster.master.url(str(root))}\nidentity: {ssh_cluster.identity}\n"
        f"known_hosts: {ssh_cluster.known_hosts}\nnodes:\n"
        f"  - {{name: n1, host: {ssh_cluster.nodes[0].host}, port: {ssh_cluster.nodes[0].port}}}\n")
    (site / "items").write_bytes(b"".join(i + b"\n" for i in ITEMS))
    return ssh_cluster, site, root


def worker_env(site: Path) -> dict:
    return {**os.environ, "FIX": str(site / "fixed"), "LOG": str(site / "ran.log")}


def run_job(cluster, root: Path, name: str, site: Path, node: str) -> int:
    res = run_worker(cluster.master.url(str(root / name)), "--slots", "2", "--node-name", node, "-q",
                     cluster=cluster, env=worker_env(site))
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode


@pytest.mark.ssh
def test_retry_by_exit_and_text_over_ssh_then_a_rerun_records_each_item_once(ssh_site):
    cluster, site, root = ssh_site
    assert_ok(at(site, "init", "j", "--source-file", "items", "--command", COMMAND))
    assert run_job(cluster, root, "j", site, "n1") == 1
    listed = jobs_json(site)
    assert [(j["name"], j["state"], j["done"], j["failed"], j["pending"]) for j in listed] == \
        [("j", "finished", 3, 3, 0)]
    r = at(site, "retry", "j", "--exit", "7")
    assert_ok(r)
    assert "1 matching failed items offered again; now 3/6 done, 2 failed, 1 pending" in r.stdout
    status = json.loads(at(site, "status", "j", "--json").stdout)  # right at once
    assert (status["done"], status["failed"], status["pending"]) == (3, 2, 1)
    assert jobs_json(site)[0]["state"] == "running" and (root / "active" / "j").exists()
    assert "1 matching" in at(site, "retry", "j", "--match", "boom bad-4").stdout
    assert "nothing to retry" in at(site, "retry", "j", "--match", "no such output").stdout
    failed = json.loads(at(site, "failed", "j", "--json").stdout)
    assert [f["item"] for f in failed] == ["bad-3"]
    (site / "fixed").write_text("")  # the cause fixed
    assert run_job(cluster, root, "j", site, "n2") in (0, 1)
    status = json.loads(at(site, "status", "j", "--json").stdout)
    assert (status["done"], status["failed"], status["pending"]) == (5, 1, 0)
    assert_ok(at(site, "retry", "j"))
    run_job(cluster, root, "j", site, "n1")
    status = json.loads(at(site, "status", "j", "--json").stdout)
    assert (status["total"], status["done"], status["failed"], status["pending"]) == (6, 6, 0, 0)
    assert sorted((site / "ran.log").read_bytes().splitlines()) == sorted(ITEMS)  # each once
    done = {p.name for p in (root / "j" / L.DONE_DIR).glob("*/*")}
    assert done == {L.item_id(i) for i in ITEMS}
    history = sorted(p.name for p in (root / "j" / "failed-history").glob("*/*"))
    assert history == sorted(f"{L.item_id(i)}.1" for i in (b"bad-3", b"bad-4", b"worse-5"))
    assert json.loads((root / "j" / "failed-history" / L.item_id(b"bad-4")[:2] /
                       f"{L.item_id(b'bad-4')}.1").read_text())["exit"] == 3


@pytest.mark.ssh
def test_rm_refused_while_a_live_worker_holds_claims_over_ssh(ssh_site):
    cluster, site, root = ssh_site
    assert_ok(at(site, "init", "busy", "--source-file", "items", "--command", 'sleep 30; : "$ITEM"'))
    proc = start_worker(cluster.master.url(str(root / "busy")), "--slots", "2", "--node-name", "n1",
                        "-q", cluster=cluster)
    try:
        wait_for(lambda: json.loads(at(site, "status", "busy", "--json").stdout)["running"] == 2, 30,
                 "the worker running two items")
        assert_one_line_error(at(site, "rm", "busy", "--yes"), 4, "live node", "n1", "--force")
        assert (root / "busy" / "job.yaml").exists() and (root / "active" / "busy").exists()
        assert_ok(at(site, "rm", "busy", "--yes", "--force"))
        assert not (root / "busy").exists() and not (root / "active" / "busy").exists()
        assert not [p for p in root.iterdir() if p.name.startswith(".trash")]
    finally:
        kill_group(proc, signal.SIGTERM)  # a worker's SIGTERM ends its running items too
        finish(proc, timeout=30)
    # a job whose worker ended: removed without --force
    assert_ok(at(site, "init", "quick", "--source-file", "items", "--command", "true"))
    assert run_job(cluster, root, "quick", site, "n1") == 0
    assert_ok(at(site, "rm", "quick", "--yes"))
    assert sorted(p.name for p in root.iterdir()) == ["active"]
    assert jobs_json(site) == []


@pytest.mark.ssh
def test_pause_fleet_node_writes_fleet_yaml_over_ssh(ssh_site):
    cluster, site, root = ssh_site
    assert_ok(at(site, "init", "j", "--source-file", "items", "--command", "true"))
    r = at(site, "pause", "--fleet", "--node", "n1")
    assert_ok(r)
    assert "fleet node n1: paused" in r.stdout
    assert yaml.safe_load((root / "fleet.yaml").read_text()) == {"state": "running",
                                                                 "nodes": {"n1": {"state": "paused"}}}
    assert_ok(at(site, "resume", "--fleet", "--node", "n1"))
    assert yaml.safe_load((root / "fleet.yaml").read_text())["nodes"] == {"n1": {"state": "running"}}
    # the job's own control.yaml is untouched by fleet commands
    assert parse_control((root / "j" / L.CONTROL_FILE).read_bytes()) == Control()


async def test_the_consoles_failed_view_retries_a_group_by_id(local_site):
    """The console's JobAccess.retry (the failed view's `r` on a group) takes retry's steps."""
    from ppss_tui.access import JobAccess
    from worker.store import LocalStore
    assert_ok(at(local_site, "init", "j", "--source-file", "items", "--command", COMMAND))
    job = local_site / "root" / "j"
    res = run_worker(str(job), "--slots", "2", "-q", env=worker_env(local_site))
    assert res.returncode == 1, res.stderr
    group = [L.item_id(b"bad-3"), L.item_id(b"bad-4")]
    assert await JobAccess(LocalStore(str(job))).retry(group) == 2
    assert sorted(p.name for p in (job / L.RETRY_DIR).iterdir()) == sorted(f"{i}.2" for i in group)
    assert json.loads(at(local_site, "status", "j", "--json").stdout)["failed"] == 1
    assert (local_site / "root" / "active" / "j").exists()
