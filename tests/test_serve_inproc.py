"""A serving worker (``ppss-worker ROOT``, worker/serve.py) in this process over a LocalStore
root: jobs taken up while serving, the slot pool's priority and tail rules, halt, fleet.yaml,
the end of a job under a root, and a per-cycle cost that does not grow with finished jobs.
(Real sshd and subprocess workers: tests/test_serve.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ppss_helpers import Job, assert_exactly_once, items_n
from worker import layout as L
from worker.clock import FakeClock
from worker.control import parse_control
from worker.errors import EXIT_OK
from worker.fleet import FLEET_FILE
from worker.jobsroot import ACTIVE_DIR, mark_active
from worker.serve import Server
from worker.store import FaultyStore, LocalStore

pytestmark = pytest.mark.timeout(90)


class Serving:
    """One in-process serving worker on a root, and what it logged."""

    def __init__(self, root: Path, node: str = "n1", slots: int = 2, store=None) -> None:
        self.store = store or LocalStore(str(root))
        self.lines: list[str] = []
        self.server = Server(self.store, node, slots, log=self.lines.append, clock=FakeClock(), cycle=0.2)
        self.task: asyncio.Task | None = None

    def start(self) -> "Serving":
        self.task = asyncio.create_task(self.server.run(handle_signals=False))
        return self

    async def result(self, timeout: float = 60) -> int:
        try:
            return await asyncio.wait_for(self.task, timeout)
        finally:
            await self.store.close()


async def add_job(root: Path, name: str, items: list[bytes], command: str = "true", **kw) -> Job:
    job = Job(root / name)
    store = await job.init_here(items, command, **kw)
    await store.close()
    await mark_active(LocalStore(str(root)), name)
    return job


def fleet(root: Path, text: str) -> None:
    tmp = root / "fleet.yaml.tmp"
    tmp.write_text(text)
    tmp.rename(root / FLEET_FILE)


async def until(pred, what: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finished(root: Path, name: str) -> bool:
    return (root / name / "finished.json").exists() and not (root / ACTIVE_DIR / name).exists()


async def stop_fleet(root: Path, serving: Serving) -> None:
    fleet(root, "state: stopped\n")
    assert await serving.result() == EXIT_OK


async def test_serves_a_job_made_before_and_one_made_while_serving(tmp_path) -> None:
    (tmp_path / "root").mkdir()
    root = tmp_path / "root"
    a = await add_job(root, "a", items_n(30))
    s = Serving(root).start()
    await until(lambda: finished(root, "a"), "job a finished")
    b = await add_job(root, "b", items_n(20, "b"), command='test "$ITEM" != "b 0007"')
    await until(lambda: finished(root, "b"), "job b finished")
    assert json.loads((root / "a" / "finished.json").read_text())["done"] == 30
    assert json.loads((root / "b" / "finished.json").read_text())["failed"] == 1
    status = json.loads((root / L.status_path("n1")).read_text())
    assert status["state"] == "serving" and status["jobs"] == [] and status["slots"] == 2
    await stop_fleet(root, s)
    assert_exactly_once(a, items_n(30), recount=False)
    assert_exactly_once(b, items_n(20, "b"), failed={b"b 0007": 1}, recount=False)
    assert json.loads((root / L.status_path("n1")).read_text())["state"] == "stopped"


async def test_a_higher_priority_job_made_later_runs_before_the_rest_of_a_low_one(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    low = Job(root / "low")
    await add_job(root, "low", items_n(12, "low"), command=low.timed("sleep 0.1"))
    s = Serving(root, slots=1).start()
    await until(lambda: len(low.executions()) >= 2, "low started")
    high = Job(root / "high")
    await add_job(root, "high", items_n(5, "high"), command=high.timed("sleep 0.1"), priority=5)
    await until(lambda: finished(root, "low") and finished(root, "high"), "both finished")
    await stop_fleet(root, s)
    hi = high.executions()
    first, last = min(e[2] for e in hi), max(e[3] for e in hi)
    low_between = [e for e in low.executions() if first < e[2] < last]
    assert len(hi) == 5 and len(low_between) <= 1, (hi, low_between)
    assert [e for e in low.executions() if e[2] > last], "the low job's rest ran after the high one"


async def test_a_jobs_tail_is_filled_by_the_next_job(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    a, b = Job(root / "a"), Job(root / "b")
    await add_job(root, "a", [b"long", b"q1", b"q2", b"q3"],
                  command=a.timed('if [ "$ITEM" = long ]; then sleep 2; fi'))
    await add_job(root, "b", items_n(12, "b"), command=b.timed("sleep 0.2"))
    s = Serving(root, slots=4).start()
    await until(lambda: finished(root, "a") and finished(root, "b"), "both finished")
    await stop_fleet(root, s)
    long = [e for e in a.executions() if e[0] == "long"][0]
    during = [e for e in b.executions() if e[2] < long[3] - 0.3]
    # while a's last item ran, b's items held the 3 other slots
    assert len(during) >= 6, (long, b.executions())


async def test_a_job_halts_itself_and_acts_as_paused(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # Every item fails, slowly enough that the job is far from its end when the halt (checked
    # once a second) comes, whatever order the items are swept in.
    job = await add_job(root, "j", [b"bad%d" % i for i in range(30)], command="sleep 0.3; exit 3", halt="2")
    s = Serving(root, slots=1).start()
    await until(lambda: parse_control((job / L.CONTROL_FILE).read_bytes()).state == "halted", "halted", 40)
    control = parse_control((job / L.CONTROL_FILE).read_bytes())
    assert control.halted.endswith(" failed") and 3 <= int(control.halted.split()[0]) <= 10  # past 2
    await asyncio.sleep(1.0)  # a running item may still end

    def records() -> int:
        return sum(1 for p in (job / L.FAILED_DIR).rglob("*") if p.is_file())
    failed = records()
    await asyncio.sleep(1.5)
    assert records() == failed  # nothing new starts
    assert failed < 30 and not finished(root, "j") and "j" in s.server.jobs
    assert [line for line in s.lines if f"halted: {control.halted}" in line]
    await stop_fleet(root, s)


async def test_draining_a_node_through_fleet_yaml(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    fleet(root, "state: running\nnodes:\n  n1: {state: paused}\n")
    job = Job(root / "j")
    await add_job(root, "j", items_n(20), command=job.timed("sleep 0.02"))
    n1, n2 = Serving(root, "n1").start(), Serving(root, "n2").start()
    await until(lambda: finished(root, "j"), "job finished")
    assert {e[1] for e in job.executions()} == {"n2"}
    assert json.loads((root / L.status_path("n1")).read_text())["state"] == "paused"
    fleet(root, "state: stopped\n")
    assert await n1.result() == EXIT_OK and await n2.result() == EXIT_OK
    assert_exactly_once(job, items_n(20), recount=False)


async def test_fleet_slots_bound_the_node_over_all_jobs(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    fleet(root, "nodes:\n  n1: {slots: 1}\n")
    a, b = Job(root / "a"), Job(root / "b")
    await add_job(root, "a", items_n(4, "a"), command=a.timed("sleep 0.1"))
    await add_job(root, "b", items_n(4, "b"), command=b.timed("sleep 0.1"))
    s = Serving(root, "n1", slots=8).start()
    await until(lambda: finished(root, "a") and finished(root, "b"), "both finished")
    await stop_fleet(root, s)
    runs = sorted(a.executions() + b.executions(), key=lambda e: e[2])
    assert all(x[3] <= y[2] + 0.01 for x, y in zip(runs, runs[1:])), "two items overlapped on 1 slot"


async def test_a_retried_job_is_attached_again(tmp_path) -> None:
    from worker.jobsroot import job_store, retry_failed
    root = tmp_path / "root"
    root.mkdir()
    flag = tmp_path / "fixed"
    job = await add_job(root, "j", items_n(6), command=f'test "$ITEM" != "item 0003" || test -e {flag}')
    s = Serving(root).start()
    await until(lambda: finished(root, "j"), "first run")
    flag.touch()
    rootstore = LocalStore(str(root))
    assert await retry_failed(job_store(rootstore, "j")) == 1
    await until(lambda: finished(root, "j") and not list((job / L.RETRY_DIR).iterdir()), "second run")
    assert json.loads((job / "finished.json").read_text())["failed"] == 0
    await stop_fleet(root, s)
    done, failed = job.records()
    assert len(done) == 6 and not failed and all(n == 1 for n in done.values())


class CountingStore(FaultyStore):
    def __init__(self, inner) -> None:
        super().__init__(inner, [])
        self.ops: list[tuple[str, str]] = []

    def _check(self, op: str, path: str) -> None:
        self.ops.append((op, path))


async def test_finished_jobs_cost_a_serving_worker_nothing_per_cycle(tmp_path) -> None:
    """1,000 finished jobs (job.yaml + finished.json, not in active/): the same few requests per cycle."""
    root = tmp_path / "root"
    (root / ACTIVE_DIR).mkdir(parents=True)
    (root / L.NODES_DIR).mkdir()
    counts = []
    for n in (0, 1000):
        for i in range(len(counts) and n):
            d = root / f"old{i:04d}"
            d.mkdir()
            (d / L.JOB_FILE).write_text("format: 1\n")
            (d / "finished.json").write_text('{"done": 1, "failed": 0, "at": 0}')
        store = CountingStore(LocalStore(str(root)))
        server = Server(store, "n1", 2, clock=FakeClock())
        for _ in range(3):
            await server.cycle()
            await server.write_status()
        store.ops.clear()
        await server.cycle()
        await server.write_status()
        counts.append(list(store.ops))
    assert len(counts[0]) == len(counts[1]) <= 4, counts
    assert not [p for _, p in counts[1] if p.startswith("old")]


class Member:
    """What the slot pool reads of a job's NodeState."""

    def __init__(self, name: str, priority: int = 0, created: float = 0.0, running: int = 0, queue: int = 0,
                 state: str = "running", slots: int = 4, exhausted: bool = False) -> None:
        from types import SimpleNamespace
        self.spec = SimpleNamespace(created_epoch=created)
        self.store = SimpleNamespace(label=name)
        self.running = dict.fromkeys(range(running))
        self.queue = [object()] * queue
        self.state, self.slots, self.exhausted, self.finished = state, slots, exhausted, False
        self.prio = priority
        self.wake = asyncio.Event()

    def priority(self) -> int:
        return self.prio

    def effective(self):
        return self.state, self.slots


