"""ppss-console demo --headless: a real local job (no SSH), three worker processes, exit 0 when done."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time

CONSOLE = [sys.executable, "-m", "ppss_tui"]


def test_demo_headless_completes(tmp_path):
    demo_dir = tmp_path / "demo"
    start = time.monotonic()
    r = subprocess.run([*CONSOLE, "demo", "--headless", "--items", "60", "--dir", str(demo_dir)],
                       capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - start < 60
    assert "60/60 done" in r.stdout and "demo: finished" in r.stdout
    outputs = list((demo_dir / "job" / "output").rglob("*.gz"))
    assert len(outputs) == 60
    for out in outputs[:5]:  # real work: each output decompresses to its input
        src = demo_dir / "input" / out.name[:-3]
        assert gzip.decompress(out.read_bytes()) == src.read_bytes()
    logs = sorted(p.name for p in (demo_dir / "logs").iterdir())
    assert logs == ["demo-1.log", "demo-2.log", "demo-3.log"]


def test_demo_default_dir_is_removed(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = subprocess.run([*CONSOLE, "demo", "--headless", "--items", "12"], capture_output=True, text=True,
                       timeout=90, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_ctrl_c_stops_the_workers(tmp_path):
    demo_dir = tmp_path / "demo"
    proc = subprocess.Popen([*CONSOLE, "demo", "--headless", "--items", "200", "--pace", "1",
                             "--dir", str(demo_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "started 3 workers" not in (line := proc.stdout.readline()):
            assert line and time.monotonic() < deadline
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "stopping the workers" in err
    statuses = [(demo_dir / "job" / "nodes" / f"demo-{i}.json").read_text() for i in (1, 2, 3)]
    assert all('"stopped"' in s or '"finished"' in s for s in statuses), statuses


def test_demo_dir_that_is_a_file_is_a_usage_error(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    r = subprocess.run([*CONSOLE, "demo", "--headless", "--items", "3", "--dir", str(path)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert "exists and is not a directory" in r.stderr and path.read_text() == "x"


def test_demo_failing_item_fails_and_is_reported(tmp_path):
    demo_dir = tmp_path / "demo"
    r = subprocess.run([*CONSOLE, "demo", "--headless", "--items", "12", "--failing", "1", "--dir", str(demo_dir)],
                       capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "11 of 12 done, 1 failed" in r.stderr
    f = subprocess.run([*CONSOLE, "failed", str(demo_dir / "job")], capture_output=True, text=True, timeout=60)
    assert "empty file, nothing to compress" in f.stdout and "1 item" in f.stdout, f.stdout + f.stderr


def test_demo_console_quit_early_exits_1(tmp_path, capsys):
    import argparse
    from ppss_tui.demo import Demo
    args = argparse.Namespace(items=40, workers=2, slots=1, pace=1.0, dir=str(tmp_path / "d"), headless=False,
                              failing=None)
    demo = Demo(args)
    assert demo.failing == 1  # the console demo has something in its failed view
    total = demo.create_job()
    demo.start_workers()
    try:
        time.sleep(1.5)
        code = demo.after_console(total, 1.5)   # as if q was pressed now
    finally:
        demo.stop_workers()
    err = capsys.readouterr().err
    assert code == 1
    assert "closed before the end" in err and "NOT complete" in err and "exited with status" not in err


async def test_console_shows_the_demo_intro():
    sys.path.insert(0, os.path.dirname(__file__))
    from console_data import NOW, FakeAccess, cluster, snapshot
    from ppss_tui.app import PpssConsole
    app = PpssConsole(cluster(), clock=lambda: NOW, poll=False, snapshot=snapshot(), access=FakeAccess())
    app.intro = ["demo: 300 files in /tmp/x/input", "demo: command: gzip", "demo: started 3 workers"]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert any("started 3 workers" in n.message for n in app._notifications)
