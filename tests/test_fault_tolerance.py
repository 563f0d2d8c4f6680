"""Fault tolerance against real sshd servers, with ppss-console and ppss-worker as real processes.

Every test ends by checking, in the job directory on the master (127.0.0.1, so a local path):
nothing lost (every item has a done or failed record), no item recorded twice (one record per
item, one final job-log event per item), the recounted status agrees, and how often each item
was really executed (the commands append to per-node execution logs).

Workers run on this host under different ``--node-name``s and reach the master over SSH/SFTP.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ppss_helpers import Job, _signal, assert_exactly_once, items_n, wait_for
from sshcluster import MakeCluster, SshCluster, _descendants
from worker import layout as L

pytestmark = pytest.mark.ssh

LEASE = 5


def note(text: str) -> None:
    """Measured figures (visible with pytest -s)."""
    print(f"[fault-tolerance] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# a job on the master, and workers on this host


@pytest.fixture
def make_job(tmp_path: Path):
    jobs: list[Job] = []

    def make(cluster: SshCluster, name: str = "job") -> Job:
        job = Job(tmp_path / name, cluster)
        jobs.append(job)
        return job

    try:
        yield make
    finally:
        for job in jobs:
            job.cleanup()


def execution_counts(job: Job) -> Counter:
    return Counter(item for item, *_ in job.executions())


# ---------------------------------------------------------------------------------------------
# 1. a node dies


def test_sigkill_node_mid_run(ssh_cluster: SshCluster, make_job) -> None:
    job = make_job(ssh_cluster)
    items = items_n(90)
    job.init("--command", job.timed("sleep 0.2"), "--lease", str(LEASE), items=items)
    for node in ("n1", "n2", "n3"):
        job.start(node, slots=2)
    wait_for(lambda: len(job.executions("n2")) >= 4 and job.running("n2") >= 1, 30,
             "victim n2 to complete 4 items and be running more")
    t_kill = job.kill_node("n2")
    held = job.held_by("n2")
    assert held, "n2 held no claims when killed: the test did not kill it mid-run"
    assert job.done_count() < len(items) - len(held)
    victim_ran = {item for item, *_ in job.executions("n2")}

    for node in ("n1", "n3"):
        job.wait_ok(node, LEASE + 30)
    assert_exactly_once(job, items, joblog_may_miss={L.item_id(i.encode()) for i in victim_ran})

    # Only items that were running on n2 ran twice: at most its slots.
    counts = execution_counts(job)
    assert set(counts) == {i.decode() for i in items}
    again = {i: n for i, n in counts.items() if n > 1}
    assert len(again) <= 2 and all(n == 2 for n in again.values()), again
    assert set(again) <= victim_ran, again
    # The killed node's claims were taken over after the lease, not before, and soon after.
    held_ids = {L.parse_lock_name(lock)[0] for lock in held}
    starts = {e["id"]: e["start"] for e in job.joblog() if e["event"] == "done" and e["id"] in held_ids}
    assert set(starts) == held_ids
    wall_kill = time.time() - (time.monotonic() - t_kill)
    delays = sorted(s - wall_kill for s in starts.values())
    note(f"SIGKILL: {len(held)} claims of n2 re-run {delays[0]:.1f}..{delays[-1]:.1f} s after the kill "
         f"(lease {LEASE} s); {len(again)} items executed twice")
    assert LEASE - 1.5 <= delays[0] and delays[-1] <= LEASE + 6, delays
    said = "".join(job.stderr(n) for n in ("n1", "n3"))
    assert "node n2 silent" in said or "took 1 items left behind" in said or "items left behind" in said, \
        f"no worker said it took over n2's items:\n{said}"


# ---------------------------------------------------------------------------------------------
# 2. a node freezes past its lease, then comes back


def test_sigstop_past_lease_late_results_refused(ssh_cluster: SshCluster, make_job) -> None:
    job = make_job(ssh_cluster)
    items = items_n(8)
    job.init("--command", job.timed("sleep 4"), "--lease", str(LEASE), items=items)
    job.start("a", slots=2)
    job.start("b", slots=2)
    wait_for(lambda: job.running("a") == 2 and job.running("b") == 2, 20, "a and b to run 2 items each")
    status_a = job.node_status("a")
    running_a = {r["lock"] for r in status_a["running"]}
    t_stop = job.freeze("a")
    held = job.held_by("a")
    assert running_a <= held, (running_a, held)

    try:
        wait_for(lambda: not job.held_by("a"), LEASE + 8, "b to take over a's claims")
    except AssertionError as exc:  # say what b was doing
        raise AssertionError(f"{exc}\nb's status: {job.node_status('b')}\nb's stderr:\n{job.stderr('b')}") from None
    taken_after = time.monotonic() - t_stop
    assert taken_after >= LEASE - 1.5, f"a's claims were taken {taken_after:.1f} s after it froze"
    time.sleep(max(0.0, LEASE + 3.5 - (time.monotonic() - t_stop)))
    job.thaw("a")
    wall_thaw = time.time()
    note(f"SIGSTOP: {len(held)} claims of a ({len(running_a)} running) taken over {taken_after:.1f} s "
         f"after it froze (lease {LEASE} s)")

    job.wait_ok("b", 40)
    job.wait_ok("a", 20)
    assert_exactly_once(job, items)
    # a's late completions were refused and logged; b recorded every item a had held.
    lost = [e for e in job.joblog("a") if e["event"] == "lost_lease"]
    assert {e["id"] for e in lost} >= {L.parse_lock_name(x)[0] for x in running_a}, lost
    assert "lease lost" in job.stderr("a")
    # b recorded what a had held — or a, only from a new claim after it came back: what b took
    # over beyond its claim-ahead bound went to the retry queue, which any node may claim.
    done = {e["id"]: e for e in job.joblog() if e["event"] == "done"}
    for lock in held:
        rec = done[L.parse_lock_name(lock)[0]]
        assert rec["node"] == "b" or rec["start"] >= wall_thaw - 1, rec
    assert job.node_status("a")["lost_leases"] == len(lost)
    # Only what was running on a can have run twice (its claimed-ahead items had not started).
    counts = execution_counts(job)
    again = {i: n for i, n in counts.items() if n > 1}
    assert set(counts) == {i.decode() for i in items}
    ran_twice_ok = {L.item_from_json(r["item"]).decode() for r in status_a["running"]}
    assert set(again) <= ran_twice_ok and len(again) <= 2, \
        f"items executed more than once: {again}; only a's running items {ran_twice_ok} may be"


# ---------------------------------------------------------------------------------------------
# 3. the master's sshd restarts


def test_master_sshd_restart_mid_run(fresh_cluster: MakeCluster, make_job) -> None:
    cluster = fresh_cluster(0)
    job = make_job(cluster)
    items = items_n(40)
    # The lease is longer than the outage: nobody may be declared lost for a restart.
    job.init("--command", job.timed("sleep 0.4"), "--lease", "15", items=items)
    job.start("r1", slots=2)
    job.start("r2", slots=2)
    wait_for(lambda: job.done_count() >= 6 and job.running("r1") and job.running("r2"), 30,
             "6 items done and both workers running")
    master = cluster.master
    sessions = _descendants(master.proc.pid)
    assert len(sessions) >= 2, "expected the workers' sessions under the master sshd"
    master.stop()
    for pid in sessions:  # cut every established connection, as a host restart would
        _signal(pid, signal.SIGKILL)
    done_at_cut = job.done_count()
    time.sleep(2)
    master.start()
    t_up = time.monotonic()
    wait_for(lambda: all("reconnected" in job.stderr(n) for n in ("r1", "r2")), 20,
             "both workers to reconnect")
    note(f"sshd restart: both workers reconnected within {time.monotonic() - t_up:.1f} s of the restart "
         f"({done_at_cut} of {len(items)} done at the cut)")
    job.wait_ok("r1", 40)
    job.wait_ok("r2", 20)
    for node in ("r1", "r2"):
        assert "lost; reconnecting" in job.stderr(node)
    assert_exactly_once(job, items)
    assert not [e for e in job.joblog() if e["event"] == "lost_lease"]
    counts = execution_counts(job)
    assert counts == Counter({i.decode(): 1 for i in items}), \
        {i: n for i, n in counts.items() if n != 1}


# ---------------------------------------------------------------------------------------------
# 4. copy mode: awkward names, an output tree, failures


def test_copy_mode_awkward_names_and_output_tree(ssh_cluster: SshCluster, make_job, tmp_path: Path) -> None:
    src = tmp_path / "src"
    names = [
        "plain.txt",
        "it's \"quoted\".txt",
        "$(touch pwned)",
        "`touch pwned`;x",
        "two  spaces ",
        "-leading-dash",
        "--help",
        "unicod\u00e9 \u2603 \u65e5\u672c.txt",
        "new\nline",
        "sub dir/inner 'q'/deep $(touch pwned).txt",
        "sub dir/-n",
        "sub dir/\u00e9t\u00e9/\u00e9.txt",
        os.fsdecode(b"latin-1 caf\xe9"),  # not UTF-8
        "-dir/* ?",
        "fail-me.txt",
        "sub dir/gone.txt",
    ]
    content = {}
    for n, name in enumerate(names):
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (os.fsencode(name) + b"\n") * (n + 1)
        path.write_bytes(data)
        content[name] = data
    out = tmp_path / "out dir"
    work = tmp_path / "work"
    job = make_job(ssh_cluster)
    command = ('case "$ITEM" in *fail-me.txt) echo "failing on purpose"; exit 3;; esac; '
               'wc -c < "$ITEM" > "$OUTPUT_DIR/size" && cat "$ITEM" > "$OUTPUT_DIR/copy" && '
               'printf %s "$ITEM" > "$OUTPUT_DIR/local"')
    job.init("--source-dir", str(src), "--transfer", "copy", "--output-dir", str(out), "--command", command,
             "--retries", "1", "--lease", str(LEASE))
    (src / "sub dir/gone.txt").unlink()  # a transfer error: the file vanished after init

    job.start("c1", 3, "--work-dir", str(work))
    job.wait_ok("c1", 40, code=1)

    items = [os.fsencode(src / n) for n in names]
    ident = {n: L.item_id(os.fsencode(src / n)) for n in names}
    assert_exactly_once(job, items, failed={os.fsencode(src / "fail-me.txt"): 3,
                                            os.fsencode(src / "sub dir/gone.txt"): 254})
    good = [n for n in names if n not in ("fail-me.txt", "sub dir/gone.txt")]
    # The output tree mirrors the source tree: OUT/<path below the source>/{size,copy}.
    for name in good:
        assert (out / name / "size").read_text().strip() == str(len(content[name])), name
        assert (out / name / "copy").read_bytes() == content[name], name
        local = Path(os.fsdecode((out / name / "local").read_bytes()))  # ITEM: the fetched copy
        assert local.parent == work / ident[name] / "in" and local.name == Path(name).name, local
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {f"{n}/{f}" for n in good for f in ("size", "copy", "local")}
    assert not [p for p in tmp_path.rglob("*") if p.name == "pwned"], "a file name ran as code"
    # Work directories: removed after success, kept (and named in the log) after a failure.
    for name in good:
        assert not (work / ident[name]).exists(), f"work directory of {name!r} left behind"
    log = job.log(ident["fail-me.txt"])
    assert "failing on purpose" in log
    m = re.search(r"work directory kept: (.+)", log)
    assert m, log
    kept = Path(m.group(1).strip())
    assert kept == work / ident["fail-me.txt"], kept
    assert (kept / "in" / "fail-me.txt").read_bytes() == content["fail-me.txt"]
    # The vanished file: a clear failure, retried per --retries.
    log = job.log(ident["sub dir/gone.txt"])
    assert "fetching" in log and "gone.txt" in log and "no such file" in log.lower(), log
    rec = job.records()[1][ident["sub dir/gone.txt"]]
    assert rec["attempt"] == 2 and "no such file" in rec["output_tail"].lower(), rec
    events = [e["event"] for e in job.joblog() if e["id"] == ident["sub dir/gone.txt"]]
    assert events == ["retry", "failed"], events
    events = [e["event"] for e in job.joblog() if e["id"] == ident["fail-me.txt"]]
    assert events == ["retry", "failed"], events


# ---------------------------------------------------------------------------------------------
# 5. suspend and resume


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _group_states(pgid: int) -> list[str]:
    """States of every process in the process group (an item's sh and what it started)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                out.append(fields[0])
    return out


def test_suspend_and_resume(ssh_cluster: SshCluster, make_job, tmp_path: Path) -> None:
    job = make_job(ssh_cluster)
    pids = tmp_path / "pids"
    pids.mkdir()
    items = items_n(4)
    job.init("--command", job.timed(f'echo $$ > {shlex.quote(str(pids))}/"$ITEM"; sleep 5'),
             "--lease", str(LEASE), items=items)
    job.start("s1", slots=2)
    job.start("s2", slots=2)
    wait_for(lambda: len(list(pids.iterdir())) >= 2, 20, "two items to start")
    job.console("suspend")
    wait_for(lambda: all((job.node_status(n) or {}).get("state") == "suspended" for n in ("s1", "s2")), 3,
             "both nodes to report the state suspended")
    running = [r["item"] for n in ("s1", "s2") for r in job.node_status(n)["running"]]
    assert len(running) >= 2, running
    wait_for(lambda: all((pids / i).exists() for i in running), 2, "the running items' pid files")
    item_pids = {i: int((pids / i).read_text()) for i in running}
    wait_for(lambda: all(_proc_state(pid) and set(_group_states(pid)) == {"T"} for pid in item_pids.values()),
             3, "every process of the running items to be stopped (state T)")
    done, started = job.done_count(), len(list(pids.iterdir()))
    # Frozen longer than the lease: the nodes keep heartbeating, so nobody takes their items.
    t_end = time.monotonic() + LEASE + 2
    seen = []
    while time.monotonic() < t_end:
        st = job.status(recount=False)
        states = {n["name"]: (n["state"], n["last_seen_s"]) for n in st["nodes"]}
        seen.append(states)
        for name in ("s1", "s2"):
            state, age = states[name]
            assert state == "suspended" and age is not None and age < 3, states
        assert all(set(_group_states(pid)) == {"T"} for pid in item_pids.values())
        time.sleep(0.5)
    assert job.done_count() == done, "an item finished while suspended"
    assert len(list(pids.iterdir())) == started, "an item started while suspended"
    note(f"suspend: {len(item_pids)} items frozen; {len(seen)} status samples over {LEASE + 2} s, "
         f"max last_seen {max(a for s in seen for _, a in s.values()):.1f} s")

    job.console("resume")
    wait_for(lambda: all(_proc_state(pid) in (None, "S", "R", "D", "Z") for pid in item_pids.values()), 3,
             "the items to continue after resume")
    job.wait_ok("s1", 30)
    job.wait_ok("s2", 10)
    assert_exactly_once(job, items)
    assert not [e for e in job.joblog() if e["event"] == "lost_lease"]
    assert execution_counts(job) == Counter({i.decode(): 1 for i in items})


# ---------------------------------------------------------------------------------------------
# 6. a live slot change


def _write_control(job: Job, text: str) -> None:
    tmp = job.dir / L.TMP_DIR / "control.edit"
    tmp.write_text(text)
    os.replace(tmp, job.dir / L.CONTROL_FILE)


def _max_concurrency(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best


def test_live_slot_change(ssh_cluster: SshCluster, make_job) -> None:
    job = make_job(ssh_cluster)
    items = items_n(40)
    job.init("--command", job.timed("sleep 1"), "--lease", str(LEASE), items=items)
    job.start("n1", slots=1)
    wait_for(lambda: job.running("n1") == 1, 20, "n1 to run an item")

    def watch(want: int, within: float, what: str) -> float:
        t0 = time.monotonic()
        wait_for(lambda: job.running("n1") == want, within, what, interval=0.05)
        return time.monotonic() - t0

    def hold(limit: int, seconds: float) -> None:
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            assert job.running("n1") <= limit, job.node_status("n1")
            time.sleep(0.05)

    hold(1, 1.0)
    _write_control(job, "state: running\nnodes:\n  n1: {slots: 4}\n")
    up = watch(4, 3, "n1 to run 4 items after slots: 4")
    hold(4, 2.0)
    _write_control(job, "state: running\nnodes:\n  n1: {slots: 1}\n")
    down = watch(1, 3, "n1 to run 1 item after slots: 1")
    hold(1, 2.0)
    assert job.node_status("n1")["slots"] == 1
    # A second edit of the same size within the same second (SFTP v3 mtimes are whole seconds):
    # the worker must not take the file for unchanged. (utime makes the collision certain.)
    _write_control(job, "state: running\nnodes:\n  n1: {slots: 2}\n")
    first = (job.dir / L.CONTROL_FILE).stat()
    wait_for(lambda: job.node_status("n1")["slots"] == 2, 3, "n1 to read slots: 2", interval=0.05)
    _write_control(job, "state: running\nnodes:\n  n1: {slots: 3}\n")
    os.utime(job.dir / L.CONTROL_FILE, ns=(first.st_atime_ns, first.st_mtime_ns))
    again = watch(3, 3, "n1 to run 3 items after a same-size edit in the same second")
    note(f"slots: 1 -> 4 seen running in {up:.1f} s, 4 -> 1 in {down:.1f} s, 1 -> 3 (same stamp) "
         f"in {again:.1f} s")
    job.wait_ok("n1", 30)
    assert_exactly_once(job, items)
    assert execution_counts(job) == Counter({i.decode(): 1 for i in items})
    assert _max_concurrency([(s, e) for _, _, s, e in job.executions()]) == 4


# ---------------------------------------------------------------------------------------------
# 7. watch mode


def test_watch_mode_picks_up_new_files(ssh_cluster: SshCluster, make_job, tmp_path: Path) -> None:
    src = tmp_path / "watched"
    src.mkdir()
    (src / "first.txt").write_bytes(b"1" * 10)
    (src / "second file").write_bytes(b"2" * 20)
    seen_log = tmp_path / "seen.log"
    job = make_job(ssh_cluster)
    job.init("--source-dir", str(src), "--watch", "--lease", str(LEASE), "--command",
             f'printf "%s %s\\n" "$(wc -c < "$ITEM")" "$ITEM" >> {shlex.quote(str(seen_log))}')
    job.start("w1", slots=2)

    def seen() -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for line in seen_log.read_text().splitlines() if seen_log.exists() else []:
            size, path = line.strip().split(" ", 1)
            out.setdefault(os.path.relpath(path, src), []).append(int(size))
        return out

    wait_for(lambda: len(seen()) == 2, 20, "the files present at init to be processed")
    (src / "later.txt").write_bytes(b"3" * 30)
    (src / "new dir").mkdir()
    (src / "new dir" / "deep $(x).txt").write_bytes(b"4" * 40)
    t_written = time.monotonic()
    with open(src / "slow.bin", "wb") as fh:  # written in pieces over 2 s
        for _ in range(5):
            fh.write(b"s" * 1000)
            fh.flush()
            time.sleep(0.5)
    t_slow = time.monotonic()
    wait_for(lambda: len(seen()) == 5, 25, "the files written later to be processed")
    note(f"watch: new files processed within {time.monotonic() - t_written:.1f} s, the slow file "
         f"{time.monotonic() - t_slow:.1f} s after its last write")
    got = seen()
    assert got == {"first.txt": [10], "second file": [20], "later.txt": [30], "new dir/deep $(x).txt": [40],
                   "slow.bin": [5000]}, got
    assert job.procs["w1"].poll() is None, "a watched job must not end by itself"
    job.console("stop")
    job.wait_ok("w1", 15)
    files = sorted(str(p).encode() for p in src.rglob("*") if p.is_file())
    assert_exactly_once(job, files)


# ---------------------------------------------------------------------------------------------
# 8. many workers at once against a low MaxStartups


RETRY = re.compile(r"SSH failed|cannot connect|no answer within")


def _limit_startups(master, value: str) -> None:
    """Give the master sshd a MaxStartups of ``value``. (For MaxStartups sshd keeps the LAST value,
    so extra_config, written first, cannot override the fixture's own line: drop that line.)"""
    write = master._write_config

    def write_config() -> None:
        write()
        lines = master.config_path.read_text().splitlines()
        lines = [ln for ln in lines if not ln.startswith("MaxStartups ")] + [f"MaxStartups {value}"]
        master.config_path.write_text("\n".join(lines) + "\n")

    master.stop()
    master._write_config = write_config
    master.extra_config = ["LogLevel VERBOSE"]  # sshd logs each drop "past MaxStartups"
    master.start()
    effective = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(master.config_path)],
                               capture_output=True, text=True).stdout
    assert f"maxstartups {value}" in effective, effective


