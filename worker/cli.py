"""ppss-worker MASTER [--slots N] [--node-name NAME]: the headless node program.

MASTER is a job (holds job.yaml) or a jobs root (an existing directory without one): a root is
served until SIGTERM/Ctrl-C or a fleet stop, running every runnable job on it (worker/serve.py).

Exit status: 0 job finished, no item failed (a root: a fleet stop); 1 job finished, some items failed; 2 usage error;
3 cannot reach the master (connection, host key, login); 4 job directory missing or invalid,
or an I/O error on the master; 5 stopped through control.yaml before the job finished;
130 / 143 interrupted by SIGINT / SIGTERM (running items terminated, claims released).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys

from . import add_version_option
from .address import parse_address
from .engine import Worker, default_node_name, valid_node_name
from .errors import EXIT_INTERRUPTED, JobError, PpssError, UsageError
from . import layout as L
from .jobspec import JobSpec
from .serve import Server
from .store import open_store
from .transfer import CopyTransfer, default_work_root


WAIT_POLL = 10.0  # --wait: how often a job (or root) not created yet is looked for, s
BEING_MADE = (L.ITEMS_DIR, L.LOCKS_DIR, L.SWEEP_DIR)  # (a root holds jobs with any names but these three at once)
WAIT_ATTEMPTS = 1_000_000  # --wait: connection attempts to an unreachable master (backoff up to 20 s)


class EventPrinter:
    """The worker's connection events on stderr; a retried failure is said once, not per attempt."""

    def __init__(self, node: str, first_delay: float = 0.5) -> None:
        self.node = node
        self.last = ""
        self.first_delay = first_delay

    def say(self, text: str) -> None:
        print(f"ppss-worker[{self.node}]: {text}", file=sys.stderr, flush=True)

    def __call__(self, text: str) -> None:
        if text == self.last:
            return
        # Everything but the store's "connection ... lost" / "reconnected" comes from a failed attempt.
        retry = not text.startswith(("connection to ", "reconnected to "))
        self.last = text
        suffix = f"; retrying in {self.first_delay:g} s, then with growing delays (said once)" if retry else ""
        print(f"ppss-worker[{self.node}]: {text}{suffix}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ppss-worker", description="Process the items of a ppss job on this node.",
        epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version_option(p)
    p.add_argument("master", help="the job (or a jobs root: a directory of jobs, served until stopped): "
                   "ssh://[user@]host[:port]/path, or a local path")
    p.add_argument("--slots", "-s", type=int, default=os.cpu_count() or 1,
                   help="items run at once (default: CPU count)")
    p.add_argument("--node-name", "-n", default=None, help="this node's name (default: hostname)")
    p.add_argument("-i", "--identity", help="SSH private key for the master")
    p.add_argument("--known-hosts", help="known_hosts file to verify the master (default ~/.ssh/known_hosts)")
    p.add_argument("--work-dir", help="copy mode: where items are fetched to (default ~/.cache/ppss/work/...)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    p.add_argument("--wait", action="store_true",
                   help="wait for the master and for the job (or root) to be created, instead of exiting "
                        "(the @reboot line of deploy --autostart uses it)")
    return p


async def run(args: argparse.Namespace) -> int:
    node = args.node_name or default_node_name()
    if not valid_node_name(node):
        raise UsageError(f"--node-name {node!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    if args.slots < 1:
        raise UsageError("--slots must be at least 1")
    address = parse_address(args.master)
    log = (lambda text: None) if args.quiet else None
    event = EventPrinter(node)

    async with contextlib.AsyncExitStack() as stores:
        store = await stores.enter_async_context(
            await open_store(address, args.identity, args.known_hosts, on_event=event,
                             first_attempts=WAIT_ATTEMPTS if args.wait else 4))
        data, job_path = await find_job(store, address, args.wait, log or event.say)
        if data is None:
            return await serve_root(store, address, node, args, log, event)
        spec = JobSpec.from_yaml(data, store.where(L.JOB_FILE))
        transfer, files = await make_transfer(store, spec, job_path, args, event,
                                              args.work_dir or default_work_root(address.display()))
        if files is not None and files is not store:
            stores.push_async_callback(files.close)
        worker = Worker(store, spec, node, args.slots, log=log, job_path=job_path, transfer=transfer)
        return await worker.run()


async def find_job(store, address, wait: bool, say) -> tuple[bytes | None, object]:
    """job.yaml (None: a jobs root) and the job's real path, in one round trip. A path that does
    not exist is an error, or with ``--wait`` looked for every WAIT_POLL s until ``init`` made it
    (a directory with a job's items/, locks/ and sweep/ but no job.yaml yet is a job being
    made: waited for too)."""
    told = False
    while True:
        data, job_path = await asyncio.gather(
            store.read(L.JOB_FILE), store.realpath(address.path) if not address.is_local else _same(address.path),
            return_exceptions=True)
        if isinstance(data, BaseException):
            raise data
        if data is not None:
            if isinstance(job_path, BaseException):
                raise job_path
            return data, job_path
        exists, *made = await asyncio.gather(store.exists(""), *(store.exists(d) for d in BEING_MADE))
        if exists and not (wait and all(made)):
            return None, job_path
        if not wait:
            raise JobError(f"{store.where('')}: no such directory: not a ppss job (no {L.JOB_FILE}) "
                           "nor a jobs root; create one with ppss-console init")
        if not told:
            say(f"{store.where('')}: not there yet; waiting for ppss-console init (looking every {WAIT_POLL:g} s)")
            told = True
        await asyncio.sleep(WAIT_POLL)


async def _same(path: str) -> str:
    return path


async def make_transfer(store, spec, job_path: str, args, event, work_root: str):
    """Copy mode's transfer (None in shared mode) and the file server's store it opened."""
    if spec.transfer != "copy":
        return None, None
    files = store
    if spec.file_server:
        server = spec.file_server.rstrip("/")
        server_address = parse_address(server if server.count("/") > 2 else server + "/.")
        files = await open_store(server_address, args.identity, args.known_hosts, on_event=event)
    return CopyTransfer(files, store, spec, job_path, work_root), files


async def serve_root(store, address, node: str, args, log, event) -> int:
    """``ppss-worker ROOT``: an existing directory holding no job.yaml is a jobs root (serve.py)."""
    root_path = address.path if address.is_local else await store.realpath(address.path)

    async def transfers(job, spec, name):
        transfer, files = await make_transfer(job, spec, f"{root_path.rstrip('/')}/{name}", args, event,
                                              os.path.join(args.work_dir, name) if args.work_dir
                                              else default_work_root(f"{address.display()}/{name}"))
        close = files.close if files is not None and files is not job else None
        return transfer, close

    printer = log or (lambda text: print(f"ppss-worker[{node}]: {text}", file=sys.stderr, flush=True))
    return await Server(store, node, args.slots, log=printer, root_path=root_path, transfers=transfers).run()


def _fast_child_watcher() -> None:
    """Python 3.11 waits for each child in a thread of its own; a pidfd needs none."""
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                os.close(os.pidfd_open(os.getpid()))
                asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
            except (OSError, AttributeError):
                pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _fast_child_watcher()
    try:
        code = asyncio.run(run(args))
    except PpssError as exc:
        print(f"ppss-worker: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = 0
    # Everything is closed: spare the interpreter's last collections (they walked every object
    # a long job left, 25-30 ms of CPU on each node at the job's very end). Objects are freed
    # as at any exit; only cycles are left to the operating system.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
