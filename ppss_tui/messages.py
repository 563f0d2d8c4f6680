"""Messages the pollers post to the app: each carries one immutable snapshot."""

from __future__ import annotations

from textual.message import Message

from .snapshot import JobSnapshot


class SnapshotReady(Message):
    """A new view of the job and the cluster (built by ``ppss_tui.poller.Poller``)."""

    def __init__(self, snapshot: JobSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class MasterReady(Message):
    """The master's store is open: screens can now read and steer the job."""

    def __init__(self, access) -> None:
        super().__init__()
        self.access = access
