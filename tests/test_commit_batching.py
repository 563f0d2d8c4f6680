"""Fewer packets per item: commits of items ending close together wait for each other
(worker/commithold.py), the claimer claims in batches while its queue still feeds the slots
(Claimer.worth_claiming), and requests made while others await their answers go out together
(the SFTP store's coalescing writer). Fast unit tests: no sshd."""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace

import pytest

from worker import commithold
from worker.claimer import BATCH_SHARE, Claimer
from worker.commithold import HOLD_MAX, CommitHold

FAST = 2000.0  # items/s: twenty items expected within the real hold
SLOW = 1.0  # items/s: 2 s items on two slots (half an item expected within the test hold)
HOLD = 0.5  # the hold in these tests: long beside a few loop turns, even on a loaded machine


@pytest.fixture(autouse=True)
def long_hold(monkeypatch) -> None:
    monkeypatch.setattr(commithold, "HOLD", HOLD)


def node(running: int = 1, queued: int = 0, slots: int = 2):
    return SimpleNamespace(interrupted=None, fatal=None, running={f"r{i}": 1 for i in range(running)},
                           queue=deque(range(queued)), effective=lambda: ("running", slots))


async def started(hold: CommitHold, n: int) -> list[asyncio.Task]:
    tasks = [asyncio.ensure_future(hold.turn()) for _ in range(n)]
    await settle()
    return tasks


async def settle() -> None:
    """A few loop turns (far less than HOLD): what was released has returned."""
    for _ in range(4):
        await asyncio.sleep(0)


async def test_commits_of_a_fast_node_wait_for_each_other_then_go_together() -> None:
    hold = CommitHold(node(), lambda: FAST)
    first = await started(hold, 1)
    assert not first[0].done()  # held for the items about to end
    later = await started(hold, 2)
    assert not any(t.done() for t in first + later)
    await asyncio.wait(first + later, timeout=HOLD * 20)  # the hold's timer
    assert all(t.done() for t in first + later)
    assert hold.waiting is None and hold.count == 0


async def test_a_slow_node_commits_at_once() -> None:
    hold = CommitHold(node(), lambda: SLOW)
    (task,) = await started(hold, 1)
    assert task.done()


async def test_the_last_item_goes_at_once_and_takes_the_held_ones_with_it() -> None:
    st = node(running=1)
    hold = CommitHold(st, lambda: FAST)
    held = await started(hold, 3)
    assert not any(t.done() for t in held)
    st.running.clear()  # the node has nothing else running or queued: no commit will join
    (last,) = await started(hold, 1)
    assert last.done() and all(t.done() for t in held)


async def test_a_stopping_node_does_not_hold() -> None:
    st = node(running=2)
    st.interrupted = 15
    (task,) = await started(CommitHold(st, lambda: FAST), 1)
    assert task.done()


async def test_hold_max_commits_go_without_waiting_for_the_timer() -> None:
    hold = CommitHold(node(), lambda: FAST)
    held = await started(hold, HOLD_MAX - 1)
    assert not any(t.done() for t in held)
    (last,) = await started(hold, 1)
    assert last.done() and all(t.done() for t in held)


async def test_one_cancelled_commit_leaves_the_others_held() -> None:
    hold = CommitHold(node(), lambda: FAST)
    a, b = await started(hold, 2)
    a.cancel()
    await settle()
    assert a.cancelled() and not b.done()
    await asyncio.wait_for(b, HOLD * 20)


def claimer(queue: int, slots: int, target: int) -> Claimer:
    c = Claimer.__new__(Claimer)
    c.st = node(running=slots, queued=queue, slots=slots)
    c.target_queue = lambda: target
    return c


def test_the_claimer_waits_for_a_batch_while_the_queue_feeds_the_slots() -> None:
    target = 40
    assert not claimer(queue=30, slots=2, target=target).worth_claiming(target // BATCH_SHARE - 1)
    assert claimer(queue=30, slots=2, target=target).worth_claiming(target // BATCH_SHARE)
    # a queue that no longer feeds every slot: whatever there is room for, at once
    assert claimer(queue=1, slots=2, target=target).worth_claiming(1)
    assert not claimer(queue=1, slots=2, target=target).worth_claiming(0)
    # slow items (a small target): one at a time, as before
    assert claimer(queue=2, slots=2, target=3).worth_claiming(1)


class Channel:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def is_closing(self) -> bool:
        return False


class Writer:
    def __init__(self) -> None:
        self.channel = Channel()

    def write(self, data: bytes) -> None:
        self.channel.writes.append(data)


def coalescing(awaiting: int):
    from worker.store.sftp import _CoalescingWriter
    raw = Writer()
    return _CoalescingWriter(raw, SimpleNamespace(_requests=dict.fromkeys(range(awaiting)))), raw.channel.writes


async def test_requests_made_while_others_await_answers_wait_a_moment_for_more(monkeypatch) -> None:
    from worker.store import sftp
    monkeypatch.setattr(sftp, "FLUSH_HOLD", HOLD)  # (long beside a few loop turns, on any machine)
    writer, sent = coalescing(awaiting=3)  # (the new request and two earlier ones)
    writer.write(b"a")
    await settle()
    writer.write(b"b")  # a later turn: joins the held one
    await settle()
    assert sent == []
    await asyncio.sleep(HOLD * 2)
    assert sent == [b"ab"]


async def test_a_request_nothing_else_waits_with_goes_out_at_the_end_of_the_turn() -> None:
    writer, sent = coalescing(awaiting=1)  # only itself
    writer.write(b"a")
    writer.write(b"b")  # the same turn: one packet
    await settle()
    assert sent == [b"ab"]


async def test_a_big_batch_is_not_held() -> None:
    from worker.store.sftp import FLUSH_AT
    writer, sent = coalescing(awaiting=5)
    writer.write(b"x" * (FLUSH_AT // 2))
    writer.write(b"y" * (FLUSH_AT // 2))
    await settle()
    assert [len(d) for d in sent] == [FLUSH_AT]
