"""Running the real ``ppss-console`` / ``ppss-worker`` programs as subprocesses in tests.

``sys.executable -m ppss_tui`` / ``-m worker`` so the tests do not depend on PATH.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CONSOLE = [sys.executable, "-m", "ppss_tui"]
WORKER = [sys.executable, "-m", "worker"]

# Awkward item names: each one must reach the command byte for byte and never run as code.
AWKWARD_LINES: list[bytes] = [
    b"plain",
    b"with space",
    b"  leading and trailing spaces  ",
    b"trailing cr\r",
    b"only cr \r",
    b"single ' quote",
    b'double " quote',
    b"$(touch pwned)",
    b"`touch pwned`",
    b"$HOME ${PATH} $ITEM",
    b"; touch pwned; #",
    b"| touch pwned",
    b"&& touch pwned &",
    b"> pwned",
    b"*",
    b"?",
    b"[a-z]*",
    b"-n",
    b"--help",
    b"-",
    b"-e \\n",
    b"back\\slash\\",
    b"\\",
    "unicod\u00e9 \u2603 \u65e5\u672c \U0001F600".encode(),
    b"x" * 300,
    ("\u00e9" * 150).encode(),  # 300 bytes of 2-byte characters
    b"\xff\xfe not utf-8 \x80\xc3",
    b"tab\there",
    b"\x1b[31mansi escape",
    b"%s %d %n",
    b"~",
    b"~root/x",
]


def ssh_args(cluster: Any | None) -> list[str]:
    if cluster is None:
        return []
    return ["-i", str(cluster.identity), "--known-hosts", str(cluster.known_hosts)]


def console(*args: str, cluster: Any | None = None, input: bytes | None = None,
            timeout: float = 90, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``ppss-console SUBCOMMAND MASTER ...``; SSH options are added after the subcommand."""
    sub, *rest = args
    argv = [*CONSOLE, sub, *rest, *ssh_args(cluster)] if sub not in ("--help",) else [*CONSOLE, *args]
    return _run(argv, input, timeout, cwd)


def worker_argv(master: str, *args: str, cluster: Any | None = None) -> list[str]:
    return [*WORKER, master, *args, *ssh_args(cluster)]


def run_worker(master: str, *args: str, cluster: Any | None = None, timeout: float = 90,
               cwd: str | os.PathLike | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return _run(worker_argv(master, *args, cluster=cluster), None, timeout, cwd, env)


def start_worker(master: str, *args: str, cluster: Any | None = None, cwd: str | os.PathLike | None = None,
                 env: dict | None = None) -> subprocess.Popen:
    """A worker in the background (its own session, so a kill never reaches pytest)."""
    return subprocess.Popen(worker_argv(master, *args, cluster=cluster), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            env=env, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 90) -> tuple[int, str, str]:
    """Wait for a background worker; kill its whole group if it hangs (and fail)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"worker did not finish within {timeout} s; stderr:\n{_text(err)}") from None
    return proc.returncode, _text(out), _text(err)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


def _run(argv: list[str], input: bytes | None, timeout: float, cwd, env=None) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd=cwd, env=env,
                         stdin=None if input is not None else subprocess.DEVNULL)
    return subprocess.CompletedProcess(res.args, res.returncode, _text(res.stdout), _text(res.stderr))


def assert_ok(res: subprocess.CompletedProcess, code: int = 0) -> None:
    assert res.returncode == code, f"exit {res.returncode} (wanted {code})\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr


def assert_one_line_error(res: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """A clean failure: the exit code, no traceback, exactly one line on stderr (returned)."""
    assert res.returncode == code, f"exit {res.returncode} (wanted {code})\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    # a worker may log progress lines (ppss-worker[node]: ...) before its final error line
    errors = [line for line in lines if not line.startswith("ppss-worker[")]
    assert len(errors) == 1, f"expected one error line, got:\n{res.stderr}"
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


def status_json(master: str, *extra: str, cluster: Any | None = None) -> dict:
    res = console("status", master, "--json", *extra, cluster=cluster)
    assert res.returncode in (0, 1), res.stderr
    assert "Traceback" not in res.stderr
    return json.loads(res.stdout)


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def write_items(path: Path, items: Sequence[bytes], sep: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(i + sep for i in items))
    return path


def items_n(n: int, prefix: str = "item") -> list[bytes]:
    """``n`` distinct items: item-00000, item-00001, ..."""
    return [f"{prefix}-{i:05d}".encode() for i in range(n)]


def assert_exactly_once(completed: list[str], items: list[bytes], may_repeat: set[str] = frozenset()) -> None:
    """Every item completed, none twice (``may_repeat``: ids that may run twice)."""
    from worker import layout as L

    want = sorted(L.item_id(i) for i in items)
    counts: dict[str, int] = {}
    for ident in completed:
        counts[ident] = counts.get(ident, 0) + 1
    assert sorted(counts) == want, "some item never completed (or an unknown one did)"
    twice = {i: c for i, c in counts.items() if c > 1 and not (i in may_repeat and c == 2)}
    assert not twice, f"items completed more than once: {twice}"
