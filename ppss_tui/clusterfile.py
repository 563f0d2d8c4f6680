"""The cluster file (``ppss.yaml``): which job, and which nodes, the console and deploy work on.

    master: ssh://ppss@master:22/srv/jobs/wav2mp3   # the job's address (as nodes reach it too)
    identity: ~/.ssh/id_ed25519        # optional: the operator's key for master and nodes
    known_hosts: ~/.ssh/known_hosts    # optional
    node_key: ~/.ssh/ppss_node         # optional (deploy): key nodes use to reach the master
    nodes:
      - ppss@node1                     # user@host[:port]
      - ppss@node[02-64]               # a range: node02 ... node64 (ClusterShell's NodeSet)
      - {name: n2, host: 10.0.0.2, user: ppss, port: 22, slots: 4, dir: ~/ppss}
      - {host: "10.0.0.[3-5]", slots: 2}   # a range in a mapping: one node per address
      - ppss[1-3]@10.0.1.[1-3]         # user and host ranges pair up: ppss1@10.0.1.1 ...
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from worker.address import MasterAddress, parse_address
from worker.engine import valid_node_name
from worker.errors import PpssError, UsageError
from worker.sshconn import SshTarget
from worker.yamlio import load_yaml

from .nodesel import expand
from .trust import split_login

NODE_KEYS = {"name", "host", "user", "port", "slots", "dir"}
TOP_KEYS = {"master", "identity", "known_hosts", "node_key", "nodes"}


class ClusterFileError(UsageError):
    pass


@dataclass(frozen=True)
class NodeSpec:
    name: str
    host: str
    user: str | None = None
    port: int | None = None
    slots: int | None = None
    dir: str | None = None  # where the worker is installed on the node (deploy)

    def target(self, cluster: "Cluster") -> SshTarget:
        return SshTarget(self.host, self.port, self.user, cluster.identity, cluster.known_hosts)

    def label(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


@dataclass(frozen=True)
class Cluster:
    master: MasterAddress
    master_url: str
    nodes: tuple[NodeSpec, ...] = ()
    identity: str | None = None
    known_hosts: str | None = None
    node_key: str | None = None
    path: str = ""
    extra: dict = field(default_factory=dict)

    def master_target(self) -> SshTarget | None:
        m = self.master
        if m.is_local:
            return None
        return SshTarget(m.host, m.port, m.user, self.identity, self.known_hosts)


def _expand(path: str | None, base: str) -> str | None:
    if not path:
        return None
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _known_keys(mapping: dict, allowed: set[str], where: str) -> None:
    bad = set(mapping) - allowed
    if bad:
        raise ClusterFileError(f"{where}: unknown key {sorted(map(str, bad))[0]!r} "
                               f"(expected {', '.join(sorted(allowed))})")


def parse_nodes(entry, where: str, index: int) -> list[NodeSpec]:
    """One entry of ``nodes:``; a host range (``node[01-64]``, ``10.0.0.[1-3]``) gives one node each."""
    here = f"{where}: nodes[{index}]"
    if isinstance(entry, str):
        parts = split_login(entry)
        if parts is None:
            raise ClusterFileError(f"{here}: {entry!r} is not user@host[:port]")
        entry = dict(zip(("user", "host", "port"), parts))
    if not isinstance(entry, dict):
        raise ClusterFileError(f"{here}: expected user@host[:port] or a mapping with host")
    _known_keys(entry, NODE_KEYS, here)
    host = entry.get("host")
    if not host or not isinstance(host, str):
        raise ClusterFileError(f"{here}: 'host' is missing")
    hosts = expand(host, f"{here}: host", ClusterFileError)
    users = _zipped(entry, "user", hosts, here)
    if len(hosts) == 1 and users == [entry.get("user")]:
        return [parse_node(entry, here)]
    names = _zipped(entry, "name", hosts, here) if entry.get("name") else hosts
    return [parse_node({**entry, "host": h, "name": n, "user": u}, here)
            for h, n, u in zip(hosts, names, users)]


def _zipped(entry: dict, key: str, hosts: list[str], here: str) -> list:
    """A name or user beside a host range: one value for all, or a range of the same length
    (``ppss[1-3]@10.0.0.[1-3]``: ppss1@10.0.0.1 ... ppss3@10.0.0.3)."""
    value = entry.get(key)
    if value is None or "[" not in str(value):
        return [value] * len(hosts)
    values = expand(str(value), f"{here}: {key}", ClusterFileError)
    if len(values) == 1:
        return values * len(hosts)
    if len(values) != len(hosts):
        raise ClusterFileError(f"{here}: {key} {value!r} names {len(values)} but host "
                               f"{entry['host']!r} {len(hosts)}: ranges are paired in order")
    return values


def parse_node(entry: dict, here: str) -> NodeSpec:
    host = entry["host"]
    port = entry.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ClusterFileError(f"{here}: port {port!r} is not a TCP port")
    slots = entry.get("slots")
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        raise ClusterFileError(f"{here}: slots {slots!r} is not a whole number of at least 1")
    name = str(entry.get("name") or host)
    if not valid_node_name(name):
        raise ClusterFileError(f"{here}: name {name!r}: use letters, digits, '.', '_' and '-'")
    user = entry.get("user")
    if user is not None and not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?", str(user)):
        raise ClusterFileError(f"{here}: user {user!r} is not an account name")
    return NodeSpec(name=name, host=host, user=str(user) if user else None, port=port, slots=slots,
                    dir=str(entry["dir"]) if entry.get("dir") else None)


def parse_cluster(text: bytes | str, where: str = "ppss.yaml", base: str = ".") -> Cluster:
    data = load_yaml(text, where, ClusterFileError)
    if not isinstance(data, dict):
        raise ClusterFileError(f"{where}: expected a mapping with master and nodes")
    _known_keys(data, TOP_KEYS, where)
    if not data.get("master"):
        raise ClusterFileError(f"{where}: 'master' is missing (the job's address)")
    try:
        master = parse_address(str(data["master"]))
    except PpssError as exc:
        raise ClusterFileError(f"{where}: master: {exc}") from None
    nodes_data = data.get("nodes") or []
    if not isinstance(nodes_data, list):
        raise ClusterFileError(f"{where}: nodes: expected a list")
    nodes = tuple(n for i, e in enumerate(nodes_data) for n in parse_nodes(e, where, i))
    names = [n.name for n in nodes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ClusterFileError(f"{where}: node name {sorted(dup)[0]!r} appears twice (give each a name)")
    return Cluster(master=master, master_url=str(data["master"]), nodes=nodes,
                   identity=_expand(data.get("identity"), base),
                   known_hosts=_expand(data.get("known_hosts"), base),
                   node_key=_expand(data.get("node_key"), base), path=where)


def load_cluster(path: str) -> Cluster:
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ClusterFileError(f"{path}: no such cluster file (see README: the cluster file)") from None
    except OSError as exc:
        raise ClusterFileError(f"{path}: {exc.strerror}") from None
    return parse_cluster(text, path, os.path.dirname(os.path.abspath(path)))
