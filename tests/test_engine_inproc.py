"""The real Worker in this process, over LocalStore, on a fake clock: the rules for the end of
the job, taking over a lost node, the claim-ahead bound and control.yaml, without subprocess
workers or sshd (those stay in test_engine_*.py and test_fault_tolerance.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ppss_helpers import Job, assert_exactly_once, items_n
from worker import layout as L
from worker.claims import Candidate, Claims
from worker.clock import FakeClock
from worker.engine import Worker
from worker.errors import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_STOPPED
from worker.jobops import set_state
from worker.jobstatus import NodeStatus, read_spec
from worker.store import Fault, FaultyStore, LocalStore, StoreError

pytestmark = pytest.mark.timeout(60)


class Node:
    """One in-process worker and what it logged."""

    def __init__(self, root: str, spec, name: str, slots: int = 2, clock: FakeClock | None = None) -> None:
        self.store = LocalStore(root)
        self.lines: list[str] = []
        self.clock = clock or FakeClock()
        self.worker = Worker(self.store, spec, name, slots, log=self.lines.append, job_path=root, clock=self.clock)
        self.task: asyncio.Task | None = None

    def start(self) -> "Node":
        self.task = asyncio.create_task(self.worker.run())
        return self

    async def result(self, timeout: float = 30) -> int:
        try:
            return await asyncio.wait_for(self.task, timeout)
        finally:
            await self.store.close()

    def logged(self, fragment: str) -> list[str]:
        return [line for line in self.lines if fragment in line]


async def make_job(tmp_path, items: list[bytes], command: str = "true", **kw):
    store = await Job(tmp_path / "job").init_here(items, command, **kw)
    return store.root, store, await read_spec(store)


async def until(pred, what: str, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_two_workers_end_the_job_together(tmp_path) -> None:
    items = items_n(120)
    root, _, spec = await make_job(tmp_path, items, chunk_size=16)
    a, b = Node(root, spec, "a").start(), Node(root, spec, "b").start()
    assert await a.result() == EXIT_OK and await b.result() == EXIT_OK
    assert_exactly_once(Job(root), items, recount=False)
    # the end was decided on the counters (no item left behind to claim)
    assert not a.logged("items left behind") and not b.logged("items left behind")
    for node in (a, b):
        status = NodeStatus.from_json((tmp_path / "job" / L.status_path(node.worker.st.node)).read_bytes())
        assert status.state == "finished" and status.draining
    # the node that found the end said so for the other one (and the console)
    mark = json.loads((tmp_path / "job" / "finished.json").read_bytes())
    assert mark["done"] == len(items) and mark["failed"] == 0 and mark["at"] > 0


async def test_a_draining_node_ends_on_finished_json_without_reading_every_node(tmp_path) -> None:
    """Between its full checks (every END_FULL_CHECK s of its clock) a draining node reads only
    finished.json: O(1) requests per look, so a fleet's tail is O(N) on the master. When
    another node writes it, this one ends with the job's failed count it says."""
    items = items_n(4)
    root, store, spec = await make_job(tmp_path, items, lease=30.0)
    clock = FakeClock()
    await ghost_holding(store, spec, items[:1], clock)  # live (its clock does not move): busy
    node = Node(root, spec, "a", clock=clock).start()
    end = node.worker.end
    # (draining is set before the first full check's writes and reads: wait for the check itself)
    await until(lambda: node.worker.st.counters.done == 3 and node.worker.st.draining and end.last_check > 0,
                "the free items and the first full check")
    checks, looks, check, found = [], [], end.check, end.found_finished

    async def counted_check(*args):
        checks.append(1)
        return await check(*args)

    async def counted_look():
        looks.append(1)
        return await found()

    end.check, end.found_finished = counted_check, counted_look
    await asyncio.sleep(0.5)  # several looks go by: no full check (the clock stands still)
    assert not checks and len(looks) >= 2 and not node.task.done()
    (tmp_path / "job" / "finished.json").write_text('{"done": 3, "failed": 1, "at": 1}')
    assert await node.result(15) == EXIT_ITEMS_FAILED  # (after waiting for the ghost to end: joblogfix)


async def test_a_failed_item_ends_the_job_with_status_1(tmp_path) -> None:
    items = [b"ok1", b"bad", b"ok2"]
    root, _, spec = await make_job(tmp_path, items, command='test "$ITEM" != bad')
    node = Node(root, spec, "a").start()
    assert await node.result() == EXIT_ITEMS_FAILED
    assert_exactly_once(Job(root), items, failed={b"bad": 1}, recount=False)
    assert node.worker.st.counters.failed == 1


async def ghost_holding(store, spec, items: list[bytes], clock: FakeClock) -> list[str]:
    """A node "ghost" that claimed ``items`` and wrote its status file, then went silent."""
    token = L.owner_token("ghost", "dead0001")
    won = await Claims(store, token).claim([Candidate(L.item_id(i), i) for i in items])
    assert len(won) == len(items)
    status = NodeStatus(name="ghost", state="running", host="elsewhere", pid=1, run_id="dead0001", slots=1,
                        claims=tuple((c.lock, L.item_to_json(c.item)) for c in won),
                        started=clock.wall(), updated=clock.wall())
    await store.write_atomic(L.status_path("ghost"), status.to_json())
    return [c.lock for c in won]


