"""Node names on the command line and in the cluster file: single names or ClusterShell ranges.

``node[1-3]`` is node1, node2, node3; ``node[01-64]`` keeps the zero padding; ``10.0.0.[1-3]``
works for addresses; commas join several (``a,b[1-2]``). ClusterShell's NodeSet does the
expansion (a console-side dependency: the worker never imports it).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ClusterShell.NodeSet import NodeSet, NodeSetException

from worker import layout as L
from worker.errors import UsageError
from worker.jobops import update_control

if TYPE_CHECKING:
    from .clusterfile import Cluster


def expand(text: str, where: str = "--node", error=UsageError) -> list[str]:
    """Every name a node pattern stands for, in order; ``error`` naming ``where`` if malformed."""
    if "[" not in text and "," not in text:
        return [text] if text else []
    try:
        names = list(NodeSet(text))
    except (NodeSetException, ValueError) as exc:
        raise error(f"{where} {text!r}: not a node name or range ({exc})") from None
    if not names:
        raise error(f"{where} {text!r}: names no node")
    return names


def fold(names: list[str]) -> str:
    """The short form of a list of names: ['n1', 'n2', 'n3'] -> 'n[1-3]'."""
    return str(NodeSet.fromlist(names)) if names else ""


async def known_nodes(store, cluster: Cluster) -> set[str]:
    """Nodes a --node may name: those of the cluster file and those that have reported to the job."""
    names = {n.name for n in cluster.nodes}
    for entry in await store.listdir(L.NODES_DIR) or ():
        if entry.endswith(".json"):
            names.add(entry[:-5])
    return names


async def set_nodes_state(store, state: str, node_text: str | None, cluster: Cluster, force: bool):
    """Set the job's state, or that of the nodes ``node_text`` names (one control.yaml write).

    A name neither in the cluster file nor among the job's nodes is refused (a typo would
    otherwise steer nothing and say "paused"), unless ``force`` (a node not started yet)."""
    if node_text is None:
        if force:
            raise UsageError("--force goes with --node")
        control = await update_control(store, lambda c: c.with_state(state, None))
        return control, None
    nodes = expand(node_text)
    if not force:
        known = await known_nodes(store, cluster)
        unknown = [n for n in nodes if n not in known]
        if unknown:
            where = f"the cluster file {cluster.path}" if cluster.path else "a cluster file"
            raise UsageError(f"--node: unknown node {fold(unknown)}: not in {where} and never seen by the job "
                             "(--force to set it anyway)")
    control = await update_control(
        store, lambda c: functools.reduce(lambda acc, n: acc.with_state(state, n), nodes, c))
    return control, nodes
