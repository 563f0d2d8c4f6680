"""issue 9.4: an emptied control.yaml is malformed: the worker keeps the last good state and says so."""

from __future__ import annotations

import time

import pytest

from sshcluster import SshCluster
from test_fault_tolerance import LEASE, make_job  # noqa: F401  (fixture)
from ppss_helpers import wait_for
from worker import layout as L
from worker.control import ControlError, parse_control
from worker.errors import EXIT_STOPPED


@pytest.mark.parametrize("text", [b"", b"\n", b"   \n\n", b"# only a comment\n"])
def test_empty_control_is_malformed(text: bytes) -> None:
    with pytest.raises(ControlError) as info:
        parse_control(text, "JOB/control.yaml")
    msg = str(info.value)
    assert msg.startswith("JOB/control.yaml: empty") and "\n" not in msg


@pytest.mark.ssh
def test_zero_byte_control_keeps_paused_job_paused(ssh_cluster: SshCluster, make_job) -> None:  # noqa: F811
    job = make_job(ssh_cluster)
    items = [f"i{n}".encode() for n in range(4)]
    job.init("--command", job.timed("true"), "--lease", str(LEASE), items=items)
    job.console("pause")
    job.start("n1", slots=2)
    wait_for(lambda: (job.node_status("n1") or {}).get("state") == "paused", 20, "n1 to report paused")
    (job.dir / L.CONTROL_FILE).write_bytes(b"")  # truncated in place, as `: > control.yaml` does
    wait_for(lambda: "empty" in (job.node_status("n1") or {}).get("error", ""), 10,
             "n1 to report the empty control.yaml")
    time.sleep(2.0)  # several control polls: a paused job must not resume
    st = job.node_status("n1")
    assert st["state"] == "paused", st
    assert not st["running"] and job.done_count() == 0 and not job.executions()
    assert "control.yaml: empty" in job.stderr("n1")
    (job.dir / L.CONTROL_FILE).write_bytes(b"state: stopped\n")
    job.wait_ok("n1", 20, code=EXIT_STOPPED)
