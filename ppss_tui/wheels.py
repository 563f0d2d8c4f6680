"""Wheels for the nodes: built and collected on the operator's machine, so nodes need no internet.

A node runs only ``worker/`` with asyncssh and PyYAML (and their dependencies), never textual,
humanize or ppss_tui. So the node gets:

* a ``ppss`` wheel built here from the installed ``worker`` package alone (pure Python, only the
  ``ppss-worker`` entry point). Its version carries a hash of the code (``0.1.0+g1a2b3c4d5e``):
  a node holding the same hash is up to date, another one is upgraded in place;
* binary wheels of the node dependencies for the node's Python version and platform, fetched with
  ``pip download --only-binary=:all:`` into a local cache (default ``~/.cache/ppss/wheels``, or
  ``$PPSS_WHEEL_CACHE``). A cache that already holds them is used without any network access;
  an operator with no internet at all can fill it by hand (``pip download -d DIR ...``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.metadata
import importlib.util
import marshal
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import worker

from worker.errors import PpssError

NODE_REQUIREMENTS = ("asyncssh", "PyYAML")  # what worker/ imports besides the standard library
FALLBACK_SPECS = {"asyncssh": "asyncssh>=2.14", "PyYAML": "PyYAML>=6"}
MIN_PYTHON = (3, 11)
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same code gives the same wheel bytes


class WheelError(PpssError):
    """The operator's machine could not produce the wheels a node needs."""