def test_many_workers_start_at_once(fresh_cluster: MakeCluster, make_job) -> None:
    cluster = fresh_cluster(0)
    master = cluster.master
    _limit_startups(master, "3:50:6")
    job = make_job(cluster)
    items = items_n(48)
    job.init("--command", job.timed("sleep 0.3"), "--lease", str(LEASE), items=items)
    nodes = [f"w{i:02d}" for i in range(12)]
    # The server is held at its limit (6 connections that never log in) until the first worker
    # is turned away, so at least one retry is certain; the rest is the workers' own crowd.
    blockers = [socket.create_connection((master.host, master.port), timeout=5) for _ in range(6)]
    try:
        for node in nodes:
            job.start(node, slots=1)
        wait_for(lambda: any(RETRY.search(job.stderr(n)) for n in nodes), 20,
                 "a worker to be turned away by MaxStartups", interval=0.05)
    finally:
        for s in blockers:
            s.close()
    for node in nodes:
        job.wait_ok(node, 60)
    assert_exactly_once(job, items)
    retries = {n: len(RETRY.findall(job.stderr(n))) for n in nodes}
    drops = master.log_path.read_text(errors="replace").count("past MaxStartups")
    note(f"MaxStartups 3:50:6: {sum(1 for r in retries.values() if r)} of 12 workers retried their "
         f"first connect (at most {max(retries.values())} retries; 3 allowed); sshd dropped {drops}")
    assert drops >= 1
    per_node = Counter(e["node"] for e in job.joblog() if e["event"] == "done")
    assert sum(per_node.values()) == len(items)


