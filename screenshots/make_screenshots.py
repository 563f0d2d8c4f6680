#!/usr/bin/env python3
"""Real screenshots of the console, from a real run: SVG (Textual) and PNG (cairosvg).

    python3 screenshots/make_screenshots.py [--out screenshots/]

Starts real OpenSSH servers on 127.0.0.1 (tests/sshcluster.py: a master and three nodes) that
take logins as an unprivileged account (``ppss``, created for the run and removed after it when
run as root; the current user otherwise), creates a job on the master with ``ppss-console
init``, starts four real ``ppss-worker`` processes reporting as the nodes, pauses one node
through control.yaml, and kills node4's worker (SIGKILL) so it goes lost, while nothing answers
SSH for node4. Then it runs the console (``App.run_test``) at a size a user has (100x30) and
saves the main screen, the failed items view, the control.yaml editor and the help.

Needs sshd (openssh-server) and, for the PNGs, ``pip install cairosvg`` (the SVG's font is
swapped for DejaVu Sans Mono, package fonts-dejavu-core, so the PNG keeps its columns).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from sshcluster import SshCluster, free_port  # noqa: E402

from ppss_tui.app import PpssConsole  # noqa: E402
from ppss_tui.clusterfile import load_cluster  # noqa: E402

SIZE = (100, 30)
ACCOUNT = "ppss"
LEASE = 6
COMMAND = ('case "$ITEM" in *7.wav) echo "lame: $ITEM: unsupported WAV format (ADPCM)"; exit 2;; '
           '*13.wav) echo "encoding frame 4410"; echo "Killed"; exit 137;; esac; sleep 0.4')


def to_png(svg: Path) -> Path | None:
    try:
        import cairosvg
    except ImportError:
        print("cairosvg not installed: no PNG (pip install cairosvg)", file=sys.stderr)
        return None
    text = svg.read_text().replace("Fira Code, monospace", "DejaVu Sans Mono, monospace")
    png = svg.with_suffix(".png")
    cairosvg.svg2png(bytestring=text.encode(), write_to=str(png), output_width=1600)
    return png


async def shoot(cluster_file: Path, out: Path) -> list[Path]:
    app = PpssConsole(load_cluster(str(cluster_file)), interval=1.0, node_interval=1.5)
    saved = []

    def save(name: str) -> None:
        path = out / f"console-{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        saved.append(path)

    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 60
        # Let rates, the sparkline and some failures build up, and node4 go lost.
        while time.monotonic() < deadline:
            await pilot.pause(0.5)
            snap = app.snapshot
            lost = snap is not None and snap.node("node4") is not None and snap.node("node4").state == "lost"
            if snap and lost and snap.failed >= 4 and len(snap.history) >= 5 and snap.rate:
                break
        await pilot.pause(0.5)
        save("main")
        await pilot.press("f")
        await pilot.pause(1.5)
        save("failed")
        await pilot.press("escape", "e")
        await pilot.pause(1.5)
        save("editor")
        await pilot.press("escape", "question_mark")
        await pilot.pause(0.5)
        save("help")
    return saved


class Account:
    """The unprivileged account the servers take logins for (created when run as root)."""

    def __init__(self, public_key: str) -> None:
        self.created = False
        if os.getuid() != 0:
            self.name = pwd.getpwuid(os.getuid()).pw_name
            self.home = Path.home()
            self.extra: list[str] | None = None
            return
        self.name = ACCOUNT
        try:
            pwd.getpwnam(self.name)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", self.name], check=True)
            self.created = True
        pw = pwd.getpwnam(self.name)
        self.home = Path(pw.pw_dir)
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(public_key + "\n")
        for path in (ssh_dir, keys):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.extra = ["AuthorizedKeysFile .ssh/authorized_keys"]

    def job_dir(self, name: str) -> Path:
        jobs = self.home / "ppss-shots-jobs"
        jobs.mkdir(exist_ok=True)
        if os.getuid() == 0:
            pw = pwd.getpwnam(self.name)
            os.chown(jobs, pw.pw_uid, pw.pw_gid)
        return jobs / name

    def remove(self) -> None:
        if self.created:
            subprocess.run(["pkill", "-KILL", "-u", self.name], capture_output=True)
            time.sleep(0.2)
            subprocess.run(["userdel", "-r", self.name], capture_output=True)
        else:
            shutil.rmtree(self.home / "ppss-shots-jobs", ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "screenshots"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ppss-shots-") as tmp:
        tmp = Path(tmp)
        cluster = SshCluster(tmp / "ssh", n_nodes=0)
        account = Account(cluster.client_key_pub)
        workers: list[subprocess.Popen] = []
        try:
            master = cluster.add_server("shots-master", user=account.name, extra_config=account.extra)
            nodes = [cluster.add_server(f"node{i}", user=account.name, extra_config=account.extra)
                     for i in (1, 2, 3)]
            ssh = ["-i", str(cluster.identity), "--known-hosts", str(cluster.known_hosts)]
            url = master.url(str(account.job_dir("wav2mp3")))
            items = tmp / "items.txt"
            items.write_text("".join(f"/srv/wavs/take_{i:03d}.wav\n" for i in range(1, 601)))
            subprocess.run(["ppss-console", "init", url, "--source-file", str(items), "--command", COMMAND,
                            "--lease", str(LEASE), *ssh], check=True)
            lines = [f"master: {url}", f"identity: {cluster.identity}",
                     f"known_hosts: {cluster.known_hosts}", "nodes:"]
            for node in nodes:
                lines.append(f"  - {{name: {node.name}, host: {node.host}, port: {node.port}, user: {node.user}}}")
            lines.append(f"  - {{name: node4, host: 127.0.0.1, port: {free_port()}, user: {account.name}}}")
            cluster_file = tmp / "ppss.yaml"
            cluster_file.write_text("\n".join(lines) + "\n")
            for node, slots in (("node1", 3), ("node2", 2), ("node3", 2), ("node4", 2)):
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "worker", url, "--slots", str(slots), "--node-name", node, "-q", *ssh],
                    stdin=subprocess.DEVNULL))
            subprocess.run(["ppss-console", "pause", url, "--node", "node3", *ssh], check=True)
            time.sleep(4)
            workers[-1].kill()  # node4 dies without a word: lost once its lease runs out
            saved = asyncio.run(shoot(cluster_file, out))
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    w.kill()
            cluster.close()
            account.remove()
    for svg in saved:
        png = to_png(svg)
        print(f"saved {svg.relative_to(REPO) if svg.is_relative_to(REPO) else svg}"
              + (f" and {png.name}" if png else ""))


if __name__ == "__main__":
    main()