def pool_of(slots: int, *members: Member):
    from worker.slotpool import SlotPool
    pool = SlotPool(slots)
    for m in members:
        pool.join(m)
    return pool


def test_slot_pool_start_rule() -> None:
    old, new = Member("old", created=1, queue=2), Member("new", created=2, queue=2)
    pool = pool_of(4, old, new)
    assert pool.may_start(old) and not pool.may_start(new)  # the older job first
    high = Member("high", priority=5, created=3, queue=1)
    pool.join(high)
    assert pool.may_start(high) and not pool.may_start(old)  # priority over age
    high.state = "paused"
    assert pool.may_start(old)  # a paused job's claims do not block the others
    high.state, high.slots, high.running = "running", 1, {0: None}
    assert pool.may_start(old)  # nor does a job at its own slot limit
    old.queue = []
    assert pool.may_start(new)
    full = pool_of(2, Member("a", running=2), Member("b", queue=1))
    assert not full.may_start(full.members[1])  # no free node slot


def test_slot_pool_claim_rule() -> None:
    a, b = Member("a", created=1, running=3), Member("b", created=2)
    pool = pool_of(4, a, b)
    assert pool.best_with_work() is a
    assert pool.claim_allowance(a, 9) == 9  # the best job claims ahead as it likes
    assert pool.claim_allowance(b, 9) == 1  # the others only for idle slots
    a.queue = [object()]
    assert pool.claim_allowance(b, 9) == 0  # ... not already covered by a's claims
    a.exhausted = True  # a's tail: nothing left for it to claim
    assert pool.best_with_work() is b and pool.claim_allowance(b, 9) == 9
    assert pool.claim_allowance(a, 9) == 1  # it keeps looking, one at a time (its end check)
    for m in pool.members:
        m.wake.clear()
    pool.set(4, "paused")
    assert pool.members and all(m.wake.is_set() for m in pool.members)


