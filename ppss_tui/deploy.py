"""``ppss-console deploy | start | erase --cluster FILE``: install, launch and remove the worker on nodes.

deploy  For every node of the cluster file, in parallel (64 nodes at a time; --parallel N): probe the
        account (python3, venv module, free disk, uid), ship wheels built/collected on this machine
        (nodes need no internet; with their bytecode when the node runs this Python version),
        create a venv without pip in the node's deployment directory (``dir:`` in the cluster
        file, default ``~/.ppss``) and unpack the wheels there (``wheelinstall``); install the
        node->master key (``node_key``) as ``master_key`` (mode 0600 from creation) and the
        master's host key as ``known_hosts``; with ``--autostart`` add an ``@reboot`` crontab
        line. A second run upgrades in place, or reports "up to date". Each node then logs into
        the master as its worker will (``check.node_master_check``): a refused key fails it.
start   Launch the deployed worker on every node, detached from the SSH session, with the node's
        name and slots from the cluster file. A node already running a worker for the job keeps it.
erase   Stop the workers, remove the deployment directory's ppss files, the crontab line and the
        copy-mode work directory (~/.cache/ppss/work); name the master's authorized_keys line.

One result line per node (on a terminal, with a progress bar), then a summary grouping the nodes
by outcome and reason, with node ranges (``node[001-097]``). Exit status: 0 every node succeeded; 2 usage error (cluster file,
missing key file, erase not confirmed); 3 at least one node could not be reached (connection,
host key, login); 6 otherwise, at least one node failed (root account refused, python3/venv/disk
missing, installation or start failed, --autostart impossible).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import sys
import textwrap
import time
from dataclasses import dataclass

import asyncssh

from worker.errors import EXIT_CONNECT, EXIT_OK, ConnectError, PpssError, UsageError
from worker.sshconn import SshTarget, connect, known_host_keys

from .clusterfile import Cluster, NodeSpec
from .nodesel import fold
from .context import effective_cluster, require_known_hosts
from .prompt import ask_yes_no
from .remote import (DEFAULT_DIR, IMPORT_CHECK_PY, IMPORT_FAILED, autostart_script, erase_script, install_script,
                     launcher, parse_kv, probe_script, run_script, start_script)
from .trust import known_hosts_entry
from .wheels import MIN_PYTHON, PyTarget, WheelSets, target_from_probe

EXIT_NODE_FAILED = 6
MAX_PARALLEL = 64  # nodes worked on at once (each node is its own sshd; --parallel N)
MIN_FREE_MB = 200  # the venv (no pip), the wheels and their bytecode take about 40 MB

OK, UNREACHABLE, FAILED = "ok", "unreachable", "failed"


class NodeFailure(Exception):
    """This node cannot be deployed/started; the message says why, in one line. ``why``: the
    same without this node's own details, for the summary's groups (default: the message)."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why


@dataclass
class NodeResult:
    node: NodeSpec
    outcome: str  # ok / unreachable / failed
    word: str  # installed, upgraded, up to date, started, running, erased, UNREACHABLE, FAILED...
    detail: str
    why: str = ""  # what nodes failing alike share ("" : the detail, node names masked)


def job_hash(master_url: str) -> str:
    return hashlib.sha256(master_url.encode()).hexdigest()[:10]


def dir_spec(node: NodeSpec) -> str:
    return node.dir or DEFAULT_DIR


# ---- the common frame: every node in parallel, one line each --------------------------------

