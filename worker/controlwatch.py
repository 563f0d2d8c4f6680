"""Watching control.yaml: the job's and this node's state and slots, applied to running items."""

from __future__ import annotations

import asyncio
from typing import Callable

from . import layout as L
from .control import ControlError, parse_control
from .nodestate import NodeState


RECENT = 5.0  # seconds after a change during which control.yaml is reread at every poll


class ControlWatch:
    def __init__(self, st: NodeState, master_now: Callable[[], float]) -> None:
        self.st = st
        self.master_now = master_now
        self.stamp: tuple | None = None

    async def poll(self) -> bool:
        """Reread control.yaml if it changed; True if the node's effective state or slots did."""
        st = self.st
        if self.stamp is None:  # the first poll reads it anyway: stat and read in one round trip
            entry, data = await asyncio.gather(st.store.stat(L.CONTROL_FILE), st.store.read(L.CONTROL_FILE))
            return self.take(data, (entry.mtime, entry.size) if entry else None)
        entry = await st.store.stat(L.CONTROL_FILE)
        stamp = (entry.mtime, entry.size) if entry else None
        # SFTP v3 mtimes are whole seconds: a same-size edit within the same second keeps the
        # stamp, so a file changed in the last few seconds (the mtime's second, a poll period and
        # our previous read) is read again whatever its stamp.
        if stamp == self.stamp and not (entry and self.master_now() - entry.mtime < RECENT):
            return False
        return self.take(await st.store.read(L.CONTROL_FILE), stamp)

    def take(self, data: bytes | None, stamp: tuple | None) -> bool:
        """Apply control.yaml as read (its stamp: mtime, size); True if our state or slots changed."""
        st = self.st
        try:
            control = parse_control(data or b"", st.store.where(L.CONTROL_FILE))
        except ControlError as exc:
            if st.control_error != str(exc):
                st.log(f"{exc}; keeping the last good control state")
            st.control_error = str(exc)
            self.stamp = stamp
            return False
        before = st.effective()
        st.control, st.control_error, self.stamp = control, "", stamp
        changed = st.effective() != before
        if changed:
            state, slots = st.effective()
            st.log(f"control: {state}, {slots} slots")
        self.apply()
        return changed

    def apply(self) -> None:
        state, _ = self.st.effective()
        for r in self.st.running.values():
            if state == "suspended":
                r.proc.suspend()
            else:
                r.proc.resume()
        self.st.kick()
