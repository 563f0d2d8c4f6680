"""ppss-console: create, inspect and steer ppss jobs; with no subcommand, the Textual console.

Exit status: 0 success; 1 (status) the job has failed items; 2 usage error; 3 cannot reach a
host (connection, host key, login); 4 job missing, malformed or an I/O error on the master, or
(rm) refused while live nodes hold the job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import humanize

from worker import add_version_option
from worker.errors import EXIT_ITEMS_FAILED, EXIT_OK, PpssError, UsageError
from worker.jobops import init_job, resume_halted, split_items
from worker.jobsroot import mark_active
from worker.jobstatus import FINISHED_FILE, read_job_status
from worker.reconcile import count_records
from worker.sourcedir import scan_source_dir
from worker.store import open_store

from . import check, demo, deploy, rootcmds
from .clusterfile import Cluster, load_cluster
from .context import ENV_VAR, cluster_path, effective_cluster, no_cluster_message, require_known_hosts
from .nodesel import set_nodes_state


def _ssh_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--identity", help="SSH private key (default: the cluster file's identity, "
                                              "else agent and ~/.ssh keys)")
    p.add_argument("--known-hosts", help="known_hosts file (default: the cluster file's, else ~/.ssh/known_hosts)")


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", nargs="?", metavar="JOB",
                   help="ssh://[user@]host[:port]/path, a local path, or NAME under the cluster's master "
                        "(default: the cluster file's master)")
    _ssh_options(p)


def init_options(s: argparse.ArgumentParser) -> None:
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--source-file", help="local file, one item per line ('-' = stdin)")
    src.add_argument("--source-dir", help="directory on the master: every regular file is an item")
    s.add_argument("--no-recurse", action="store_true", help="with --source-dir: top level only")
    s.add_argument("--follow-symlinks", action="store_true",
                   help="with --source-dir: also take files that symlinks inside the source point to")
    s.add_argument("--null", "-0", action="store_true", help="with --source-file: items end with NUL")
    s.add_argument("--command", required=True, help="shell command run per item; the item is in $ITEM")
    s.add_argument("--retries", type=int, default=0, help="extra attempts for a failing item (default 0)")
    s.add_argument("--lease", type=float, default=60.0,
                   help="seconds a silent node keeps its claims (default 60)")
    s.add_argument("--timeout", type=float, help="seconds an item may run (time suspended does not count); then ended and failed (retried)")
    s.add_argument("--transfer", choices=("shared", "copy"), default="shared",
                   help="shared: ITEM is the path on the master (a shared mount); copy: fetched over SFTP")
    s.add_argument("--output-dir", help="with --transfer copy: where $OUTPUT_DIR is uploaded on the master")
    s.add_argument("--file-server", help="with --transfer copy: ssh://[user@]host[:port] holding the files")
    s.add_argument("--watch", action="store_true", help="with --source-dir: keep picking up new files")
    s.add_argument("--priority", type=int, default=0,
                   help="under a jobs root: higher runs first (default 0; control.yaml may change it)")
    s.add_argument("--halt", metavar="N|N%",
                   help="halt the job when more than N items (or N%% of the finished, from 10) failed")
    s.add_argument("--group", help="share the job with GROUP (setgid, group-writable dirs); default: private")


def status_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--recount", action="store_true", help="count done/failed records exactly (lists them)")
    from . import watch  # console helper: status --watch
    watch.add_arguments(s)


def state_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--node", help="only these nodes, e.g. node3 or node[1-3] (default: the whole job)")
    s.add_argument("--force", action="store_true",
                   help="with --node: accept a node neither in the cluster file nor seen by the job yet")
    s.add_argument("--fleet", action="store_true",
                   help="steer every serving worker of the jobs root (ROOT/fleet.yaml), or with --node those nodes")


def failed_options(s: argparse.ArgumentParser) -> None:
    from . import failedcmd  # grouped like the console's failed view
    failedcmd.add_arguments(s)


def trust_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("host", nargs="?", help="[user@]host[:port] (default: every host of the cluster file)")
    s.add_argument("--known-hosts", help="known_hosts file (default: the cluster file's, else ~/.ssh/known_hosts)")
    s.add_argument("--yes", action="store_true", help="do not ask; trust the keys shown")


@dataclass(frozen=True)
class Command:
    """One subcommand: its parser options and what runs it. Adding a command is one entry below."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], Awaitable[int] | int]
    options: Callable[[argparse.ArgumentParser], None] | None = None
    job: bool = True  # takes JOB and -i/--known-hosts
    description: str | None = None
    epilog: str | None = None
    defaults: dict = field(default_factory=dict)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppss-console", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version_option(p)
    p.add_argument("--cluster", "-c", default=None,
                   help=f"cluster file (default ./ppss.yaml, then ${ENV_VAR})")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    for c in COMMANDS:
        s = sub.add_parser(c.name, help=c.help, description=c.description or c.help[:1].upper() + c.help[1:],
                           epilog=c.epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        # SUPPRESS: "ppss-console -c F deploy" and "ppss-console deploy -c F" both work.
        s.add_argument("--cluster", "-c", default=argparse.SUPPRESS,
                       help=f"cluster file (default ./ppss.yaml, then ${ENV_VAR})")
        if c.job:
            _job_options(s)
        if c.options:
            c.options(s)
        s.set_defaults(handler=c, **c.defaults)
    return p


def _job_cluster(args) -> Cluster:
    cluster = effective_cluster(args)
    if not cluster.master.is_local:
        require_known_hosts(cluster)
    return cluster


async def _open(args):
    cluster = _job_cluster(args)
    args.address = cluster.master
    return await open_store(cluster.master, cluster.identity, cluster.known_hosts, reconnect=False)


async def cmd_init(args) -> int:
    if args.source_dir is None and (args.no_recurse or args.watch or args.follow_symlinks):
        raise UsageError("--no-recurse, --follow-symlinks and --watch go with --source-dir")
    if args.source_file is None and args.null:
        raise UsageError("--null goes with --source-file")
    skipped = 0
    parent, store = await rootcmds.open_in_parent(args)
    try:
        if args.source_file is not None:
            if args.source_file == "-":
                data = sys.stdin.buffer.read()
            else:
                try:
                    with open(args.source_file, "rb") as fh:
                        data = fh.read()
                except OSError as exc:
                    raise UsageError(f"--source-file {args.source_file}: {exc.strerror}") from None
            items = split_items(data, args.null, args.source_file)
            kind, source = "file", args.source_file
        else:
            items, skipped = await scan_source_dir(store, args.source_dir, not args.no_recurse,
                                                   args.follow_symlinks)
            kind, source = "dir", await store.realpath(args.source_dir)
        result = await init_job(store, args.command, items, kind, source, retries=args.retries,
                                lease=args.lease, transfer=args.transfer, output_dir=args.output_dir,
                                file_server=args.file_server, watch=args.watch,
                                recurse=not args.no_recurse, timeout=args.timeout,
                                priority=args.priority, halt=args.halt, group=args.group)
        if store.in_root:
            await mark_active(parent, store.name)
    finally:
        await parent.close()
    dup = f" ({result.duplicates} duplicate items skipped)" if result.duplicates else ""
    print(f"created job {args.address.display()}: {result.spec.total} items{dup}")
    if skipped:
        hint = "" if args.follow_symlinks else "; --follow-symlinks takes files they point to inside the source"
        print(f"not followed: {skipped} symlinks or other non-regular files{hint}")
    print("start workers with: ppss-console start (nodes of the cluster file), "
          f"or on each node: ppss-worker {args.address.display()} --slots N")
    return EXIT_OK


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "now" if seconds < 2 else humanize.naturaldelta(seconds) + " ago"


async def cmd_status(args) -> int:
    if args.watch:
        from . import watch
        async with await _open(args) as store:
            return await watch.run(args, store)
    async with await _open(args) as store:
        status = await read_job_status(store)
        exact = await count_records(store) if args.recount else None
    data = status.to_dict()
    if exact:
        data["done"], data["failed"] = exact
        data["pending"] = max(0, data["total"] - exact[0] - exact[1] - data["running"])
    if args.json:
        print(json.dumps(data))
    else:
        total = data["total"] or 1
        print(f"job {args.address.display()}: {data['done']}/{data['total']} done "
              f"({100 * data['done'] / total:.1f}%), {data['running']} running, {data['failed']} failed, "
              f"{data['pending']} pending" + ("" if exact is None else " (recounted)"))
        if status.control_error:
            print(f"warning: {status.control_error}")
        elif status.control and status.control.state == "halted":
            print(f"job state: halted: {status.control.halted or 'failures passed the halt threshold'} "
                  "(ppss-console resume runs it again)")
        elif status.control and status.control.state != "running":
            print(f"job state: {status.control.state}")
        if data["nodes"]:
            rows = [("NODE", "STATE", "SLOTS", "DONE", "FAILED", "RUNNING", "LAST SEEN")]
            rows += [(n["name"], n["state"], str(n["slots"]), str(n["done"]), str(n["failed"]),
                      str(n["running"]), _age(n["last_seen_s"])) for n in data["nodes"]]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            for n in data["nodes"]:
                if n["error"]:
                    print(f"{n['name']}: worker error: {n['error']}")
        else:
            print("no node has reported yet")
    return EXIT_ITEMS_FAILED if data["failed"] else EXIT_OK


async def cmd_state(args) -> int:
    cluster = _job_cluster(args)
    if args.fleet:
        return await rootcmds.fleet_state(args, cluster)
    parent, store = await rootcmds.open_in_parent(args)
    try:
        resume = args.state == "running" and args.node is None
        if resume:
            await resume_halted(store, (await read_job_status(store)).failed)
        control, nodes = await set_nodes_state(store, args.state, args.node, cluster, args.force)
        if resume and store.in_root and not await store.exists(FINISHED_FILE):
            await mark_active(parent, store.name)  # e.g. an init cut short before its marker
    finally:
        await parent.close()
    who = "job" if nodes is None else ("node " if len(nodes) == 1 else "nodes ") + args.node
    print(f"{who}: {args.state}" + ("" if nodes else f" (control.yaml state: {control.state})"))
    return EXIT_OK


async def cmd_failed(args) -> int:
    from . import failedcmd
    async with await _open(args) as store:
        return await failedcmd.run(args, store)


async def cmd_trust(args) -> int:
    from .trust import trust_cluster, trust_host
    if args.host:
        known = args.known_hosts
        path = cluster_path(getattr(args, "cluster", None))
        if not known and path:
            known = load_cluster(path).known_hosts
        return await trust_host(args.host, known, args.yes)
    return await trust_cluster(effective_cluster(args, need_cluster=True), args.yes)


def run_console(args) -> int:
    """The Textual console on the cluster file (-c FILE, ./ppss.yaml, $PPSS_CLUSTER)."""
    path = cluster_path(args.cluster)
    if path is None:
        raise UsageError(no_cluster_message())
    args.cluster = path
    cluster = effective_cluster(args)
    if not cluster.master.is_local:
        require_known_hosts(cluster)  # else the console would only show "cannot connect"
    from .app import run_console as run
    return run(args)


def _state(name: str, state: str, text: str) -> Command:
    return Command(name, text, cmd_state, state_options, defaults={"state": state})


COMMANDS: list[Command] = [
    Command("init", "create a job on the master", cmd_init, init_options),
    Command("status", "totals and nodes of a job", cmd_status, status_options),
    _state("pause", "paused", "start nothing new (running items finish)"),
    _state("resume", "running", "run again"),
    _state("stop", "stopped", "let running items finish, then workers exit"),
    _state("suspend", "suspended", "freeze running items (SIGSTOP)"),
    Command("failed", "failed items grouped by cause (--raw: every record)", cmd_failed, failed_options),
    Command("jobs", "the jobs of a jobs root with state, priority and counts", rootcmds.cmd_jobs,
            rootcmds.jobs_options),
    Command("retry", "run a job's failed items again (all, --exit CODE, --match TEXT); history kept",
            rootcmds.cmd_retry, rootcmds.retry_options),
    Command("rm", "delete a finished or stopped job (refused while live nodes hold it, unless --force)",
            rootcmds.cmd_rm, rootcmds.rm_options),
    Command("trust", "show host key fingerprints and add them to known_hosts", cmd_trust, trust_options,
            job=False),
    Command("check", "preflight: every link from here to the nodes and from the nodes to the master",
            check.run_check, deploy.node_key_option, epilog=check.EPILOG),
    Command("deploy", "install the worker on every node of the cluster file (over SSH)", deploy.cmd_deploy,
            deploy.deploy_options, description=deploy.DEPLOY_TEXT, epilog=deploy.DEPLOY_EPILOG),
    Command("start", "start the deployed worker on every node (detached)", deploy.cmd_start,
            deploy.node_key_option, description=deploy.START_TEXT, epilog=deploy.START_EPILOG),
    Command("erase", "stop workers and remove the deployment from every node", deploy.cmd_erase,
            deploy.erase_options, job=False, description=deploy.ERASE_TEXT, epilog=deploy.ERASE_EPILOG),
    Command("demo", "run a real job on this machine (no SSH) and watch it", demo.run_demo,
            demo.add_arguments, job=False, description=demo.DESCRIPTION, epilog=demo.EPILOG),
]


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        result = run_console(args) if handler is None else handler.run(args)
        code = asyncio.run(result) if asyncio.iscoroutine(result) else result
    except PpssError as exc:
        print(f"ppss-console: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # e.g. `ppss-console failed JOB | head`
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
