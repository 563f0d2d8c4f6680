"""asyncssh's debug lines, built only when somebody reads them.

asyncssh 2.24 formats a debug line for every SFTP request and answer, and a packet line for
every SFTP and SSH packet, before its logger is asked whether anyone listens: ``SSHLogger.log``
turns the arguments into text first, and ``_log_packet`` names and sizes each packet for a
line written only at debug level 3. In copy mode that is about a tenth of a worker's CPU
(cProfile of a worker on bench/copy's job). ``quiet`` makes a connection, its SFTP handler and
the SFTP session's channel ask first; with asyncssh's debug logging on they log as before.
"""

from __future__ import annotations

import copy
import logging

from asyncssh.logging import SSHLogger


class _AskingLogger(SSHLogger):
    """asyncssh's logger, asking first whether the level is enabled."""

    def log(self, level: int, msg: object, *args, **kwargs) -> None:
        if self.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)


def _quiet_one(obj) -> bool:
    logger = getattr(obj, "_logger", None)
    sent, received = getattr(obj, "log_sent_packet", None), getattr(obj, "log_received_packet", None)
    if type(logger) is not SSHLogger or sent is None or received is None:
        return False
    asking = copy.copy(logger)
    asking.__class__ = _AskingLogger  # (the same object layout: a subclass adding nothing)
    obj._logger = asking              # children made later (channels) are _AskingLoggers too

    def heard() -> bool:  # what asyncssh checks only after formatting the line
        return SSHLogger._debug_level >= 3 and asking.isEnabledFor(logging.DEBUG)

    obj.log_sent_packet = lambda *a, **kw: heard() and sent(*a, **kw)
    obj.log_received_packet = lambda *a, **kw: heard() and received(*a, **kw)
    return True


def quiet(*objs) -> bool:
    """Install on asyncssh objects (a connection, an SFTP client's handler, its channel: each
    logs the packets it handles); False if one of them does not look as asyncssh 2.24's do
    (then it is left as it was)."""
    return all([_quiet_one(obj) for obj in objs])
