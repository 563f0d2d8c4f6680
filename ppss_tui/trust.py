"""``ppss-console trust HOST``: the explicit step that adds a host key to known_hosts.

It shows the key's SHA256 fingerprint and asks before writing (``--yes`` to skip the question,
for scripts that checked the fingerprint another way). A host already known with a different
key is refused: replacing a changed key is a decision to make by hand.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncssh

from worker.errors import ConnectError, UsageError
from worker.sshconn import CONNECT_TIMEOUT, SshTarget, known_host_keys


def split_login(text: str) -> tuple[str | None, str, int | None] | None:
    """``[user@]host[:port]`` (IPv6 as ``[addr]:port``) -> (user, host, port); None if malformed."""
    user, _, hostport = text.strip().rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host or (port and not (port.isascii() and port.isdigit())):
        return None
    return user or None, host, int(port) if port else None


def parse_host(text: str) -> tuple[str | None, str, int]:
    parts = split_login(text)
    if parts is None:
        raise UsageError(f"{text}: expected [user@]host[:port]")
    user, host, port = parts
    return user, host, port or 22


def known_hosts_entry(host: str, port: int, key: asyncssh.SSHKey) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key.export_public_key('openssh').decode().strip()}\n"


def append_known_host(path: str, line: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line)


async def fetch_host_key(host: str, port: int) -> asyncssh.SSHKey:
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port), CONNECT_TIMEOUT)
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        raise ConnectError(f"{host}:{port}: cannot read its host key: {exc}") from None
    if key is None:
        raise ConnectError(f"{host}:{port}: offered no host key")
    return key


async def trust_host(text: str, known_hosts: str | None, yes: bool, out=None) -> int:
    out = out or sys.stdout
    user, host, port = parse_host(text)
    path = known_hosts or os.path.expanduser("~/.ssh/known_hosts")
    key = await fetch_host_key(host, port)
    fingerprint = key.get_fingerprint("sha256")
    known = known_host_keys(SshTarget(host, port, user, None, path))
    if known:
        if any(k.public_data == key.public_data for k in known):
            print(f"{host}:{port} is already trusted ({fingerprint})", file=out)
            return 0
        raise ConnectError(f"{host}:{port}: HOST KEY CHANGED (it offers {fingerprint}); {path} holds "
                           "another key. Remove the old line by hand if the change is expected")
    print(f"{host}:{port} offers {key.get_algorithm()} key {fingerprint}", file=out)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not a terminal: compare the fingerprint, then run again with --yes")
        answer = input("Trust this key and add it to known_hosts? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("not trusted", file=out)
            return 1
    append_known_host(path, known_hosts_entry(host, port, key))
    print(f"added to {path}", file=out)
    return 0
