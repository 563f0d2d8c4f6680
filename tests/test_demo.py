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
