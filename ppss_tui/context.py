"""Where a command's job, keys and known_hosts come from: the cluster file first, flags over it.

The cluster file is ``-c/--cluster FILE``; without it ``./ppss.yaml`` if it exists, then
``$PPSS_CLUSTER``. Its ``master`` is the job (or the root that holds jobs), its ``identity``,
``known_hosts`` and ``node_key`` the SSH settings; ``-i``, ``--known-hosts`` and ``--node-key``
override them, and a JOB on the command line overrides the master:

    JOB = ssh://[user@]host[:port]/path | a local path (holds a '/') | NAME (= <cluster master>/NAME)
"""

from __future__ import annotations

import dataclasses
import os
import posixpath

from worker.address import MasterAddress, parse_address
from worker.errors import ConnectError, UsageError

from .clusterfile import Cluster, load_cluster

DEFAULT_FILE = "ppss.yaml"
ENV_VAR = "PPSS_CLUSTER"


def cluster_path(explicit: str | None) -> str | None:
    """The cluster file to read, or None when there is none (no -c, no ./ppss.yaml, no $PPSS_CLUSTER)."""
    if explicit:
        return explicit
    if os.path.exists(DEFAULT_FILE):
        return DEFAULT_FILE
    return os.environ.get(ENV_VAR) or None


def no_cluster_message() -> str:
    return (f"no cluster file: ./{DEFAULT_FILE} does not exist and ${ENV_VAR} is not set "
            "(pass -c FILE, or see README: a real cluster)")


def resolve_job(text: str | None, cluster: Cluster | None) -> tuple[MasterAddress, str]:
    """The job's address and its URL as nodes are given it."""
    if text is None:
        if cluster is None:
            raise UsageError(f"no JOB given and {no_cluster_message()}")
        return cluster.master, cluster.master_url
    if "://" in text or "/" in text or text in (".", "..", "~"):
        address = parse_address(text)
        return address, address.display() if "://" in text else address.path
    if cluster is None:
        raise UsageError(f"JOB {text!r} is a bare name, which needs a cluster file whose master holds "
                         f"jobs: {no_cluster_message()}")
    root = cluster.master
    address = dataclasses.replace(root, path=posixpath.join(root.path, text))
    return address, address.display()


def effective_cluster(args, need_cluster: bool = False) -> Cluster:
    """The cluster file with the command line's JOB, -i, --known-hosts and --node-key applied."""
    path = cluster_path(getattr(args, "cluster", None))
    cluster = load_cluster(path) if path else None
    if cluster is None and need_cluster:
        raise UsageError(no_cluster_message())
    address, url = resolve_job(getattr(args, "job", None), cluster)
    if cluster is None:
        cluster = Cluster(master=address, master_url=url)
    else:
        cluster = dataclasses.replace(cluster, master=address, master_url=url)
    overrides = {}
    for field, flag in (("identity", "identity"), ("known_hosts", "known_hosts"), ("node_key", "node_key")):
        value = getattr(args, flag, None)
        if value:
            overrides[field] = os.path.abspath(os.path.expanduser(value))
    return dataclasses.replace(cluster, **overrides) if overrides else cluster


def known_hosts_file(cluster: Cluster) -> str:
    return cluster.known_hosts or os.path.expanduser("~/.ssh/known_hosts")


def require_known_hosts(cluster: Cluster) -> None:
    """Before an SSH login: a known_hosts file that does not exist is a setup step not done."""
    path = known_hosts_file(cluster)
    if not os.path.exists(path):
        raise ConnectError(f"known_hosts file {path} does not exist: run ppss-console trust")
