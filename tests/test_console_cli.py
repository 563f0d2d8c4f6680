"""``ppss-console status --watch`` and the grouped ``ppss-console failed``, on a local job run by a
real ppss-worker process (no SSH needed: the store is the same code path as over SFTP)."""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys

from ppss_tui import watch
from ppss_tui.failedcmd import grouped_lines
from worker.jobops import init_job
from worker.store import LocalStore

CONSOLE = [sys.executable, "-m", "ppss_tui"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _job(tmp_path, n: int, command: str):
    job = tmp_path / "job"
    items = [f"/data/in/file-{i:03d}.dat".encode() for i in range(n)]
    asyncio.run(init_job(LocalStore(str(job)), command, items, "file", "items.txt"))
    return job


def _work(job, slots: int = 4) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", str(job), "--node-name", "node1", "--slots", str(slots),
                           "-q"], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def test_watch_piped_prints_plain_lines_until_finished(tmp_path):
    job = _job(tmp_path, 30, 'sleep 0.1; case "$ITEM" in *7.dat) echo "cannot read $ITEM" >&2; exit 4;; esac')
    proc = subprocess.Popen([*CONSOLE, "status", str(job), "--watch", "--interval", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _work(job)
    out, err = proc.communicate(timeout=60)
    lines = out.strip().splitlines()
    assert proc.returncode == 1, out + err          # items failed, as `status`
    assert "\r" not in out and len(lines) >= 2
    assert lines[-1].split(" ", 1)[1].startswith("finished: 27/30 done, 3 failed, 0 running")
    assert "ETA finished" in lines[-1]


def test_watch_on_a_terminal_draws_a_live_bar(tmp_path):
    job = _job(tmp_path, 8, "true")
    _work(job)
    out = Tty()
    args = argparse.Namespace(master=str(job), interval=0.1)
    code = asyncio.run(watch.run(args, LocalStore(str(job)), out=out))
    assert code == 0
    text = out.getvalue()
    assert text.startswith("\r[" + "#" * watch.BAR + "] 100% 8/8 done, 0 failed") and text.endswith("\n")
    assert "ETA finished · finished" in text


def test_failed_grouped_and_raw(tmp_path):
    job = _job(tmp_path, 20, 'case "$ITEM" in *[02468].dat) echo "open $ITEM: Permission denied" >&2; exit 2;; '
                             '*5.dat) echo "disk full" >&2; exit 1;; esac')
    _work(job)
    r = subprocess.run([*CONSOLE, "failed", str(job)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("12 failed items in 2 groups")
    assert "10 items · exit 2 · on node1" in r.stdout and "| open $ITEM: Permission denied" in r.stdout
    assert "2 items · exit 1 · on node1" in r.stdout and "| disk full" in r.stdout
    raw = subprocess.run([*CONSOLE, "failed", str(job), "--raw"], capture_output=True, text=True, timeout=60)
    assert len(raw.stdout.strip().splitlines()) == 12 and "/data/in/file-000.dat" in raw.stdout
    assert grouped_lines([]) == ["no failed items"]


def test_watch_refuses_json_and_bad_interval(tmp_path):
    job = _job(tmp_path, 2, "true")
    for extra in (["--json"], ["--interval", "0"]):
        r = subprocess.run([*CONSOLE, "status", str(job), "--watch", *extra], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