async def test_a_lost_nodes_items_are_taken_over_after_the_lease(tmp_path) -> None:
    items = items_n(6)
    root, store, spec = await make_job(tmp_path, items, lease=30.0)
    clock = FakeClock()
    await ghost_holding(store, spec, items[:2], clock)
    node = Node(root, spec, "a", clock=clock).start()
    # It runs the 4 free items, then waits: the ghost is busy, and not yet silent for a lease.
    await until(lambda: node.worker.st.counters.done == 4 and node.worker.st.draining, "the free items")
    await asyncio.sleep(1.5)  # a lost-node watch and several end checks go by
    assert node.worker.st.counters.done == 4 and not node.task.done()
    clock.advance(31)  # the ghost's status file is now older than the lease
    assert await node.result() == EXIT_OK
    assert_exactly_once(Job(root), items, recount=False)
    taken = node.logged("took over 2 of its items") + node.logged("took 2 items left behind")
    assert len(taken) == 1, node.lines


async def test_take_over_puts_the_lost_claims_first_once(tmp_path) -> None:
    items = items_n(4)
    root, store, spec = await make_job(tmp_path, items, lease=30.0)
    clock = FakeClock()
    locks = await ghost_holding(store, spec, items[:3], clock)
    node = Node(root, spec, "a", clock=clock)
    leases = node.worker.leases
    mine = (await Claims(node.store, node.worker.st.token).claim([Candidate(L.item_id(items[3]), items[3])]))[0]
    node.worker.st.queue.append(mine)
    assert await leases.take_over_lost() == 0  # not silent long enough
    clock.advance(31)
    # No rate known: the bound is slots + 1 = 3 held; one is ours, so 2 are kept and the third
    # is handed to the retry queue (its lock removed) for any node to claim.
    assert await leases.take_over_lost() == 2
    queued = [c.lock for c in node.worker.st.queue]
    assert queued[:2] == locks[:2] and queued[2] == mine.lock  # run before our own, in order
    assert await leases.take_over_lost() == 0  # the same silence is handled once
    assert all((tmp_path / "job" / L.lock_path(lock) / node.worker.st.token).is_dir() for lock in locks[:2])
    assert not (tmp_path / "job" / L.lock_path(locks[2])).exists()
    assert (tmp_path / "job" / L.RETRY_DIR / locks[2]).read_bytes() == items[2]
    assert node.logged("took over 2 of its items, 1 handed to the retry queue")
    await node.store.close()


def ran_by(root) -> dict[bytes, str]:
    """item -> the node whose done record it is (from the job log)."""
    return {L.item_from_json(e["item"]): e["node"] for e in Job(root).joblog() if e["event"] == "done"}


async def test_a_lost_nodes_items_spread_over_every_live_node(tmp_path) -> None:
    """Fair tail: a take-over keeps no more than the claim-ahead bound; the rest goes to the
    retry queue and every live node runs part of it."""
    items = items_n(40)
    root, store, spec = await make_job(tmp_path, items, command='sleep 0.02; : "$ITEM"', lease=30.0)
    clock = FakeClock()
    await ghost_holding(store, spec, items[:30], clock)
    nodes = [Node(root, spec, name, slots=1, clock=clock).start() for name in ("a", "b", "c")]
    await until(lambda: sum(n.worker.st.counters.done for n in nodes) == 10
                and all(n.worker.st.draining for n in nodes), "the free items")
    held: list[int] = []
    for n in nodes:  # what each node holds whenever it starts an item
        start = n.worker.items.start

        def counting(claim, n=n, start=start):
            held.append(len(n.worker.st.queue) + len(n.worker.st.running) + 1)
            start(claim)
        n.worker.items.start = counting
    clock.advance(31)
    for n in nodes:
        assert await n.result() == EXIT_OK
    assert_exactly_once(Job(root), items, recount=False)
    by = ran_by(root)
    ghosts = [by[i] for i in items[:30]]
    assert min(ghosts.count(name) for name in "abc") >= 1, ghosts  # every live node ran part of it
    # on a still clock the rate is unknown: each node holds at most slots + 1 = 2
    assert max(held) <= 2, held
    said = [line for n in nodes for line in n.lines if "retry queue" in line]
    assert said, [n.lines for n in nodes]


async def test_items_left_behind_at_the_end_are_offered_to_every_node(tmp_path) -> None:
    """The end-of-job check claims no more than the claim-ahead bound of never-claimed items
    and offers the rest through the retry queue."""
    items = items_n(30)
    root, store, spec = await make_job(tmp_path, items, command='sleep 0.02; : "$ITEM"', chunk_size=10)
    # Every chunk is marked swept: the sweepers skip all items, as after a sweeper died mid-chunk.
    for i in range(spec.chunks):
        await store.mkdir(f"{L.SWEEP_DIR}/{L.chunk_name(i)}")
        await store.mkdir(f"{L.SWEPT_DIR}/{L.chunk_name(i)}")
    nodes = [Node(root, spec, name, slots=1).start() for name in ("a", "b", "c")]
    for n in nodes:
        assert await n.result() == EXIT_OK
    assert_exactly_once(Job(root), items, recount=False)
    by = ran_by(root)
    counts = sorted(list(by.values()).count(name) for name in "abc")
    assert counts[0] >= 1, counts  # spread, not all run by the first node to look
    took = [line for n in nodes for line in n.logged("end of job check: took")]
    assert any("offered" in line for line in took), took
    assert all(int(line.split("took ")[1].split()[0]) <= 2 for line in took), took


