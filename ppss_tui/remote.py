"""Shell scripts run on the nodes by deploy, start and erase, and the plumbing to run them.

Every script goes to ``/bin/sh -s`` on the node's standard input (so the account's login shell
does not matter), wrapped in one ``{ ... }`` group: the shell reads the whole script before it
runs any of it, so no command can swallow the rest of the script from stdin. Scripts answer
with ``key=value`` lines (``parse_kv``). Paths are resolved on the node: ``~`` and relative
deployment directories are taken from the account's ``$HOME``.
"""

from __future__ import annotations

import asyncio
import shlex

import asyncssh

from . import wheelinstall
from .wheels import PROBE_PY

DEFAULT_DIR = "~/.ppss"
SCRIPT_TIMEOUT = 600.0

# Run by the deployed venv's python: what is installed there, and whether every file the
# distributions' RECORD lists (bytecode aside) is there with its size: 0.04 s of CPU, where
# importing the worker (asyncssh) takes 0.2 s. deploy imports it in the node -> master check
# (IMPORT_CHECK_PY) and reinstalls a venv that fails there.
VENV_PY = r"""
import os, re, sys, importlib.metadata as m
print("venv_version=%d.%d" % sys.version_info[:2])
names, ok = {}, True
for d in m.distributions():
    names[re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()] = d.version
    for f in d.files or ():
        if f.size is not None and f.suffix != ".pyc":
            try:
                ok = ok and os.stat(f.locate()).st_size == f.size
            except OSError:
                ok = False
print("venv_pkgs=" + " ".join(sorted("%s==%s" % kv for kv in names.items())))
print("venv_ok=" + ("yes" if ok and {"ppss", "asyncssh", "pyyaml"} <= set(names) else "no"))
"""

RESOLVE_DIR = r"""
ppss_dir() {
  case "$1" in
    "~") printf '%s' "$HOME" ;;
    "~/"*) printf '%s/%s' "$HOME" "${1#??}" ;;
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$HOME" "$1" ;;
  esac
}
is_worker() {  # is pid $1 a live ppss-worker?
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then grep -q ppss-worker "/proc/$1/cmdline" 2>/dev/null || return 1; fi
  return 0
}
"""


def wrap(script: str) -> str:
    return "{\n" + script.strip("\n") + "\n}\nexit\n"


def q(text: str) -> str:
    return shlex.quote(text)


def parse_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key.replace("_", "").isalnum():
            out[key] = value
    return out


async def run_script(conn: asyncssh.SSHClientConnection, script: str,
                     timeout: float = SCRIPT_TIMEOUT) -> tuple[int, str, str]:
    result = await asyncio.wait_for(
        conn.run("/bin/sh -s", input=wrap(script), check=False), timeout)
    code = result.exit_status if result.exit_status is not None else 255
    return code, str(result.stdout or ""), str(result.stderr or "")


def probe_script(dir_spec: str) -> str:
    return RESOLVE_DIR + f"""
D=$(ppss_dir {q(dir_spec)})
printf 'uid=%s\\n' "$(id -u)"
printf 'user=%s\\n' "$(id -un)"
printf 'home=%s\\n' "$HOME"
printf 'dir=%s\\n' "$D"
PY=$(command -v python3 2>/dev/null)
printf 'python3=%s\\n' "$PY"
if [ -n "$PY" ]; then "$PY" -c {q(PROBE_PY)} </dev/null 2>/dev/null; fi
T=$D
while [ ! -d "$T" ]; do T=$(dirname "$T"); done
printf 'free_kb=%s\\n' "$(df -Pk "$T" 2>/dev/null | {{ read h; read fs size used avail rest; printf '%s' "$avail"; }})"
if command -v crontab >/dev/null 2>&1; then echo crontab=yes; else echo crontab=no; fi
if [ -x "$D/venv/bin/python" ]; then "$D/venv/bin/python" -c {q(VENV_PY)} </dev/null 2>/dev/null; fi
if [ -f "$D/.ppss-deploy" ]; then echo deployed=yes; fi
"""


# Python: the installed worker imports (and so gets its bytecode compiled); else error= and exit 12.
IMPORT_FAILED = "installed worker does not import"
IMPORT_CHECK_PY = r"""
import sys
try:
    import worker.cli, asyncssh, yaml
except Exception as exc:
    print("error=IMPORT_FAILED: %s: %s" % (type(exc).__name__, str(exc).replace("\n", " ")))
    sys.exit(12)
""".replace("IMPORT_FAILED", IMPORT_FAILED)


