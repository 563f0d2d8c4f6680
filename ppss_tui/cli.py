"""ppss-console: create, inspect and steer ppss jobs; with no subcommand, the Textual console.

Exit status: 0 success; 1 (status) the job has failed items; 2 usage error; 3 cannot reach a
host (connection, host key, login); 4 job missing, malformed or an I/O error on the master.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import humanize

from worker import layout as L
from worker.address import parse_address
from worker.errors import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, PpssError, UsageError
from worker.jobops import failed_items, init_job, list_source_dir, set_state, split_items
from worker.jobstatus import read_job_status, read_spec
from worker.reconcile import count_records
from worker.store import open_store


def _ssh_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--identity", help="SSH private key (default: agent and ~/.ssh keys)")
    p.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")


def _master(p: argparse.ArgumentParser) -> None:
    p.add_argument("master", help="the job: ssh://[user@]host[:port]/path, or a local path")
    _ssh_args(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppss-console", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cluster", "-c", default="ppss.yaml", help="cluster file (default ./ppss.yaml)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    s = sub.add_parser("init", help="create a job on the master")
    _master(s)
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--source-file", help="local file, one item per line ('-' = stdin)")
    src.add_argument("--source-dir", help="directory on the master: every regular file is an item")
    s.add_argument("--no-recurse", action="store_true", help="with --source-dir: top level only")
    s.add_argument("--null", "-0", action="store_true", help="with --source-file: items end with NUL")
    s.add_argument("--command", required=True, help="shell command run per item; the item is in $ITEM")
    s.add_argument("--retries", type=int, default=0, help="extra attempts for a failing item (default 0)")
    s.add_argument("--lease", type=float, default=60.0,
                   help="seconds a silent node keeps its claims (default 60)")
    s.add_argument("--transfer", choices=("shared", "copy"), default="shared",
                   help="shared: ITEM is the path on the master (a shared mount); copy: fetched over SFTP")
    s.add_argument("--output-dir", help="with --transfer copy: where $OUTPUT_DIR is uploaded on the master")
    s.add_argument("--file-server", help="with --transfer copy: ssh://[user@]host[:port] holding the files")
    s.add_argument("--watch", action="store_true", help="with --source-dir: keep picking up new files")

    s = sub.add_parser("status", help="totals and nodes of a job")
    _master(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--recount", action="store_true", help="count done/failed records exactly (lists them)")

    for name, state, text in (("pause", "paused", "start nothing new (running items finish)"),
                              ("resume", "running", "run again"),
                              ("stop", "stopped", "let running items finish, then workers exit"),
                              ("suspend", "suspended", "freeze running items (SIGSTOP)")):
        s = sub.add_parser(name, help=text)
        _master(s)
        s.add_argument("--node", help="only this node (default: the whole job)")
        s.set_defaults(state=state)

    s = sub.add_parser("failed", help="list failed items with exit code and node")
    _master(s)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("trust", help="show a host's key fingerprint and add it to known_hosts")
    s.add_argument("host", help="[user@]host[:port]")
    s.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    s.add_argument("--yes", action="store_true", help="do not ask; trust the key shown")

    from .deploy import add_parsers as add_deploy_parsers
    add_deploy_parsers(sub, _cluster_option)
    from .demo import add_parser as add_demo_parser
    add_demo_parser(sub)
    return p


def _cluster_option(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: "ppss-console --cluster F deploy" and "ppss-console deploy --cluster F" both work.
    p.add_argument("--cluster", "-c", default=argparse.SUPPRESS, help="cluster file (default ./ppss.yaml)")


async def _open(args):
    return await open_store(parse_address(args.master), args.identity, args.known_hosts, reconnect=False)


async def cmd_init(args) -> int:
    address = parse_address(args.master)
    if args.source_dir is None and (args.no_recurse or args.watch):
        raise UsageError("--no-recurse and --watch go with --source-dir")
    if args.source_file is None and args.null:
        raise UsageError("--null goes with --source-file")
    async with await _open(args) as store:
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
            items = await list_source_dir(store, args.source_dir, not args.no_recurse)
            kind, source = "dir", await store.realpath(args.source_dir)
        result = await init_job(store, args.command, items, kind, source, retries=args.retries,
                                lease=args.lease, transfer=args.transfer, output_dir=args.output_dir,
                                file_server=args.file_server, watch=args.watch,
                                recurse=not args.no_recurse)
    dup = f" ({result.duplicates} duplicate items skipped)" if result.duplicates else ""
    print(f"created job {address.display()}: {result.spec.total} items{dup}")
    print(f"start workers with: ppss-worker {address.display()} --slots N")
    return EXIT_OK


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "now" if seconds < 2 else humanize.naturaldelta(seconds) + " ago"


async def cmd_status(args) -> int:
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
        print(f"job {parse_address(args.master).display()}: {data['done']}/{data['total']} done "
              f"({100 * data['done'] / total:.1f}%), {data['running']} running, {data['failed']} failed, "
              f"{data['pending']} pending" + ("" if exact is None else " (recounted)"))
        if status.control_error:
            print(f"warning: {status.control_error}")
        elif status.control and status.control.state != "running":
            print(f"job state: {status.control.state}")
        if data["nodes"]:
            rows = [("NODE", "STATE", "SLOTS", "DONE", "FAILED", "RUNNING", "LAST SEEN")]
            rows += [(n["name"], n["state"], str(n["slots"]), str(n["done"]), str(n["failed"]),
                      str(n["running"]), _age(n["last_seen_s"])) for n in data["nodes"]]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        else:
            print("no node has reported yet")
    return EXIT_ITEMS_FAILED if data["failed"] else EXIT_OK


async def cmd_state(args) -> int:
    async with await _open(args) as store:
        control = await set_state(store, args.state, args.node)
    who = f"node {args.node}" if args.node else "job"
    print(f"{who}: {args.state}" + ("" if args.node else f" (control.yaml state: {control.state})"))
    return EXIT_OK


async def cmd_failed(args) -> int:
    async with await _open(args) as store:
        await read_spec(store)
        records = await failed_items(store)
    if args.json:
        print(json.dumps(records))
        return EXIT_OK
    if not records:
        print("no failed items")
    for r in sorted(records, key=lambda r: r.get("start") or 0):
        item = L.display_item(L.item_from_json(r.get("item", "")), 80)
        print(f"exit {r.get('exit')}  node {r.get('node', '?')}  attempt {r.get('attempt', 1)}  {item}")
    return EXIT_OK


async def cmd_trust(args) -> int:
    from .trust import trust_host
    return await trust_host(args.host, args.known_hosts, args.yes)


async def cmd_nodes(args) -> int:
    from .deploy import COMMANDS as NODE_COMMANDS
    return await NODE_COMMANDS[args.cmd](args)


COMMANDS = {"deploy": cmd_nodes, "start": cmd_nodes, "erase": cmd_nodes,
            "init": cmd_init, "status": cmd_status, "pause": cmd_state, "resume": cmd_state,
            "stop": cmd_state, "suspend": cmd_state, "failed": cmd_failed, "trust": cmd_trust}


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.cmd is None:
            from .app import run_console
            code = run_console(args)
        elif args.cmd == "demo":  # runs its own event loop (and maybe the Textual app)
            from .demo import run_demo
            code = run_demo(args)
        else:
            code = asyncio.run(COMMANDS[args.cmd](args))
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
