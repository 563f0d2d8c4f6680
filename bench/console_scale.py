#!/usr/bin/env python3
"""How long one console refresh takes with 1,000 nodes and a million items, and how fast keys answer.

    python3 bench/console_scale.py [--nodes 1000] [--total 1000000] [--refreshes 20] [--changing 0.1]
                                   [--idle 0.0] [--no-ssh] [--only new|old]

Builds a fake job on a local master: ``init_job`` with a few items, then job.yaml's total set to
a million, and one status file per node (4 running items and 2 claimed ahead each, as a busy
worker writes them). Then, inside ``App.run_test`` (a real PpssConsole with 1,000 node rows), it
times N refreshes, each after every status file was rewritten (a heartbeat) and a share
(``--changing``) of the nodes progressed (higher counts, other running items):

    poll    Poller.poll_master(): read the status files, control.yaml, retry/ (the wire part)
    build   Poller.build(): the immutable JobSnapshot with rates and ETA
    render  the SnapshotReady message handled and the screen painted (changed rows repainted;
            includes handling one key press queued right behind it)
    key     a key (cursor down/up) sent while the poll runs, while the snapshot is built, and
            right behind a snapshot message, until its action ran (time from sending the key)
    rows    rows repainted per refresh and lines Textual rendered (only changed rows repaint)

Two ways of polling are measured in the same run, on the same job and the same screen:

    old     ``Poller(offload=False)``: every status file read and parsed on the event loop
            (``worker.jobstatus.read_job_status``), the snapshot built there too
    new     ``Poller()``: ``ppss_tui.statusread`` (only changed files, one READ each, JSON parsed
            in a worker thread; the whole read in a thread on a local master), the snapshot of
            many nodes built in a thread

taking turns refresh by refresh in one console (so the load of other processes falls on both
alike; the render is the same code in both). For the render, the same refresh rebuilding every row (``NodeTable.show(force=True)``, what
a table without per-row updates does); the ratios are quoted.

The poll is timed on a LocalStore and, unless --no-ssh or sshd is missing, over SFTP to a real
sshd on 127.0.0.1 (tests/sshcluster.py) serving the same directory. Store requests per poll are
counted to show they depend on the number of nodes, not items. Node SSH probes are off (they
run in their own tasks and never block a refresh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from ppss_tui.app import PpssConsole  # noqa: E402
from ppss_tui.clusterfile import parse_cluster  # noqa: E402
from ppss_tui.messages import SnapshotReady  # noqa: E402
from ppss_tui.poller import Poller  # noqa: E402
from worker import layout as L  # noqa: E402
from worker.jobops import init_job  # noqa: E402
from worker.jobspec import JobSpec  # noqa: E402
from worker.jobstatus import NodeStatus, RunningItem  # noqa: E402
from worker.store import LocalStore, open_store  # noqa: E402
from worker.address import parse_address  # noqa: E402


class Counting:
    """Wraps a store and counts its requests."""

    def __init__(self, store):
        self._store = store
        self.calls = 0
        self.blocking_io = isinstance(store, LocalStore)   # ppss_tui.statusread.blocking

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if callable(attr) and name in ("read", "read_range", "write", "scandir", "stat", "remove", "listdir",
                                       "now", "exists", "replace", "mkdir"):
            async def counted(*a, **kw):
                self.calls += 1
                return await attr(*a, **kw)
            return counted
        return attr


async def make_job(root: Path, n_nodes: int, total: int) -> None:
    store = LocalStore(str(root))
    await init_job(store, 'true "$ITEM"', [f"item-{i}".encode() for i in range(1000)], "file", "-")
    spec = JobSpec.from_yaml((root / L.JOB_FILE).read_bytes(), "job.yaml")
    data = spec.to_yaml().decode().replace("total: 1000\n", f"total: {total}\n")
    (root / L.JOB_FILE).write_text(data)
    write_statuses(root, n_nodes, 0)


def write_statuses(root: Path, n_nodes: int, step: int, changing: float = 1.0, idle: float = 0.0) -> None:
    """Every node's status file rewritten (its heartbeat, as workers do every second); the
    counts and running items change for about ``changing`` of the nodes per step. The last
    ``idle`` share of the nodes (their workers finished or gone) are written once, then left."""
    now = time.time()
    period = max(1, round(1 / changing)) if changing > 0 else 10**9
    busy = n_nodes - round(idle * n_nodes)
    for n in range(n_nodes):
        if n >= busy and step > 1:
            continue
        r = n % period
        k = (step + period - r) // period if r else step // period   # how often this node progressed
        name = f"node{n:03d}"
        running = tuple(RunningItem(f"{n:02x}{s:02x}{k:06x}", f"/data/in/{name}/file-{k}-{s}.bin", s,
                                    now - s) for s in range(4))
        st = NodeStatus(name, "running", host=f"{name}.lan", pid=1000 + n, run_id="abcd", slots=4,
                        done=k * 7 + n, failed=k // 10, running=running,
                        claims=tuple((f"c{n}{j}", f"/data/in/q{j}") for j in range(2)), updated=now)
        tmp = root / L.NODES_DIR / f".{name}.tmp"
        tmp.write_bytes(st.to_json())
        tmp.replace(root / L.NODES_DIR / f"{name}.json")


def stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"mean {statistics.mean(ms):7.1f} ms   median {statistics.median(ms):7.1f}   p95 {p95:7.1f}   max {ms[-1]:7.1f}"


def key_timer(table, pilot):
    """A coroutine function pressing a key and returning the time from sending it until the
    table's cursor action ran."""
    handled: list[float] = []
    for name in ("action_cursor_down", "action_cursor_up"):
        action = getattr(table, name)

        def hooked(action=action):
            handled.append(time.perf_counter())
            return action()
        setattr(table, name, hooked)

    async def key(name: str) -> float:
        sent = time.perf_counter()
        await pilot.press(name)
        return handled[-1] - sent
    return key