def install_script(dir_path: str, python3: str, wheels: list[str], recreate: bool, force: bool,
                   import_check: bool = True) -> str:
    """A venv without pip (``python3 -m venv --without-pip``: 0.1 s, where a venv with pip and
    ``pip install`` took about 4 s of CPU per node), the wheels unpacked into it by
    ``wheelinstall`` (RECORD hashes checked, entry-point scripts, upgrades in place), then the
    worker imported once (``import_check``; deploy runs IMPORT_CHECK_PY in the node -> master
    check's interpreter instead: importing asyncssh costs 0.3 s of CPU)."""
    files = " ".join(q(f"{dir_path}/wheels/{w}") for w in wheels)
    return f"""
umask 077
D={q(dir_path)}
if [ {int(recreate)} = 1 ]; then rm -rf "$D/venv"; fi
if [ ! -x "$D/venv/bin/python" ]; then
  OUT=$({q(python3)} -m venv --without-pip "$D/venv" </dev/null 2>&1) || {{
    printf 'error=python3 -m venv failed: %s\\n' "$(printf '%s' "$OUT" | tail -n 1)"; rm -rf "$D/venv"; exit 10; }}
  echo venv=created
fi
OUT=$("$D/venv/bin/python" -c {q(wheelinstall.source())} {'--force ' if force else ''}{files} </dev/null 2>&1)
RC=$?
printf '%s\\n' "$OUT"
if [ $RC != 0 ]; then
  case "$OUT" in
    *error=*) ;;
    *) printf 'error=wheel install failed (exit %s): %s\\n' $RC "$(printf '%s' "$OUT" | grep -v '^ *$' | tail -n 1)" ;;
  esac
  exit 11
fi
if [ {int(import_check)} = 1 ]; then
  OUT=$("$D/venv/bin/python" -c {q(IMPORT_CHECK_PY)} </dev/null 2>&1) || {{ printf '%s\\n' "$OUT"; exit 12; }}
fi
echo install=ok
"""


def cron_line(dir_path: str, job_hash: str) -> str:
    # --wait: at boot the master may not answer yet, and the job may not be created yet.
    return (f"@reboot /bin/sh '{dir_path}/worker-{job_hash}.sh' --wait >/dev/null 2>&1 "
            f"# ppss-autostart {dir_path} {job_hash}")


def autostart_script(dir_path: str, job_hash: str) -> str:
    line = cron_line(dir_path, job_hash)
    return f"""
LINE={q(line)}
MARK={q(f"# ppss-autostart {dir_path} {job_hash}")}
if ! command -v crontab >/dev/null 2>&1; then echo cron=missing; exit 0; fi
CUR=$(crontab -l 2>/dev/null </dev/null) || CUR=""
if printf '%s\\n' "$CUR" | grep -q -x -F -e "$LINE"; then echo cron=present; exit 0; fi
if {{ if [ -n "$CUR" ]; then printf '%s\\n' "$CUR" | grep -v -F -e "$MARK"; fi; printf '%s\\n' "$LINE"; }} | crontab - 2>/dev/null
then echo cron=added; else echo cron=failed; fi
"""


def launcher(master_url: str, node_name: str, slots: int | None, job_hash: str,
             identity: bool, known_hosts: bool) -> str:
    """``worker-<job>.sh``: start this node's worker detached, unless it already runs.

    Used by ``ppss-console start`` and by the ``@reboot`` crontab line. The worker runs in its
    own session (fork + setsid in the venv's python, as ``nohup setsid`` would), with stdin from
    /dev/null and output appended to ``worker-<job>.log``, so it survives the SSH session.
    """
    args = [master_url, "--node-name", node_name]
    if slots:
        args += ["--slots", str(slots)]
    argv = " ".join(q(a) for a in args)
    if identity:
        argv += ' -i "$D/master_key"'
    if known_hosts:
        argv += ' --known-hosts "$D/known_hosts"'
    detach = ("import os, sys\n"
              "if os.fork(): os._exit(0)\n"
              "os.setsid()\n"
              "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
              "os.write(fd, b'%d\\n' % os.getpid()); os.close(fd)\n"
              "os.execv(sys.argv[2], sys.argv[2:])\n")
    return f"""#!/bin/sh
# ppss worker for {master_url} (a job, or a jobs root it serves) as node {node_name} (written by ppss-console deploy/start).
# Starts the worker detached unless it already runs; prints started=PID or running=PID.
D=$(cd "$(dirname "$0")" && pwd) || exit 1
PIDF="$D/worker-{job_hash}.pid"
LOG="$D/worker-{job_hash}.log"
{RESOLVE_DIR.strip()}
if [ -f "$PIDF" ]; then
  PID=$(cat "$PIDF" 2>/dev/null)
  if [ -n "$PID" ] && is_worker "$PID"; then echo "running=$PID"; exit 0; fi
fi
rm -f "$PIDF"
cd "$D" || exit 1
printf '=== %s ppss-worker start\\n' "$(date '+%Y-%m-%d %H:%M:%S')" >>"$LOG"
"$D/venv/bin/python" -c {q(detach)} "$PIDF" "$D/venv/bin/ppss-worker" {argv} "$@" </dev/null >>"$LOG" 2>&1
i=0
while [ ! -s "$PIDF" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
PID=$(cat "$PIDF" 2>/dev/null)
sleep 1
if [ -n "$PID" ] && is_worker "$PID"; then echo "started=$PID"; exit 0; fi
printf 'exited=%s\\n' "$(grep -v '^===' "$LOG" | tail -n 1)"
exit 1
"""


