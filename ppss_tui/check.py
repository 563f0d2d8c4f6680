"""``ppss-console check``: a preflight of the whole path, one line per node and a summary.

For the master: this machine logs in with the cluster's identity and finds the job. For each
node: this machine logs in; python3 is recent enough; the deployed worker is there and is this
console's version; then, run FROM the node by the deployed worker's python: the node logs into
the master with the node key, knowing the master's host key; the job root is readable and
writable; in shared mode the source directory is visible at the same path and the job's output
directory is writable by the node's account. A WARNING (not a failure) when the node key can
rewrite the authorized_keys that lets it in: such a key is not confined to SFTP in the job.

``deploy`` ends with the node -> master part (``node_master_check``).
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import weakref
from dataclasses import dataclass

from worker.errors import EXIT_OK, PpssError
from worker.store import open_store

from .clusterfile import Cluster, NodeSpec
from .context import require_known_hosts
from .deploy import EXIT_NODE_FAILED, NodeFailure, dir_spec, for_each_node, load_for_nodes, missing_on_node
from .remote import RESOLVE_DIR, parse_kv, probe_script, run_script
from .wheels import node_wheel_version

EPILOG = ("One line per node and a summary. Exit status: 0 every check passed (warnings allowed);\n"
          "2 usage error (cluster file); 3 the master or a node could not be reached from here;\n"
          "6 otherwise, some check failed: the line says what to do.")

# Run on the node by the deployed venv's python (asyncssh and PyYAML are there), as the node's
# account: the same login the worker makes, then what the worker will need. Answers key=value.
NODE_PY = r"""
import asyncio, os, sys, uuid
import asyncssh, yaml
E = os.environ
D = E["PPSS_DIR"]
def say(k, v): print("%s=%s" % (k, str(v).replace("\n", " ")), flush=True)
async def main():
    key = os.path.join(D, "master_key")
    kh = os.path.join(D, "known_hosts")
    opts = dict(known_hosts=kh if os.path.exists(kh) else os.path.expanduser("~/.ssh/known_hosts"),
                connect_timeout=15)
    if os.path.exists(key):
        opts.update(client_keys=[key], agent_path=None)
    if E.get("PPSS_PORT"): opts["port"] = int(E["PPSS_PORT"])
    if E.get("PPSS_USER"): opts["username"] = E["PPSS_USER"]
    try:
        conn = await asyncssh.connect(E["PPSS_HOST"], **opts)
    except asyncssh.HostKeyNotVerifiable:
        return say("hostkey", "unknown")
    except asyncssh.PermissionDenied:
        return say("login", "refused")
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        return say("login", "failed: %s" % (getattr(exc, "reason", None) or exc))
    say("login", "ok")
    async with conn, conn.start_sftp_client() as sftp:
        path = E["PPSS_PATH"]
        rel = path[2:] if path.startswith("~/") else path
        try:
            real = await sftp.realpath(rel)
            if not await sftp.isdir(real):
                return say("root", "missing %s" % real)
        except asyncssh.SFTPError:
            return say("root", "missing %s" % path)
        say("realpath", real)
        spec = {}
        try:
            async with sftp.open(real + "/job.yaml", "rb") as fh:
                spec = yaml.safe_load(await fh.read()) or {}
            say("job", "yes")
        except asyncssh.SFTPError:
            say("job", "no")
        probe = "%s/.ppss-check-%s" % (real, uuid.uuid4().hex[:8])
        try:
            async with sftp.open(probe, "wb") as fh:
                await fh.write(b"ppss check\n")
            await sftp.remove(probe)
            await sftp.listdir(real)
            say("root", "rw")
        except asyncssh.SFTPError as exc:
            say("root", "denied: %s" % exc.reason)
        try:
            async with sftp.open(".ssh/authorized_keys", "ab"):
                say("authkeys", "writable")
        except asyncssh.SFTPError:
            say("authkeys", "no")
    if spec.get("transfer", "shared") != "shared":
        return
    src = spec.get("source") or ""
    if spec.get("source_kind") == "dir":
        ok = os.path.isdir(src) and os.access(src, os.R_OK | os.X_OK)
        say("source", "ok" if ok else "missing %s" % src)
    if "OUTPUT_DIR" in str(spec.get("command", "")):
        out = os.path.join(real, "output")
        try:
            probe = os.path.join(out, ".ppss-check-%s" % uuid.uuid4().hex[:8])
            os.makedirs(out, exist_ok=True)
            os.mkdir(probe); os.rmdir(probe)
            say("output", "ok")
        except OSError as exc:
            say("output", "denied %s: %s" % (out, exc.strerror))
