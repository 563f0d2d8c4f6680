"""``ppss-console demo [--headless] [--items N] [--dir DIR]``: a real job on this machine, no SSH at all.

It creates a local master directory (a new temporary directory unless ``--dir``), generates N
small text files, creates a job that compresses each one (``gzip -9``), starts three local
``ppss-worker`` processes (nodes demo-1..demo-3, 2 slots each) and opens the console on the
job, so you can watch it, pause and resume it. In the console one input file is empty, and
the command refuses it, so the failed view has something to show (``--failing N``).
``--headless`` prints a progress line every second instead and ends when the workers do.

Exit status: 0 the job finished with every item done; 1 some item failed, a worker failed
(its log is shown) or the console was quit before the end; 2 usage error; 130 interrupted (Ctrl-C stops the workers cleanly: running
items are terminated and their claims released).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker.errors import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK, UsageError
from worker.jobops import init_job
from worker.jobstatus import read_job_status
from worker.store import LocalStore

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
DEFAULT_ITEMS = 300
DEFAULT_WORKERS = 3
DEFAULT_SLOTS = 2
CONSOLE_PACE = 0.5  # seconds per item in the console: slow enough to watch, pause and resume


DESCRIPTION = __doc__.split("\n\n")[1].replace("``", "")
EPILOG = __doc__.split("\n\n")[2]


def add_arguments(s: argparse.ArgumentParser) -> None:
    """The demo's options (registered in ppss_tui/cli.py's COMMANDS)."""
    s.add_argument("--headless", action="store_true",
                   help="print a progress line every second instead of opening the console")
    s.add_argument("--items", type=int, default=DEFAULT_ITEMS, help=f"files to compress (default {DEFAULT_ITEMS})")
    s.add_argument("--dir", help="demo directory, kept afterwards (default: a temporary one, removed at the end)")
    s.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help=f"local worker processes (default {DEFAULT_WORKERS})")
    s.add_argument("--slots", type=int, default=DEFAULT_SLOTS, help=f"slots per worker (default {DEFAULT_SLOTS})")
    s.add_argument("--failing", type=int, default=None,
                   help="input files left empty, which the command refuses (default 1 in the console, 0 headless)")
    s.add_argument("--pace", type=float, default=None,
                   help=f"extra seconds each item takes (default {CONSOLE_PACE} in the console, 0 headless)")


def make_inputs(directory: Path, count: int, seed: int = 1, empty: int = 0) -> list[bytes]:
    """``count`` text files; ``empty`` of them (spread over the run) left empty."""
    rng = random.Random(seed)
    directory.mkdir(parents=True)
    blanks = {count * (k + 1) // (empty + 1) for k in range(min(empty, count))}
    items = []
    for i in range(count):
        path = directory / f"text-{i:05d}.txt"
        lines = (" ".join(rng.choices(WORDS, k=rng.randint(4, 14))) for _ in range(rng.randint(20, 400)))
        path.write_text("" if i in blanks else "\n".join(lines) + "\n")
        items.append(os.fsencode(path))
    return items


def demo_command(pace: float) -> str:
    refuse = '[ -s "$ITEM" ] || { echo "demo: $ITEM: empty file, nothing to compress" >&2; exit 3; }'
    compress = 'gzip -9 -c "$ITEM" > "$OUTPUT_DIR/$(basename "$ITEM").gz"'
    return f"sleep {pace:g}; {refuse}; {compress}" if pace > 0 else f"{refuse}; {compress}"


class Demo:
    def __init__(self, args) -> None:
        if args.items < 1:
            raise UsageError("--items must be at least 1")
        if args.workers < 1 or args.slots < 1:
            raise UsageError("--workers and --slots must be at least 1")
        if args.pace is not None and args.pace < 0:
            raise UsageError("--pace must be 0 or more")
        if args.failing is not None and not 0 <= args.failing <= args.items:
            raise UsageError("--failing must be between 0 and --items")
        self.args = args
        self.keep = bool(args.dir)
        if args.dir:
            self.base = Path(args.dir).expanduser().resolve()
            if self.base.exists() and not self.base.is_dir():
                raise UsageError(f"--dir {args.dir}: exists and is not a directory")
            if (self.base / "job").exists():
                raise UsageError(f"{self.base}/job already exists: choose another --dir or remove it")
            try:
                self.base.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"--dir {args.dir}: cannot create it: {exc.strerror}") from None
        else:
            self.base = Path(tempfile.mkdtemp(prefix="ppss-demo-"))
        self.job = self.base / "job"
        self.logs = self.base / "logs"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        pace = args.pace if args.pace is not None else (0.0 if args.headless else CONSOLE_PACE)
        self.command = demo_command(pace)
        self.failing = args.failing if args.failing is not None else (0 if args.headless else 1)

    def create_job(self) -> int:
        items = make_inputs(self.base / "input", self.args.items, empty=self.failing)
        result = asyncio.run(init_job(LocalStore(str(self.job)), self.command, items, "dir",
                                      str(self.base / "input")))
        return result.spec.total

    def start_workers(self) -> None:
        self.logs.mkdir(exist_ok=True)
        for i in range(1, self.args.workers + 1):
            name = f"demo-{i}"
            with open(self.logs / f"{name}.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "worker", str(self.job), "--node-name", name,
                     "--slots", str(self.args.slots)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            self.procs.append((name, proc))

    def stop_workers(self, timeout: float = 15.0) -> None:
        """SIGTERM (running items terminated, claims released), then SIGKILL after ``timeout``."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cluster_file(self) -> Path:
        path = self.base / "ppss.yaml"
        path.write_text(f"# ppss-console demo: the console on a local job (no SSH)\n"
                        f"master: {self.job}\nnodes: []\n")
        return path

    def log_tail(self, name: str, lines: int = 5) -> str:
        try:
            text = (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    async def headless(self, total: int) -> int:
        store = LocalStore(str(self.job))
        start = time.monotonic()
        last, last_done, progress_at = "", 0, start
        while True:
            alive = [p for _, p in self.procs if p.poll() is None]
            status = (await read_job_status(store)).to_dict()
            now = time.monotonic()
            if status["done"] != last_done:
                last_done, progress_at = status["done"], now
            elapsed = now - start
            rate = status["done"] / (progress_at - start) if progress_at > start else 0.0
            line = (f"demo: {status['done']}/{total} done ({100 * status['done'] / total:.0f}%), "
                    f"{status['running']} running, {status['failed']} failed, {rate:.1f} items/s, "
                    f"{len(alive)} workers, {elapsed:.0f} s")
            if not alive:
                print(line, flush=True)
                return self.outcome(status, total, elapsed)
            if line != last:
                print(line, flush=True)
                last = line
            await asyncio.sleep(1.0)

    def outcome(self, status: dict, total: int, elapsed: float, stopped: frozenset = frozenset()) -> int:
        """0 if every item is done; else 1 with what went wrong (workers in ``stopped`` were
        stopped by the demo itself, so their exit status says nothing)."""
        bad = [(name, p.returncode) for name, p in self.procs if p.returncode != 0 and name not in stopped]
        for name, code in bad:
            print(f"demo: worker {name} exited with status {code}; its log ends with:\n{self.log_tail(name)}",
                  file=sys.stderr)
        if bad or status["failed"] or status["done"] != total:
            print(f"demo: NOT complete: {status['done']} of {total} done, {status['failed']} failed",
                  file=sys.stderr)
            return EXIT_ITEMS_FAILED
        print(f"demo: finished: {total} files compressed by {len(self.procs)} workers in {elapsed:.1f} s "
              f"({total / max(elapsed, 1e-9):.1f} items/s)", flush=True)
        return EXIT_OK

    def cleanup(self) -> None:
        if self.keep:
            print(f"demo: files kept in {self.base} (job in {self.job})", flush=True)
        else:
            shutil.rmtree(self.base, ignore_errors=True)


    def after_console(self, total: int, elapsed: float) -> int:
        """The console was closed: the job's outcome, 1 if quit before every item was done."""
        stopped = frozenset(name for name, proc in self.procs if proc.poll() is None)
        self.stop_workers()
        status = asyncio.run(read_job_status(LocalStore(str(self.job)))).to_dict()
        if stopped and status["done"] + status["failed"] < total:
            print(f"demo: the console was closed before the end ({status['done'] + status['failed']} "
                  f"of {total} items run)", file=sys.stderr)
        return self.outcome(status, total, elapsed, stopped)


def run_demo(args) -> int:
    demo = Demo(args)
    try:
        intro = [f"demo: {args.items} files in {demo.base}/input, job {demo.job}"]
        print(intro[-1], flush=True)
        total = demo.create_job()
        intro.append(f"demo: command: {demo.command}")
        print(intro[-1], flush=True)
        demo.start_workers()
        intro.append(f"demo: started {len(demo.procs)} workers ({', '.join(n for n, _ in demo.procs)}), "
                     f"{args.slots} slots each")
        print(intro[-1], flush=True)
        if args.headless:
            return asyncio.run(demo.headless(total))
        from .app import run_console
        console_args = argparse.Namespace(**vars(args))
        console_args.cluster = str(demo.cluster_file())
        console_args.cmd = None
        start = time.monotonic()
        run_console(console_args, intro=intro)
        return demo.after_console(total, time.monotonic() - start)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping the workers (running items terminated, claims released)",
              file=sys.stderr, flush=True)
        demo.stop_workers()
        return EXIT_INTERRUPTED
    finally:
        demo.stop_workers()
        demo.cleanup()