def cache_root() -> Path:
    env = os.environ.get("PPSS_WHEEL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "ppss" / "wheels"


# ---- the node's interpreter ---------------------------------------------------------------

@dataclass(frozen=True)
class PyTarget:
    """What wheels a node's python3 accepts (from the probe; see ``PROBE_PY``)."""

    version: str  # "3.11"
    impl: str  # "cpython"
    system: str  # "Linux"
    machine: str  # "x86_64"
    libc: str  # "glibc 2.36", "musl", or ""
    platform: str  # sysconfig.get_platform(): "linux-x86_64"

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, _, minor = self.version.partition(".")
        return int(major), int(minor or 0)

    def key(self) -> str:
        libc = self.libc.replace(" ", "") or "nolibc"
        return f"cp{self.version.replace('.', '')}-{self.system.lower()}-{self.machine}-{libc}"


# Printed by the node's python3 (any 3.x): key=value lines read by parse_probe.
PROBE_PY = r"""
import sys, platform, sysconfig, glob
print("py_version=%d.%d" % sys.version_info[:2])
print("py_impl=" + sys.implementation.name)
print("py_system=" + platform.system())
print("py_machine=" + platform.machine())
lib, ver = platform.libc_ver()
if not lib and glob.glob("/lib/ld-musl-*"):
    lib = "musl"
print("py_libc=" + ("%s %s" % (lib, ver)).strip())
print("py_platform=" + sysconfig.get_platform())
try:
    import venv, ensurepip
    print("py_venv=yes")
except Exception as exc:
    print("py_venv=no")
"""


def local_target() -> PyTarget:
    import platform
    lib, ver = platform.libc_ver()
    return PyTarget(version="%d.%d" % sys.version_info[:2], impl=sys.implementation.name,
                    system=platform.system(), machine=platform.machine(),
                    libc=f"{lib} {ver}".strip(), platform=sysconfig.get_platform())


def target_from_probe(info: dict[str, str]) -> PyTarget:
    return PyTarget(version=info.get("py_version", ""), impl=info.get("py_impl", ""),
                    system=info.get("py_system", ""), machine=info.get("py_machine", ""),
                    libc=info.get("py_libc", ""), platform=info.get("py_platform", ""))


def platform_tags(target: PyTarget) -> list[str]:
    """pip ``--platform`` values for a Linux node (manylinux / musllinux), newest first."""
    arch = target.machine
    if target.system != "Linux":
        raise WheelError(f"{target.system} {arch}: only Linux nodes differing from this machine are "
                         "supported (deploy from a machine of the same platform)")
    if arch in ("amd64",):
        arch = "x86_64"
    if target.libc.startswith("glibc"):
        match = re.match(r"glibc (\d+)\.(\d+)", target.libc)
        if not match or match.group(1) != "2":
            raise WheelError(f"cannot read the node's glibc version ({target.libc!r})")
        newest = int(match.group(2))
        lowest = 17 if arch in ("aarch64", "ppc64le", "s390x") else 5
        tags = [f"manylinux_2_{m}_{arch}" for m in range(newest, lowest - 1, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{arch}" for m, name in legacy.items() if lowest <= m <= newest]
        return tags
    if target.libc.startswith("musl"):
        return [f"musllinux_1_{m}_{arch}" for m in (2, 1, 0)]
    raise WheelError(f"unknown C library on the node ({target.libc or 'none found'})")


def pip_target_args(target: PyTarget) -> list[str]:
    """Extra ``pip download`` options for the node's interpreter ([] when it is like this one's)."""
    if target.impl != "cpython":
        raise WheelError(f"the node's python3 is {target.impl}; ppss deploys to CPython only")
    here = local_target()
    if (target.version, target.impl, target.platform, target.libc) == \
            (here.version, here.impl, here.platform, here.libc):
        return []
    nodot = target.version.replace(".", "")
    args = ["--python-version", target.version, "--implementation", "cp", "--abi", f"cp{nodot}"]
    for tag in platform_tags(target):
        args += ["--platform", tag]
    return args


# ---- the ppss wheel (worker only) ---------------------------------------------------------

def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _worker_files() -> list[tuple[str, bytes]]:
    root = Path(worker.__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root.parent).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith((".pyc", ".pyo")):
            files.append((rel, path.read_bytes()))
    return files


def node_wheel_version() -> str:
    digest = hashlib.sha256()
    for rel, data in _worker_files():
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return f"{worker.__version__}+g{digest.hexdigest()[:10]}"


def build_node_wheel(dest: Path) -> Path:
    """Write ``ppss-<version>-py3-none-any.whl`` (the worker package only) into ``dest``."""
    files = _worker_files()
    version = node_wheel_version()
    dist_info = f"ppss-{version}.dist-info"
    requires = "".join(f"Requires-Dist: {FALLBACK_SPECS[r]}\n" for r in NODE_REQUIREMENTS)
    meta = [
        (f"{dist_info}/METADATA",
         (f"Metadata-Version: 2.1\nName: ppss\nVersion: {version}\n"
          "Summary: ppss worker (node side), deployed by ppss-console deploy\n"
          f"Requires-Python: >={MIN_PYTHON[0]}.{MIN_PYTHON[1]}\n{requires}").encode()),
        (f"{dist_info}/WHEEL",
         b"Wheel-Version: 1.0\nGenerator: ppss-console deploy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nppss-worker = worker.cli:main\n"),
        (f"{dist_info}/top_level.txt", b"worker\n"),
    ]
    entries = files + meta
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"ppss-{version}-py3-none-any.whl"
    if path.exists():
        return path
    tmp = dest / f".{path.name}.tmp{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, path)
    return path


# ---- dependency wheels --------------------------------------------------------------------

def wheel_name_version(filename: str) -> tuple[str, str]:
    """("pyyaml", "6.0.3") from a wheel file name (names normalized as pip does)."""
    parts = filename[:-4].split("-")
    return re.sub(r"[-_.]+", "-", parts[0]).lower(), parts[1]


def dependency_specs(pinned: bool) -> list[str]:
    specs = []
    for name in NODE_REQUIREMENTS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        specs.append(f"{name}=={version}" if pinned and version else FALLBACK_SPECS[name])
    return specs


def _pip_download(dest: str, cache: Path, extra: list[str], specs: list[str], offline: bool) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
           "-q", "--only-binary=:all:", "-d", dest, "--find-links", str(cache), *extra, *specs]
    if offline:
        cmd.insert(4, "--no-index")
    env = dict(os.environ, PIP_NO_INPUT="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    return proc.returncode == 0, proc.stderr + proc.stdout


def collect_dependency_wheels(target: PyTarget) -> list[Path]:
    """Wheels of the node dependencies for ``target``, from the cache or else from the index."""
    extra = pip_target_args(target)
    cache = cache_root() / target.key()
    cache.mkdir(parents=True, exist_ok=True)
    errors = ""
    for pinned in (True, False):
        specs = dependency_specs(pinned)
        for offline in (True, False):
            with tempfile.TemporaryDirectory(prefix="ppss-wheels-") as tmp:
                ok, output = _pip_download(tmp, cache, extra, specs, offline)
                if ok:
                    found = []
                    for name in sorted(os.listdir(tmp)):
                        if not name.endswith(".whl"):
                            continue
                        final = cache / name
                        if not final.exists():
                            shutil.copyfile(os.path.join(tmp, name), cache / f".{name}.part")
                            os.replace(cache / f".{name}.part", final)
                        found.append(final)
                    if found:
                        return found
                if not offline:
                    lines = [ln for ln in output.splitlines() if ln.startswith("ERROR")]
                    errors = (lines or output.strip().splitlines() or ["pip download failed"])[-1]
    raise WheelError(f"cannot get wheels of {', '.join(NODE_REQUIREMENTS)} for Python {target.version} "
                     f"on {target.platform} ({target.libc or 'no libc'}): {errors} "
                     f"(fill {cache} with 'pip download' on a machine with internet access)")


# ---- bytecode for nodes running this machine's Python version ------------------------------

def bytecode_suffix() -> str:
    """What a wheel's bytecode file adds to the wheel's name (``wheelinstall`` looks for it)."""
    return f".{sys.implementation.cache_tag}.pyc.zip"


def same_python(target: PyTarget) -> bool:
    here = local_target()
    return (target.impl, target.version) == (here.impl, here.version) and sys.implementation.cache_tag is not None


def hash_pyc(source: bytes, name: str) -> bytes | None:
    """A checked-hash .pyc (PEP 552) of ``source``: the importing interpreter compares the hash
    with the installed source and recompiles when they differ, whatever the file times."""
    try:
        code = compile(source, name, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError):
        return None  # a module for another Python version: the node compiles it if it ever imports it
    flags = (0b11).to_bytes(4, "little")  # hash-based, checked
    return importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source) + marshal.dumps(code)


def build_bytecode(wheel: Path) -> Path:
    """``<wheel>.<cache tag>.pyc.zip`` next to the wheel's cache: the bytecode of every module the
    wheel installs at its root, under the paths the installed files will have (compiling them is
    a quarter of a node's deploy CPU: about 0.25 s)."""
    dest = cache_root() / "bytecode" / (wheel.name + bytecode_suffix())
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    with zipfile.ZipFile(wheel) as zf, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for name in zf.namelist():
            top = name.split("/", 1)[0]
            if not name.endswith(".py") or top.endswith((".dist-info", ".data")):
                continue
            data = hash_pyc(zf.read(name), name)
            if data is not None:
                info = zipfile.ZipInfo(importlib.util.cache_from_source(name), ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(info, data)
    os.replace(tmp, dest)
    return dest


@dataclass(frozen=True)
class WheelSet:
    target: PyTarget
    files: tuple[Path, ...]  # every wheel the node installs, ppss's first
    bytecode: tuple[Path, ...] = ()  # their compiled modules, when the node runs this Python version

    def uploads(self) -> tuple[Path, ...]:
        return self.files + self.bytecode

    @property
    def ppss(self) -> Path:
        return self.files[0]

    @property
    def ppss_version(self) -> str:
        return wheel_name_version(self.ppss.name)[1]

    def versions(self) -> dict[str, str]:
        return dict(wheel_name_version(p.name) for p in self.files)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files)


class WheelSets:
    """One WheelSet per kind of node interpreter, prepared once even when many nodes ask at once."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task] = {}
        self._lock = asyncio.Lock()

    async def get(self, target: PyTarget) -> WheelSet:
        key = target.key()
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._prepare(target))
            self._tasks[key] = task
        return await asyncio.shield(task)

    async def _prepare(self, target: PyTarget) -> WheelSet:
        async with self._lock:  # one pip at a time: it is CPU- and network-heavy
            ppss = await asyncio.to_thread(build_node_wheel, cache_root() / "ppss")
            deps = await asyncio.to_thread(collect_dependency_wheels, target)
            files = (ppss, *deps)
            bytecode = ()
            if same_python(target):
                bytecode = tuple(await asyncio.to_thread(lambda: [build_bytecode(w) for w in files]))
        return WheelSet(target, files, bytecode)
