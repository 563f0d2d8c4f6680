"""deploy's pure parts: wheel targets for other nodes, the node wheel, what a node lacks (no SSH)."""

from __future__ import annotations

import dataclasses
import zipfile

from ppss_tui.deploy import missing_on_node, needs_install
from ppss_tui.remote import parse_kv
from ppss_tui.wheels import (PyTarget, build_node_wheel, local_target, node_wheel_version, pip_target_args,
                             platform_tags, wheel_name_version)


def test_platform_tags_for_other_linux_nodes():
    t = PyTarget("3.12", "cpython", "Linux", "x86_64", "glibc 2.31", "linux-x86_64")
    tags = platform_tags(t)
    assert tags[0] == "manylinux_2_31_x86_64" and "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    arm = platform_tags(dataclasses.replace(t, machine="aarch64", libc="glibc 2.28"))
    assert arm[-1] == "manylinux2014_aarch64" and "manylinux_2_17_aarch64" in arm
    assert "manylinux_2_16_aarch64" not in arm
    assert platform_tags(dataclasses.replace(t, libc="musl"))[0] == "musllinux_1_2_x86_64"
    args = pip_target_args(dataclasses.replace(t, platform="linux-x86_64-other"))
    assert args[:6] == ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312"]
    assert pip_target_args(local_target()) == []  # same interpreter as here: plain pip download


def test_node_wheel_holds_the_worker_only(tmp_path):
    path = build_node_wheel(tmp_path)
    assert wheel_name_version(path.name) == ("ppss", node_wheel_version())
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        entry = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "worker/cli.py" in names and not any(n.startswith("ppss_tui/") for n in names)
    assert "ppss-worker = worker.cli:main" in entry and "ppss-console" not in entry
    again = build_node_wheel(tmp_path / "again")
    assert again.read_bytes() == path.read_bytes()  # same code, same bytes


GOOD = {"uid": "1000", "user": "ppss", "dir": "/home/ppss/.ppss", "python3": "/usr/bin/python3",
        "py_version": "3.11", "py_venv": "yes", "free_kb": str(10 ** 7)}


def test_missing_on_node_says_what_is_missing():
    assert missing_on_node(GOOD, False, "ppss") == []
    assert "root account" in missing_on_node(dict(GOOD, uid="0"), False, None)[0]
    assert "root account" in missing_on_node(GOOD, False, "root")[0]
    assert missing_on_node(dict(GOOD, uid="0"), True, "root") == []
    assert "no python3" in missing_on_node(dict(GOOD, python3=""), False, None)[0]
    assert "needs 3.11" in missing_on_node(dict(GOOD, py_version="3.9"), False, None)[0]
    assert "no venv module" in missing_on_node(dict(GOOD, py_venv="no"), False, None)[0]
    assert "not enough disk" in missing_on_node(dict(GOOD, free_kb="51200"), False, None)[0]


def test_needs_install_compares_every_wheel():
    info = parse_kv("venv_ok=yes\nvenv_pkgs=asyncssh==2.24.1 ppss==0.1.0+gabc pyyaml==6.0.3\n")
    assert not needs_install(info, {"ppss": "0.1.0+gabc", "asyncssh": "2.24.1"})
    assert needs_install(info, {"ppss": "0.1.0+gdef"})
    assert needs_install(dict(info, venv_ok="no"), {"ppss": "0.1.0+gabc"})
