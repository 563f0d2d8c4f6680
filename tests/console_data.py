"""Fixed data for the console's snapshot tests: a hand-built JobSnapshot, failed records and a
JobAccess stand-in that records what the screens ask of it (no network, no pollers)."""

from __future__ import annotations

from pathlib import Path

from ppss_tui.clusterfile import parse_cluster
import dataclasses

from ppss_tui.snapshot import (HOSTKEY_CHANGED, LOGIN_REFUSED, UNREACHABLE, UP, JobRow, JobSnapshot,
                               NodeRow, RunningView)
from worker.control import ControlError, parse_control

NOW = 1_700_000_000.0
FINGERPRINT = "SHA256:n8CmJRtqJ3s4B3uVv0y8m3Qx1q0aZ2f7hYbq6cYdE1w"

CLUSTER_YAML = """\
master: ssh://ppss@master:22/srv/jobs/wav2mp3
nodes:
  - ppss@node1
  - ppss@node2
  - ppss@node3
  - ppss@node4:2222
  - ppss@node5
  - {name: gpu1, host: 10.0.0.9, user: ppss}
"""


def cluster():
    return parse_cluster(CLUSTER_YAML, "ppss.yaml", "/")


def running(node: int, *slots: int) -> tuple[RunningView, ...]:
    return tuple(RunningView(f"{node:02x}{s:02x}ab", f"{node:02x}{s:02x}ab", f"/srv/wavs/take_{node}{s:02d}.wav",
                             s, NOW - 7 - 11 * s) for s in slots)


def snapshot() -> JobSnapshot:
    nodes = (
        NodeRow("node1", "ppss@node1", UP, state="running", slots=4, running=running(1, 0, 1, 2, 3),
                done=12_340, failed=3, rate=4.2, heartbeat_age=0.6, load=(3.91, 3.5, 3.12),
                mem_free=6_442_450_944, mem_total=16_777_216_000, reported=True),
        NodeRow("node2", "ppss@node2", UP, state="paused", slots=4, running=running(2, 0),
                done=11_002, failed=1, rate=0.9, heartbeat_age=1.2, load=(1.02, 2.4, 2.9),
                mem_free=9_126_805_504, mem_total=16_777_216_000, reported=True),
        NodeRow("node3", "ppss@node3", UP, state="running", slots=2, control_slots=6,
                running=running(3, 0, 1), done=5_120, failed=0, rate=2.0, heartbeat_age=0.4,
                load=(2.0, 1.98, 1.5), mem_free=2_147_483_648, mem_total=8_388_608_000, reported=True),
        NodeRow("node4", "ppss@node4:2222", UNREACHABLE,
                "ppss@node4:2222: cannot connect: Connection refused", state="lost", slots=4,
                done=3_077, failed=7, heartbeat_age=312.0, reported=True),
        NodeRow("node5", "ppss@node5", HOSTKEY_CHANGED,
                f"ppss@node5: HOST KEY CHANGED (it offers {FINGERPRINT}); it does not match "
                "/home/op/.ssh/known_hosts. Refusing to connect", FINGERPRINT, state="no worker"),
        NodeRow("gpu1", "ppss@10.0.0.9", LOGIN_REFUSED,
                "ppss@10.0.0.9: login refused (no accepted key for that account)", state="no worker"),
        NodeRow("node9", "node9.lan", "via master", state="finished", slots=2, done=800,
                heartbeat_age=45.0, reported=True),
    )
    done = sum(n.done for n in nodes)
    failed = sum(n.failed for n in nodes)
    run = sum(len(n.running) for n in nodes)
    total = 100_000
    return JobSnapshot(
        job="ppss@master:22/srv/jobs/wav2mp3", master_state=UP,
        command='lame --preset standard "$ITEM" "$OUTPUT_DIR/out.mp3"', total=total, done=done,
        failed=failed, running=run, claimed=run + 5, pending=total - done - failed - run,
        retry_pending=2, control_state="running", rate=7.1,
        history=(0.0, 2.5, 4.0, 6.1, 7.3, 7.0, 6.8, 7.4, 7.9, 7.2, 6.5, 7.1, 7.3, 7.0, 7.1),
        eta=(total - done - failed) / 7.1, nodes=nodes, taken=NOW - 1.0,
        recount=(done + 3, failed), recount_at=NOW - 240)  # a crashed node's counters lag by 3


ROOT = "ppss@master:22/srv/jobs"


