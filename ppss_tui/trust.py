"""``ppss-console trust [HOST]``: the explicit step that adds host keys to known_hosts.

It shows the keys' SHA256 fingerprints and asks before writing (``--yes`` to skip the question,
for scripts that checked the fingerprints another way). A host already known with a different
key is refused: replacing a changed key is a decision to make by hand. Without HOST: every host
of the cluster file (master and nodes), one table and one question, written to the cluster
file's known_hosts (else ``~/.ssh/known_hosts``).
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncssh

from worker.errors import EXIT_CONNECT, ConnectError, UsageError
from worker.sshconn import CONNECT_TIMEOUT, SshTarget, known_host_keys

from .prompt import ask_yes_no


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
    if not ask_yes_no(f"Trust this key and add it to {path}?", yes,
                      "not a terminal: compare the fingerprint, then run again with --yes"):
        print("not trusted", file=out)
        return 1
    append_known_host(path, known_hosts_entry(host, port, key))
    print(f"added to {path}", file=out)
    return 0


async def _host_row(host: str, port: int, path: str):
    """(host, port, key or None, state): state is new, trusted, CHANGED or an error line."""
    try:
        key = await fetch_host_key(host, port)
    except ConnectError as exc:
        return host, port, None, str(exc)
    known = known_host_keys(SshTarget(host, port, None, None, path))
    if not known:
        return host, port, key, "new"
    if any(k.public_data == key.public_data for k in known):
        return host, port, key, "trusted"
    return host, port, key, "CHANGED"


async def trust_cluster(cluster, yes: bool, out=None) -> int:
    """Every host of the cluster file in one table; one question for the new ones."""
    out = out or sys.stdout
    path = cluster.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
    hosts = []
    if not cluster.master.is_local:
        hosts.append((cluster.master.host, cluster.master.port or 22))
    hosts += [(n.host, n.port or 22) for n in cluster.nodes]
    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise UsageError(f"{cluster.path}: no SSH host (a local master and no nodes)")
    rows = await asyncio.gather(*(_host_row(h, p, path) for h, p in hosts))
    width = max(len(f"{h}:{p}") for h, p, _, _ in rows)
    for host, port, key, state in rows:
        shown = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}" if key else ""
        print(f"{host + ':' + str(port):<{width}}  {state if key else 'UNREACHABLE':<8}  {shown or state}",
              file=out)
    new = [(h, p, k) for h, p, k, s in rows if s == "new"]
    changed = [f"{h}:{p}" for h, p, k, s in rows if s == "CHANGED"]
    failed = [f"{h}:{p}" for h, p, k, s in rows if k is None]
    if new:
        if ask_yes_no(f"Trust these {len(new)} keys and add them to {path}?", yes,
                      "not a terminal: compare the fingerprints, then run again with --yes"):
            append_known_host(path, "".join(known_hosts_entry(h, p, k) for h, p, k in new))
            print(f"added {len(new)} keys to {path}", file=out)
        else:
            print("not trusted", file=out)
            return 1
    elif not changed and not failed:
        print(f"every host is already trusted in {path}", file=out)
    if changed:
        print(f"HOST KEY CHANGED for {', '.join(changed)}: {path} holds another key; remove the old line "
              "by hand if the change is expected", file=out)
        return EXIT_CONNECT
    return EXIT_CONNECT if failed else 0