async def test_claim_ahead_covers_the_claims_round_trips_and_no_more(tmp_path) -> None:
    """The node holds its slots plus the bandwidth-delay product: its rate times the time a
    claim takes. The fake clock moves 10 ms per finished item (2 slots: ~100 items/s) and 50 ms
    per claim (the master far away): the node then claims several ahead, never beyond the bound."""
    slots = 2
    items = items_n(200)
    root, _, spec = await make_job(tmp_path, items)
    clock = FakeClock()
    node = Node(root, spec, "a", slots=slots, clock=clock)
    st, claimer = node.worker.st, node.worker.claimer
    held: list[tuple[int, int]] = []  # (held once a batch is won, the bound then)
    sweep, finished = claimer.sweeper.next, claimer.note_finished

    async def counted(want):
        now = (len(st.queue) + len(st.running) + want, claimer.target_queue())
        clock.advance(0.05)
        candidates = await sweep(want)
        assert len(candidates) <= want
        if candidates:
            held.append(now)
        return candidates

    def finish():
        clock.advance(0.01)
        finished()
    claimer.sweeper.next, node.worker.items.on_finished = counted, finish
    node.start()
    assert await node.result() == EXIT_OK
    assert held[0][0] == slots + 1  # no rate known yet: the slots plus one
    assert all(h <= bound for h, bound in held), held
    assert max(h for h, _ in held) >= slots + 5, held  # ~100/s x (0.05 + 2 x 0.05 s) = 15 ahead
    assert max(h for h, _ in held) <= 3 * slots + 64
    assert_exactly_once(Job(root), items, recount=False)


def test_claim_ahead_is_the_bandwidth_delay_product_bounded() -> None:
    from worker.claimer import claim_ahead
    assert claim_ahead(0.0, 0.5, 2) == 1  # rate not known
    assert claim_ahead(0.2, 0.1, 2) == 1  # 10 s items: one ahead, the rest stays for others
    assert claim_ahead(10, 0.0005, 2) == 1  # 0.2 s items, master on loopback
    assert claim_ahead(10, 0.1, 2) == 3  # 0.2 s items, claims taking 100 ms (50 ms round trips)
    assert claim_ahead(300, 0.02, 2) == 27  # trivial items, 10 ms away
    assert claim_ahead(1e9, 1.0, 2) == 2 * 2 + 64  # the bound


async def test_two_items_ending_together_do_not_make_a_node_hoard(tmp_path) -> None:
    """Two slots ending at the same instant read as a huge rate: until the rate rests on
    RATE_MIN_ITEMS items over RATE_MIN_SPAN s, the look-ahead keeps the start-up bound
    (a node that started first took 72 of a 90-item job before this)."""
    from worker.claimer import RATE_MIN_ITEMS, RATE_MIN_SPAN, START_AHEAD
    root, _, spec = await make_job(tmp_path, items_n(10))
    clock = FakeClock()
    claimer = Node(root, spec, "a", slots=2, clock=clock).worker.claimer
    claimer.note_finished()
    clock.advance(0.001)
    claimer.note_finished()  # 1 ms apart: 1,000 items/s by the formula
    assert claimer.target_queue() == 2 + 2 * 2 + START_AHEAD + 2  # (+1 per item finished: a slow start)
    for _ in range(RATE_MIN_ITEMS):
        clock.advance(RATE_MIN_SPAN / RATE_MIN_ITEMS)
        claimer.note_finished()
    clock.advance(0.01)
    assert claimer.rate_settled() and claimer.target_queue() <= 2 + 2 * 2 + START_AHEAD  # ~16/s: a few


async def test_a_quick_node_grows_its_start_up_bound_with_the_items_it_finished(tmp_path) -> None:
    """Before the rate settles, the bound grows by one per item finished (a slow start): at 500
    items/s with claims taking 25 ms (a master 10 ms away), 20 items finished in 40 ms let the
    node hold 20 more than at its start, not the same few per round trip for RATE_MIN_SPAN."""
    from worker.claimer import START_AHEAD
    root, _, spec = await make_job(tmp_path, items_n(10))
    clock = FakeClock()
    claimer = Node(root, spec, "a", slots=2, clock=clock).worker.claimer
    claimer.latency = 0.025
    for _ in range(20):
        claimer.note_finished()
        clock.advance(0.002)
    assert not claimer.rate_settled()
    assert claimer.target_queue() == 2 + 2 * 2 + START_AHEAD + 20


