"""issue 9.5 and 9.6: no process outlives its item; ``init --timeout``.

Each test's commands start processes with a unique ``sleep N`` so that survivors can be found
in /proc afterwards, whatever session or process group they moved to.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest

from ppss_helpers import assert_one_line_error, console, wait_for
from sshcluster import SshCluster
from test_fault_tolerance import LEASE, assert_exactly_once, make_job  # noqa: F401  (fixture)
from worker import layout as L
from worker.errors import EXIT_ITEMS_FAILED, EXIT_USAGE
from worker.jobspec import JobSpec
from worker.runner import ItemProcess


def marker() -> int:
    return random.randrange(400000, 900000)


def alive_with(*words: str) -> list[str]:
    """Command lines of live processes mentioning any of ``words``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(w in cmd for w in words):
            out.append(f"{entry.name}: {cmd}")
    return out


def _kill_markers(*words: str) -> None:
    for line in alive_with(*words):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------------------------
# the runner on its own


def _env() -> dict:
    env = {k.encode(): v.encode() for k, v in os.environ.items()}
    env[b"ITEM"] = b"x"
    return env


def test_leftovers_are_killed_and_named() -> None:
    m = marker()
    cmd = f': "$ITEM"; echo hi; sleep {m} & setsid sleep {m + 1} & (setsid sh -c "sleep {m + 2}" &) ; sleep 0.3'
    try:
        res = asyncio.run(ItemProcess(cmd, _env()).run())
        assert res.exit_code == 0 and res.reason == "" and not res.timed_out
        assert not alive_with(f"sleep {m}", f"sleep {m + 1}", f"sleep {m + 2}")
        assert len(res.leftovers) >= 3, res.leftovers
        text = res.output.decode()
        assert text.startswith("hi\n") and f"killed {len(res.leftovers)} leftover process(es)" in text
        for n in (m, m + 1, m + 2):
            assert f"sleep {n}" in text, text
    finally:
        _kill_markers(f"sleep {m}", f"sleep {m + 1}", f"sleep {m + 2}")


def test_clean_item_has_no_leftovers() -> None:
    res = asyncio.run(ItemProcess('printf "%s" "$ITEM"', _env()).run())
    assert (res.exit_code, res.output, res.leftovers, res.reason) == (0, b"x", (), "")


def test_timeout_ends_a_tree_that_ignores_sigterm(monkeypatch) -> None:
    import worker.runner as runner
    monkeypatch.setattr(runner, "TERM_GRACE", 1.0)
    m = marker()
    # The shell exits 0 on SIGTERM; a subshell and a setsid child ignore it: SIGKILL must reach them.
    cmd = (f": \"$ITEM\"; trap 'exit 0' TERM; sh -c 'trap \"\" TERM; sleep {m}' & "
           f"setsid sh -c 'trap \"\" TERM; sleep {m + 1}' & wait")
    try:
        t0 = time.monotonic()
        res = asyncio.run(ItemProcess(cmd, _env(), timeout=0.5).run())
        took = time.monotonic() - t0
        assert res.timed_out and res.reason == "timeout after 0.5 s"
        assert res.exit_code == 124  # exited 0 when told to stop: still not a success
        assert b"timeout after 0.5 s" in res.output
        assert not alive_with(f"sleep {m}", f"sleep {m + 1}")
        assert 0.5 <= took < 20, took
    finally:
        _kill_markers(f"sleep {m}", f"sleep {m + 1}")


def test_suspended_time_does_not_count_toward_the_timeout() -> None:
    """--timeout is running time: an item suspended (control: suspend) past its timeout is not
    ended for it; it goes on when resumed, with the time it had left."""
    async def run() -> tuple:
        proc = ItemProcess('sleep 0.6; : "$ITEM"', _env(), timeout=1.0)
        task = asyncio.ensure_future(proc.run())
        await asyncio.sleep(0.3)
        proc.suspend()
        await asyncio.sleep(1.2)  # past the timeout while suspended
        proc.resume()
        return await task, proc
    res, proc = asyncio.run(run())
    assert not res.timed_out and res.exit_code == 0, res
    # and it still counts the running time: a never-ending item resumed times out
    async def endless() -> object:
        proc = ItemProcess('sleep 30; : "$ITEM"', _env(), timeout=0.6)
        task = asyncio.ensure_future(proc.run())
        await asyncio.sleep(0.2)
        proc.suspend()
        await asyncio.sleep(0.8)
        proc.resume()
        t0 = time.monotonic()
        res = await task
        return res, time.monotonic() - t0
    res, after = asyncio.run(endless())
    assert res.timed_out and 0.2 <= after < 5, (res, after)


