"""The ring of watched peers (worker/watchring.py): each node stats a few peers, not all."""

from __future__ import annotations

import os

import pytest

from ppss_helpers import Job, items_n
from worker import layout as L
from worker.clock import FakeClock
from worker.engine import Worker
from worker.jobstatus import NodeStatus, read_spec
from worker.store import LocalStore
from worker.watchring import WATCHED, relist_period, successors, watch_period

pytestmark = pytest.mark.timeout(60)


def test_successors_on_the_ring() -> None:
    names = ["n3", "n1", "n5", "n2", "n4"]
    assert successors(names, "n2", set()) == ["n3", "n4"]
    assert successors(names, "n5", set()) == ["n1", "n2"]  # wraps around
    assert successors(names, "n2", {"n3"}) == ["n4", "n5"]  # settled ones are skipped
    assert successors(names, "n9", set(), k=3) == ["n1", "n2", "n3"]  # not listed yet: placed by name
    assert successors(["n1"], "n1", set()) == []
    # every node is watched by exactly WATCHED others
    watchers = {n: 0 for n in names}
    for n in names:
        for p in successors(names, n, set()):
            watchers[p] += 1
    assert set(watchers.values()) == {WATCHED}


def test_periods_grow_with_the_fleet_not_its_square() -> None:
    assert watch_period(60) == 5 and watch_period(5) == 1.25 and watch_period(2) == 1
    assert relist_period(60, 10) == relist_period(60, 100) == 60
    assert relist_period(60, 1000) == 600  # listings per second over the fleet: N / 60 at most


async def status_file(store, name: str, clock: FakeClock, state: str = "running") -> None:
    st = NodeStatus(name=name, state=state, host="h", pid=1, run_id="r" + name, slots=1,
                    started=clock.wall(), updated=clock.wall())
    await store.write_atomic(L.status_path(name), st.to_json())


async def test_a_node_stats_only_its_watched_peers(tmp_path) -> None:
    store = await Job(tmp_path / "job").init_here(items_n(3), lease=30.0)
    spec = await read_spec(store)
    clock = FakeClock()
    for name in ("a", "c", "d", "e", "f"):
        await status_file(store, name, clock, state="finished" if name == "c" else "running")
    node = LocalStore(str(tmp_path / "job"))
    stats: list[str] = []
    stat = node.stat

    async def counted(rel):
        stats.append(rel)
        return await stat(rel)
    node.stat = counted
    w = Worker(node, spec, "b", 1, log=lambda _: None, clock=clock)
    assert await w.leases.take_over_lost() == 0
    assert sorted(stats) == [L.status_path("c"), L.status_path("d")]  # 2 of 5 peers
    # Long after: c ended cleanly (settled, skipped from then on), d and e are lost, f is alive.
    clock.advance(31)
    await status_file(store, "f", clock)
    os.utime(tmp_path / "job" / L.status_path("f"), (clock.wall(), clock.wall()))  # fresh on the fake clock
    assert (await w.leases.take_over_lost()) == 0  # they held nothing
    assert set(w.leases.ring.settled) == {"a", "c", "d", "e"}, w.leases.ring.settled
    stats.clear()
    await w.leases.take_over_lost()
    assert stats == [L.status_path("f")]  # the ring moved on to the only live peer
    await node.close()
    await store.close()
