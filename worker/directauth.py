"""Logging in with a key file in one round trip instead of three.

asyncssh (like OpenSSH's ssh) first asks for the "none" method (to learn the server's methods),
then offers the public key without a signature (to learn whether the server would take it), and
only then sends the signed request: three round trips, 150 ms with a master 50 ms away, at every
worker start and console poll. With a key file named (``-i``, the cluster file's key) there is
one key to try, so ppss starts with public-key authentication and sends the signed request at
once, as RFC 4252 allows; a server that refuses it answers with its methods and asyncssh goes on
as usual. Elsewhere (keys from an agent or ~/.ssh) asyncssh's way is kept. It rests on two
asyncssh internals, checked by tests/test_directauth.py: a missing one leaves asyncssh's way.
"""

from __future__ import annotations

import asyncssh

from .quickack import QuickAckClient

try:
    from asyncssh.auth import _ClientPublicKeyAuth, _client_auth_handlers
except ImportError:  # (another asyncssh: its own way)
    _ClientPublicKeyAuth = _client_auth_handlers = None

PUBLICKEY = b"publickey"
_direct: type | None = None  # our handler, once registered


if _ClientPublicKeyAuth is not None:
    class _DirectPublicKeyAuth(_ClientPublicKeyAuth):
        """Public-key authentication that signs at once on the connections that asked for it."""

        async def _start(self) -> None:
            if not getattr(self._conn, "_ppss_direct_auth", False):
                return await super()._start()
            self._keypair = await self._conn.public_key_auth_requested()
            if self._keypair is None:
                self._conn.try_next_auth(next_method=True)
                return
            await self._send_signed_request()

    if _client_auth_handlers.get(PUBLICKEY) is _ClientPublicKeyAuth:
        _client_auth_handlers[PUBLICKEY] = _direct = _DirectPublicKeyAuth


def available() -> bool:
    return _direct is not None and _client_auth_handlers.get(PUBLICKEY) is _direct


class DirectAuthClient(QuickAckClient):
    """Prompt ACKs (quickack.py), and the key file's signed request first."""

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        super().connection_made(conn)
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        conn = self._conn
        if available() and getattr(conn, "_auth_methods", None) == [b"none"]:
            conn._auth_methods = [PUBLICKEY]
            conn._ppss_direct_auth = True
        return super().begin_auth(username)
