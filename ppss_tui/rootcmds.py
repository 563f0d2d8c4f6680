"""The jobs-root commands of ppss-console: jobs, retry, rm, and the fleet's pause|resume|stop.

The job of a command is opened through its parent directory (``open_in_parent``), so one SSH
connection serves the job and its root: retry can mark the job active again, rm can move it
aside. A job is "under a root" when its parent holds no job.yaml and has active/ (``init NAME``
makes it), or was named by a bare NAME under a cluster master that is a root.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import posixpath
import time

from worker import jobsroot as R
from worker.errors import EXIT_OK, JobError, UsageError
from worker.fleet import update_fleet
from worker.jobsroot import JobView
from worker.jobstatus import read_job_status
from worker.store import Store, open_store

from .context import effective_cluster, require_known_hosts
from .nodesel import expand, fold, known_nodes
from .prompt import ask_yes_no


def _cluster(args):
    cluster = effective_cluster(args)
    if not cluster.master.is_local:
        require_known_hosts(cluster)
    args.address = cluster.master
    return cluster


def bare_name(args) -> bool:
    text = getattr(args, "job", None)
    return bool(text) and "://" not in text and "/" not in text and text not in (".", "..", "~")


async def open_in_parent(args) -> tuple[Store, JobView]:
    """(the parent directory's store, the job as a view of it); ``view.in_root`` set."""
    cluster = _cluster(args)
    path = cluster.master.path.rstrip("/") or "/"
    parent_path, name = posixpath.split(path)
    if not name or name == "~" or not parent_path:
        # "/" or the login home itself: no parent to see it through (and no root above it).
        parent_path, name = path, "."
    parent = dataclasses.replace(cluster.master, path=parent_path)
    store = await open_store(parent, cluster.identity, cluster.known_hosts, reconnect=False)
    view = JobView(store, name, in_root=False)
    try:
        if name == ".":
            pass
        elif bare_name(args):
            R.check_job_name(name)
            view.in_root = await R.is_root(store)
        else:
            view.in_root = await R.is_root(store) and await store.exists(R.ACTIVE_DIR)
    except BaseException:
        await store.close()
        raise
    return store, view


async def open_root(args) -> Store:
    """The cluster's master (or JOB) as a root: refused if it is a single job."""
    cluster = _cluster(args)
    store = await open_store(cluster.master, cluster.identity, cluster.known_hosts, reconnect=False)
    if not await R.is_root(store):
        await store.close()
        raise JobError(f"{cluster.master.display()} is a single job (job.yaml), not a jobs root; "
                       "name a directory of jobs (the cluster file's master, or JOB)")
    return store


def _created(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "-"


def _print_jobs(infos) -> None:
    if not infos:
        print("no jobs (create one with ppss-console init NAME ...)")
        return
    rows = [("NAME", "STATE", "PRIO", "DONE", "FAILED", "RUNNING", "PENDING", "CREATED")]
    for j in infos:
        state = f"halted: {j.halted}" if j.state == "halted" and j.halted else j.state
        rows.append((j.name, state, str(j.priority), f"{j.done}/{j.total}", str(j.failed), str(j.running),
                     str(j.pending), _created(j.created)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


async def cmd_jobs(args) -> int:
    store = await open_root(args)
    try:
        infos = await R.list_jobs(store)
    finally:
        await store.close()
    if args.json:
        print(json.dumps([j.to_dict() for j in infos]))
    else:
        _print_jobs(infos)
    return EXIT_OK


def jobs_options(s) -> None:
    s.add_argument("--json", action="store_true", help='[{"name","state","priority","total","done",'
                                                       '"failed","running","pending","created"}]')


async def cmd_retry(args) -> int:
    store, job = await open_in_parent(args)
    try:
        count = await R.retry_failed(job, exit_code=args.exit, match=args.match)
        status = await read_job_status(job)
    finally:
        await store.close()
    which = "" if args.exit is None and args.match is None else " matching"
    print(f"{args.address.display()}: {count}{which} failed items offered again"
          + ("" if count else " (nothing to retry)")
          + f"; now {status.done}/{status.total} done, {status.failed} failed, {status.pending} pending")
    if count and not job.in_root:
        print(f"run them with: ppss-console start, or ppss-worker {args.address.display()}")
    return EXIT_OK


def retry_options(s) -> None:
    s.add_argument("--exit", type=int, metavar="CODE", help="only items whose last attempt exited with CODE")
    s.add_argument("--match", metavar="TEXT", help="only items whose output tail contains TEXT")


async def cmd_rm(args) -> int:
    store, job = await open_in_parent(args)
    try:
        if not await R.is_job(store, job.name):
            raise JobError(f"{job.label}: not a ppss job (no job.yaml)")
        ask_yes_no(f"Delete the job {job.label} with all its records and output?", args.yes,
                   "rm asks before deleting; pass --yes") or _refused()
        await R.remove_job(store, job.name, force=args.force)
    finally:
        await store.close()
    print(f"removed job {args.address.display()}")
    return EXIT_OK


def _refused():
    raise UsageError("not removed")


def rm_options(s) -> None:
    s.add_argument("--yes", action="store_true", help="do not ask")
    s.add_argument("--force", action="store_true",
                   help="remove even while live nodes hold the job's claims or it is not finished/stopped")


async def fleet_state(args, cluster) -> int:
    """pause|resume|stop --fleet [--node N]: rewrite ROOT/fleet.yaml."""
    if args.state not in ("running", "paused", "stopped"):
        raise UsageError(f"--fleet takes pause, resume or stop, not {args.state}")
    store = await open_root(args)
    try:
        nodes = None
        if args.node:
            nodes = expand(args.node)
            if not args.force:
                known = await known_nodes(store, cluster)  # the cluster file's and ROOT/nodes/
                unknown = [n for n in nodes if n not in known]
                if unknown:
                    raise UsageError(f"--node: unknown node {fold(unknown)}: not in the cluster file and never "
                                     "seen serving the root (--force to set it anyway)")
        await update_fleet(store, lambda f: functools.reduce(
            lambda acc, n: acc.with_state(args.state, n), nodes, f) if nodes else f.with_state(args.state))
    finally:
        await store.close()
    who = "fleet" if nodes is None else f"fleet node{'s' if len(nodes) > 1 else ''} {args.node}"
    print(f"{who}: {args.state} ({args.address.display()}/fleet.yaml)")
    return EXIT_OK
