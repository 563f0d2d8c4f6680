"""asyncssh imported without find_library's subprocesses.

At import, asyncssh looks for optional C libraries (liboqs for post-quantum key exchange, nettle
for UMAC) with ``ctypes.util.find_library``, and on Linux each call runs ``ldconfig -p``, and
``gcc`` and ``ld`` when the library is absent: three lookups, about 20 ms of CPU and as much of
waiting on every start of ppss-worker or ppss-console. While asyncssh is imported here, a lookup
searches the linker's directories instead (``LD_LIBRARY_PATH``, ``/etc/ld.so.conf`` and its
includes, the usual system directories) and gives the library's path, which asyncssh loads as
it loads what find_library returns; ``find_library`` is itself again afterwards. A library
only the linker's cache knows of is not found: asyncssh then leaves that algorithm out. Its
optional X.509 support is left out too (``SKIPPED``).
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig

SKIPPED = ("asyncssh.crypto.x509",)
SYSTEM_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def linker_dirs() -> list[str]:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs += _conf_dirs("/etc/ld.so.conf", depth=0)
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in SYSTEM_DIRS:
        dirs += [f"{d}/{arch}", d] if arch else [d]
    return list(dict.fromkeys(dirs))


def _conf_dirs(path: str, depth: int) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [line.split("#", 1)[0].strip() for line in fh]
    except OSError:
        return []
    dirs: list[str] = []
    for line in filter(None, lines):
        if line.startswith("include") and depth < 3:
            pattern = line.split(None, 1)[1] if " " in line else ""
            pattern = os.path.join(os.path.dirname(path), pattern) if pattern else ""  # (relative: to this file)
            for conf in sorted(glob.glob(pattern)):
                dirs += _conf_dirs(conf, depth + 1)
        elif line.startswith("/"):
            dirs.append(line)
    return dirs


def find_lib(name: str) -> str | None:
    """The path of lib<name>.so* (``name`` as find_library takes it), or None."""
    stem = name if name.startswith("lib") else f"lib{name}"
    for d in linker_dirs():
        found = sorted(glob.glob(os.path.join(glob.escape(d), f"{stem}.so*")),
                       key=lambda path: (path.endswith(".so"), path))  # a soname before the bare .so
        if found:
            return found[0]
    return None


def import_asyncssh() -> None:
    """Import asyncssh (once) with the subprocess-free library lookup."""
    if "asyncssh.crypto.pq" in sys.modules:
        return
    import ctypes.util
    real = ctypes.util.find_library
    ctypes.util.find_library = find_lib
    # X.509 certificates (an optional asyncssh feature, unknown to OpenSSH, unused by ppss; it
    # also needs pyOpenSSL, which ppss does not install) cost cryptography.x509 at every start
    # (~15 ms) before that import fails: asyncssh guards it, so leave it out.
    blocked = [m for m in SKIPPED if m not in sys.modules]
    sys.modules.update(dict.fromkeys(blocked))
    try:
        import asyncssh  # noqa: F401
    finally:
        ctypes.util.find_library = real
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
