"""ROOT/fleet.yaml: fleet-wide steering of the serving workers of a jobs root.

    state: running          # running | paused | stopped
    nodes:
      node3: {state: paused}   # drain node3: it starts nothing new on any job
      node7: {slots: 2}        # this node's total slots over all jobs

Same rules as control.yaml: writers replace it atomically and never overwrite a file they cannot
parse; a reader that finds it malformed keeps its last good state (``LastGood``). A missing file
is ``running`` with no overrides. ``effective_state`` combines it with a job's control.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .control import ControlError
from .yamlio import dump_yaml, load_yaml

FLEET_FILE = "fleet.yaml"
FLEET_STATES = ("running", "paused", "stopped")
# How restrictive each state is: the most restrictive of the four layers wins.
RANK = {"running": 0, "paused": 1, "halted": 1, "suspended": 2, "stopped": 3}
HEADER = ("# ppss fleet file: edit with `ppss-console pause|resume|stop --fleet [--node N]`.\n"
          "# state: running | paused | stopped; nodes: per-node overrides {state, slots}.\n")


class FleetError(ControlError):
    pass


@dataclass(frozen=True)
class FleetNode:
    state: str | None = None
    slots: int | None = None


@dataclass(frozen=True)
class FleetControl:
    state: str = "running"
    nodes: dict[str, FleetNode] = field(default_factory=dict)

    def for_node(self, node: str) -> tuple[str, int | None]:
        """(the node's fleet state, its total slots over all jobs or None)."""
        override = self.nodes.get(node)
        state = self.state
        if override and override.state:
            state = most_restrictive(self.state, override.state)
        return state, override.slots if override else None

    def with_state(self, state: str, node: str | None = None) -> "FleetControl":
        if state not in FLEET_STATES:
            raise FleetError(f"fleet state {state!r} is not one of {', '.join(FLEET_STATES)}")
        if node is None:
            # A fleet-wide change clears per-node state overrides (slots stay), as control.yaml.
            nodes = {n: FleetNode(None, c.slots) for n, c in self.nodes.items() if c.slots is not None}
            return FleetControl(state, nodes)
        nodes = dict(self.nodes)
        nodes[node] = FleetNode(state, nodes.get(node, FleetNode()).slots)
        return FleetControl(self.state, nodes)

    def with_slots(self, node: str, slots: int | None) -> "FleetControl":
        if slots is not None and not 0 <= slots <= 4096:
            raise FleetError(f"slots must be between 0 and 4096, not {slots}")
        nodes = dict(self.nodes)
        nodes[node] = FleetNode(nodes.get(node, FleetNode()).state, slots)
        return FleetControl(self.state, nodes)

    def to_dict(self) -> dict:
        nodes = {}
        for name, c in sorted(self.nodes.items()):
            entry = {k: v for k, v in (("state", c.state), ("slots", c.slots)) if v is not None}
            if entry:
                nodes[name] = entry
        return {"state": self.state, "nodes": nodes}

    def to_yaml(self) -> bytes:
        return (HEADER + dump_yaml(self.to_dict())).encode()


def most_restrictive(*states: str | None) -> str:
    """stopped > suspended > paused/halted > running (None: no say)."""
    given = [s for s in states if s]
    return max(given, key=lambda s: RANK.get(s, 0)) if given else "running"


def effective_state(fleet_state: str | None, fleet_node_state: str | None, job_state: str | None,
                    job_node_state: str | None) -> str:
    """A (job, node)'s state: the most restrictive of the fleet's, the fleet's for the node, the
    job's and the job's for the node. A halted job stays "halted" (it acts as paused)."""
    return most_restrictive(fleet_state, fleet_node_state, job_state, job_node_state)


def parse_fleet(text: bytes | str, where: str = FLEET_FILE) -> FleetControl:
    """Parse and validate; raise FleetError with one line saying what and where."""
    data = load_yaml(text, where, FleetError)
    if data is None:
        return FleetControl()
    if not isinstance(data, dict):
        raise FleetError(f"{where}: expected a mapping with 'state' and 'nodes'")
    unknown = set(data) - {"state", "nodes"}
    if unknown:
        raise FleetError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r} (expected state, nodes)")
    state = data.get("state", "running")
    if state not in FLEET_STATES:
        raise FleetError(f"{where}: state: {state!r} is not one of {', '.join(FLEET_STATES)}")
    nodes_data = data.get("nodes") or {}
    if not isinstance(nodes_data, dict):
        raise FleetError(f"{where}: nodes: expected a mapping of node name to {{state, slots}}")
    nodes = {}
    for name, entry in nodes_data.items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise FleetError(f"{where}: nodes.{name}: expected a mapping with state and/or slots")
        bad = set(entry) - {"state", "slots"}
        if bad:
            raise FleetError(f"{where}: nodes.{name}: unknown key {sorted(map(str, bad))[0]!r}")
        nstate = entry.get("state")
        if nstate is not None and nstate not in FLEET_STATES:
            raise FleetError(f"{where}: nodes.{name}.state: {nstate!r} is not one of {', '.join(FLEET_STATES)}")
        slots = entry.get("slots")
        if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or not 0 <= slots <= 4096):
            raise FleetError(f"{where}: nodes.{name}.slots: {slots!r} is not a whole number from 0 to 4096")
        nodes[str(name)] = FleetNode(nstate, slots)
    return FleetControl(state, nodes)


class LastGood:
    """A reader's view of fleet.yaml: a malformed file keeps the last good state, with the error."""

    def __init__(self, where: str = FLEET_FILE) -> None:
        self.where = where
        self.fleet = FleetControl()
        self.error = ""

    def update(self, data: bytes | None) -> FleetControl:
        try:
            self.fleet = parse_fleet(data or b"", self.where)
            self.error = ""
        except FleetError as exc:
            self.error = str(exc)
        return self.fleet


async def read_fleet(store) -> FleetControl:
    """fleet.yaml of the root ``store`` (missing: running); FleetError if malformed."""
    return parse_fleet(await store.read(FLEET_FILE) or b"", store.where(FLEET_FILE))


async def update_fleet(store, change) -> FleetControl:
    """Read fleet.yaml, apply ``change(FleetControl) -> FleetControl``, replace it atomically.
    A malformed file is never overwritten: the error names it and the line."""
    new = change(await read_fleet(store))
    await store.write_atomic(FLEET_FILE, new.to_yaml())
    return new
