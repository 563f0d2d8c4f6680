"""Immutable snapshots of the job and the cluster: what pollers build and widgets render.

Nothing here touches the network or Textual: ``build_snapshot`` turns what the pollers read
(the master's ``JobStatus``, each node's ``NodeHealth``) into a ``JobSnapshot``. Every value a
widget shows is computed here, so the screens only format them, and snapshot tests can build
a ``JobSnapshot`` by hand.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker import layout as L
from worker.jobstatus import FINAL_STATES, JobStatus

# Connection states of a node's own SSH connection (load average and memory come over it).
CONNECTING = "connecting"
UP = "up"
UNREACHABLE = "unreachable"
HOSTKEY_UNKNOWN = "host key unknown"
HOSTKEY_CHANGED = "host key changed"
LOGIN_REFUSED = "login refused"
NOT_LISTED = "via master"   # reports to the master, but the cluster file does not list it (no SSH to it)

_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/=]+")


@dataclass(frozen=True)
class NodeHealth:
    """What the console knows about a node's host, read over the node's own SSH connection."""
    state: str = CONNECTING
    reason: str = ""
    fingerprint: str = ""
    load: tuple[float, float, float] | None = None
    mem_free: int | None = None      # bytes (MemAvailable)
    mem_total: int | None = None     # bytes
    checked: float = 0.0             # the console's clock when this was learnt


def classify_connect_error(text: str) -> tuple[str, str, str]:
    """A ``worker.sshconn.ConnectError`` message -> (state, reason, fingerprint)."""
    m = _FINGERPRINT.search(text)
    fingerprint = m.group(0) if m else ""
    if "HOST KEY CHANGED" in text:
        return HOSTKEY_CHANGED, text, fingerprint
    if "host key unknown" in text:
        return HOSTKEY_UNKNOWN, text, fingerprint
    if "login refused" in text:
        return LOGIN_REFUSED, text, ""
    return UNREACHABLE, text, ""


def parse_proc(text: str) -> tuple[tuple[float, float, float] | None, int | None, int | None]:
    """Output of ``cat /proc/loadavg /proc/meminfo`` -> (load averages, available, total bytes)."""
    load = None
    mem: dict[str, int] = {}
    for n, line in enumerate(text.splitlines()):
        if n == 0:
            parts = line.split()
            try:
                load = (float(parts[0]), float(parts[1]), float(parts[2]))
            except (IndexError, ValueError):
                load = None
            continue
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            mem[key.strip()] = int(fields[0]) * (1024 if len(fields) > 1 and fields[1] == "kB" else 1)
    free = mem.get("MemAvailable", mem.get("MemFree"))
    return load, free, mem.get("MemTotal")


# ---- rates -----------------------------------------------------------------------------------

class RateMeter:
    """Items per second from (time, count) samples; a reset (count going down) starts over.

    ``rate`` is the slope over the last ``window`` seconds. ``history`` keeps one rate per
    ``bucket`` seconds for the last ``span`` seconds (the sparkline).
    """

    def __init__(self, window: float = 30.0, bucket: float = 5.0, span: float = 300.0) -> None:
        self.window = window
        self.bucket = bucket
        self.samples: deque[tuple[float, int]] = deque()
        self.history: deque[float] = deque(maxlen=max(1, int(span / bucket)))
        self._bucket_start: float | None = None
        self._bucket_count = 0

    def add(self, t: float, count: int) -> None:
        if self.samples and count < self.samples[-1][1]:
            self.samples.clear()  # a worker restarted and its counter began again
            self._bucket_start = None
        if self.samples and t <= self.samples[-1][0]:
            self.samples[-1] = (self.samples[-1][0], count)
        else:
            self.samples.append((t, count))
        while len(self.samples) > 2 and self.samples[1][0] <= t - self.window:
            self.samples.popleft()
        if self._bucket_start is None:
            self._bucket_start, self._bucket_count = t, count
        if t - self._bucket_start >= self.bucket:
            self.history.append(max(0.0, (count - self._bucket_count) / (t - self._bucket_start)))
            self._bucket_start, self._bucket_count = t, count

    @property
    def rate(self) -> float | None:
        return rate_of(self.samples)


def rate_of(samples: Sequence[tuple[float, int]]) -> float | None:
    """Slope between the first and last sample, None without two distinct times."""
    if len(samples) < 2:
        return None
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    if t1 <= t0:
        return None
    return max(0.0, (c1 - c0) / (t1 - t0))


def eta_seconds(remaining: int, rate: float | None) -> float | None:
    """Seconds left at ``rate``; 0 when nothing remains; None when it cannot be told."""
    if remaining <= 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return remaining / rate


# ---- snapshots -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunningView:
    lock: str
    ident: str
    item: str          # display form
    slot: int
    started: float


PROBLEM_STATES = ("lost", "error")
PROBLEM_CONNS = (UNREACHABLE, HOSTKEY_CHANGED, HOSTKEY_UNKNOWN, LOGIN_REFUSED)
# "halted": paused by its failure threshold (job.yaml halt:); a job no worker runs says so ("no workers").
JOB_STATES = ("running", "paused", "halted", "suspended", "no workers", "stopped", "finished")


@dataclass(frozen=True)
class JobRow:
    """One job of a jobs root, as the jobs list shows it (``worker.jobsroot.JobInfo`` plus rate)."""
    name: str
    state: str                        # running | paused | halted | stopped | finished
    priority: int = 0
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    created: float = 0.0
    rate: float | None = None
    halted: str | None = None         # the reason, when halted

    @property
    def fraction(self) -> float:
        return min(1.0, (self.done + self.failed) / self.total) if self.total else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the job's rate while it runs; 0 when finished; None otherwise."""
        if self.state == "finished":
            return 0.0
        if self.state != "running":
            return None
        return eta_seconds(max(0, self.total - self.done - self.failed), self.rate)


