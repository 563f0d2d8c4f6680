"""OS and SFTP errors turned into ``StoreError`` (one readable line: what and where), in one place.

Each store wraps its operations in ``mapped_errors(where)``; the cases an operation answers
itself (a missing file is ``None``, an existing directory is ``False``) are caught inside it.
A lost connection is left alone: the SFTP store reconnects and retries on it. A full disk
(ENOSPC, a quota) reads "no space left on the master"; over SFTP v3 the server only says
"Failure", so the SFTP store asks statvfs (``statvfs@openssh.com``) and raises ENOSPC here.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

import asyncssh

from .base import StoreError

# SFTPNoConnection: a request made after the channel closed (the connection just dropped).
LOST = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.SFTPConnectionLost,
        asyncssh.SFTPNoConnection, asyncssh.ChannelOpenError, BrokenPipeError, ConnectionResetError,
        EOFError)
NO_SPACE = "no space left on the master"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FULL_BELOW = 1 << 20  # bytes free under which a bare SFTP "Failure" is taken for a full disk


def looks_full(vfs) -> bool:
    """statvfs (asyncssh's SFTPVFSAttrs, or os.statvfs_result) says there is (next to) no room:
    bytes, or inodes where the filesystem counts them."""
    get = lambda name: getattr(vfs, name, None) if hasattr(vfs, name) else getattr(vfs, "f_" + name)
    avail = get("bavail") * (get("frsize") or get("bsize"))
    return avail < FULL_BELOW or (get("files") > 0 and get("favail") == 0)


@contextmanager
def mapped_errors(where: str) -> Iterator[None]:
    """Raise ``StoreError("<where>: <reason>")`` for an OS or SFTP error (not a lost connection)."""
    try:
        yield
    except LOST:
        raise
    except asyncssh.SFTPError as exc:
        raise StoreError(f"{where}: {exc.reason}") from None
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise StoreError(f"{where}: {NO_SPACE}") from None
        raise StoreError(f"{where}: {exc.strerror or exc}") from None
