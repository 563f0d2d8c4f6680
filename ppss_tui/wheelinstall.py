"""Install wheels into the running interpreter's venv, without pip: run ON THE NODE by deploy.

``python -c "<this file>" [--force] WHEEL...`` (the deployed venv's python, created with
``python3 -m venv --without-pip``). Creating a venv with pip and running ``pip install`` cost
about 4 s of CPU per node; unpacking the same wheels costs a tenth of that. For each wheel, as
pip does it (the binary distribution format, PyPA spec):

* skipped when the same name and version is installed already (unless ``--force``);
* another installed version of it is removed first, file by file from its ``RECORD``;
* every member is checked against the wheel's ``RECORD`` hash, extracted under purelib/platlib
  (``.data/<scheme>/`` members under that scheme's path), never outside the venv;
* ``console_scripts``/``gui_scripts`` entry points become scripts in the venv's ``bin``, and
  ``#!python`` scripts get the venv's interpreter;
* the wheel's compiled modules, when the console sent them (``extract_bytecode``);
* ``INSTALLER`` and a new ``RECORD`` (every file written, with its hash) are written, so
  ``importlib.metadata`` and a later upgrade (or ``pip uninstall``) see it like a pip install.

Prints ``installed=NAME==VERSION`` or ``same=NAME==VERSION`` per wheel; on an error, one line
``error=...`` and exit status 1. Standard library only, Python 3.11+ (the node's python3); the
console imports nothing of this module, it ships its source text (``source()``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import os
import re
import shutil
import sys
import sysconfig
import zipfile

INSTALLER = "ppss-console deploy"
SCHEMES = {"purelib": "purelib", "platlib": "platlib", "scripts": "scripts", "data": "data",
           "headers": "include"}


class InstallError(Exception):
    pass


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def inside(path: str, root: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(root)]) == os.path.realpath(root)


def installed_dists(site: str) -> dict[str, tuple[str, str]]:
    """{normalized name: (version, dist-info directory)} of what ``site`` holds."""
    found = {}
    for entry in os.listdir(site):
        if entry.endswith(".dist-info") and "-" in entry:
            name, version = entry[:-len(".dist-info")].rsplit("-", 1)
            found[norm(name)] = (version, os.path.join(site, entry))
    return found


def remove_dist(dist_info: str, site: str, prefix: str) -> None:
    """Remove an installed distribution: the files its RECORD lists (inside the venv only),
    their cached bytecode, then the directories left empty."""
    dirs = {dist_info}
    try:
        with open(os.path.join(dist_info, "RECORD"), newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError:
        rows = []
    for row in rows:
        if not row:
            continue
        path = os.path.normpath(os.path.join(site, row[0]))
        if not inside(path, prefix):
            continue
        victims = [path]
        if path.endswith(".py"):
            cache = os.path.join(os.path.dirname(path), "__pycache__")
            stem = os.path.basename(path)[:-3] + "."
            if os.path.isdir(cache):
                victims += [os.path.join(cache, f) for f in os.listdir(cache) if f.startswith(stem)]
                dirs.add(cache)
        for victim in victims:
            try:
                os.unlink(victim)
            except FileNotFoundError:
                pass
        dirs.add(os.path.dirname(path))
    shutil.rmtree(dist_info, ignore_errors=True)
    for d in sorted(dirs - {dist_info}, key=len, reverse=True):
        while inside(d, site) and os.path.realpath(d) != os.path.realpath(site):
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)


def wheel_dist_info(zf: zipfile.ZipFile) -> str:
    tops = {n.split("/", 1)[0] for n in zf.namelist()}
    infos = [t for t in tops if t.endswith(".dist-info") and f"{t}/WHEEL" in zf.namelist()]
    if len(infos) != 1:
        raise InstallError("not a wheel: no single *.dist-info/WHEEL")
    return infos[0]


def target_path(member: str, dist_info: str, root: str, paths: dict[str, str]) -> str:
    data_dir = dist_info[:-len(".dist-info")] + ".data/"
    if member.startswith(data_dir):
        scheme, _, rest = member[len(data_dir):].partition("/")
        if scheme not in SCHEMES or not rest:
            raise InstallError(f"{member}: unknown .data scheme {scheme!r}")
        base = paths[SCHEMES[scheme]]
        if scheme == "headers":
            base = os.path.join(base, norm(dist_info.rsplit("-", 1)[0]))
        out = os.path.join(base, rest)
    else:
        out = os.path.join(root, member)
    if member.startswith("/") or ".." in member.split("/") or not inside(out, sys.prefix):
        raise InstallError(f"{member}: path outside the venv")
    return out


def write_file(path: str, data: bytes, executable: bool) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".ppss-tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o755 if executable else 0o644)
    os.replace(tmp, path)


def entry_scripts(text: str) -> list[tuple[str, str, str]]:
    """(script name, module, attribute) of the console and gui scripts in entry_points.txt."""
    out, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif "=" in line and section in ("console_scripts", "gui_scripts"):
            name, _, value = (p.strip() for p in line.partition("="))
            module, _, attr = value.split("[", 1)[0].strip().partition(":")
            out.append((name, module.strip(), attr.strip()))
    return out


def script_text(module: str, attr: str) -> str:
    head = attr.split(".", 1)[0]
    return (f"#!{sys.executable}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {head}\n"
            "if __name__ == \"__main__\":\n"
            "    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n"
            f"    sys.exit({attr}())\n")


def extract(zf: zipfile.ZipFile, dist_info: str, root: str,
            paths: dict[str, str]) -> list[tuple[str, str, int]]:
    """Write every member (hash-checked against RECORD); [(path, hash, size)] of what was written."""
    expected = {row[0]: row[1] for row in csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode()))
                if len(row) >= 2}
    scripts_dir = dist_info[:-len(".dist-info")] + ".data/scripts/"
    written = []
    for info in zf.infolist():
        if info.is_dir() or info.filename == f"{dist_info}/RECORD":
            continue
        data = zf.read(info)
        want, digest = expected.get(info.filename), record_hash(data)
        if want is None or (want and want != digest):
            raise InstallError(f"{info.filename}: {'not in RECORD' if want is None else 'hash differs from RECORD'}")
        executable = bool((info.external_attr >> 16) & 0o111)
        if info.filename.startswith(scripts_dir):
            executable = True
            if data.startswith(b"#!python"):
                data = b"#!" + sys.executable.encode() + data[len(b"#!python"):]
                digest = record_hash(data)
        path = target_path(info.filename, dist_info, root, paths)
        write_file(path, data, executable)
        written.append((path, digest, len(data)))
    return written


def extract_bytecode(wheel: str, root: str) -> list[tuple[str, str, int]]:
    """The wheel's compiled modules, when the console sent them for this interpreter
    (``WHEEL.<cache tag>.pyc.zip``, checked-hash .pyc files: Python recompiles any that do not
    match its source); only those whose source was installed."""
    bundle = f"{wheel}.{sys.implementation.cache_tag}.pyc.zip"
    if not os.path.exists(bundle):
        return []
    written = []
    with zipfile.ZipFile(bundle) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or not name.endswith(".pyc") or name.startswith("/") or ".." in name.split("/"):
                continue
            path = os.path.join(root, name)
            try:
                source = importlib.util.source_from_cache(path)
            except ValueError:
                continue
            if not os.path.exists(source) or not inside(path, root):
                continue
            data = zf.read(info)
            write_file(path, data, False)
            written.append((path, record_hash(data), len(data)))
    return written


def install_wheel(wheel: str, force: bool) -> str:
    """Install one wheel into this interpreter's environment; the line to print."""
    paths = sysconfig.get_paths()
    site = paths["purelib"]
    with zipfile.ZipFile(wheel) as zf:
        dist_info = wheel_dist_info(zf)
        name, version = dist_info[:-len(".dist-info")].rsplit("-", 1)
        have = installed_dists(site).get(norm(name))
        if have and have[0] == version and not force:
            return f"same={norm(name)}=={version}"
        if have:
            remove_dist(have[1], site, sys.prefix)
        meta = zf.read(f"{dist_info}/WHEEL").decode()
        purelib = re.search(r"^Root-Is-Purelib:\s*true\s*$", meta, re.M | re.I) is not None
        root = paths["purelib" if purelib else "platlib"]
        written = extract(zf, dist_info, root, paths)
        written += extract_bytecode(wheel, root)
        entry = f"{dist_info}/entry_points.txt"
        for script, module, attr in entry_scripts(zf.read(entry).decode() if entry in zf.namelist() else ""):
            path = os.path.join(paths["scripts"], script)
            data = script_text(module, attr).encode()
            write_file(path, data, True)
            written.append((path, record_hash(data), len(data)))
    info_dir = os.path.join(root, dist_info)
    installer = (INSTALLER + "\n").encode()
    write_file(os.path.join(info_dir, "INSTALLER"), installer, False)
    written.append((os.path.join(info_dir, "INSTALLER"), record_hash(installer), len(installer)))
    rows = [(os.path.relpath(p, site), digest, str(size)) for p, digest, size in written]
    rows.append((os.path.relpath(os.path.join(info_dir, "RECORD"), site), "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    write_file(os.path.join(info_dir, "RECORD"), out.getvalue().encode(), False)
    return f"installed={norm(name)}=={version}"


def main(argv: list[str]) -> int:
    force = "--force" in argv
    wheels = [a for a in argv if a != "--force"]
    if sys.prefix == sys.base_prefix:
        print("error=wheel install: not running in a venv", flush=True)
        return 1
    for wheel in wheels:
        try:
            print(install_wheel(wheel, force), flush=True)
        except (InstallError, OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            print(f"error=wheel install: {os.path.basename(wheel)}: {exc}".replace("\n", " "), flush=True)
            return 1
    return 0


def source() -> str:
    """This module's text, to run on a node with ``python -c``."""
    with open(__file__, encoding="utf-8") as fh:
        return fh.read()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
