"""The node's slots shared by the jobs a serving worker runs (``ppss-worker ROOT``).

Each attached job's Worker is a member. Members are ranked by (priority high first, then the
oldest ``created``, then the name). The rules:

  start  a job may start an item only when a node slot is free and no better-ranked running job
         has a claimed item waiting;
  claim  a job claims ahead as far as it likes only while it is the best-ranked job that may
         still have work; any other job claims only for slots that are idle and not already
         covered by some job's claimed items.

So the tail of job A never leaves slots idle while job B has work, and a low-priority job does
not hoard claims that a better job would want. The pool also carries the node's fleet state
(fleet.yaml) which every member combines with its control.yaml (``NodeState.effective``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .nodestate import NodeState


class SlotPool:
    def __init__(self, slots: int, state: str = "running") -> None:
        self.slots = slots
        self.state = state  # the node's fleet state: running | paused | stopped
        self.members: list[NodeState] = []

    def join(self, st: NodeState) -> None:
        st.pool = self
        self.members.append(st)
        self.kick_all()

    def leave(self, st: NodeState) -> None:
        if st in self.members:
            self.members.remove(st)
        self.kick_all()

    def set(self, slots: int, state: str) -> None:
        if (slots, state) != (self.slots, self.state):
            self.slots, self.state = slots, state
            self.kick_all()

    def kick_all(self) -> None:
        for m in self.members:
            m.wake.set()

    @staticmethod
    def rank(st: NodeState) -> tuple:
        return (-st.priority(), st.spec.created_epoch, st.store.label)

    def used(self) -> int:
        return sum(len(m.running) for m in self.members)

    def idle(self) -> int:
        return max(0, self.slots - self.used())

    def _runnable(self, st: NodeState) -> bool:
        return st.effective()[0] == "running" and not st.finished

    def waiting(self, st: NodeState) -> int:
        """Claimed items of ``st`` that would start now if the node had the slots (its own
        control.yaml slots for this node may hold it back)."""
        if not st.queue or not self._runnable(st):
            return 0
        return min(len(st.queue), max(0, st.effective()[1] - len(st.running)))

    def may_start(self, st: NodeState) -> bool:
        """A free node slot, and no better-ranked running job has a claimed item waiting."""
        if self.used() >= self.slots:
            return False
        mine = self.rank(st)
        return not any(m is not st and self.rank(m) < mine and self.waiting(m) for m in self.members)

    def best_with_work(self) -> NodeState | None:
        """The best-ranked running job that may still find items to claim."""
        ranked = sorted((m for m in self.members if self._runnable(m) and not m.exhausted), key=self.rank)
        return ranked[0] if ranked else None

    def claim_allowance(self, st: NodeState, want: int) -> int:
        """How many of ``want`` items ``st`` may claim ahead now."""
        if self.best_with_work() is st:
            return want
        covered = sum(self.waiting(m) for m in self.members)
        allowed = self.idle() - covered
        if st.exhausted:
            allowed = max(1, allowed)  # keep looking (1 at a time): its end-of-job check runs there
        return max(0, min(want, allowed))