class Reporter:
    """One line per node as it finishes; on a terminal, a progress bar below them (rich)."""

    def __init__(self, nodes: tuple[NodeSpec, ...], out=None, width: int = 4, verb: str = "") -> None:
        self.width = max((len(n.name) for n in nodes), default=width)
        self.width = max(self.width, width)
        self.out = out or sys.stdout
        self.progress = None
        if self.out.isatty() and len(nodes) > 1:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.progress = Progress(TextColumn(f"{verb or 'nodes'}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(file=self.out), transient=True)
            self.task = self.progress.add_task(verb, total=len(nodes))
            self.progress.start()

    def line(self, r: NodeResult) -> None:
        text = f"{r.node.name:<{self.width}}  {r.word:<11} {r.detail}".rstrip()
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
            self.progress.advance(self.task)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def reason(r: NodeResult) -> str:
    """A result's detail without what names the node, so that nodes failing alike group together."""
    text = r.why or r.detail
    for own in sorted({r.node.label(), r.node.host, r.node.name}, key=len, reverse=True):
        text = text.replace(own, "NODE")
    return text


def group_results(results: list[NodeResult]) -> list[str]:
    """Summary lines: the nodes of each outcome and word (and, for failures, reason) as ranges."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        key = (r.outcome, r.word, "" if r.outcome == OK else reason(r))
        groups.setdefault(key, []).append(r.node.name)
    order = {OK: 0, FAILED: 1, UNREACHABLE: 2}
    lines = []
    for (outcome, word, why), names in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], -len(kv[1]))):
        lines.append(f"  {word} ({len(names)}): {fold(names)}" + (f": {why}" if why else ""))
    return lines


async def for_each_node(cluster: Cluster, action, verb: str, out=None, width: int = 4,
                        parallel: int | None = None) -> int:
    """Run ``action(conn, node) -> (word, detail)`` on every node (``parallel`` at a time);
    print a line per node, then a summary grouped by outcome with node ranges; exit code."""
    nodes = cluster.nodes
    reporter = Reporter(nodes, out, width, verb)
    gate = asyncio.Semaphore(parallel or MAX_PARALLEL)

    async def one(node: NodeSpec) -> NodeResult:
        async with gate:
            result = await run_on_node(cluster, node, action)
        reporter.line(result)
        return result

    try:
        results = await asyncio.gather(*(one(n) for n in nodes))
    finally:
        reporter.close()
    counts = {k: sum(1 for r in results if r.outcome == k) for k in (OK, UNREACHABLE, FAILED)}
    summary = f"{verb}: {counts[OK]} of {len(results)} nodes ok"
    warned = sum(1 for r in results if r.outcome == OK and "WARNING" in r.detail)
    if warned:
        summary += f" ({warned} with a WARNING)"
    if counts[UNREACHABLE]:
        summary += f", {counts[UNREACHABLE]} unreachable"
    if counts[FAILED]:
        summary += f", {counts[FAILED]} failed"
    print(summary, file=reporter.out, flush=True)
    if len(results) > 1:
        print("\n".join(group_results(list(results))), file=reporter.out, flush=True)
    if counts[UNREACHABLE]:
        return EXIT_CONNECT
    if counts[FAILED]:
        return EXIT_NODE_FAILED
    return EXIT_OK


async def run_on_node(cluster: Cluster, node: NodeSpec, action) -> NodeResult:
    try:
        conn = await connect(node.target(cluster))
        try:
            word, detail = await action(conn, node)
            return NodeResult(node, OK, word, detail)
        finally:
            conn.close()
    except ConnectError as exc:
        return NodeResult(node, UNREACHABLE, "UNREACHABLE", str(exc))
    except NodeFailure as exc:
        return NodeResult(node, FAILED, "FAILED", str(exc), exc.why)
    except PpssError as exc:  # WheelError and the like: this node only
        return NodeResult(node, FAILED, "FAILED", str(exc))
    except (asyncssh.Error, OSError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        return NodeResult(node, UNREACHABLE, "UNREACHABLE", f"{node.label()}: connection lost: {why}")
    except asyncio.TimeoutError:
        return NodeResult(node, FAILED, "FAILED", "timed out")


def load_for_nodes(args, need_master: bool = True) -> Cluster:
    """The cluster file with the command line's overrides; it must list nodes."""
    if not need_master:
        args.job = None
    cluster = effective_cluster(args, need_cluster=True)
    if not cluster.nodes:
        raise UsageError(f"{cluster.path}: no nodes listed (nodes: [user@host[:port], ...])")
    require_known_hosts(cluster)
    return cluster


# ---- deploy -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Payload:
    """What every node gets besides the wheels: key, master host key lines, launcher inputs."""

    node_key: bytes | None
    master_known_hosts: str | None
    master_url: str
    job_hash: str


def read_payload(cluster: Cluster) -> Payload:
    key = None
    if cluster.node_key:
        try:
            with open(cluster.node_key, "rb") as fh:
                key = fh.read()
        except OSError as exc:
            raise UsageError(f"node_key {cluster.node_key}: {exc.strerror}") from None
        try:
            asyncssh.import_private_key(key)
        except (asyncssh.KeyImportError, ValueError):
            raise UsageError(f"node_key {cluster.node_key}: not an unencrypted private key "
                             "(nodes must use it unattended)") from None
    lines = None
    master = cluster.master
    if not master.is_local:
        target = SshTarget(master.host, master.port, master.user, None, cluster.known_hosts)
        keys = known_host_keys(target)
        if not keys:
            where = cluster.known_hosts or "~/.ssh/known_hosts"
            port = f":{master.port}" if master.port else ""
            raise ConnectError(f"the master's host key is not in {where}: nodes could not verify it. "
                               f"Run first: ppss-console trust {master.host}{port}")
        lines = "".join(known_hosts_entry(master.host, master.port or 22, k) for k in keys)
    return Payload(key, lines, cluster.master_url, job_hash(cluster.master_url))


def missing_on_node(info: dict[str, str], allow_root: bool, user: str | None) -> list[str]:
    problems = []
    if not allow_root and (info.get("uid") == "0" or (user or info.get("user")) == "root"):
        problems.append("refused: this is a root account (uid 0); deploy to an unprivileged account, "
                        "or pass --allow-root")
        return problems
    if not info.get("python3"):
        problems.append("no python3 on the login PATH (install Python "
                        f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer)")
    elif not info.get("py_version"):
        problems.append(f"{info['python3']} does not run")
    else:
        version = tuple(int(x) for x in info["py_version"].split("."))
        if version < MIN_PYTHON:
            problems.append(f"python3 is {info['py_version']}; ppss needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} "
                            "or newer")
        elif info.get("py_venv") != "yes" and not info.get("venv_ok") == "yes":
            problems.append("no venv module: python3 -m venv needs ensurepip "
                            "(Debian/Ubuntu: apt install python3-venv)")
    free = info.get("free_kb", "")
    if free.isdigit() and not info.get("venv_version") and int(free) < MIN_FREE_MB * 1024:
        problems.append(f"not enough disk: {int(free) // 1024} MB free for {info.get('dir')} "
                        f"(need about {MIN_FREE_MB} MB)")
    return problems


async def put_file(sftp: asyncssh.SFTPClient, path: str, data: bytes, mode: int) -> None:
    """Write ``path`` atomically; the file has ``mode`` from the moment it exists."""
    tmp = f"{path}.tmp"
    try:
        await sftp.remove(tmp)
    except asyncssh.SFTPNoSuchFile:
        pass
    async with sftp.open(tmp, "wb", attrs=asyncssh.SFTPAttrs(permissions=mode)) as fh:
        await fh.write(data)
    await sftp.chmod(tmp, mode)
    await sftp.posix_rename(tmp, path)


async def upload_wheels(sftp: asyncssh.SFTPClient, wdir: str, files) -> int:
    try:
        present = {e.filename: e.attrs.size for e in await sftp.readdir(wdir)}
    except asyncssh.SFTPNoSuchFile:
        await sftp.mkdir(wdir, asyncssh.SFTPAttrs(permissions=0o700))
        present = {}
    wanted = {p.name for p in files}
    sent = 0
    for p in files:
        if present.get(p.name) != p.stat().st_size:
            await sftp.put(str(p), f"{wdir}/{p.name}.part")
            await sftp.posix_rename(f"{wdir}/{p.name}.part", f"{wdir}/{p.name}")
            sent += 1
    for name in present:
        if name not in wanted and name not in (".", ".."):
            await sftp.remove(f"{wdir}/{name}")
    return sent


def needs_install(info: dict[str, str], wanted: dict[str, str]) -> bool:
    if info.get("venv_ok") != "yes":
        return True
    have = dict(p.split("==", 1) for p in info.get("venv_pkgs", "").split() if "==" in p)
    return any(have.get(name) != version for name, version in wanted.items())


def install_outcome(info: dict[str, str], wheelset, install: bool, old: str | None) -> tuple[str, str]:
    where = f"{info['dir']}, python {info['py_version']}"
    if not install:
        return "up to date", f"ppss {wheelset.ppss_version} in {where}"
    if old and old != wheelset.ppss_version:
        return "upgraded", f"ppss {old} -> {wheelset.ppss_version} in {where}"
    if old:
        return "repaired", f"ppss {wheelset.ppss_version} reinstalled in {where}"
    mb = wheelset.size() / 1e6
    return "installed", f"ppss {wheelset.ppss_version} in {where}, {len(wheelset.files)} wheels ({mb:.1f} MB)"


async def send_files(conn, d: str, node: NodeSpec, payload: Payload, wheelset, wheels: bool) -> None:
    """The deployment directory (0700) and, over one SFTP session: the wheels (``wheels``),
    the node key, the master's host key, the launcher and the deploy marker."""
    async with conn.start_sftp_client() as sftp:
        await sftp.makedirs(d, attrs=asyncssh.SFTPAttrs(permissions=0o700), exist_ok=True)
        await sftp.chmod(d, 0o700)
        if wheels:
            await upload_wheels(sftp, f"{d}/wheels", wheelset.uploads())
        if payload.node_key is not None:
            await put_file(sftp, f"{d}/master_key", payload.node_key, 0o600)
        if payload.master_known_hosts is not None:
            await put_file(sftp, f"{d}/known_hosts", payload.master_known_hosts.encode(), 0o600)
        text = launcher(payload.master_url, node.name, node.slots, payload.job_hash,
                        payload.node_key is not None, payload.master_known_hosts is not None)
        await put_file(sftp, f"{d}/worker-{payload.job_hash}.sh", text.encode(), 0o700)
        marker = {"ppss": wheelset.ppss_version, "master": payload.master_url, "node": node.name,
                  "deployed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        await put_file(sftp, f"{d}/.ppss-deploy", (json.dumps(marker) + "\n").encode(), 0o600)


async def deploy_node(conn, node: NodeSpec, cluster: Cluster, payload: Payload, wheelsets: WheelSets,
                      autostart: bool, allow_root: bool, broken: bool = False) -> tuple[str, str]:
    """Install or upgrade the worker on one node (``broken``: reinstall every wheel); the worker's
    import is checked here only when the master is local (else by the node -> master check)."""
    code, out, err = await run_script(conn, probe_script(dir_spec(node)))
    info = parse_kv(out)
    if broken and info.get("venv_ok"):
        info["venv_ok"] = "no"
    if "dir" not in info:
        last = (err or out).strip().splitlines()
        raise NodeFailure(f"probe failed (exit {code}): {last[-1] if last else 'no output'}")
    problems = missing_on_node(info, allow_root, node.user)
    if problems:
        raise NodeFailure("; ".join(problems))
    target: PyTarget = target_from_probe(info)
    wheelset = await wheelsets.get(target)
    d = info["dir"]
    if "'" in d or "\n" in d:
        raise NodeFailure(f"deployment directory {d!r}: quotes and newlines are not supported")
    recreate = bool(info.get("venv_version")) and info.get("venv_version") != info.get("py_version")
    wanted = wheelset.versions()
    install = recreate or needs_install(info, wanted)

    await send_files(conn, d, node, payload, wheelset, install)

    old = dict(p.split("==", 1) for p in info.get("venv_pkgs", "").split() if "==" in p).get("ppss")
    if install:
        force = info.get("venv_ok") == "no" and not recreate
        code, out, err = await run_script(conn, install_script(
            d, info["python3"], [p.name for p in wheelset.files], recreate, force,
            import_check=cluster.master.is_local))
        result = parse_kv(out)
        if result.get("install") != "ok":
            last = (err or out).strip().splitlines()
            raise NodeFailure(result.get("error") or (last[-1] if last else f"install failed (exit {code})"))
    word, detail = install_outcome(info, wheelset, install, old)
    if payload.node_key is None and not cluster.master.is_local:
        detail += "; no node_key in the cluster file: the worker uses the account's own SSH keys"
    if autostart:
        code, out, err = await run_script(conn, autostart_script(d, payload.job_hash))
        cron = parse_kv(out).get("cron", "failed")
        if cron in ("missing", "failed"):
            problem = ("--autostart is NOT set up: no crontab command on this node (install cron, or start "
                       "workers with ppss-console start)" if cron == "missing" else
                       "--autostart failed: crontab refused the new line")
            raise NodeFailure(f"{word} ({detail}), but {problem}", f"{word}, but {problem}")
        detail += "; autostart @reboot " + ("already set" if cron == "present" else "added")
    return word, detail


async def cmd_deploy(args) -> int:
    from .check import node_master_check
    cluster = load_for_nodes(args)
    payload = read_payload(cluster)
    wheelsets = WheelSets()

    async def action(conn, node):
        word, detail = await deploy_node(conn, node, cluster, payload, wheelsets, args.autostart, args.allow_root)
        found = await node_master_check(conn, node, cluster, need_job=False, first=IMPORT_CHECK_PY)
        if word == "up to date" and any(f.startswith(IMPORT_FAILED) for f in found.failures):
            # the probe only saw the files; the import says the venv is damaged: reinstall it
            word, detail = await deploy_node(conn, node, cluster, payload, wheelsets, args.autostart,
                                             args.allow_root, broken=True)
            found = await node_master_check(conn, node, cluster, need_job=False, first=IMPORT_CHECK_PY)
        if found.failures:  # (grouped in the summary without this node's install details)
            raise NodeFailure(f"{word} ({detail}), but: " + "; ".join(found.failures),
                              f"{word}, but: " + "; ".join(found.failures))
        return word, "; ".join([detail, *found.ok, *found.warnings])

    return await for_each_node(cluster, action, "deploy", parallel=getattr(args, "parallel", None))


# ---- start ------------------------------------------------------------------------------------

async def start_node(conn, node: NodeSpec, cluster: Cluster, payload: Payload) -> tuple[str, str]:
    text = launcher(payload.master_url, node.name, node.slots, payload.job_hash,
                    payload.node_key is not None, payload.master_known_hosts is not None)
    code, out, err = await run_script(conn, start_script(dir_spec(node), payload.job_hash, text), timeout=60)
    info = parse_kv(out)
    log = f"{dir_spec(node)}/worker-{payload.job_hash}.log"
    if "notdeployed" in info:
        raise NodeFailure(f"not deployed in {info['notdeployed']}: run ppss-console deploy first")
    if "running" in info:
        return "running", f"already running (pid {info['running']}); not started again"
    if "started" in info:
        slots = f", {node.slots} slots" if node.slots else ""
        return "started", f"pid {info['started']} as node {node.name}{slots}; log {log}"
    if "exited" in info:
        last = info["exited"].strip()
        if "finished:" in last:
            return "finished", f"nothing to do: the job is finished ({last})"
        raise NodeFailure(f"the worker exited at once: {last or '(no output)'} (log {log})")
    raise NodeFailure(f"start failed (exit {code}): {(err or out).strip()[-300:]}")


async def cmd_start(args) -> int:
    cluster = load_for_nodes(args)
    payload = start_payload(cluster)

    async def action(conn, node):
        return await start_node(conn, node, cluster, payload)

    return await for_each_node(cluster, action, "start", parallel=getattr(args, "parallel", None))


def start_payload(cluster: Cluster) -> Payload:
    """The launcher's inputs as deploy installed them (the key itself is not needed to start)."""
    return Payload(b"" if cluster.node_key else None, None if cluster.master.is_local else "",
                   cluster.master_url, job_hash(cluster.master_url))


# ---- erase ------------------------------------------------------------------------------------

async def erase_node(conn, node: NodeSpec) -> tuple[str, str]:
    code, out, err = await run_script(conn, erase_script(dir_spec(node)), timeout=60)
    info = parse_kv(out)
    if "dir" not in info:
        raise NodeFailure(f"erase failed (exit {code}): {(err or out).strip()[-300:]}")
    work = f"; removed the work directory {info['work']}" if info.get("work") else ""
    if "nothing" in info:
        return "nothing", f"no ppss deployment in {info['dir']}{work}"
    parts = []
    if info.get("stopped"):
        parts.append(f"stopped worker pid{info['stopped']}")
    if info.get("killed"):
        parts.append(f"killed pid{info['killed']} (did not stop within 15 s)")
    if info.get("cron") == "removed":
        parts.append("removed the @reboot crontab line")
    if "removed" in info:
        parts.append(f"removed {info['dir']}")
    else:
        parts.append(f"removed the ppss files; kept {info['dir']} (holds other files: {info.get('kept', '').strip()})")
    return "erased", "; ".join(parts) + work


def confirm_erase(cluster: Cluster, yes: bool) -> None:
    names = ", ".join(n.name for n in cluster.nodes[:8]) + (" ..." if len(cluster.nodes) > 8 else "")
    question = (f"Stop the workers and remove the ppss deployment (venv, keys, logs, autostart, work "
                f"directory) from {len(cluster.nodes)} nodes ({names})?")
    if not ask_yes_no(question, yes, "erase: not a terminal; run again with --yes to confirm"):
        raise UsageError("erase: not confirmed; nothing changed")


def authorized_keys_hint(cluster: Cluster) -> str | None:
    """Which line of the master's authorized_keys let the nodes in (deploy installed its key)."""
    if not cluster.node_key or cluster.master.is_local:
        return None
    try:
        with open(cluster.node_key + ".pub") as fh:
            line = " ".join(fh.read().split()[:3])
    except OSError:
        line = f"the public key of {cluster.node_key}"
    m = cluster.master
    who = f"{m.user + '@' if m.user else ''}{m.host}"
    return (f"the nodes' key still opens {who}: if no node needs it any more, remove from that account's "
            f"~/.ssh/authorized_keys the line with: {line}")


async def cmd_erase(args) -> int:
    cluster = load_for_nodes(args, need_master=False)
    confirm_erase(cluster, args.yes)

    async def action(conn, node):
        return await erase_node(conn, node)

    code = await for_each_node(cluster, action, "erase", parallel=getattr(args, "parallel", None))
    hint = authorized_keys_hint(cluster)
    if hint:
        print(hint)
    return code


DEPLOY_TEXT = ("Install the worker on every node of the cluster file, over SSH/SFTP, from wheels prepared "
               "on this machine (nodes need no internet), then check that each node reaches the master.")
START_TEXT = ("Start the deployed worker on every node, detached, unless one already runs for the job. When "
              "the master is a jobs root (a directory without job.yaml), the worker serves the root: "
              "ppss-worker ROOT runs every job there, including those created later.")
ERASE_TEXT = ("Stop the workers and remove the ppss deployment (venv, keys, logs, autostart line, work "
              "directory) from every node.")
_RESULT = "One result line per node, then a summary. Exit status: 0 every node succeeded; "
_wrap = functools.partial(textwrap.fill, width=96)
DEPLOY_EPILOG = _wrap(_RESULT + "2 usage error (cluster file, missing key file); 3 at least one node could not "
                 "be reached (connection, host key, login); 6 otherwise, at least one node failed (root "
                 "account refused, python3/venv/disk missing, installation failed, --autostart impossible, "
                 "the node cannot log into the master).")
START_EPILOG = _wrap(_RESULT + "2 usage error (cluster file); 3 at least one node could not be reached "
                "(connection, host key, login); 6 otherwise, at least one node failed (not deployed, the "
                "worker exited at once).")
ERASE_EPILOG = _wrap(_RESULT + "2 usage error (cluster file, erase not confirmed); 3 at least one node could not "
                "be reached; 6 otherwise, at least one node failed.")


def node_key_option(s) -> None:
    s.add_argument("--node-key", help="key the nodes use to reach the master (default: the cluster file's node_key)")
    parallel_option(s)


def parallel_option(s) -> None:
    s.add_argument("--parallel", type=positive_int, default=MAX_PARALLEL, metavar="N",
                   help=f"nodes worked on at once (default {MAX_PARALLEL})")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def deploy_options(s) -> None:
    node_key_option(s)
    s.add_argument("--autostart", action="store_true", help="also add an @reboot crontab line on each node")
    s.add_argument("--allow-root", action="store_true", help="deploy to root accounts too (refused by default)")


def erase_options(s) -> None:
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parallel_option(s)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("use: ppss-console deploy|start|erase [-c FILE]")
