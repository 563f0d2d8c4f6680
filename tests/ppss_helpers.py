"""The test kit for engine and fault tests: the real programs as subprocesses, one ``Job``
helper (a job directory, local or on the ssh fixture's master), one ``items_n`` builder and one
``assert_exactly_once``.

``CONSOLE`` / ``WORKER``: ``sys.executable -m ppss_tui`` / ``-m worker`` so the tests do not
depend on PATH.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import shlex
import time
from collections import Counter
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
    """``n`` distinct items: ``item 0000``, ``item 0001``, ..."""
    return [f"{prefix} {i:04d}".encode() for i in range(n)]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _descendants(pid: int) -> list[int]:
    from sshcluster import _descendants as descendants
    return descendants(pid)


class Job:
    """A job directory on this host: local (``cluster=None``), or the master of an ssh fixture
    (``server``, default ``cluster.master``: 127.0.0.1, so the directory is read directly);
    ``url`` overrides the address (e.g. ``ssh://host/~/x`` for a job in the login home).

    ``job / "x"`` is a path in the job directory; ``str(job)`` its path. Workers started with
    ``start`` log to ``<dir>.stderr/<node>``; commands built with ``timed`` append their
    executions to ``<dir>.exec/<node>``.
    """

    def __init__(self, dir: Path, cluster: Any | None = None, server: Any | None = None,
                 url: str | None = None) -> None:
        self.dir = Path(dir)
        self.cluster = cluster
        self.url = url or ((server or cluster.master).url(str(self.dir)) if cluster is not None else str(self.dir))
        self.exec_dir = self.dir.parent / f"{self.dir.name}.exec"
        self.err_dir = self.dir.parent / f"{self.dir.name}.stderr"
        self.procs: dict[str, subprocess.Popen] = {}

    def __truediv__(self, rel: str) -> Path:
        return self.dir / rel

    def __fspath__(self) -> str:
        return str(self.dir)

    def __str__(self) -> str:
        return str(self.dir)

    # -- creating it -----------------------------------------------------------------------------
    def init(self, *args: str, items: Sequence[bytes] | None = None, cwd: str | os.PathLike | None = None,
             input: bytes | None = None) -> subprocess.CompletedProcess:
        """``ppss-console init`` (``items``: NUL-separated on stdin); fails the test if it fails."""
        if items is not None:
            args = ("--source-file", "-", "--null", *args)
            input = b"".join(i + b"\0" for i in items)
        res = console("init", self.url, *args, cluster=self.cluster, cwd=cwd, input=input, timeout=60)
        assert_ok(res)
        if items is not None:
            assert f"{len(items)} items" in res.stdout, res.stdout
        return res

    async def init_here(self, items: Sequence[bytes], command: str = "true", store: Any | None = None,
                        **options: Any):
        """The same job made in this process (``worker.jobops.init_job``) over ``store`` (default:
        a ``LocalStore`` of the directory), which is returned open; ``options``: lease, retries,
        chunk_size, ..."""
        from worker.jobops import init_job
        from worker.store import LocalStore
        store = store or LocalStore(str(self.dir))
        await init_job(store, command, list(items), "file", "items", **options)
        return store

    def create(self, items: Sequence[bytes], command: str, *extra: str) -> str:
        """A job of ``items`` running ``command``; returns its URL."""
        self.init("--command", command, *extra, items=items)
        return self.url

    # -- commands ------------------------------------------------------------------------------
    def record(self) -> str:
        """Shell code appending ``ITEM START END`` to this node's execution log."""
        self.exec_dir.mkdir(exist_ok=True)
        return (f'printf "%s %s %s\\n" "$ITEM" "$T0" "$(date +%s.%N)" '
                f'>> {shlex.quote(str(self.exec_dir))}/"$PPSS_NODE"')

    def timed(self, body: str) -> str:
        return f'T0=$(date +%s.%N); {body}; {self.record()}'

    def console(self, *args: str) -> subprocess.CompletedProcess:
        sub, *rest = args
        res = console(sub, self.url, *rest, cluster=self.cluster, timeout=60)
        assert_ok(res, code=res.returncode if sub == "status" and res.returncode == 1 else 0)
        return res

    def status(self, recount: bool = True) -> dict:
        res = self.console("status", "--json", *(["--recount"] if recount else []))
        return json.loads(res.stdout)

    # -- workers -------------------------------------------------------------------------------
    def start(self, node: str, slots: int = 2, *extra: str) -> subprocess.Popen:
        self.err_dir.mkdir(exist_ok=True)
        err = open(self.err_dir / node, "wb")
        proc = subprocess.Popen(worker_argv(self.url, "--slots", str(slots), "--node-name", node, *extra,
                                            cluster=self.cluster),
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        err.close()
        self.procs[node] = proc
        return proc

    def stderr(self, node: str) -> str:
        return (self.err_dir / node).read_text(errors="replace")

    def wait(self, node: str, timeout: float) -> int:
        proc = self.procs[node]
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {node} did not exit within {timeout} s; stderr:\n"
                                 f"{self.stderr(node)}\nstatus: {self.status(recount=False)}") from None

    def wait_ok(self, node: str, timeout: float, code: int = 0) -> None:
        rc = self.wait(node, timeout)
        err = self.stderr(node)
        assert rc == code, f"worker {node} exited {rc} (wanted {code}); stderr:\n{err}"
        assert "Traceback" not in err, err

    # -- signals to a whole node (the worker and the items it runs) ------------------------------
    def freeze(self, node: str) -> float:
        pid = self.procs[node].pid
        os.kill(pid, signal.SIGSTOP)
        for child in _descendants(pid):
            _signal(child, signal.SIGSTOP)
        return time.monotonic()

    def thaw(self, node: str) -> None:
        pid = self.procs[node].pid
        for child in _descendants(pid):
            _signal(child, signal.SIGCONT)
        os.kill(pid, signal.SIGCONT)

    def kill_node(self, node: str) -> float:
        """SIGKILL the worker and every process it started, as a crash of its host would."""
        pid = self.procs[node].pid
        os.kill(pid, signal.SIGSTOP)  # no new children from here on
        children = _descendants(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            _signal(child, signal.SIGKILL)
        t = time.monotonic()
        self.procs[node].wait(10)
        return t

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                children = _descendants(proc.pid)
                for pid in (proc.pid, *children):
                    _signal(pid, signal.SIGCONT)
                    _signal(pid, signal.SIGKILL)
                proc.wait(10)

    # -- what the job directory says --------------------------------------------------------------
    def node_status(self, node: str) -> dict | None:
        from worker import layout as L
        try:
            return json.loads((self.dir / L.status_path(node)).read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def running(self, node: str) -> int:
        st = self.node_status(node)
        return len(st["running"]) if st else 0

    def held_by(self, node: str) -> set[str]:
        """Lock names whose holder token belongs to ``node``."""
        from worker import layout as L
        out = set()
        for shard in (self.dir / L.LOCKS_DIR).iterdir():
            for lock in shard.iterdir():
                try:
                    names = os.listdir(lock)
                except FileNotFoundError:
                    continue
                if any(L.token_node(n) == node for n in names):
                    out.add(lock.name)
        return out

    def records(self) -> tuple[Counter, dict[str, dict]]:
        """(done ids, failed id -> record) as found in done/ab/<id> and failed/ab/<id>."""
        from worker import layout as L
        done: Counter = Counter()
        failed: dict[str, dict] = {}
        for e in (self.dir / L.DONE_DIR).glob("*/*"):
            if ".tmp-" not in e.name:
                done[e.name] += 1
        for e in (self.dir / L.FAILED_DIR).glob("*/*"):
            if ".tmp-" not in e.name:
                assert e.name not in failed
                failed[e.name] = json.loads(e.read_bytes())
        return done, failed

    def done_count(self) -> int:
        return sum(self.records()[0].values())

    def joblog(self, node: str | None = None) -> list[dict]:
        from worker import layout as L
        events = []
        for f in sorted((self.dir / L.JOBLOG_DIR).glob("*.jsonl")):
            if node is None or f.stem == node:
                events += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        return events

    def executions(self, node: str | None = None) -> list[tuple[str, str, float, float]]:
        """(item, node, start, end) of every completed execution (commands built with ``timed``)."""
        out = []
        for f in sorted(self.exec_dir.iterdir()) if self.exec_dir.exists() else ():
            if node is None or f.name == node:
                for line in f.read_text().splitlines():
                    item, start, end = line.rsplit(" ", 2)
                    out.append((item, f.name, float(start), float(end)))
        return out

    def log(self, ident: str) -> str:
        from worker import layout as L
        path = self.dir / L.log_path(ident)
        return path.read_text(errors="replace") if path.exists() else ""


def assert_exactly_once(job: Job, items: Sequence[bytes], failed: dict[bytes, int] | None = None,
                        joblog_may_miss: set[str] = frozenset(), executions: list[str] | None = None,
                        may_repeat: set[str] = frozenset(), recount: bool = True) -> None:
    """Nothing lost, nothing recorded twice: records, job log and the recounted status agree.

    ``failed``: item -> expected exit status of its failed record; every other item must be done.
    ``joblog_may_miss``: ids whose job-log line may be missing (their node was SIGKILLed after
    recording, before its batched job-log write). ``executions``: ids of the executions the
    test's command logged: each item ran exactly once, except ``may_repeat`` ids (at most twice).
    ``recount=False`` skips the ``ppss-console status --recount`` check (in-process tests).
    """
    from worker import layout as L
    failed = failed or {}
    ids = {L.item_id(i): i for i in items}
    assert len(ids) == len(items)
    done, failed_recs = job.records()
    stray = (set(done) | set(failed_recs)) - set(ids)
    assert not stray, f"records for ids that are not items of the job: {sorted(stray)}"
    assert not [i for i, n in done.items() if n > 1], "an item has two done records"
    both = set(done) & set(failed_recs)
    assert not both, f"items both done and failed: {[ids[i] for i in both]}"
    lost = [ids[i] for i in ids if i not in done and i not in failed_recs]
    assert not lost, f"{len(lost)} items LOST (no done or failed record): {lost[:10]}"
    want_failed = {L.item_id(i): code for i, code in failed.items()}
    assert set(failed_recs) == set(want_failed), \
        f"failed records for {[ids[i] for i in failed_recs]}, wanted {list(failed)}"
    for ident, code in want_failed.items():
        assert failed_recs[ident]["exit"] == code, failed_recs[ident]
        assert L.item_from_json(failed_recs[ident]["item"]) == ids[ident]
    _assert_joblog_once(job, ids, done, failed_recs, joblog_may_miss)
    if executions is not None:
        _assert_ran_once(executions, ids, may_repeat)
    if recount:
        st = job.status(recount=True)
        assert (st["total"], st["done"], st["failed"], st["pending"]) == \
            (len(items), len(items) - len(failed), len(failed), 0), st


def _assert_joblog_once(job: Job, ids: dict[str, bytes], done: Counter, failed_recs: dict,
                        may_miss: set[str]) -> None:
    events = job.joblog()
    finals = Counter(e["id"] for e in events if e["event"] in ("done", "failed"))
    twice = {ids.get(i, i): n for i, n in finals.items() if n > 1}
    assert not twice, f"items with more than one final job-log event: {twice}"
    for ident in ids:
        if ident not in may_miss:
            assert finals[ident] == 1, f"{ids[ident]!r}: {finals[ident]} final job-log events"
    for e in events:
        if e["event"] == "done":
            assert e["id"] in done
        if e["event"] == "failed":
            assert e["id"] in failed_recs


def _assert_ran_once(executions: list[str], ids: dict[str, bytes], may_repeat: set[str]) -> None:
    counts = Counter(executions)
    assert sorted(counts) == sorted(ids), "some item never ran to the end (or an unknown one did)"
    twice = {i: c for i, c in counts.items() if c > 1 and not (i in may_repeat and c == 2)}
    assert not twice, f"items executed more than once: {twice}"