async def refresh(app, pilot, poller, key, m: dict) -> None:
    """One refresh: poll (a key pressed meanwhile), build (a key meanwhile), hand over (a key
    right behind it)."""
    async def timed(coro):
        start = time.perf_counter()
        result = await coro
        return result, time.perf_counter() - start
    poll = asyncio.create_task(timed(poller.poll_master()))
    await asyncio.sleep(0)                   # the poll starts
    m["keys"].append(await key("down"))      # a key while the poll is on the wire
    m["polls"].append((await poll)[1])
    build = asyncio.create_task(timed(poller.build()))
    await asyncio.sleep(0)                   # the build starts
    m["keys"].append(await key("up"))        # a key while the snapshot is built
    snap, took = await build
    m["builds"].append(took)
    t2 = time.perf_counter()
    app.post_message(SnapshotReady(snap))    # as the poller hands it over
    m["keys"].append(await key("down"))      # a key right behind it in the queue
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    m["renders"].append(time.perf_counter() - t2)


async def measure(label: str, master_url: str, store, root: Path, args, modes: list[str]) -> list[dict]:
    """One console, one poller per mode; the modes take turns refresh by refresh, so a change in
    the machine's load (other processes) falls on both alike."""
    nodes = "\n".join(f"  - {{name: node{n:03d}, host: node{n:03d}.lan}}" for n in range(args.nodes))
    cluster = parse_cluster(f"master: {master_url}\nnodes:\n{nodes}\n", "bench.yaml", "/")
    counting = Counting(store)
    app = PpssConsole(cluster, poll=False)
    pollers = {}
    for mode in modes:
        pollers[mode] = Poller(cluster, on_snapshot=lambda s: None, probe_nodes=False, recount_every=None,
                               offload=mode == "new")
        pollers[mode].store = pollers[mode].conn_store = counting
    ms: dict[str, dict[str, list]] = {mode: {k: [] for k in ("polls", "builds", "renders", "requests", "keys",
                                                             "rows", "lines", "full", "files")} for mode in modes}
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("NodeTable")
        key = key_timer(table, pilot)
        for step in range((args.refreshes + 1) * len(modes)):
            mode = modes[step % len(modes)]
            m, poller = ms[mode], pollers[mode]
            write_statuses(root, args.nodes, step + 1, args.changing, args.idle)
            before, painted, rendered = counting.calls, table.rows_repainted, table.lines_rendered
            await refresh(app, pilot, poller, key, m)
            if step < len(modes):  # a poller's first refresh reads job.yaml (and adds the rows)
                for k in ("polls", "builds", "renders", "keys"):
                    m[k].clear()
                continue
            m["requests"].append(counting.calls - before)
            m["files"].append(poller.reader.files_read if poller.offload else args.nodes)
            m["rows"].append(table.rows_repainted - painted)
            m["lines"].append(table.lines_rendered - rendered)
        assert table.row_count == args.nodes, table.row_count
        assert app.snapshot.total == args.total
        for _ in range(3):                           # baseline: every row rebuilt
            t0 = time.perf_counter()
            table.show(table.rows_shown, force=True)
            await pilot.pause()
            for mode in modes:
                ms[mode]["full"].append(time.perf_counter() - t0)
    return [report(f"{label}, {mode}", args, ms[mode]) for mode in modes]


