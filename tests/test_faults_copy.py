"""issue 9.8: copy mode never writes outside --output-dir (item paths with '..', symlinks)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from sshcluster import SshCluster
from test_fault_tolerance import LEASE, assert_exactly_once, make_job  # noqa: F401  (fixture)
from worker import layout as L
from worker.transfer import UP, relative_item_path, tidy_output


@pytest.mark.parametrize("item, source, want", [
    ("/src/a/b.txt", "/src", "a/b.txt"),
    ("/src/a/b.txt", "/src/", "a/b.txt"),
    ("/elsewhere/x", "/src", "elsewhere/x"),
    ("../ACCOUNT/dir/f", "/home/me/list.txt", f"{UP}/ACCOUNT/dir/f"),
    ("../../x", "", f"{UP}/{UP}/x"),
    ("a/../../x", "", f"{UP}/x"),
    ("/src/../etc/passwd", "/src", "etc/passwd"),  # looked like it was below the source
    ("/../../etc/passwd", "/src", "etc/passwd"),
    ("./a/./b", "", "a/b"),
    ("//x//y/", "", "x/y"),
    ("..", "", UP),
    ("/", "/src", "."),
])
def test_relative_item_path_stays_inside(item: str, source: str, want: str) -> None:
    rel = relative_item_path(item, source)
    assert rel == want
    assert ".." not in rel.split("/") and not rel.startswith("/")


def test_tidy_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "real").write_text("data")
    (tmp_path / "secret").write_text("outside")
    os.symlink("real", out / "inner-rel")
    os.symlink(out / "real", out / "sub" / "inner-abs")
    os.symlink(tmp_path / "secret", out / "outside-abs")
    os.symlink("../secret", out / "outside-rel")
    os.symlink("/nonexistent", out / "dangling")
    os.symlink("sub", out / "dirlink")
    os.mkfifo(out / "fifo")
    notes, files = tidy_output(str(out))
    assert sorted(files) == ["inner-rel", "real", "sub/inner-abs"]
    kinds = {}
    for p in out.rglob("*"):
        kinds[str(p.relative_to(out))] = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
    assert kinds == {"real": "file", "inner-rel": "file", "sub": "dir", "sub/inner-abs": "file"}
    assert (out / "inner-rel").read_text() == "data" == (out / "sub" / "inner-abs").read_text()
    text = "\n".join(notes)
    assert len(notes) == 5, notes
    for name, why in [("outside-abs", "outside"), ("outside-rel", "outside"), ("dangling", "nothing"),
                      ("dirlink", "directory"), ("fifo", "not a regular file")]:
        assert any(n.startswith(name + ":") and why in n for n in notes), text
    assert (tmp_path / "secret").read_text() == "outside"


@pytest.mark.ssh
def test_copy_mode_stays_in_output_dir(ssh_cluster: SshCluster, make_job, tmp_path: Path) -> None:  # noqa: F811
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "f").write_text("f data\n")
    (src / "dir" / "g").write_text("g data\n")
    (tmp_path / "secret").write_text("master secret\n")
    up_item = os.path.relpath(src / "dir" / "f", home)  # ../tmp/...: relative to the login home
    assert up_item.startswith("../")
    dotted = f"{src}/dir/../dir/g"  # absolute, with '..' in the middle
    items = [up_item.encode(), dotted.encode()]
    out = tmp_path / "out"
    job = make_job(ssh_cluster)
    command = ('cat "$ITEM" > "$OUTPUT_DIR/out.txt"; ln -s out.txt "$OUTPUT_DIR/inner"; '
               f'ln -s {tmp_path}/secret "$OUTPUT_DIR/leak"; ln -s / "$OUTPUT_DIR/root"')
    job.init("--transfer", "copy", "--output-dir", str(out), "--command", command,
             "--lease", str(LEASE), items=items)
    job.start("c1", 2, "--work-dir", str(tmp_path / "work"))
    job.wait_ok("c1", 60)
    assert_exactly_once(job, items)
    # Nothing outside the output directory: the escaping path maps below OUT/__up__/.
    outside = [p for p in tmp_path.rglob("out.txt") if out not in p.parents]
    assert not outside, f"written outside --output-dir: {outside}"
    mapped = out / relative_item_path(up_item, "")
    assert mapped.is_relative_to(out / UP)
    assert (mapped / "out.txt").read_text() == "f data\n"
    assert (mapped / "inner").read_text() == "f data\n" and not (mapped / "inner").is_symlink()
    g = out / str(src / "dir" / "g").lstrip("/")
    assert (g / "out.txt").read_text() == "g data\n"
    links = [p for p in out.rglob("*") if p.is_symlink()]
    assert not links, f"symbolic links recreated on the master: {links}"
    assert not list(out.rglob("leak")) and not list(out.rglob("root"))
    log = job.log(L.item_id(up_item.encode()))
    assert "leak: symbolic link to" in log and "outside $OUTPUT_DIR" in log, log
    assert "root: symbolic link to /" in log, log