async def test_a_fast_node_leaves_the_start_up_bound(tmp_path) -> None:
    """At 500 items/s the rate's 32-item window spans 64 ms, less than RATE_MIN_SPAN: the rate
    still settles once the first item ended RATE_MIN_SPAN ago, and the look-ahead grows to the
    bandwidth-delay product (it stayed at the start-up bound: one round trip per item at 10 ms)."""
    from worker.claimer import RATE_MIN_SPAN, START_AHEAD
    root, _, spec = await make_job(tmp_path, items_n(10))
    clock = FakeClock()
    claimer = Node(root, spec, "a", slots=2, clock=clock).worker.claimer
    claimer.latency = 0.025  # claims take 25 ms (a master 10 ms away)
    for _ in range(int(RATE_MIN_SPAN * 500) + 10):
        claimer.note_finished()
        clock.advance(0.002)
    assert claimer.rate_settled()
    assert claimer.target_queue() >= 2 + 40 > 2 + 2 * 2 + START_AHEAD  # ~480/s x (0.05 + 2 x 0.025)


async def test_control_pause_releases_claims_and_stop_ends_the_worker(tmp_path) -> None:
    items = items_n(40)
    root, store, spec = await make_job(tmp_path, items, command='sleep 0.05; : "$ITEM"')
    node = Node(root, spec, "a", slots=2).start()
    st = node.worker.st
    await until(lambda: st.counters.done >= 4, "a few items")
    await set_state(store, "paused")
    await until(lambda: not st.running and not st.queue, "the pause to take effect")
    done = st.counters.done
    await asyncio.sleep(0.8)  # paused: nothing starts, nothing is held
    assert st.counters.done == done and not st.running and not st.queue
    assert node.logged("control: paused, 2 slots")
    await set_state(store, "stopped")
    assert await node.result() == EXIT_STOPPED
    assert st.reported_state() == "stopped"
    assert len(Job(root).records()[0]) == done < len(items)
    assert not list((tmp_path / "job" / L.LOCKS_DIR).rglob("*@*"))  # every claim given back


def no_partial_files(root) -> None:
    """No empty or temporary record, log or status file is left in the job directory."""
    from pathlib import Path
    for top in (L.DONE_DIR, L.FAILED_DIR, L.LOGS_DIR, L.NODES_DIR, L.RETRY_DIR):
        for f in Path(root, top).rglob("*"):
            assert ".tmp-" not in f.name, f
            if f.is_file():
                assert f.stat().st_size > 0, f"empty file {f}"


def final_status(root, node: str) -> NodeStatus:
    from pathlib import Path
    return NodeStatus.from_json(Path(root, L.status_path(node)).read_bytes())


