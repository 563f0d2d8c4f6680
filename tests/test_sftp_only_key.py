"""README's advice: a node key restricted to SFTP in authorized_keys is all a worker needs."""

from __future__ import annotations

from pathlib import Path

from ppss_helpers import Job, assert_ok, run_worker, status_json
from sshcluster import ssh_run

from worker import layout as L


def test_key_restricted_to_internal_sftp(fresh_cluster, tmp_path: Path) -> None:
    cluster = fresh_cluster(n_nodes=0)
    keys = cluster.authorized_keys.read_text().splitlines()
    cluster.authorized_keys.write_text("".join(f'restrict,command="internal-sftp" {k}\n' for k in keys if k))
    shell = ssh_run(cluster.master, cluster, "echo", "shell-$((6*7))")
    assert "shell-42" not in shell.stdout  # the key gets no shell
    job = Job(tmp_path / "job", cluster)
    url = job.create([b"a", b"$(touch pwned)"], 'printf %s "$ITEM" > "$OUTPUT_DIR/item"')
    assert_ok(run_worker(url, "--slots", "2", "-n", "restricted", cluster=cluster, cwd=tmp_path))
    assert (job / L.output_path(L.item_id(b"$(touch pwned)")) / "item").read_bytes() == b"$(touch pwned)"
    assert status_json(url, cluster=cluster)["done"] == 2
    assert not list(tmp_path.rglob("pwned"))
