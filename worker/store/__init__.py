"""The job directory's file system: local (or a shared mount) or over SFTP, one interface.

Every operation a node makes on the master goes through a ``Store`` (``base.py``): paths are
relative to the job root. ``local.py`` and ``sftp.py`` are the two kinds; ``errors.py`` maps
OS and SFTP errors to ``StoreError`` in one place; ``faulty.py`` wraps a store to inject
faults in tests. Copy mode's absolute-path transfers are the ``FileServer`` interface.
"""

from __future__ import annotations

from typing import Callable

from ..address import MasterAddress
from ..sshconn import SshTarget
from .base import Entry, FileServer, Store, StoreError
from .errors import LOST, NO_SPACE, mapped_errors
from .faulty import Fault, FaultyStore
from .local import LocalStore
from .sftp import SftpStore, _CoalescingWriter, coalesce_requests

__all__ = ["Entry", "Fault", "FaultyStore", "FileServer", "LOST", "LocalStore", "NO_SPACE", "SftpStore", "Store", "StoreError",
           "_CoalescingWriter", "coalesce_requests", "mapped_errors", "open_store", "refused_mkdir"]


async def refused_mkdir(store: Store) -> str:
    """Why a mkdir the SFTP server answered with a bare "Failure" (v3: "exists", "full" and
    others alike) created nothing: the master's disk is full, or something else."""
    inner = getattr(store, "inner", store)
    if isinstance(inner, SftpStore) and await inner.is_full():
        return NO_SPACE
    return "cannot create lock directory (disk full or not writable?)"


async def open_store(address: MasterAddress, identity: str | None = None,
                     known_hosts: str | None = None, reconnect: bool = True,
                     on_event: Callable[[str], None] | None = None,
                     first_attempts: int | None = None) -> Store:
    """A store for the job at ``address``; ``first_attempts`` retries the first connect."""
    if address.is_local:
        return LocalStore(address.path)
    target = SshTarget(address.host, address.port, address.user, identity, known_hosts)
    return await SftpStore.open(target, address.path, address.display(), first_attempts=first_attempts,
                                reconnect=reconnect, on_event=on_event)
