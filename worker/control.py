"""control.yaml: the operator's steering wheel, read by every worker, written by the console.

    state: running          # job-wide: running | paused | suspended | stopped
    nodes:
      node1: {state: paused}
      node2: {slots: 2}

running   start items while slots are free
paused    start nothing new; running items finish
suspended running items are frozen (SIGSTOP) until running again (SIGCONT)
stopped   start nothing new; running items finish; then the worker exits
halted    as paused, set by a worker when failures passed the job's halt threshold; ``halted:``
          holds the reason ("12% failed"); ``resume`` records ``halt_ignore_below:`` (the failed
          count then) so the job halts again only when failures grow past the threshold from there
priority: N (optional) overrides job.yaml's priority, live
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import JobError
from .yamlio import dump_yaml, load_yaml

STATES = ("running", "paused", "halted", "suspended", "stopped")
SET_STATES = ("running", "paused", "suspended", "stopped")  # what an operator sets (a worker halts)
HEADER = ("# ppss control file: edit with `ppss-console pause|resume|stop|suspend` or the console.\n"
          "# state: running | paused | halted | suspended | stopped; nodes: per-node overrides {state, slots}.\n")
EXTRA_KEYS = ("halted", "halt_ignore_below", "priority")


class ControlError(JobError):
    pass


@dataclass(frozen=True)
class NodeControl:
    state: str | None = None
    slots: int | None = None


@dataclass(frozen=True)
class Control:
    state: str = "running"
    nodes: dict[str, NodeControl] = field(default_factory=dict)
    halted: str | None = None  # the reason, while state is halted
    halt_ignore_below: int | None = None  # the failed count when last resumed from a halt
    priority: int | None = None  # overrides job.yaml's priority

    def for_node(self, node: str) -> tuple[str, int | None]:
        """The effective (state, slots override) for a node. A halt is what a worker does for it:
        ``paused`` (the job's own ``state``/``halted`` keep the reason for the operator)."""
        override = self.nodes.get(node)
        state = self.state
        if override and override.state:
            # A job-wide stop wins over a node's own running/paused; a halt over its running.
            state = "stopped" if self.state == "stopped" else override.state
            if self.state == "halted" and state == "running":
                state = "halted"
        return "paused" if state == "halted" else state, override.slots if override else None

    def with_state(self, state: str, node: str | None = None) -> "Control":
        if state not in STATES:
            raise ControlError(f"unknown state {state!r} (one of {', '.join(SET_STATES)})")
        if node is None:
            # A job-wide change clears per-node state overrides (slots stay).
            nodes = {n: NodeControl(None, c.slots) for n, c in self.nodes.items() if c.slots is not None}
            halted = self.halted if state == "halted" else None
            return replace(self, state=state, nodes=nodes, halted=halted)
        nodes = dict(self.nodes)
        old = nodes.get(node, NodeControl())
        nodes[node] = NodeControl(state, old.slots)
        return replace(self, nodes=nodes)

    def with_halt(self, reason: str) -> "Control":
        """The job halts itself: acts as paused, with the reason shown until resumed."""
        return replace(self, state="halted", halted=reason)

    def resumed(self, failed: int) -> "Control":
        """Running again; a halted job remembers the failed count so it does not halt at once."""
        ignore = failed if self.state == "halted" else self.halt_ignore_below
        return replace(self.with_state("running"), halt_ignore_below=ignore)

    def with_priority(self, priority: int | None) -> "Control":
        return replace(self, priority=priority)

    def with_slots(self, node: str, slots: int | None) -> "Control":
        if slots is not None and not 0 <= slots <= 4096:
            raise ControlError(f"slots must be between 0 and 4096, not {slots}")
        nodes = dict(self.nodes)
        old = nodes.get(node, NodeControl())
        nodes[node] = NodeControl(old.state, slots)
        return replace(self, nodes=nodes)

    def to_dict(self) -> dict:
        nodes = {}
        for name, c in sorted(self.nodes.items()):
            entry = {}
            if c.state:
                entry["state"] = c.state
            if c.slots is not None:
                entry["slots"] = c.slots
            if entry:
                nodes[name] = entry
        data = {"state": self.state, "nodes": nodes}
        for key in EXTRA_KEYS:  # written only when set: files of older versions stay as they were
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def to_yaml(self) -> bytes:
        return (HEADER + dump_yaml(self.to_dict())).encode()


def parse_control(text: bytes | str, where: str = "control.yaml") -> Control:
    """Parse and validate; raise ControlError with one line saying what and where."""
    data = load_yaml(text, where, ControlError)
    if data is None:
        # The console and init always write a state, atomically: an empty (or comment-only)
        # file is damage (a truncation, an editor gone wrong), never "running".
        raise ControlError(f"{where}: empty (expected at least 'state: running|paused|suspended|stopped')")
    if not isinstance(data, dict):
        raise ControlError(f"{where}: expected a mapping with 'state' and 'nodes'")
    unknown = set(data) - {"state", "nodes", *EXTRA_KEYS}
    if unknown:
        raise ControlError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r} "
                           f"(expected state, nodes, {', '.join(EXTRA_KEYS)})")
    state = data.get("state", "running")
    if state not in STATES:
        raise ControlError(f"{where}: state: {state!r} is not one of {', '.join(SET_STATES)}")
    nodes_data = data.get("nodes") or {}
    if not isinstance(nodes_data, dict):
        raise ControlError(f"{where}: nodes: expected a mapping of node name to {{state, slots}}")
    nodes = {}
    for name, entry in nodes_data.items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise ControlError(f"{where}: nodes.{name}: expected a mapping with state and/or slots")
        bad = set(entry) - {"state", "slots"}
        if bad:
            raise ControlError(f"{where}: nodes.{name}: unknown key {sorted(map(str, bad))[0]!r}")
        nstate = entry.get("state")
        if nstate is not None and nstate not in STATES:
            raise ControlError(f"{where}: nodes.{name}.state: {nstate!r} is not one of {', '.join(SET_STATES)}")
        slots = entry.get("slots")
        if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or not 0 <= slots <= 4096):
            raise ControlError(f"{where}: nodes.{name}.slots: {slots!r} is not a whole number from 0 to 4096")
        nodes[str(name)] = NodeControl(nstate, slots)
    return Control(state, nodes, **_extras(data, where))


def _extras(data: dict, where: str) -> dict:
    halted = data.get("halted")
    if halted is not None and not isinstance(halted, str):
        raise ControlError(f"{where}: halted: expected the reason as text, not {halted!r}")
    out: dict = {"halted": halted}
    for key in ("halt_ignore_below", "priority"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ControlError(f"{where}: {key}: {value!r} is not a whole number")
        out[key] = value
    if out["halt_ignore_below"] is not None and out["halt_ignore_below"] < 0:
        raise ControlError(f"{where}: halt_ignore_below: must be 0 or more")
    return out
