"""Leases: taking back the claims of a node that went silent, and this node's own after a restart.

A node whose status file is older than the lease is lost; a node watching it (each watches a
few peers on a ring of the node names, watchring.py) renames its token
in each lock it held (``<lock>/<old token>`` -> ``<lock>/<my token>``: exactly one wins) and
runs the item. On start-up a node takes back what its own previous run held the same way, after
refusing to start if a live worker of the same name is running.
"""

from __future__ import annotations

import asyncio
import os
from typing import Callable, Iterable

from . import layout as L
from .claims import Claim, Claims
from .errors import JobError
from .joblogfix import note_unclean
from .jobstatus import FINAL_STATES, NodeStatus
from .nodestate import NodeState
from .store import StoreError
from .watchring import PeerRing, watch_period


def held_leases(status: NodeStatus) -> list[tuple[str, str, bytes]]:
    """(lock, owner token, item) of every claim a node's status file says it holds."""
    old = L.owner_token(status.name, status.run_id)
    return [(lock, old, L.item_from_json(item)) for lock, item in status.held_locks()]


class Leases:
    def __init__(self, st: NodeState, claims: Claims, master_now: Callable[[], float]) -> None:
        self.st = st
        self.claims = claims
        self.master_now = master_now
        self.lost_seen: set[tuple] = set()
        # How many more claims this node may hold (the claim-ahead bound, set by the Worker to
        # the claimer's room); what a take-over wins beyond it goes to the retry queue.
        self.room: Callable[[], int] = lambda: 1 << 30
        self.ring = PeerRing(st, master_now)

    def live_tokens(self, nodes: list[NodeStatus]) -> set[str]:
        live = {self.st.token}
        for n in nodes:
            if n.name != self.st.node and not n.is_lost(self.st.spec.lease):
                live.add(L.owner_token(n.name, n.run_id))
        return live

    async def take_back(self, leases: Iterable[tuple[str, str, bytes]]) -> list[Claim]:
        """Move each (lock, old token, item) to our token (pipelined); the claims we won."""
        claims = await asyncio.gather(*(self.claims.take_over(lock, old, item) for lock, old, item in leases))
        return [c for c in claims if c]

    async def keep_within_bound(self, won: list[Claim], room: int | None = None) -> tuple[list[Claim], int]:
        """Keep what the claim-ahead bound allows (the first ones); hand the rest to the retry
        queue, where every node finds them. (kept, how many were handed on)"""
        room = max(0, self.room() if room is None else room)
        keep, extra = won[:room], won[room:]
        if extra:
            await asyncio.gather(*(self.claims.release(c) for c in extra))
        return keep, len(extra)

    async def take_over_lost(self) -> int:
        """One round of watching: stat the few peers this node watches on the ring; take over
        the claims of any that went silent longer than the lease. The items taken."""
        taken = 0
        for n, mtime in await self.ring.silent_peers():
            taken += await self.take_over(n)
            self.ring.settle(n.name, mtime)  # taken over: watch the next one on the ring
        return taken

    async def take_over(self, n: NodeStatus) -> int:
        st = self.st
        key = (n.name, n.run_id, n.updated)
        if key in self.lost_seen:
            return 0
        won, handed = await self.keep_within_bound(await self.take_back(held_leases(n)))
        self.lost_seen.add(key)
        if won or handed:
            st.log(f"node {n.name} silent for {n.last_seen_s:.0f} s (lease {st.spec.lease:.0f} s): "
                   f"took over {len(won)} of its items"
                   + (f", {handed} handed to the retry queue" if handed else ""))
            st.queue.extendleft(reversed(won))
            st.kick()
        return len(won)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(watch_period(self.st.spec.lease))
            try:
                await self.take_over_lost()
            except StoreError as exc:
                self.st.log(str(exc))

    async def recover_own(self) -> None:
        """Refuse a second live worker of the same name; take back our own earlier claims."""
        st = self.st
        path = L.status_path(st.node)
        blob, entry = await asyncio.gather(st.store.read(path), st.store.stat(path))
        if not blob or not entry:
            return
        try:
            prev = NodeStatus.from_json(blob, max(0.0, await st.store.now() - entry.mtime))
        except (ValueError, KeyError, TypeError):
            return
        c = st.counters
        c.done, c.failed, c.lost_leases, c.added = prev.done, prev.failed, prev.lost_leases, prev.added
        self.refuse_twin(prev)
        if prev.state not in FINAL_STATES:  # it crashed: its last job-log lines may be lost
            await note_unclean(st.store)
        won, handed = await self.keep_within_bound(await self.take_back(held_leases(prev)))
        if won or handed:
            st.log(f"took back {len(won)} unfinished items of this node's previous run"
                   + (f", {handed} handed to the retry queue" if handed else ""))
            st.queue.extend(won)

    def refuse_twin(self, prev: NodeStatus) -> None:
        st = self.st
        alive = prev.state not in (*FINAL_STATES, "error") and not prev.is_lost(st.spec.lease)
        if alive and prev.pid != os.getpid():
            if prev.host != st.host:
                raise JobError(f"a worker named {st.node!r} is already running on {prev.host} "
                               f"(heartbeat {prev.last_seen_s:.0f} s ago); choose another --node-name")
            if _pid_alive(prev.pid):
                raise JobError(f"a worker named {st.node!r} is already running here (pid {prev.pid})")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