def report(label: str, args, m: dict) -> dict:
    totals = [a + b + c for a, b, c in zip(m["polls"], m["builds"], m["renders"])]
    mean = statistics.mean
    print(f"\n{label}: {args.nodes} nodes, total {args.total:,} items, {args.refreshes} refreshes, "
          f"{args.changing:.0%} of the nodes changing per refresh, {args.idle:.0%} idle")
    print(f"  poll    {stats(m['polls'])}   ({mean(m['requests']):.0f} store requests per poll, "
          f"{mean(m['files']):.0f} status files read)")
    print(f"  build   {stats(m['builds'])}")
    print(f"  render  {stats(m['renders'])}   ({mean(m['rows']):.0f} rows repainted, "
          f"{mean(m['lines']):.0f} lines rendered per refresh)")
    print(f"  total   {stats(totals)}")
    print(f"  keys    {stats(m['keys'])}   (while polling, while building, right after a snapshot)")
    print(f"  baseline render rebuilding every row: {stats(m['full'])}   "
          f"ratio {mean(m['full']) / mean(m['renders']):.1f}x")
    p95 = lambda xs: sorted(xs)[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))] * 1000  # noqa: E731
    return {"label": label, "total_ms_p95": p95(totals), "key_ms_p95": p95(m["keys"]), "total_ms_mean": mean(totals) * 1000, "total_ms_max": max(totals) * 1000,
            "poll_ms_mean": mean(m["polls"]) * 1000, "render_ms_mean": mean(m["renders"]) * 1000,
            "key_ms_max": max(m["keys"]) * 1000, "rows_repainted_mean": mean(m["rows"]),
            "requests_per_poll": mean(m["requests"]), "rebuild_ms_mean": mean(m["full"]) * 1000}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--total", type=int, default=1_000_000)
    p.add_argument("--refreshes", type=int, default=20)
    p.add_argument("--changing", type=float, default=0.1, help="share of the nodes changing per refresh")
    p.add_argument("--idle", type=float, default=0.0,
                   help="share of the nodes whose status files stop changing (finished or gone workers)")
    p.add_argument("--no-ssh", action="store_true", help="only the local master")
    p.add_argument("--json", action="store_true", help="also print the summary as JSON")
    p.add_argument("--only", choices=("old", "new"), help="measure only one way of polling")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppss-console-bench-") as tmp:
        root = Path(tmp) / "job"
        await make_job(root, args.nodes, args.total)
        modes = [m for m in ("old", "new") if args.only in (None, m)]
        results = await measure("local master", str(root), LocalStore(str(root)), root, args, modes)
        if not args.no_ssh:
            from sshcluster import SshCluster, sshd_available
            if not sshd_available():
                print("\n(sshd not found: skipping the SFTP measurement)")
            else:
                cluster = SshCluster(Path(tmp) / "ssh", n_nodes=0)
                try:
                    url = cluster.master.url(str(root))
                    store = await open_store(parse_address(url), str(cluster.identity), str(cluster.known_hosts))
                    try:
                        results += await measure("master over SFTP (sshd on 127.0.0.1)", url, store, root,
                                                 args, modes)
                    finally:
                        await store.close()
                finally:
                    cluster.close()
    by = {r["label"]: r for r in results}
    for where in ("local master", "master over SFTP (sshd on 127.0.0.1)"):
        old, new = by.get(f"{where}, old"), by.get(f"{where}, new")
        if old and new:
            print(f"\n{where}: refresh p95 {old['total_ms_p95']:.0f} -> {new['total_ms_p95']:.0f} ms "
                  f"(x{old['total_ms_p95'] / new['total_ms_p95']:.2f}), keys p95 {old['key_ms_p95']:.0f} -> "
                  f"{new['key_ms_p95']:.0f} ms (x{old['key_ms_p95'] / new['key_ms_p95']:.2f})")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