async def test_a_full_disk_on_the_master_stops_the_worker_and_a_restart_finishes(tmp_path) -> None:
    """FaultyStore: ENOSPC when staging the last item's log (one slot: nothing else runs then).
    The worker ends with that one-line error (ppss-worker's exit status 4) and gives the item
    back unrecorded; its final status says why; restarted, it runs the item and ends the job."""
    items = items_n(5)
    root, store, spec = await make_job(tmp_path, items, command='echo "$ITEM"')
    node = Node(root, spec, "a", slots=1)
    faulty = FaultyStore(node.store, [Fault("nospace", at=len(items), op="write", path="logs/*")])
    node.worker = Worker(faulty, spec, "a", 1, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()
    with pytest.raises(StoreError, match=r"/logs/.*: no space left on the master$") as err:
        await node.result()
    assert err.value.exit_code == 4 and len(faulty.log) == 1
    job = Job(root)
    assert len(job.records()[0]) == len(items) - 1 and not job.records()[1]
    status = final_status(root, "a")
    assert status.state == "error" and "no space left on the master" in status.error
    assert len(job.joblog()) == len(items) - 1  # flushed on the way out
    no_partial_files(root)
    again = Node(root, spec, "a").start()
    assert await again.result() == EXIT_OK
    assert_exactly_once(job, items, recount=False)


async def test_the_final_status_is_written_on_a_master_that_stays_full(tmp_path) -> None:
    """Every new file fails from the 4th write on (another worker keeps the disk full): the
    final status goes over the node's old status file in place and says `error` and why."""
    items = items_n(5)
    root, store, spec = await make_job(tmp_path, items, command='echo "$ITEM"')
    node = Node(root, spec, "a", slots=1)
    faulty = FaultyStore(node.store, [Fault("nospace", at=4, op="write", count=0)])
    node.worker = Worker(faulty, spec, "a", 1, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()
    with pytest.raises(StoreError, match="no space left on the master"):
        await node.result()
    status = final_status(root, "a")
    assert status.state == "error" and "no space left on the master" in status.error, status
    assert not any("final status not written" in line for line in node.lines), node.lines
    no_partial_files(root)


async def test_a_failed_record_that_cannot_be_written_is_not_written_off(tmp_path) -> None:
    """ENOSPC staging a failed record: the item is given back, not failed for good; once there
    is room it runs again and its failed record is whole (its exit status, not None)."""
    items = [b"ok1", b"bad", b"ok2"]
    root, store, spec = await make_job(tmp_path, items, command='echo out; test "$ITEM" != bad')
    node = Node(root, spec, "a", slots=1)
    faulty = FaultyStore(node.store, [Fault("nospace", op="write", path="failed/*")])
    node.worker = Worker(faulty, spec, "a", 1, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()
    with pytest.raises(StoreError, match="no space left on the master"):
        await node.result()
    job = Job(root)
    assert not job.records()[1] and not list((tmp_path / "job" / L.LOGS_DIR).rglob(f"{L.item_id(b'bad')}*"))
    no_partial_files(root)
    again = Node(root, spec, "a").start()
    assert await again.result() == EXIT_ITEMS_FAILED
    assert_exactly_once(job, items, failed={b"bad": 1}, recount=False)


async def test_a_fatal_error_gives_running_items_back_unrecorded(tmp_path) -> None:
    """Issue 9.1: a lock shard the master refuses (EACCES) while an item runs: the worker stops
    (exit status 4), terminates the item and gives it back instead of recording it failed (143);
    its final status says `error` and why at once; a restart finishes every item."""
    items = items_n(12)
    root, store, spec = await make_job(tmp_path, items, command='sleep 0.4; : "$ITEM"')
    node = Node(root, spec, "a", slots=2)
    faulty = FaultyStore(node.store, [Fault("denied", at=9, op="mkdir", path="locks/*")])
    node.worker = Worker(faulty, spec, "a", 2, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()
    with pytest.raises(StoreError, match="Permission denied") as err:
        await node.result()
    assert err.value.exit_code == 4
    job = Job(root)
    done, failed = job.records()
    assert not failed, failed
    assert len(done) < len(items)
    status = final_status(root, "a")
    assert status.state == "error" and "Permission denied" in status.error and not status.running
    assert len(job.joblog()) == len(done)
    no_partial_files(root)
    again = Node(root, spec, "a", slots=2).start()
    assert await again.result() == EXIT_OK
    assert_exactly_once(job, items, recount=False)


@pytest.mark.parametrize("nth", [1, 2, 3])
async def test_a_claim_failing_half_way_leaves_no_lock_without_its_token(tmp_path, nth: int) -> None:
    """The master refuses a token's mkdir (the second step of a claim, after the lock's): the
    worker stops (4) and gives the whole batch back, so nothing waits for a lease to run out;
    a restart, whose clock never moves, finishes every item exactly once."""
    items = items_n(12)
    root, store, spec = await make_job(tmp_path, items, command='sleep 0.2; : "$ITEM"')
    node = Node(root, spec, "a", slots=2)
    faulty = FaultyStore(node.store, [Fault("denied", at=nth, op="mkdir", path="locks/*/*/a@*")])
    node.worker = Worker(faulty, spec, "a", 2, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()
    with pytest.raises(StoreError, match="Permission denied"):
        await node.result()
    locks = [p for p in (Path(root) / "locks").glob("*/*") if p.is_dir()]
    assert all(any(p.iterdir()) for p in locks), [p.name for p in locks if not any(p.iterdir())]
    again = Node(root, spec, "a", slots=2).start()
    assert await again.result(timeout=20) == EXIT_OK
    assert_exactly_once(Job(root), items, recount=False)


async def test_job_log_lines_lost_to_a_crash_are_restored_at_the_end(tmp_path) -> None:
    """Issue 9.11: the last lines of a SIGKILLed node's job log (never flushed) come back from
    the records once the job has ended (done from the done record, failed with its record)."""
    items = items_n(10) + [b"bad"]
    root, store, spec = await make_job(tmp_path, items, command='test "$ITEM" != bad')
    a = Node(root, spec, "a").start()
    assert await a.result() == EXIT_ITEMS_FAILED
    path = tmp_path / "job" / L.joblog_path("a")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-4]))  # as a SIGKILL leaves it: the last batch never written
    lost = {json.loads(line)["id"] for line in lines[-4:]}
    (tmp_path / "job" / "tmp" / "joblog-suspect").mkdir()  # what a restart after the crash marks
    b = Node(root, spec, "b").start()
    assert await b.result() == EXIT_ITEMS_FAILED
    assert b.logged("4 lines lost to a crash restored"), b.lines
    restored = [e for e in Job(root).joblog("b") if e.get("restored")]
    assert {e["id"] for e in restored} == lost
    assert_exactly_once(Job(root), items, failed={b"bad": 1}, recount=False)
    c = Node(root, spec, "c").start()  # nothing lost any more: nothing restored twice
    assert await c.result() == EXIT_ITEMS_FAILED and not c.logged("restored")


async def test_a_status_the_master_keeps_refusing_stops_the_worker(tmp_path) -> None:
    """The master refuses our status file (nodes/ not writable, the job directory gone): said
    each time, and after three refusals in a row the worker stops (exit status 4) rather than
    run on unseen; its running items are given back."""
    items = items_n(40)
    root, store, spec = await make_job(tmp_path, items, command='sleep 0.2; : "$ITEM"')
    node = Node(root, spec, "a", slots=2)
    faulty = FaultyStore(node.store, [Fault("denied", at=3, op="write", path="nodes/*", count=0)])
    node.worker = Worker(faulty, spec, "a", 2, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()

    async def tick():
        while not node.task.done():
            node.clock.advance(1.0)
            await asyncio.sleep(0.3)
    ticker = asyncio.create_task(tick())
    with pytest.raises(StoreError, match="nodes/a.json.*Permission denied") as err:
        await node.result()
    ticker.cancel()
    assert err.value.exit_code == 4
    assert len(node.logged("Permission denied")) >= 2
    done, failed = Job(root).records()
    assert not failed and len(done) < len(items)
    assert node.logged("final status not written")


async def test_a_job_log_line_torn_by_a_crash_stays_apart(tmp_path) -> None:
    from worker.joblog import JobLog
    (tmp_path / L.JOBLOG_DIR).mkdir()
    path = tmp_path / L.joblog_path("a")
    path.write_bytes(b'{"event": "done", "id": "12')  # a SIGKILL in the middle of an append
    store = LocalStore(str(tmp_path))
    log = JobLog(store, "a", FakeClock())
    log.write({"event": "done", "id": "x"})
    await log.flush()
    log.write({"event": "done", "id": "y"})
    await log.flush()
    await store.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b'{"event": "done", "id": "12' and [json.loads(x)["id"] for x in lines[1:3]] == ["x", "y"]
    assert lines[3] == b""


async def _quiet_setup(tmp_path, b_state: str):
    import time as _time
    from worker.joblogfix import others_quiet
    store = LocalStore(str(tmp_path))
    await store.mkdir(L.NODES_DIR)
    await store.write(L.status_path("a"), NodeStatus("a", "finished").to_json())
    await store.write(L.status_path("b"), NodeStatus("b", b_state, draining=True).to_json())
    clock = {"skew": 0.0}
    task = asyncio.create_task(others_quiet(store, "a", lambda: _time.time() + clock["skew"]))
    await asyncio.sleep(0.25)
    return store, clock, task


async def test_the_first_node_to_end_leaves_the_job_log_check_to_a_later_one(tmp_path) -> None:
    """Node a ended while b was still working: once b's final status appears (b wrote it after
    a's, so b reads a's and does the check), a stops waiting at once and does not check."""
    store, _, task = await _quiet_setup(tmp_path, "running")
    assert not task.done()  # b still working: a waits (it may be the last if b crashed)
    await store.write(L.status_path("b"), NodeStatus("b", "finished").to_json())
    assert await asyncio.wait_for(task, 1.0) is None


async def test_the_last_node_waits_for_a_silent_one_then_checks(tmp_path) -> None:
    """b's status says working but b crashed: once b is silent for three heartbeats, a (the
    last to end) goes on to restore what b's crash lost."""
    store, clock, task = await _quiet_setup(tmp_path, "running")
    assert not task.done()
    clock["skew"] = 10.0  # b has been silent for 10 s
    others = await asyncio.wait_for(task, 2.0)
    assert others is not None and [n.name for n in others] == ["b"]


async def test_a_node_ending_after_all_others_checks_at_once(tmp_path) -> None:
    _, _, task = await _quiet_setup(tmp_path, "finished")
    assert task.done() and [n.name for n in task.result()] == ["b"]


class RecordingStore(FaultyStore):
    """No faults: the order in which operations start and end; ``slow`` ops (op, path) take 0.3 s."""

    def __init__(self, inner, slow: tuple[str, str] | None = None) -> None:
        super().__init__(inner, [])
        self.events: list[tuple[str, str, str]] = []
        self.slow = slow

    async def _do(self, op: str, path: str, *args):
        self.events.append(("start", op, path))
        try:
            if (op, path) == self.slow:
                await asyncio.sleep(0.3)
            return await super()._do(op, path, *args)
        finally:
            self.events.append(("end", op, path))


async def test_no_token_of_a_run_goes_out_before_its_status_file(tmp_path) -> None:
    """The first locks may be made while the first status is written, never a token: another
    node must never find a claim of a run the master has no status file for."""
    import fnmatch
    items = items_n(6)
    root, store, spec = await make_job(tmp_path, items)
    node = Node(root, spec, "a", slots=2)
    rec = RecordingStore(node.store, slow=("replace", L.status_path("a")))  # (a master far away)
    node.worker = Worker(rec, spec, "a", 2, log=node.lines.append, job_path=root, clock=node.clock)
    node.start()
    assert await node.result() == EXIT_OK
    ev = rec.events
    status_written = ev.index(("end", "replace", L.status_path("a")))
    first_token = next(i for i, (kind, op, path) in enumerate(ev)
                       if kind == "start" and op == "mkdir" and fnmatch.fnmatch(path, "locks/*/*/a@*"))
    assert status_written < first_token, ev[:first_token + 1]
    first_lock = next(i for i, (kind, op, path) in enumerate(ev)
                      if kind == "start" and op == "mkdir" and fnmatch.fnmatch(path, "locks/*/*") and "@" not in path)
    assert first_lock < status_written  # (the locks did not wait for it)
    assert_exactly_once(Job(root), items, recount=False)


async def test_a_node_that_loses_its_first_chunk_helps_without_reading_again(tmp_path) -> None:
    """The first look takes and reads a chunk, and lists the markers, in one round trip: a node
    that lost that chunk to another helps in it at once, with what it read (no second read of
    the chunk, no second listing of the markers)."""
    from test_serve_inproc import CountingStore
    from worker.sweep import Sweeper

    items = items_n(100)
    root, store, spec = await make_job(tmp_path, items)
    first = Sweeper(store, spec, "a")
    mine = await first.next(4)
    assert [c.item for c in mine] == items[:4]
    counting = CountingStore(store)
    second = Sweeper(counting, spec, "b")
    theirs = await second.next(4)
    # helping: after a look at where the free items are, from inside the longest run of them
    assert len(theirs) == 4 and all(items.index(c.item) >= 50 for c in theirs), theirs
    assert counting.ops.count(("read", L.chunk_path(0))) == 1, counting.ops
    assert counting.ops.count(("scandir", L.SWEEP_DIR)) + counting.ops.count(("listdir", L.SWEEP_DIR)) <= 1, counting.ops


async def _sweep_round(sweeper, claims: Claims, want: int, state: dict) -> list:
    """What a node's claimer does with its sweeper, one batch (claimer.candidates): after a batch
    that won nothing, look at the locks of up to 64 candidates at once and try the free ones."""
    while True:
        spare = state.get("spare", [])
        if spare:
            cands, state["spare"] = spare[:want], spare[want:]
            break
        cands = await sweeper.next(64 if state.get("missed") else want)
        if not cands:
            return []
        if not state.get("missed"):
            break
        held = await asyncio.gather(*(claims.store.stat(L.lock_path(c.lock)) for c in cands))
        if any(h is not None for h in held):
            sweeper.note_busy([c for c, h in zip(cands, held) if h is not None], set())
        free = [c for c, h in zip(cands, held) if h is None]
        if free:
            cands, state["spare"] = free[:want], free[want:]
            break
    won = await claims.claim(cands)
    state["missed"] = not won
    state["lost"] = state.get("lost", 0) + len(cands) - len(won)
    sweeper.note_busy(cands, {c.lock for c in won})
    return won


@pytest.mark.parametrize("nodes", [2, 3, 5])
async def test_helpers_of_one_chunk_start_apart_and_leave_nothing_behind(tmp_path, nodes: int) -> None:
    """One chunk, its sweeper and helpers claiming in turn at one pace (the worst case for
    helpers racing each other): every item claimed once before any node runs out (nothing left
    for the end-of-job check's scan), fair shares, few items lost to another node."""
    from worker.sweep import Sweeper

    items = items_n(600)
    root, store, spec = await make_job(tmp_path, items)
    assert spec.chunks == 1
    names = [f"n{i}" for i in range(nodes)]
    sweepers = {n: Sweeper(store, spec, n) for n in names}
    claims = {n: Claims(store, f"{n}@run") for n in names}
    states: dict[str, dict] = {n: {} for n in names}
    got: dict[str, list[bytes]] = {n: [] for n in names}
    active = list(names)
    while active:
        for n in list(active):
            won = await _sweep_round(sweepers[n], claims[n], 2, states[n])
            got[n] += [c.item for c in won]
            if not won and sweepers[n].exhausted:
                active.remove(n)
                assert sum(map(len, got.values())) == len(items), f"{n} ran out, items left: {len(items) - sum(map(len, got.values()))}"
    assert sorted(item for share in got.values() for item in share) == sorted(items)
    shares = {n: len(g) for n, g in got.items()}
    lost = sum(s.get("lost", 0) for s in states.values())
    assert all(share >= 0.75 * len(items) / nodes for share in shares.values()), shares
    assert lost <= 0.15 * len(items), (lost, shares)  # (the old rule lost 70 and 309 with 3 and 5 nodes)


async def test_a_retry_entry_whose_item_was_done_from_its_chunk_is_dropped(tmp_path) -> None:
    """An item given back (retry/<lock>) and then taken from its chunk by a sweeper and done leaves
    its retry entry behind; the next node to try that entry loses the lock, sees the item done and
    removes the entry (a served job would otherwise never leave active/)."""
    items = items_n(4)
    root, store, spec = await make_job(tmp_path, items)
    a, b, c = (Claims(store, f"{n}@run") for n in "abc")
    item = items[2]
    lock = L.item_id(item)
    (claim,) = await a.claim([Candidate(lock, item)])
    await a.release(claim)  # given back: retry/<lock>, the lock removed
    (again,) = await b.claim([Candidate(lock, item)])  # from its chunk, not from retry/
    assert await b.commit_done(again)
    entry = Candidate(lock, item, from_retry=True)
    assert await c.claim([entry]) == []
    assert await c.drop_done_entries([entry]) == 1
    assert not (tmp_path / "job" / L.RETRY_DIR / lock).exists()
    other = Candidate(L.item_id(items[3]), items[3], from_retry=True)  # not done: kept
    await store.write_atomic(f"{L.RETRY_DIR}/{other.lock}", items[3])
    assert await c.drop_done_entries([other]) == 0
    assert (tmp_path / "job" / L.RETRY_DIR / other.lock).exists()


async def test_an_item_still_running_here_is_not_claimed_again_under_the_same_token(tmp_path) -> None:
    """CI, test_sigstop_past_lease_late_results_refused: a frozen node's claims were given back
    to the retry queue by the node that took over (beyond its claim-ahead bound); thawed, the
    node claimed the retry entry again (same lock, same token) while the old run of that item
    was still going, and the old run's commit then passed the fence: a record from a claim it
    had lost. An item this node runs, queues or commits is not claimed again here."""
    items = items_n(3)
    root, store, spec = await make_job(tmp_path, items)
    node = Node(root, spec, "a")
    st, claimer = node.worker.st, node.worker.claimer
    held, free = (Candidate(L.item_id(i), i, from_retry=True) for i in items[:2])
    (old,) = await claimer.claims.claim([held])
    st.queue.append(old)  # (still ours here: running, queued or committing alike)
    await claimer.claims.release(old)  # what the other node did: retry/<lock>, our token and lock removed
    await claimer.claim([held, free])
    assert [c.lock for c in st.queue] == [held.lock, free.lock]  # the free one only was claimed
    assert not (tmp_path / "job" / L.lock_path(held.lock)).exists()
    assert (tmp_path / "job" / L.RETRY_DIR / held.lock).exists()  # left for any node once our run ends
    assert not await claimer.claims.commit_done(old)  # the old run's result: refused by the fence
    await node.store.close()


async def test_the_retry_queue_is_listed_with_the_chunk_markers_when_moving_on(tmp_path) -> None:
    """A helper whose chunk is done lists the chunk markers to find another; every chunk may be
    swept, and the retry queue is then the last place to look: it is listed at the same time
    (at 10 ms, the last node of a job spent 2-3 round trips more on the two listings in turn),
    and what it offers joins that call's candidates."""
    from worker.sweep import Sweeper

    class SlowListings(LocalStore):
        def __init__(self, root: str) -> None:
            super().__init__(root)
            self.events: list[tuple[str, str]] = []

        async def listdir(self, rel: str):
            self.events.append(("start", rel))
            await asyncio.sleep(0.05)
            self.events.append(("end", rel))
            return await super().listdir(rel)

    items = items_n(8)
    root, store, spec = await make_job(tmp_path, items, chunk_size=4)
    for c in range(spec.chunks):  # every chunk taken and swept by others
        await store.mkdir(f"{L.SWEEP_DIR}/{L.chunk_name(c)}")
        await store.mkdir(f"{L.SWEPT_DIR}/{L.chunk_name(c)}")
    entry = L.item_id(items[5])
    await store.write_atomic(f"{L.RETRY_DIR}/{entry}", items[5])
    slow = SlowListings(root)
    sweeper = Sweeper(slow, spec, "a")
    assert [c.lock for c in await sweeper.next(1)] == [entry]  # (the first call: retry/ first)
    slow.events.clear()
    assert [c.lock for c in await sweeper.next(4)] == [entry]  # (not claimed: offered again)
    starts = [rel for kind, rel in slow.events if kind == "start"]
    first_end = next(i for i, (kind, _) in enumerate(slow.events) if kind == "end")
    assert {L.SWEEP_DIR, L.SWEPT_DIR, L.RETRY_DIR} <= set(starts[:first_end]), slow.events
    assert sweeper.exhausted
    # A call that listed the retry queue already (its poll was due) does not list it again
    # with the markers, nor offers its entries twice.
    sweeper.exhausted, sweeper.retry_seen = False, 0.0
    slow.events.clear()
    assert [c.lock for c in await sweeper.next(4)] == [entry]
    assert [rel for kind, rel in slow.events if kind == "start"].count(L.RETRY_DIR) == 1, slow.events
    await slow.close()


@pytest.mark.parametrize("phase", ["locks", "tokens"])
async def test_a_claim_cancelled_half_way_leaves_no_lock_without_its_token(tmp_path, phase) -> None:
    """A worker stopping (a fatal error, a signal) cancels its claimer: a claim cancelled after
    its mkdirs reached the master, before their answers, left locks without a token, each
    holding its item until its lease ran out. The mkdirs are let finish, and what they won is
    undone (the items then claimable at once)."""
    items = items_n(3)
    root, store, spec = await make_job(tmp_path, items)
    answered = asyncio.Event()

    class SlowAnswers(LocalStore):  # the master did it; the answer is late
        async def mkdir(self, rel, mode=None):
            done = await super().mkdir(rel, mode)
            if rel.count("/") == (2 if phase == "locks" else 3):
                await answered.wait()
            return done

    claims = Claims(SlowAnswers(root), "a@run")
    task = asyncio.create_task(claims.claim([Candidate(L.item_id(i), i) for i in items]))
    await until(lambda: len(list((tmp_path / "job" / "locks").glob("*/*"))) == 3, "the locks made")
    if phase == "tokens":
        await until(lambda: len(list((tmp_path / "job" / "locks").glob("*/*/*"))) == 3, "the tokens made")
    task.cancel()
    await asyncio.sleep(0.05)
    answered.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "job" / "locks").glob("*/*")) == []  # nothing held
    again = await Claims(store, "b@run").claim([Candidate(L.item_id(i), i) for i in items])
    assert len(again) == 3
