"""Errors that end a command with one readable line and a documented exit status."""

from __future__ import annotations

# Exit statuses shared by ppss-worker and ppss-console (documented in README.md).
EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_JOB = 4
EXIT_STOPPED = 5
EXIT_INTERRUPTED = 130


class PpssError(Exception):
    """A failure the user can act on: printed as one line, never as a traceback."""

    exit_code = EXIT_JOB

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PpssError):
    exit_code = EXIT_USAGE


class ConnectError(PpssError):
    exit_code = EXIT_CONNECT


class JobError(PpssError):
    exit_code = EXIT_JOB
