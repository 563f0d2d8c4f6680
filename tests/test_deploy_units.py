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


# ---- wheelinstall: the node's installer (a venv without pip), on this machine -------------------

def _wheel(dest, version: str, modules: dict[str, str], tamper: str | None = None, extra: dict | None = None):
    """A small wheel ``demo-VERSION``: modules, a console script, a ``#!python`` data script."""
    import base64
    import hashlib
    dist = f"demo-{version}.dist-info"
    files = {f"demo/{name}": text.encode() for name, text in modules.items()}
    files[f"demo-{version}.data/scripts/demo-data"] = b"#!python\nprint('data script')\n"
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: demo\nVersion: {version}\n".encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist}/entry_points.txt"] = b"[console_scripts]\ndemo-cli = demo.cli:main\n"
    files.update(extra or {})
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    path = dest / f"demo-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data + (b"#tampered" if name == tamper else b""))
        zf.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")
    return path


def _venv(tmp_path):
    import subprocess
    import sys
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def _install(python, *args):
    import subprocess
    from ppss_tui import wheelinstall
    return subprocess.run([str(python), "-c", wheelinstall.source(), *map(str, args)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})


def test_wheelinstall_installs_upgrades_and_refuses_bad_wheels(tmp_path):
    import subprocess
    python = _venv(tmp_path)
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    cli = "def main():\n    print('demo ok')\n    return 0\n"
    v1 = _wheel(tmp_path, "1.0", {"__init__.py": "", "cli.py": cli, "old.py": "X = 1\n"})
    r = _install(python, v1)
    assert r.returncode == 0 and r.stdout.strip() == "installed=demo==1.0", r.stdout + r.stderr
    bin_dir = python.parent
    assert subprocess.run([str(bin_dir / "demo-cli")], capture_output=True, text=True).stdout == "demo ok\n"
    assert (bin_dir / "demo-data").read_text().startswith(f"#!{python}\n")
    meta = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('demo'))"],
                          capture_output=True, text=True).stdout
    assert meta.strip() == "1.0"
    assert _install(python, v1).stdout.strip() == "same=demo==1.0"
    assert _install(python, "--force", v1).stdout.strip() == "installed=demo==1.0"
    # an upgrade removes what the old version had and the new one has not
    subprocess.run([str(python), "-c", "import demo.old"], check=True, env={"PATH": "/usr/bin"})
    v2 = _wheel(tmp_path, "2.0", {"__init__.py": "", "cli.py": cli})
    assert _install(python, v2).stdout.strip() == "installed=demo==2.0"
    assert not (site / "demo" / "old.py").exists() and not (site / "demo-1.0.dist-info").exists()
    assert not list((site / "demo").glob("__pycache__/old.*"))
    assert (site / "demo-2.0.dist-info" / "INSTALLER").exists()
    # a member that differs from RECORD, or that would land outside the venv: one line, exit 1
    bad = tmp_path / "bad"
    bad.mkdir()
    r = _install(python, _wheel(bad, "3.0", {"cli.py": cli}, tamper="demo/cli.py"))
    assert r.returncode == 1 and r.stdout.strip() == "error=wheel install: demo-3.0-py3-none-any.whl: " \
        "demo/cli.py: hash differs from RECORD", r.stdout
    (bad / "demo-3.0-py3-none-any.whl").unlink()
    r = _install(python, _wheel(bad, "3.0", {"cli.py": cli}, extra={"../../../../evil.py": b"x"}))
    assert r.returncode == 1 and "path outside the venv" in r.stdout and not (tmp_path / "evil.py").exists()


def test_wheelinstall_uses_the_consoles_bytecode(tmp_path, monkeypatch):
    import sys
    from ppss_tui.wheels import build_bytecode, bytecode_suffix
    monkeypatch.setenv("PPSS_WHEEL_CACHE", str(tmp_path / "cache"))
    python = _venv(tmp_path)
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    wheel = _wheel(tmp_path, "1.0", {"__init__.py": "", "cli.py": "def main():\n    return 0\n",
                                     "newer.py": "match = (\n"})  # not Python: no bytecode for it
    bundle = build_bytecode(wheel)
    assert bundle.name == wheel.name + bytecode_suffix()
    (tmp_path / bundle.name).write_bytes(bundle.read_bytes())
    assert _install(python, wheel).returncode == 0
    tag = sys.implementation.cache_tag
    pyc = site / "demo" / "__pycache__" / f"cli.{tag}.pyc"
    assert pyc.exists() and int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11  # checked hash
    assert not (site / "demo" / "__pycache__" / f"newer.{tag}.pyc").exists()
    record = (site / "demo-1.0.dist-info" / "RECORD").read_text()
    assert f"demo/__pycache__/cli.{tag}.pyc,sha256=" in record
