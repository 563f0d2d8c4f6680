"""One verified SSH connection per host, with errors turned into one readable line.

Host keys are always checked against known_hosts (``--known-hosts FILE`` or the user's own).
An unknown or changed key is refused, and the message shows the key's fingerprint so the
operator can compare it before trusting the host (``ppss-console trust``).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from dataclasses import dataclass

import asyncssh

from .errors import ConnectError
from .directauth import DirectAuthClient
from .quickack import QuickAckClient

CONNECT_TIMEOUT = 15.0
KEEPALIVE_INTERVAL = 10.0
KEEPALIVE_COUNT = 3
# AES-GCM costs asyncssh one call per packet; chacha20-poly1305 several (measured: bench/throughput).
CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
           "aes128-ctr", "aes192-ctr", "aes256-ctr"]


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    known_hosts: str | None = None

    def label(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


def _known_hosts_path(target: SshTarget) -> str:
    return target.known_hosts or os.path.expanduser("~/.ssh/known_hosts")


def connect_options(target: SshTarget) -> dict:
    opts: dict = {
        "known_hosts": _known_hosts_path(target),
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT,
        "encryption_algs": CIPHERS,
        "client_factory": QuickAckClient,
    }
    if target.port:
        opts["port"] = target.port
    if target.user:
        opts["username"] = target.user
    if target.identity:
        if not os.path.exists(target.identity):
            raise ConnectError(f"identity file {target.identity} does not exist")
        opts["client_keys"] = [target.identity]
        opts["agent_path"] = None
        opts["client_factory"] = DirectAuthClient  # one key: its signed request first
    return opts


async def host_key_fingerprint(target: SshTarget) -> str | None:
    """The SHA256 fingerprint of the key the host offers now (None if it cannot be read)."""
    try:
        key = await asyncio.wait_for(
            # port () lets ~/.ssh/config (Host alias, HostName, Port) apply, as in connect()
            asyncssh.get_server_host_key(target.host, target.port or ()), CONNECT_TIMEOUT
        )
    except (OSError, asyncssh.Error, asyncio.TimeoutError):
        return None
    return key.get_fingerprint("sha256") if key else None


def known_host_keys(target: SshTarget) -> list:
    """Keys recorded for the host in known_hosts (empty when the host is unknown)."""
    path = _known_hosts_path(target)
    try:
        known = asyncssh.read_known_hosts(path)
    except (OSError, ValueError, asyncssh.KeyImportError):
        return []
    try:
        addr = socket.gethostbyname(target.host)
    except OSError:
        addr = ""  # not resolvable here (e.g. a ~/.ssh/config alias): match by name only
    host_keys, *_ = known.match(target.host, addr, target.port or 22)
    return list(host_keys)


async def describe_host_key_problem(target: SshTarget) -> str:
    fingerprint = await host_key_fingerprint(target)
    shown = f" (it offers {fingerprint})" if fingerprint else ""
    path = _known_hosts_path(target)
    if known_host_keys(target):
        return (f"{target.label()}: HOST KEY CHANGED{shown}; it does not match {path}. "
                "Refusing to connect: check with the host's administrator before updating known_hosts")
    return (f"{target.label()}: host key unknown{shown}, not in {path}. "
            "Trust it explicitly first: ppss-console trust HOST[:PORT]")


class ConnectFailed(ConnectError):
    """A failed connection attempt; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# Final: retrying would only hide the problem (the operator must act).
FATAL = (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied, socket.gaierror)


def is_retryable(exc: BaseException) -> bool:
    """Whether a failure of asyncssh.connect is transient: decided on the exception's class."""
    if isinstance(exc, FATAL):
        return False
    return isinstance(exc, (asyncssh.Error, asyncio.TimeoutError, TimeoutError, OSError))


async def _reason(target: SshTarget, exc: BaseException) -> str:
    """One readable line for a failure of asyncssh.connect."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return await describe_host_key_problem(target)
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"{target.label()}: login refused (no accepted key for that account)"
    if isinstance(exc, asyncssh.Error):
        return f"{target.label()}: SSH failed: {exc.reason or exc}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"{target.label()}: no answer within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(exc, socket.gaierror):
        return f"{target.label()}: unknown host ({exc.strerror})"
    # asyncio's message for a refused port is "Connect call failed (addr)": say it plainly.
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{target.label()}: cannot connect: {reason}"


async def connect(target: SshTarget) -> asyncssh.SSHClientConnection:
    """Open a verified connection or raise ConnectFailed (a ConnectError) with one readable line."""
    options = connect_options(target)  # a missing identity file: ConnectError, final
    try:
        return await asyncssh.connect(target.host, **options)
    except (asyncssh.Error, asyncio.TimeoutError, TimeoutError, OSError) as exc:
        raise ConnectFailed(await _reason(target, exc), is_retryable(exc)) from None


async def connect_with_retry(target: SshTarget, attempts: int | None = None,
                             first_delay: float = 0.5, max_delay: float = 20.0,
                             on_retry=None) -> asyncssh.SSHClientConnection:
    """Connect, retrying transient failures with exponential backoff and full jitter.

    Host key and login problems, an unknown host and a missing identity file are final.
    """
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return await connect(target)
        except ConnectError as exc:
            if not getattr(exc, "retryable", False) or (attempts is not None and attempt >= attempts):
                raise
            if on_retry:
                on_retry(str(exc))
        await asyncio.sleep(random.uniform(0, delay))
        delay = min(max_delay, delay * 2)
