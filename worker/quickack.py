"""Prompt acknowledgements on SSH connections, so that sshd's Nagle never waits on our delayed ACK.

OpenSSH's sshd turns Nagle's algorithm off only for sessions with a terminal; in an SFTP session a
small packet waits until the one before it is acknowledged. A client with nothing to send delays
that acknowledgement (Linux: up to 40 ms), so whenever sshd sends two small packets in a row the
second waits: at every session start (a key-options debug message, then the channel
confirmation), and at any quiet moment of a job. Measured on loopback: opening the SFTP session
45 ms -> 3 ms. The client asks for an immediate ACK (TCP_QUICKACK) after every read, since the
kernel clears it again; elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import socket

import asyncssh

QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def install(conn) -> None:
    """From the TCP connection's start (before the handshake), acknowledge every read at once."""
    sock = conn.get_extra_info("socket")
    if QUICKACK is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    received = conn.data_received

    def data_received(data, *args) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        except OSError:
            pass
        received(data, *args)

    conn.data_received = data_received  # (the transport looks it up on every read)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
    except OSError:
        pass


class QuickAckClient(asyncssh.SSHClient):
    def connection_made(self, conn) -> None:
        install(conn)
