"""The console's questions on the terminal (trust, erase): one place for prompts and --yes.

A question is only asked on a terminal; without one the command stops with a usage error that
names the flag to pass, so scripts never hang waiting for an answer.
"""

from __future__ import annotations

import sys

from worker.errors import UsageError


def ask_yes_no(question: str, yes: bool, no_terminal: str) -> bool:
    """True when ``yes`` or the user answers y/yes; ``no_terminal`` is the error without a terminal."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(no_terminal)
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    return answer in ("y", "yes")