def start_script(dir_spec: str, job_hash: str, launcher_text: str) -> str:
    return RESOLVE_DIR + f"""
D=$(ppss_dir {q(dir_spec)})
if [ ! -x "$D/venv/bin/ppss-worker" ]; then printf 'notdeployed=%s\\n' "$D"; exit 0; fi
umask 077
cat >"$D/worker-{job_hash}.sh.tmp" <<'PPSS_LAUNCHER_EOF'
{launcher_text.rstrip()}
PPSS_LAUNCHER_EOF
mv -f "$D/worker-{job_hash}.sh.tmp" "$D/worker-{job_hash}.sh"
/bin/sh "$D/worker-{job_hash}.sh"
"""


def erase_script(dir_spec: str) -> str:
    return RESOLVE_DIR + f"""
D=$(ppss_dir {q(dir_spec)})
printf 'dir=%s\\n' "$D"
rm_work() {{  # copy mode's local copies of items (worker/transfer.py default_work_root)
  W="${{XDG_CACHE_HOME:-$HOME/.cache}}/ppss/work"
  if [ -d "$W" ]; then rm -rf "$W" && printf 'work=%s\\n' "$W"; fi
}}
if [ ! -d "$D" ]; then rm_work; echo nothing=yes; exit 0; fi
if [ ! -f "$D/.ppss-deploy" ] && [ ! -d "$D/venv" ]; then rm_work; echo nothing=yes; exit 0; fi
PIDS=""
for f in "$D"/worker-*.pid; do
  [ -f "$f" ] || continue
  PID=$(cat "$f" 2>/dev/null)
  if [ -n "$PID" ] && is_worker "$PID"; then kill -TERM "$PID" 2>/dev/null && PIDS="$PIDS $PID"; fi
done
if [ -n "$PIDS" ]; then
  printf 'stopped=%s\\n' "$PIDS"
  i=0
  while [ $i -lt 150 ]; do
    LEFT=""
    for p in $PIDS; do if kill -0 "$p" 2>/dev/null; then LEFT="$LEFT $p"; fi; done
    [ -z "$LEFT" ] && break
    sleep 0.1; i=$((i + 1))
  done
  if [ -n "$LEFT" ]; then kill -KILL $LEFT 2>/dev/null; printf 'killed=%s\\n' "$LEFT"; fi
fi
if command -v crontab >/dev/null 2>&1; then
  CUR=$(crontab -l 2>/dev/null </dev/null) || CUR=""
  MARK="# ppss-autostart $D "
  if printf '%s\\n' "$CUR" | grep -q -F -e "$MARK"; then
    NEW=$(printf '%s\\n' "$CUR" | grep -v -F -e "$MARK")
    if [ -n "$NEW" ]; then printf '%s\\n' "$NEW" | crontab -; else crontab -r; fi
    echo cron=removed
  fi
fi
rm_work
rm -rf "$D/venv" "$D/wheels"
rm -f "$D/master_key" "$D/master_key.tmp" "$D/known_hosts" "$D/.ppss-deploy" "$D"/worker-*
if rmdir "$D" 2>/dev/null; then echo removed=yes; else printf 'kept=%s\\n' "$(ls -A "$D" | head -n 5 | tr '\\n' ' ')"; fi
"""
