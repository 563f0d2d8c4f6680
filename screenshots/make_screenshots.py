#!/usr/bin/env python3
"""Real screenshots of the console, from a real run: SVG (Textual) and PNG (cairosvg).

    python3 screenshots/make_screenshots.py [--out screenshots/]

Starts real OpenSSH servers on 127.0.0.1 (tests/sshcluster.py: a master and three nodes),
creates a job on the master with ``ppss-console init``, starts three real ``ppss-worker``
processes reporting as the nodes, pauses one node through control.yaml, and lists one more
node in the cluster file that nothing answers for. Then it runs the console (``App.run_test``)
and saves the main screen, the failed items view, the control.yaml editor and the help.

Needs sshd (openssh-server) and, for the PNGs, ``pip install cairosvg`` (the SVG's font is
swapped for DejaVu Sans Mono, package fonts-dejavu-core, so the PNG keeps its columns).
"""

from __future__ import annotations

import argparse
import asyncio
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

SIZE = (160, 45)
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
        deadline = time.monotonic() + 40
        # Let rates, the sparkline and some failures build up.
        while time.monotonic() < deadline:
            await pilot.pause(0.5)
            snap = app.snapshot
            if snap and snap.failed >= 6 and len(snap.history) >= 5 and snap.rate:
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "screenshots"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ppss-shots-") as tmp:
        tmp = Path(tmp)
        cluster = SshCluster(tmp / "ssh", n_nodes=3)
        workers: list[subprocess.Popen] = []
        try:
            ssh = ["-i", str(cluster.identity), "--known-hosts", str(cluster.known_hosts)]
            job = tmp / "jobs" / "wav2mp3"
            url = cluster.master.url(str(job))
            items = tmp / "items.txt"
            items.write_text("".join(f"/srv/wavs/take_{i:03d}.wav\n" for i in range(1, 601)))
            subprocess.run(["ppss-console", "init", url, "--source-file", str(items), "--command", COMMAND,
                            *ssh], check=True)
            lines = [f"master: {url}", f"identity: {cluster.identity}",
                     f"known_hosts: {cluster.known_hosts}", "nodes:"]
            for node in cluster.nodes:
                lines.append(f"  - {{name: {node.name}, host: {node.host}, port: {node.port}, user: {node.user}}}")
            lines.append(f"  - {{name: node4, host: 127.0.0.1, port: {free_port()}}}")  # nothing listens
            cluster_file = tmp / "ppss.yaml"
            cluster_file.write_text("\n".join(lines) + "\n")
            for node, slots in (("node1", 3), ("node2", 2), ("node3", 2)):
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "worker", url, "--slots", str(slots), "--node-name", node, "-q", *ssh],
                    stdin=subprocess.DEVNULL))
            subprocess.run(["ppss-console", "pause", url, "--node", "node3", *ssh], check=True)
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
    for svg in saved:
        png = to_png(svg)
        print(f"saved {svg.relative_to(REPO) if svg.is_relative_to(REPO) else svg}"
              + (f" and {png.name}" if png else ""))


if __name__ == "__main__":
    main()