# ---------------------------------------------------------------------------------------------
# the end-of-job check racing a commit (seen in test 1: an item taken over, then run twice)


async def test_scan_does_not_take_a_lock_emptied_by_a_commit_as_orphan(tmp_path: Path) -> None:
    """The check lists lock shards (old mtimes), then each lock's contents. A claim taken over and
    committed in between leaves an empty lock whose LISTED mtime is older than the lease: that is
    no orphan (it must not be moved to the graveyard and claimed again, which re-runs the item)."""
    from worker.jobstatus import read_spec
    from worker.reconcile import scan
    from worker.store import LocalStore

    class CommitDuringScan(LocalStore):
        """A node commits the item just before the scan looks inside its lock."""
        async def listdir(self, rel: str):
            if rel == L.lock_path(ident) and (self_path / L.lock_path(ident) / token).exists():
                os.rename(self_path / L.lock_path(ident) / token, self_path / L.done_path(ident))
            return await super().listdir(rel)

    self_path = tmp_path / "job"
    store = CommitDuringScan(str(self_path))
    item = b"taken-over"
    ident, token = L.item_id(item), "n3@r3"
    await Job(self_path).init_here([item], store=store, lease=5)
    spec = await read_spec(store)
    (self_path / L.lock_path(ident) / token).mkdir(parents=True)
    old = time.time() - 60  # claimed long ago by the lost node, then taken over by n3
    os.utime(self_path / L.lock_path(ident), (old, old))
    result = await scan(store, spec, {token}, time.time())
    assert not result.orphans, "a lock emptied by a commit during the scan was taken for an orphan"
    result = await scan(store, spec, {token}, time.time())
    assert result.complete and result.done == 1
