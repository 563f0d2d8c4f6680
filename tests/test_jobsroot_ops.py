"""The jobs root's protocol pieces without SSH: fleet.yaml, the halt rule, control.yaml's new keys,
job.yaml's priority/halt/created, and retry / rm / list over a LocalStore with real local workers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ppss_helpers import run_worker
from worker import jobsroot as R
from worker import layout as L
from worker.control import Control, ControlError, NodeControl, parse_control
from worker.errors import JobError, UsageError
from worker.fleet import (FleetControl, FleetError, FleetNode, LastGood, effective_state, parse_fleet,
                          read_fleet, update_fleet)
from worker.halt import halt_reason, parse_halt
from worker.jobops import apply_halt, init_job, resume_halted
from worker.jobspec import JobSpec
from worker.jobstatus import NodeStatus, read_job_status
from worker.store import LocalStore

# ---------------------------------------------------------------------------------------------
# fleet.yaml


def test_fleet_parse_and_node_overrides():
    fleet = parse_fleet(b"state: running\nnodes:\n  node3: {state: paused}\n  node7: {slots: 2}\n")
    assert fleet.for_node("node3") == ("paused", None)
    assert fleet.for_node("node7") == ("running", 2)
    assert fleet.for_node("other") == ("running", None)
    assert parse_fleet(b"") == FleetControl()
    # a fleet stop wins over a node's own state
    assert parse_fleet(b"state: stopped\nnodes: {n1: {state: paused}}\n").for_node("n1")[0] == "stopped"


@pytest.mark.parametrize("text, fragment", [
    (b"state: halted\n", "state: 'halted' is not one of running, paused, stopped"),
    (b"state: [\n", "line 2"),
    (b"colour: red\n", "unknown key 'colour'"),
    (b"nodes: {n1: {slots: -1}}\n", "nodes.n1.slots"),
    (b"nodes: {n1: {state: suspended}}\n", "nodes.n1.state"),
    (b"- a\n", "expected a mapping"),
])
def test_fleet_malformed_is_one_line_naming_the_file(text, fragment):
    with pytest.raises(FleetError) as exc:
        parse_fleet(text, "ROOT/fleet.yaml")
    assert fragment in str(exc.value) and str(exc.value).startswith("ROOT/fleet.yaml")
    assert "\n" not in str(exc.value)


def test_fleet_malformed_keeps_the_last_good_state():
    reader = LastGood()
    assert reader.update(b"state: paused\n").state == "paused" and reader.error == ""
    assert reader.update(b"state: [\n").state == "paused"
    assert "malformed YAML" in reader.error
    assert reader.update(None).state == "running" and reader.error == ""  # missing: running


def test_fleet_edits_and_round_trip():
    fleet = FleetControl().with_state("paused", "n1").with_slots("n2", 3)
    assert fleet.nodes == {"n1": FleetNode("paused", None), "n2": FleetNode(None, 3)}
    assert parse_fleet(fleet.to_yaml()) == fleet
    cleared = fleet.with_state("stopped")  # fleet-wide: node states cleared, slots kept
    assert cleared.state == "stopped" and cleared.nodes == {"n2": FleetNode(None, 3)}
    with pytest.raises(FleetError):
        fleet.with_state("suspended")
    with pytest.raises(FleetError):
        fleet.with_slots("n1", 5000)


@pytest.mark.parametrize("layers, want", [
    ((None, None, None, None), "running"),
    (("running", None, "running", None), "running"),
    (("paused", None, "running", None), "paused"),
    (("running", "paused", "running", "running"), "paused"),
    (("running", None, "halted", None), "halted"),
    (("paused", None, "suspended", None), "suspended"),
    (("running", None, "suspended", "stopped"), "stopped"),
    (("stopped", None, "running", "paused"), "stopped"),
    (("running", "stopped", "halted", None), "stopped"),
])
def test_effective_state_is_the_most_restrictive(layers, want):
    assert effective_state(*layers) == want


async def test_fleet_file_rewrites_are_atomic_and_a_malformed_file_is_kept(tmp_path):
    store = LocalStore(str(tmp_path))
    await update_fleet(store, lambda f: f.with_state("paused", "node1"))
    assert (await read_fleet(store)).for_node("node1") == ("paused", None)
    assert [p.name for p in tmp_path.iterdir()] == ["fleet.yaml"]  # no temporary left
    (tmp_path / "fleet.yaml").write_bytes(b"state: [\n")
    with pytest.raises(FleetError):
        await update_fleet(store, lambda f: f.with_state("running"))
    assert (tmp_path / "fleet.yaml").read_bytes() == b"state: [\n"


# ---------------------------------------------------------------------------------------------
# control.yaml and job.yaml additions


def test_control_halted_priority_round_trip_and_old_files_unchanged():
    control = parse_control(b"state: halted\nhalted: 12% failed\npriority: 3\nhalt_ignore_below: 4\n")
    assert (control.state, control.halted, control.priority, control.halt_ignore_below) == \
        ("halted", "12% failed", 3, 4)
    assert parse_control(control.to_yaml()) == control
    assert set(Control().to_dict()) == {"state", "nodes"}  # keys written only when set
    resumed = control.resumed(17)
    assert (resumed.state, resumed.halted, resumed.halt_ignore_below, resumed.priority) == \
        ("running", None, 17, 3)
    # a resume of a job that is not halted keeps the old mark
    assert Control(halt_ignore_below=2).resumed(9).halt_ignore_below == 2
    for bad in (b"priority: high\n", b"halted: [1]\n", b"halt_ignore_below: -1\n", b"priority: true\n"):
        with pytest.raises(ControlError):
            parse_control(bad)


def test_a_halt_wins_over_a_node_set_running():
    control = Control("running", {"n1": NodeControl("running"), "n2": NodeControl("stopped")})
    halted = control.with_halt("3 failed")
    # a worker pauses for a halt (and the console still shows the job halted, with its reason)
    assert halted.for_node("n1")[0] == "paused" and halted.for_node("n2")[0] == "stopped"
    assert halted.for_node("other")[0] == "paused" and halted.state == "halted"


def test_jobspec_priority_halt_and_created_old_and_new():
    base = dict(command="true", total=1, chunks=1, chunk_size=1000, source_kind="file", source="x")
    spec = JobSpec(**base, priority=5, halt="12%", created=1700000000.5)
    back = JobSpec.from_yaml(spec.to_yaml(), "job.yaml")
    assert (back.priority, back.halt, back.created_epoch) == (5, "12%", 1700000000.5)
    old = JobSpec(**base, created="2024-01-01T00:00:00+0000")
    back = JobSpec.from_yaml(old.to_yaml(), "job.yaml")
    assert back.priority == 0 and back.halt is None and back.created_epoch == 1704067200.0
    with pytest.raises(JobError, match="halt"):
        JobSpec.from_yaml(JobSpec(**base, halt="lots").to_yaml(), "job.yaml")


# ---------------------------------------------------------------------------------------------
# the halt rule


class Spec:
    def __init__(self, halt):
        self.halt = halt


@pytest.mark.parametrize("halt, control, done, failed, want", [
    (None, None, 0, 100, None),
    ("5", None, 0, 5, None),           # "passes": more than N
    ("5", None, 0, 6, "6 failed"),
    ("12%", None, 5, 4, None),         # fewer than 10 finished: no percentage yet
    ("12%", None, 88, 12, None),       # exactly 12%: not past it
    ("12%", None, 87, 13, "13% failed"),
    ("10%", Control("paused"), 0, 50, "100% failed"),  # a paused job may still halt
    ("10%", Control("halted", halted="x"), 0, 50, None),  # already halted
    ("10%", Control("stopped"), 0, 50, None),
    ("5", Control(halt_ignore_below=6), 0, 11, None),    # resumed at 6: 5 more is not past 5
    ("5", Control(halt_ignore_below=6), 0, 12, "12 failed"),
    ("10%", Control(halt_ignore_below=20), 60, 25, None),  # 5 new of 85 finished
    ("10%", Control(halt_ignore_below=20), 60, 30, "33% failed"),  # 10 new of 90: past 10%
])
def test_halt_reason(halt, control, done, failed, want):
    assert halt_reason(Spec(halt), control, done, failed) == want


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "101%", "%", "5 %x"])
def test_parse_halt_refuses(text):
    with pytest.raises(UsageError, match="not a count N or a percentage"):
        parse_halt(text)


def test_parse_halt_accepts():
    assert parse_halt("7") == (7, False) and parse_halt("12%") == (12, True) and parse_halt("2.5%") == (2.5, True)


# ---------------------------------------------------------------------------------------------
# jobs under a root (LocalStore, real local workers)

ITEMS = [b"ok-1", b"ok-2", b"bad-3", b"bad-4", b"worse-5", b"ok 6 with space"]
# bad-* exit 3 and print "boom"; worse-* exit 7 and print "crash"; fixed once $FIX exists.
COMMAND = ('case "$ITEM" in bad-*) [ -e "$FIX" ] || { echo "boom $ITEM"; exit 3; };; '
           'worse-*) [ -e "$FIX" ] || { echo "crash $ITEM"; exit 7; };; esac; echo "$ITEM" >> "$LOG"')


@pytest.fixture
def root(tmp_path: Path):
    return LocalStore(str(tmp_path / "root"))


async def make_job(root: LocalStore, name: str, items=ITEMS, command=COMMAND, **kw) -> R.JobView:
    job = R.job_store(root, name)
    await init_job(job, command, list(items), "file", "-", **kw)
    await R.mark_active(root, name)
    return job


def env_for(tmp_path: Path) -> dict:
    return {**os.environ, "FIX": str(tmp_path / "fixed"), "LOG": str(tmp_path / "ran.log")}


def run_local(root: LocalStore, name: str, tmp_path: Path, node: str = "n1") -> int:
    res = run_worker(root.path(name), "--slots", "2", "--node-name", node, "-q", env=env_for(tmp_path))
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode


def failed_ids(job_dir: Path) -> set[str]:
    return {p.name for p in (job_dir / L.FAILED_DIR).glob("*/*") if ".tmp-" not in p.name}


async def test_init_under_a_root_and_list_jobs_by_priority_then_age(root, tmp_path):
    low = await make_job(root, "low", priority=0)
    await make_job(root, "high", priority=5, halt="50%")
    await make_job(root, "older-low", priority=0)
    assert await R.list_active(root) == ["high", "low", "older-low"]
    assert await R.is_root(root) and not await R.is_root(low)
    assert await R.is_job(root, "high") and not await R.is_job(root, "active")
    # control.yaml's priority wins over job.yaml's; a paused job shows paused
    await low.write_atomic(L.CONTROL_FILE, Control("paused", priority=9).to_yaml())
    infos = await R.list_jobs(root)
    assert [j.name for j in infos] == ["low", "high", "older-low"]
    assert infos[0].to_dict()["state"] == "paused" and infos[0].priority == 9
    assert list(infos[1].to_dict()) == ["name", "state", "priority", "total", "done", "failed",
                                       "running", "pending", "created"]
    assert infos[1].to_dict()["pending"] == len(ITEMS) and infos[1].created <= time.time() + 1
    assert infos[1].status is not None and infos[1].status.spec.halt == "50%"  # for the console's view
    spec = JobSpec.from_yaml((tmp_path / "root" / "high" / "job.yaml").read_bytes(), "job.yaml")
    assert spec.priority == 5 and spec.halt == "50%" and abs(spec.created_epoch - time.time()) < 60
    # a directory that is not a job is no job; a listing never fails on it
    (tmp_path / "root" / "junk").mkdir()
    assert "junk" not in [j.name for j in await R.list_jobs(root)]


async def test_mark_finished_writes_the_record_then_leaves_active(root):
    await make_job(root, "j")
    await R.mark_finished(root, "j", 4, 2)
    data = json.loads((Path(root.root) / "j" / "finished.json").read_bytes())
    assert (data["done"], data["failed"]) == (4, 2) and data["at"] > 0
    assert await R.list_active(root) == []
    infos = await R.list_jobs(root)  # finished jobs are listed from the whole root
    # from finished.json alone (the nodes reported nothing): no status read for a finished job
    assert [(j.name, j.state, j.done, j.failed, j.pending, j.running) for j in infos] == \
        [("j", "finished", 4, 2, 0, 0)]


async def test_retry_by_exit_code_then_by_text_then_all_done_exactly_once(root, tmp_path):
    job = await make_job(root, "j")
    jdir = tmp_path / "root" / "j"
    assert run_local(root, "j", tmp_path) == 1
    assert len(failed_ids(jdir)) == 3
    await R.mark_finished(root, "j", 3, 3)
    # --exit 7: only worse-5
    assert await R.retry_failed(job, exit_code=7) == 1
    status = await read_job_status(job)
    assert (status.done, status.failed, status.pending, status.state) == (3, 2, 1, "running")
    assert await R.list_active(root) == ["j"] and not (jdir / "finished.json").exists()
    worse = L.item_id(b"worse-5")
    assert (jdir / R.HISTORY_DIR / worse[:2] / f"{worse}.1").exists()
    assert (jdir / L.RETRY_DIR / f"{worse}.2").read_bytes() == b"worse-5"
    # --match: the text of the output tail, only bad-4
    assert await R.retry_failed(job, match="boom bad-4") == 1
    assert await R.retry_failed(job, match="no such text") == 0
    assert (await read_job_status(job)).failed == 1
    # the cause fixed: a real worker runs the two retried items, and only them
    (tmp_path / "fixed").write_text("")
    assert run_local(root, "j", tmp_path) == 1  # bad-3 still failed (not retried)
    status = await read_job_status(job)
    assert (status.done, status.failed, status.pending) == (5, 1, 0)
    # then all: the last one
    assert await R.retry_failed(job) == 1
    # (its exit status still counts the retried failures until the engine's end-of-job check
    # subtracts retried.json, per the spec: then it is 0)
    assert run_local(root, "j", tmp_path, node="n2") in (0, 1)
    status = await read_job_status(job)
    assert (status.total, status.done, status.failed, status.pending, status.state) == (6, 6, 0, 0, "finished")
    ran = (tmp_path / "ran.log").read_bytes().splitlines()
    assert sorted(ran) == sorted(ITEMS)  # every successful run recorded exactly once
    assert len({p.name for p in (jdir / L.DONE_DIR).glob("*/*")}) == 6 and not failed_ids(jdir)
    history = sorted(p.name for p in (jdir / R.HISTORY_DIR).glob("*/*"))
    assert len(history) == 3 and all(n.endswith(".1") for n in history)  # the failed attempts kept
    assert json.loads((jdir / "retried.json").read_bytes()) == {"count": 3}


async def test_retry_keeps_recount_in_step_and_of_a_job_outside_a_root(tmp_path):
    store = LocalStore(str(tmp_path / "job"))
    await init_job(store, COMMAND, list(ITEMS), "file", "-")
    assert run_worker(str(tmp_path / "job"), "--slots", "2", "-q", env=env_for(tmp_path)).returncode == 1
    (tmp_path / "job" / L.RECOUNT_FILE).write_text(json.dumps({"done": 3, "failed": 3}))
    assert await R.retry_failed(store, exit_code=3) == 2
    assert json.loads((tmp_path / "job" / L.RECOUNT_FILE).read_text())["failed"] == 1
    assert (await read_job_status(store)).failed == 1
    assert not (tmp_path / "active").exists()  # a plain job: no root to mark


async def test_retry_of_something_not_a_job_is_refused(root, tmp_path):
    (tmp_path / "root" / "nojob").mkdir(parents=True)
    with pytest.raises(JobError, match="not a ppss job"):
        await R.retry_failed(R.job_store(root, "nojob"))


def write_node(job_dir: Path, node: str, state: str, age: float = 0.0) -> None:
    status = NodeStatus(node, state, running=(), claims=(("abc", "x"),))
    path = job_dir / L.NODES_DIR / f"{node}.json"
    path.write_bytes(status.to_json())
    when = time.time() - age
    os.utime(path, (when, when))


async def test_rm_refused_while_live_then_forced_or_after_the_end(root, tmp_path):
    await make_job(root, "busy")
    await make_job(root, "done")
    busy = tmp_path / "root" / "busy"
    write_node(busy, "n1", "running")
    with pytest.raises(JobError, match="live node") as exc:
        await R.remove_job(root, "busy")
    assert exc.value.exit_code == 4 and busy.exists()
    # a lost node (heartbeat older than the lease) or a finished one holds nothing
    write_node(busy, "n1", "running", age=120)
    with pytest.raises(JobError, match="the job is running"):  # but the job itself is not over
        await R.remove_job(root, "busy")
    write_node(busy, "n1", "running")
    await R.remove_job(root, "busy", force=True)
    assert not busy.exists() and await R.list_active(root) == ["done"]
    assert not [p for p in (tmp_path / "root").iterdir() if p.name.startswith(".trash")]
    # finished: allowed without force
    assert run_local(root, "done", tmp_path) == 1
    await R.remove_job(root, "done")
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["active"]
    assert await R.list_active(root) == []
    with pytest.raises(JobError, match="not a ppss job"):
        await R.remove_job(root, "done")


async def test_a_stopped_job_may_be_removed(root, tmp_path):
    job = await make_job(root, "j")
    await job.write_atomic(L.CONTROL_FILE, Control("stopped").to_yaml())
    write_node(tmp_path / "root" / "j", "n1", "stopped")
    await R.remove_job(root, "j")
    assert not (tmp_path / "root" / "j").exists()


async def test_apply_halt_and_resume(root, tmp_path):
    job = await make_job(root, "j", halt="2")
    spec = JobSpec.from_yaml((tmp_path / "root" / "j" / "job.yaml").read_bytes(), "job.yaml")
    assert await apply_halt(job, spec, 3, 2) is None
    assert await apply_halt(job, spec, 3, 3) == "3 failed"
    control = parse_control((tmp_path / "root" / "j" / "control.yaml").read_bytes())
    assert (control.state, control.halted) == ("halted", "3 failed")
    infos = await R.list_jobs(root)
    assert (infos[0].state, infos[0].halted) == ("halted", "3 failed")
    assert await apply_halt(job, spec, 3, 9) is None  # already halted
    resumed = await resume_halted(job, 3)
    assert (resumed.state, resumed.halt_ignore_below, resumed.halted) == ("running", 3, None)
    assert await resume_halted(job, 5) is None  # not halted: nothing to do
    assert await apply_halt(job, spec, 3, 5) is None and await apply_halt(job, spec, 3, 6) == "6 failed"


def test_job_names_under_a_root():
    for good in ("j1", "night_run.2", "A-b+c"):
        assert R.check_job_name(good) == good
    for bad in ("active", "nodes", ".trash-x", "-x", "a/b", "", "x" * 200, "fleet.yaml", "a b"):
        with pytest.raises(UsageError):
            R.check_job_name(bad)


async def test_a_real_worker_treats_a_halted_job_as_paused(root, tmp_path):
    from ppss_helpers import finish, start_worker, wait_for
    job = await make_job(root, "h", items=[b"a", b"b"], command='printf "%s\\n" "$ITEM" >> "$LOG"')
    await job.write_atomic(L.CONTROL_FILE, Control().with_halt("3 failed").to_yaml())
    proc = start_worker(root.path("h"), "--slots", "2", "--node-name", "n1", "-q", env=env_for(tmp_path))
    try:
        status_file = tmp_path / "root" / "h" / L.NODES_DIR / "n1.json"
        wait_for(lambda: status_file.exists() and json.loads(status_file.read_bytes())["state"] == "paused",
                 20, "the worker paused by the halt")
        time.sleep(1.5)
        assert not (tmp_path / "ran.log").exists()  # nothing started while halted
        await resume_halted(job, 0)
        code, _, err = finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, err
    assert sorted((tmp_path / "ran.log").read_bytes().splitlines()) == [b"a", b"b"]


async def test_retry_by_ids_and_through_the_jobs_own_address_marks_it_active(root, tmp_path):
    await make_job(root, "j")
    assert run_local(root, "j", tmp_path) == 1
    await R.mark_finished(root, "j", 3, 3)
    direct = LocalStore(root.path("j"))  # the job's own address, as the console opens it
    assert await R.retry_failed(direct, ids=[L.item_id(b"bad-3"), "0" * 24]) == 1
    assert await R.list_active(root) == ["j"]
    assert [f.name for f in (tmp_path / "root" / "j" / L.RETRY_DIR).iterdir()] == [f"{L.item_id(b'bad-3')}.2"]
    assert (await read_job_status(direct)).failed == 2