asyncio.run(main())
"""


def node_script(cluster: Cluster, node: NodeSpec, first: str = "") -> str:
    """The node -> master check run on the node; ``first``: Python run before it in the same
    interpreter (deploy's import check: one asyncssh import per node, not two)."""
    m = cluster.master
    env = {"PPSS_HOST": m.host or "", "PPSS_PORT": str(m.port or ""), "PPSS_USER": m.user or "",
           "PPSS_PATH": m.path}
    assign = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return RESOLVE_DIR + f"""
D=$(ppss_dir {shlex.quote(dir_spec(node))})
if [ ! -x "$D/venv/bin/python" ]; then printf 'notdeployed=%s\\n' "$D"; exit 0; fi
PPSS_DIR="$D" {assign} "$D/venv/bin/python" -c {shlex.quote(first + NODE_PY)} </dev/null 2>&1
"""


@dataclass
class Findings:
    ok: list[str]
    warnings: list[str]
    failures: list[str]


def judge_node_master(info: dict[str, str], cluster: Cluster, need_job: bool) -> Findings:
    """Turn the node script's answers into findings, each failure saying what to do."""
    f = Findings([], [], [])
    m = cluster.master
    where = f"{m.user + '@' if m.user else ''}{m.host}{':' + str(m.port) if m.port else ''}"
    if "notdeployed" in info:
        f.failures.append(f"no worker deployed in {info['notdeployed']}: run ppss-console deploy")
        return f
    if info.get("hostkey") == "unknown":
        f.failures.append(f"the node does not know {where}'s host key: run ppss-console trust, then deploy")
        return f
    login = info.get("login", "no answer from the check script")
    if login == "refused":
        key = f"{cluster.node_key}.pub" if cluster.node_key else "the node account's public key"
        f.failures.append(f"the master refuses the node's login: add {key} to {where}'s ~/.ssh/authorized_keys")
        return f
    if login != "ok":
        f.failures.append(f"node -> master {where}: {login}")
        return f
    f.ok.append("master login ok")
    root = info.get("root", "")
    if root.startswith("missing"):
        path = root.partition(" ")[2]
        (f.failures if need_job else f.ok).append(
            f"no job at {path}: run ppss-console init" if need_job else f"no job at {path} yet")
        return f
    if root != "rw":
        f.failures.append(f"job root {info.get('realpath', m.path)} not writable by the node's master account "
                          f"({root}): fix its owner or mode on the master")
    else:
        f.ok.append("job root rw")
    if need_job and info.get("job") == "no":
        f.failures.append(f"no job.yaml in {info.get('realpath', m.path)}: run ppss-console init")
    source = info.get("source")
    if source and source != "ok":
        f.failures.append(f"shared mode: source {source.partition(' ')[2]} not visible on the node at the same "
                          "path: mount it there, or init with --transfer copy")
    elif source:
        f.ok.append("source visible")
    output = info.get("output")
    if output and output != "ok":
        f.failures.append(f"shared mode: output directory {output.partition(' ')[2]}: give the node's account "
                          "write access there, or init with --transfer copy")
    elif output:
        f.ok.append("output writable")
    if info.get("authkeys") == "writable":
        f.warnings.append("WARNING: the node key can rewrite the master account's ~/.ssh/authorized_keys "
                          "(and so let any key in): make that file not writable by the account, e.g. "
                          "root-owned via sshd's AuthorizedKeysFile")
    return f


MASTER_CHECKS = 8  # node -> master logins at once: sshd's default MaxStartups 10:30:100 drops the excess
_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def master_gate() -> asyncio.Semaphore:
    """The running loop's limit on node -> master checks (deploy and check, 64 nodes at once,
    would otherwise have the master's sshd drop some of the logins: "Connection lost")."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(MASTER_CHECKS)
    return gate


async def node_master_check(conn, node: NodeSpec, cluster: Cluster, need_job: bool,
                            first: str = "") -> Findings:
    if cluster.master.is_local:
        return Findings(["local master"], [], [])
    async with master_gate():
        code, out, err = await run_script(conn, node_script(cluster, node, first), timeout=60)
    info = parse_kv(out)
    if not info:
        last = (err or out).strip().splitlines()
        return Findings([], [], [f"node check failed (exit {code}): {last[-1] if last else 'no output'}"])
    if "error" in info:  # from ``first``
        return Findings([], [], [info["error"]])
    return judge_node_master(info, cluster, need_job)


async def check_node(conn, node: NodeSpec, cluster: Cluster, version: str) -> tuple[str, str]:
    code, out, err = await run_script(conn, probe_script(dir_spec(node)), timeout=60)
    info = parse_kv(out)
    if "dir" not in info:
        raise NodeFailure(f"probe failed (exit {code}): {(err or out).strip()[-200:]}")
    problems = missing_on_node(info, allow_root=True, user=node.user)
    if problems:
        raise NodeFailure("; ".join(problems))
    found = ["login ok", f"python {info['py_version']}"]
    pkgs = dict(p.split("==", 1) for p in info.get("venv_pkgs", "").split() if "==" in p)
    deployed = pkgs.get("ppss")
    if not deployed:
        raise NodeFailure(f"no worker deployed in {info['dir']}: run ppss-console deploy",
                          "no worker deployed: run ppss-console deploy")
    if deployed != version:
        raise NodeFailure(f"worker {deployed} in {info['dir']} is not this console's {version}: "
                          "run ppss-console deploy",
                          f"worker {deployed} is not this console's {version}: run ppss-console deploy")
    found.append(f"worker {deployed}")
    f = await node_master_check(conn, node, cluster, need_job=True)
    if f.failures:
        raise NodeFailure("; ".join(f.failures))
    return ("ok", ", ".join(found + f.ok + f.warnings))


async def check_master(cluster: Cluster, out=None) -> int:
    """The operator -> master link: login with the cluster's identity, and a job there."""
    out = out or sys.stdout
    width = max([len("master"), *(len(n.name) for n in cluster.nodes)])
    m = cluster.master
    try:
        if not m.is_local:
            require_known_hosts(cluster)
        store = await open_store(m, cluster.identity, cluster.known_hosts, reconnect=False)
        try:
            job = await store.exists("job.yaml")
        finally:
            await store.close()
    except PpssError as exc:
        print(f"{'master':<{width}}  {'FAILED':<11} {exc}", file=out, flush=True)
        return exc.exit_code
    text = f"{m.display()}: " + ("job found" if job else "no job.yaml: run ppss-console init")
    print(f"{'master':<{width}}  {'ok' if job else 'FAILED':<11} {text}", file=out, flush=True)
    return EXIT_OK if job else EXIT_NODE_FAILED


async def run_check(args) -> int:
    cluster = load_for_nodes(args)
    version = node_wheel_version()
    master_code = await check_master(cluster)
    nodes_code = await for_each_node(cluster, lambda conn, node: check_node(conn, node, cluster, version),
                                     "check", width=len("master"), parallel=getattr(args, "parallel", None))
    return nodes_code if nodes_code != EXIT_OK else master_code