def jobs() -> tuple[JobRow, ...]:
    """A jobs root's list, in list_jobs' order (priority, then age): one of each state."""
    return (
        JobRow("urgent-fix", "running", 10, 2_000, 1_310, 12, 8, 670, NOW - 600, 3.5),
        JobRow("wav2mp3", "running", 0, 100_000, 32_339, 11, 11, 67_639, NOW - 86_400, 7.1),
        JobRow("thumbnails", "halted", 0, 40_000, 9_000, 1_210, 0, 29_790, NOW - 7_200, None,
               "12% failed"),
        JobRow("reindex", "paused", 0, 5_000, 2_500, 0, 0, 2_500, NOW - 3_600, None),
        JobRow("nightly-2026-11-25", "finished", 0, 12_000, 11_990, 10, 0, 0, NOW - 90_000, None),
        JobRow("old-export", "stopped", -1, 800, 120, 3, 0, 677, NOW - 200_000, None),
    )


def root_snapshot() -> JobSnapshot:
    """The dashboard of wav2mp3 under a jobs root, with the root's jobs listed above it."""
    return dataclasses.replace(snapshot(), job=f"{ROOT}/wav2mp3", root=ROOT, jobs=jobs(), selected="wav2mp3")


def failed_records() -> list[dict]:
    recs = []
    for n, (node, item) in enumerate([("node1", "/srv/wavs/a 1.wav"), ("node2", "/srv/wavs/b.wav"),
                                      ("node3", "/srv/wavs/c.wav"), ("node7", "/srv/wavs/d.wav"),
                                      ("node1", "/srv/wavs/e.wav")]):
        recs.append({"id": f"{n:02x}aa{n}", "item": item, "node": node, "exit": 2, "attempt": 1,
                     "start": NOW - 1000 + n,
                     "output_tail": f"lame: {item}: unsupported WAV format (ADPCM)\n"})
    for n, node in enumerate(["node4", "node4", "gpu1"]):
        recs.append({"id": f"{n:02x}bb{n}", "item": f"/srv/wavs/huge_{n}.wav", "node": node, "exit": 137,
                     "attempt": 2, "start": NOW - 500 + n,
                     "output_tail": "encoding frame 90210\nKilled\n"})
    recs.append({"id": "ffcc00", "item": "/srv/wavs/silence.wav", "node": "node2", "exit": 1,
                 "attempt": 1, "start": NOW - 100, "output_tail": ""})
    return recs


CONTROL_TEXT = """\
# ppss control file: edit with `ppss-console pause|resume|stop|suspend` or the console.
# state: running | paused | suspended | stopped; nodes: per-node overrides {state, slots}.
state: running
nodes:
  node2:
    state: paused
  node3:
    slots: 6
"""


class FakeAccess:
    """Records every call; holds control.yaml text with a stamp like the real one.
    Follows ``ppss_tui.access.ConsoleAccess`` (tests/test_console_headless.py checks it)."""

    def __init__(self, control_text: str = CONTROL_TEXT, records: list[dict] | None = None) -> None:
        self.calls: list[tuple] = []
        self.control_text = control_text
        self.stamp = (NOW, len(control_text))
        self.records = failed_records() if records is None else records

    async def set_state(self, state, node=None):
        self.calls.append(("set_state", state, node))

    async def set_slots(self, node, slots):
        self.calls.append(("set_slots", node, slots))

    async def read_control(self):
        return self.control_text, self.stamp

    async def write_control(self, text, stamp):
        parse_control(text.encode(), "control.yaml")
        if stamp != self.stamp:
            raise ControlError("control.yaml was changed by someone else since you opened it; reload")
        self.calls.append(("write_control", text))
        self.control_text, self.stamp = text, (self.stamp[0] + 1, len(text))
        return self.stamp

    async def failed(self, limit=None):
        return list(self.records)

    async def retry(self, ids):
        """As the real one: those failed records leave the list; returns how many."""
        self.calls.append(("retry", tuple(ids)))
        before = len(self.records)
        self.records = [r for r in self.records if r.get("id") not in set(ids)]
        return before - len(self.records)

    async def item_log(self, ident):
        return f"# id: {ident}\nsome output\n"

    async def node_joblog(self, node, lines=200):
        return f"12:00:00 done  /srv/wavs/x.wav ({node})"


SNAPSHOT_DIR = Path(__file__).parent / "__snapshots__"
