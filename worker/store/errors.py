"""OS and SFTP errors turned into ``StoreError`` (one readable line: what and where), in one place.

Each store wraps its operations in ``mapped_errors(where)``; the cases an operation answers
itself (a missing file is ``None``, an existing directory is ``False``) are caught inside it.
A lost connection is left alone: the SFTP store reconnects and retries on it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import asyncssh

from .base import StoreError

# SFTPNoConnection: a request made after the channel closed (the connection just dropped).
LOST = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.SFTPConnectionLost,
        asyncssh.SFTPNoConnection, asyncssh.ChannelOpenError, BrokenPipeError, ConnectionResetError,
        EOFError)


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
        raise StoreError(f"{where}: {exc.strerror or exc}") from None