def test_timeout_in_job_yaml() -> None:
    spec = JobSpec("true", 1, 1, 10, "file", "-", timeout=2.5)
    assert JobSpec.from_yaml(spec.to_yaml(), "job.yaml").timeout == 2.5
    assert JobSpec.from_yaml(JobSpec("true", 1, 1, 10, "file", "-").to_yaml(), "j").timeout is None
    with pytest.raises(Exception, match="job.yaml: timeout"):
        JobSpec.from_yaml(spec.to_yaml().replace(b"timeout: 2.5", b"timeout: -1"), "job.yaml")


# ---------------------------------------------------------------------------------------------
# real workers over real sshd


@pytest.mark.ssh
def test_worker_sigterm_leaves_no_process(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    m = marker()
    words = [f"sleep {m}", f"sleep {m + 1}", f"sleep {m + 2}"]
    job = make_job(ssh_cluster)
    cmd = (f": \"$ITEM\"; sh -c 'trap \"\" TERM; sleep {m}' & setsid sh -c 'trap \"\" TERM; sleep {m + 1}' & "
           f"sleep {m + 2}")
    try:
        job.init("--command", cmd, "--lease", str(LEASE), items=[b"a", b"b"])
        proc = job.start("n1", slots=2)
        wait_for(lambda: len(alive_with(*words)) >= 6, 60, "both items to start their processes")
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        rc = job.wait("n1", 60)
        took = time.monotonic() - t0
        assert rc == 128 + signal.SIGTERM, job.stderr("n1")
        assert not alive_with(*words), "processes outlived their item and the worker"
        assert not job.held_by("n1"), "claims not given back"
        assert job.done_count() == 0 and not job.records()[1]
        assert took < 40, took  # TERM_GRACE (5 s) and the SIGKILL sweep, on a loaded machine
    finally:
        job.cleanup()  # the worker first (SIGKILL), so that it starts nothing after the sweep
        _kill_markers(*words)


@pytest.mark.ssh
def test_item_end_kills_and_logs_leftovers(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    m = marker()
    words = [f"sleep {m}", f"sleep {m + 1}"]
    job = make_job(ssh_cluster)
    try:
        # (the pause: both children have become sleep when the shell exits, so that each is named
        # by its command line, not by what it was for an instant before its exec)
        job.init("--command", f': "$ITEM"; sleep {m} & setsid sleep {m + 1} & sleep 0.3; echo started',
                 "--lease", str(LEASE), items=[b"a", b"b", b"c"])
        job.start("n1", slots=2)
        job.wait_ok("n1", 60)
        assert not alive_with(*words)
        assert_exactly_once(job, [b"a", b"b", b"c"])
        for item in (b"a", b"b", b"c"):
            log = job.log(L.item_id(item))
            assert "started" in log and "killed 2 leftover process(es)" in log, log
            assert f"sleep {m}" in log and f"sleep {m + 1}" in log, log
    finally:
        _kill_markers(*words)


@pytest.mark.ssh
def test_timeout_fails_and_retries(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    m = marker()
    words = [f"sleep {m}", f"sleep {m + 1}"]
    job = make_job(ssh_cluster)
    cmd = f'case "$ITEM" in slow) setsid sleep {m} & sleep {m + 1};; *) true;; esac'
    try:
        job.init("--command", cmd, "--timeout", "1", "--retries", "1", "--lease", str(LEASE),
                 items=[b"slow", b"quick"])
        spec = JobSpec.from_yaml((job.dir / L.JOB_FILE).read_bytes(), "job.yaml")
        assert spec.timeout == 1.0
        t0 = time.monotonic()
        job.start("n1", slots=2)
        job.wait_ok("n1", 60, code=EXIT_ITEMS_FAILED)
        took = time.monotonic() - t0
        assert not alive_with(*words)
        assert_exactly_once(job, [b"slow", b"quick"], failed={b"slow": 128 + signal.SIGTERM})
        rec = job.records()[1][L.item_id(b"slow")]
        assert rec["reason"] == "timeout after 1 s" and rec["attempt"] == 2, rec
        events = [e for e in job.joblog() if e["id"] == L.item_id(b"slow")]
        assert [e["event"] for e in events] == ["retry", "failed"], events
        assert all(e["reason"] == "timeout after 1 s" for e in events), events
        log = job.log(L.item_id(b"slow"))
        assert "# reason: timeout after 1 s" in log and "ppss: timeout after 1 s" in log, log
        assert took < 45, took
    finally:
        _kill_markers(*words)


@pytest.mark.ssh
@pytest.mark.parametrize("value", ["0", "-3", "nan"])
def test_init_refuses_bad_timeout(ssh_cluster: SshCluster, tmp_path: Path, value: str) -> None:
    src = tmp_path / "items"
    src.write_bytes(b"a\n")
    res = console("init", ssh_cluster.master.url(str(tmp_path / "job")), "--source-file", str(src),
                  "--command", "true", f"--timeout={value}", cluster=ssh_cluster)
    assert_one_line_error(res, EXIT_USAGE, "--timeout")