async def test_a_priority_raised_in_control_yaml_takes_effect_live(tmp_path) -> None:
    from worker.jobops import update_control
    root = tmp_path / "root"
    root.mkdir()
    low, late = Job(root / "low"), Job(root / "late")
    # (low has 4 s of work: far more than the time to see the change and run late's 0.4 s)
    await add_job(root, "low", items_n(40, "low"), command=low.timed("sleep 0.1"))
    s = Serving(root, slots=1).start()
    await until(lambda: len(low.executions()) >= 1, "low started")
    await add_job(root, "late", items_n(4, "late"), command=late.timed("sleep 0.1"))
    await asyncio.sleep(0.6)
    assert not late.executions()  # newer, same priority: waits for the older job
    store = LocalStore(str(root / "late"))
    await update_control(store, lambda c: c.with_priority(3))
    await until(lambda: finished(root, "late"), "the raised job finished")
    assert not finished(root, "low") and len(low.executions()) < 40
    await until(lambda: finished(root, "low"), "low finished")
    await stop_fleet(root, s)



async def test_sigterm_releases_every_jobs_claims_and_exits_143(tmp_path) -> None:
    import signal
    from worker.jobstatus import NodeStatus
    root = tmp_path / "root"
    root.mkdir()
    jobs = [await add_job(root, n, items_n(6, n), command='sleep 30; : "$ITEM"') for n in ("a", "b")]
    s = Serving(root, slots=3).start()
    await until(lambda: s.server.pool.used() == 3 and len(s.server.jobs) == 2, "three items running")
    s.server.interrupt(signal.SIGTERM)
    assert await s.result(timeout=20) == 128 + signal.SIGTERM
    for job in jobs:
        status = NodeStatus.from_json((job / L.status_path("n1")).read_bytes())
        assert not status.running and not status.claims and status.state == "stopped", status
        assert not list((job / L.DONE_DIR).rglob("*-*")) and not (job / "finished.json").exists()
    assert json.loads((root / L.status_path("n1")).read_text())["state"] == "stopped"
    for job in jobs:  # the next serving worker runs them all, each once
        (job / L.CONTROL_FILE).write_text("state: running\n")
    for job in jobs:
        (job / L.JOB_FILE).write_text((job / L.JOB_FILE).read_text().replace("sleep 30", "sleep 0"))
    s2 = Serving(root, slots=3).start()
    await until(lambda: finished(root, "a") and finished(root, "b") and not s2.server.jobs, "both finished")
    await stop_fleet(root, s2)
    for job, name in zip(jobs, "ab"):
        assert_exactly_once(job, items_n(6, name), recount=False)


async def test_a_broken_job_is_said_once_and_the_others_run(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for name, text in (("broken", "command: [\n"), ("typed", "format: 1\ncommand: true\ntotal: 1\n")):
        (root / name).mkdir()
        (root / name / L.JOB_FILE).write_text(text)
        await mark_active(LocalStore(str(root)), name)
    job = await add_job(root, "good", items_n(5))
    s = Serving(root).start()
    await until(lambda: finished(root, "good"), "the good job finished")
    await asyncio.sleep(0.6)  # a few more cycles
    for name in ("broken", "typed"):
        said = [line for line in s.lines if line.startswith(f"job {name}: ")]
        assert len(said) == 1 and "trying again in 30 s" in said[0] and "\n" not in said[0], s.lines
    assert not s.task.done()
    await stop_fleet(root, s)
    assert_exactly_once(job, items_n(5), recount=False)
