"""Watching for lost nodes at a cost that grows with the fleet, not with its square.

Each node watches the next ``WATCHED`` nodes after its own name on the ring of the nodes' names
(sorted), skipping nodes it found ended or already took over: one ``stat`` of each watched status
file per round. The names come from one listing of ``nodes/`` (with mtimes), made at start and
then every ``lease x max(1, N/100)`` seconds, so the listings summed over the fleet grow linearly
too. A watched node found silent longer than the lease has its status file read: ended cleanly
(finished, stopped) or lost — the caller (Leases) takes a lost one over — it is settled, and the
ring moves on to the next name: the watchers of a lost node watch its successors next. A settled
node that writes again (restarted) is watched again after the next listing.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from . import layout as L
from .jobstatus import NodeStatus
from .nodestate import NodeState

WATCHED = 2  # peers each node watches
STEPS = 4  # rounds of successors looked at in one go when the watched ones have ended


def watch_period(lease: float) -> float:
    """How often the watched peers are looked at: lease/4, between 1 and 5 s."""
    return max(1.0, min(5.0, lease / 4))


def relist_period(lease: float, nodes: int) -> float:
    return lease * max(1.0, nodes / 100)


def successors(names: list[str], me: str, skip, k: int = WATCHED) -> list[str]:
    """The first ``k`` names after ``me`` on the ring of ``names`` (sorted), not in ``skip``."""
    ordered = sorted(set(names) | {me})
    i = ordered.index(me)
    return [n for n in ordered[i + 1:] + ordered[:i] if n not in skip][:k]


class PeerRing:
    def __init__(self, st: NodeState, master_now: Callable[[], float]) -> None:
        self.st = st
        self.master_now = master_now
        self.names: list[str] = []
        self.listed: float | None = None  # when nodes/ was last listed (monotonic)
        self.settled: dict[str, float | None] = {}  # name -> status mtime when it was settled

    async def relist(self) -> None:
        entries = await self.st.store.scandir(L.NODES_DIR) or []
        mtimes = {e.name[:-len(".json")]: e.mtime for e in entries
                  if e.name.endswith(".json") and not e.is_dir and ".tmp-" not in e.name}
        self.names = sorted(mtimes)
        self.settled = {n: m for n, m in self.settled.items() if mtimes.get(n) == m}
        self.listed = self.st.clock.monotonic()

    def settle(self, name: str, mtime: float | None) -> None:
        self.settled[name] = mtime

    async def silent_peers(self) -> list[tuple[NodeStatus, float]]:
        """The watched peers silent longer than the lease: (status, its mtime) each. Those that
        ended cleanly are settled here; the caller settles the lost ones it took over."""
        st = self.st
        if self.listed is None or st.clock.monotonic() - self.listed > relist_period(st.spec.lease,
                                                                                     len(self.names)):
            await self.relist()
        out: list[tuple[NodeStatus, float]] = []
        looked: set[str] = set()
        for _ in range(STEPS):
            peers = successors(self.names, st.node, self.settled.keys() | looked)
            if not peers:
                break
            looked |= set(peers)
            entries = await asyncio.gather(*(st.store.stat(L.status_path(p)) for p in peers))
            now = self.master_now()
            silent = [(p, e) for p, e in zip(peers, entries) if e is None or now - e.mtime > st.spec.lease]
            if not silent:
                break
            out += await self.read_silent(silent, now)
        return out

    async def read_silent(self, silent, now: float) -> list[tuple[NodeStatus, float]]:
        st = self.st
        blobs = await asyncio.gather(*(st.store.read(L.status_path(p)) for p, e in silent if e))
        out = []
        for (p, e), blob in zip([x for x in silent if x[1]], blobs):
            try:
                status = NodeStatus.from_json(blob or b"", max(0.0, now - e.mtime))
            except (ValueError, KeyError, TypeError):
                status = None
            if status is None or not status.is_lost(st.spec.lease):
                self.settle(p, e.mtime)  # ended cleanly (or unreadable): nothing to take
            else:
                out.append((status, e.mtime))
        for p, e in silent:
            if e is None:
                self.settle(p, None)  # its status file is gone
        return out