def job_rows(infos: Sequence, rates: Mapping[str, "RateMeter"]) -> tuple[JobRow, ...]:
    """``JobInfo``s of ``worker.jobsroot.list_jobs`` (in its order) with each job's rate."""
    return tuple(JobRow(i.name, i.state, i.priority, i.total, i.done, i.failed, i.running, i.pending,
                        i.created, rates[i.name].rate if i.name in rates else None, i.halted)
                 for i in infos)


@dataclass(frozen=True)
class NodeRow:
    name: str
    host: str = "-"                   # user@host:port from the cluster file (or the worker's host)
    conn: str = NOT_LISTED
    conn_reason: str = ""
    fingerprint: str = ""
    state: str = "-"                  # the worker's reported state (or "no worker")
    error: str = ""
    slots: int = 0
    control_slots: int | None = None  # override in control.yaml
    running: tuple[RunningView, ...] = ()
    done: int = 0
    failed: int = 0
    rate: float | None = None
    heartbeat_age: float | None = None
    load: tuple[float, float, float] | None = None
    mem_free: int | None = None
    mem_total: int | None = None
    reported: bool = False            # a status file exists

    @property
    def problem(self) -> bool:
        """Lost, in error, or its host cannot be reached: what the operator must look at."""
        return self.state in PROBLEM_STATES or self.conn in PROBLEM_CONNS

    @property
    def live(self) -> bool:
        return self.reported and self.state not in ("lost", "no worker", *FINAL_STATES)

    @property
    def slots_used(self) -> int:
        return len(self.running)

    @property
    def slots_target(self) -> int | None:
        """The slot count control.yaml asks for when it differs from what the worker uses."""
        if self.control_slots is not None and (not self.reported or self.control_slots != self.slots):
            return self.control_slots
        return None


@dataclass(frozen=True)
class JobSnapshot:
    job: str                          # the master address shown
    master_state: str = CONNECTING    # connecting | up | error
    master_error: str = ""
    command: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    claimed: int = 0                  # running plus claimed ahead, from the node status files
    pending: int = 0
    retry_pending: int = 0
    control_state: str = "running"
    control_error: str = ""
    rate: float | None = None
    history: tuple[float, ...] = ()
    eta: float | None = None
    finished: bool = False
    nodes: tuple[NodeRow, ...] = ()
    taken: float = 0.0                # the console's clock when the master was last read
    recount: tuple[int, int] | None = None   # exact (done, failed) from the last recount
    recount_at: float | None = None
    halted: str = ""                  # control.yaml's reason when the job halted itself
    root: str = ""                    # the jobs root shown (empty: the master is a single job)
    jobs: tuple[JobRow, ...] = ()     # the root's jobs, by priority then age
    selected: str = ""                # the job of the root the dashboard shows (and keys act on)

    def node(self, name: str) -> NodeRow | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    @property
    def fraction(self) -> float:
        return min(1.0, (self.done + self.failed) / self.total) if self.total else 0.0

    @property
    def done_fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def failed_fraction(self) -> float:
        return min(1.0 - self.done_fraction, self.failed / self.total) if self.total else 0.0

    @property
    def queued(self) -> int:
        """Claimed ahead by a node but not started yet."""
        return max(0, self.claimed - self.running)

    @property
    def job_state(self) -> str:
        """What the job does, not only what control.yaml asks (``JOB_STATES``; "" before the master answers).

        finished: every item done or failed. stopped: control.yaml says so. paused/suspended:
        control.yaml, or every live worker is. no workers: none is running it (all lost,
        exited or never started) and it is not finished. Otherwise running.
        """
        if not self.total and not self.command:
            return ""
        if self.finished:
            return "finished"
        if self.control_state == "stopped":
            return "stopped"
        if self.control_state in ("paused", "halted", "suspended"):
            return self.control_state
        live = [n for n in self.nodes if n.live]
        if not live:
            return "no workers"
        states = {n.state for n in live}
        if states <= {"paused", "suspended"}:
            return "suspended" if states == {"suspended"} else "paused"
        return "running"

    @property
    def eta_known(self) -> bool:
        """An ETA means something only while the job runs."""
        return self.job_state == "running" and self.eta is not None

    @property
    def counter_lag(self) -> tuple[int, int] | None:
        """(done, failed) the last recount found beyond the node counters, None if they agree.

        Counters only grow: records beyond them mean a node's counters lag (a crash just after
        a commit). A recount within them has nothing to add.
        """
        if self.recount is None:
            return None
        extra_done, extra_failed = self.recount[0] - self.done, self.recount[1] - self.failed
        return (extra_done, extra_failed) if extra_done > 0 or extra_failed > 0 else None


@functools.lru_cache(maxsize=8192)
def running_views(running: tuple) -> tuple[RunningView, ...]:
    """A node's running items as shown, by slot. Cached: a node's running items stay the same
    over many refreshes, and decoding and shortening item names is most of a 1,000-node build."""
    return tuple(RunningView(r.lock, L.parse_lock_name(r.lock)[0],
                             L.display_item(L.item_from_json(r.item), 120), r.slot, r.started)
                 for r in sorted(running, key=lambda r: r.slot))


def build_snapshot(job: str, status: JobStatus | None, cluster_nodes: Sequence, health: Mapping[str, NodeHealth],
                   job_rate: RateMeter | None, node_rates: Mapping[str, RateMeter], taken: float,
                   master_state: str = UP, master_error: str = "",
                   recount: tuple[int, int] | None = None, recount_at: float | None = None) -> JobSnapshot:
    """Combine the master's status and the nodes' health into one snapshot.

    ``cluster_nodes`` are ``NodeSpec``s (name, label()); nodes that reported a status file but
    are not in the cluster file are shown too. Cost: proportional to nodes, never to items.
    """
    rows: list[NodeRow] = []
    statuses = {n.name: n for n in status.nodes} if status else {}
    control = status.control if status else None
    lease = status.spec.lease if status else 60.0
    names = [n.name for n in cluster_nodes] + sorted(set(statuses) - {n.name for n in cluster_nodes})
    specs = {n.name: n for n in cluster_nodes}
    for name in names:
        spec, st, h = specs.get(name), statuses.get(name), health.get(name)
        override = control.nodes.get(name) if control else None
        meter = node_rates.get(name)
        if st is not None:
            live = st.effective_state(lease) not in ("lost", *FINAL_STATES)
            running = running_views(st.running) if live else ()
        rows.append(NodeRow(
            name=name,
            host=spec.label() if spec else (st.host if st else "-"),
            conn=(h.state if h else CONNECTING) if spec else NOT_LISTED,
            conn_reason=h.reason if h and spec else "",
            fingerprint=h.fingerprint if h and spec else "",
            state=st.effective_state(lease) if st else "no worker",
            error=st.error if st else "",
            slots=st.slots if st else 0,
            control_slots=override.slots if override else None,
            running=running if st else (),
            done=st.done if st else 0, failed=st.failed if st else 0,
            rate=meter.rate if meter and st else None,
            heartbeat_age=st.last_seen_s if st else None,
            load=h.load if h else None, mem_free=h.mem_free if h else None,
            mem_total=h.mem_total if h else None, reported=st is not None))
    if status is None:
        return JobSnapshot(job=job, master_state=master_state, master_error=master_error, nodes=tuple(rows),
                           taken=taken)
    live_nodes = [n for n in status.nodes if n.effective_state(lease) not in ("lost", *FINAL_STATES)]
    claimed = sum(len(n.running) + len(n.claims) for n in live_nodes)
    rate = job_rate.rate if job_rate else None
    remaining = max(0, status.total - status.done - status.failed)
    return JobSnapshot(
        job=job, master_state=master_state, master_error=master_error, command=status.spec.command,
        total=status.total, done=status.done, failed=status.failed, running=status.running,
        claimed=claimed, pending=status.pending, retry_pending=status.retry_pending,
        control_state=control.state if control else "?", control_error=status.control_error,
        rate=rate, history=tuple(job_rate.history) if job_rate else (),
        eta=eta_seconds(remaining, rate), finished=status.finished or status.finished_mark is not None,
        nodes=tuple(rows), taken=taken, recount=recount, recount_at=recount_at,
        halted=(control.halted or "") if control and control.state == "halted" else "")
