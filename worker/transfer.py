"""Copy mode: fetch each item into a local work directory, upload what it wrote.

With ``init --transfer copy`` the item is a path on the file server (the master unless
``--file-server`` names another host). The worker fetches it over SFTP into
``<work>/<id>/in/<name>`` (``ITEM`` points there), gives the command ``<work>/<id>/out`` as
``OUTPUT_DIR``, and after success uploads that directory to ``<output dir>/<item's path below
the source>/`` on the master, so the output tree mirrors the source tree. The work directory
is removed after success and kept after a failure (its path is in the item's log).

Nothing is written outside the output directory: the item's path is normalised first, and a
``..`` that would climb above it becomes ``__up__`` (``../x/f`` -> ``OUT/__up__/x/f``). What the
command left in ``$OUTPUT_DIR`` is uploaded as regular files and directories only: a symbolic
link to a file inside ``$OUTPUT_DIR`` is uploaded as a copy of that file; any other link
(outside, dangling, to a directory) and any fifo, socket or device is skipped, with a note in
the item's log.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import time

from . import layout as L
from .errors import PpssError
from .jobspec import JobSpec
from .store import FileServer, StoreError


class TransferError(PpssError):
    pass


def default_work_root(job_label: str) -> str:
    key = hashlib.blake2b(job_label.encode(), digest_size=6).hexdigest()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "ppss", "work", key)


UP = "__up__"  # what a leading '..' of an item's path becomes below the output directory


def relative_item_path(item: str, source: str) -> str:
    """The item's path below the source directory (or its absolute path without the '/'),
    normalised, with no '..' left: always a path inside the directory it is joined to."""
    path = posixpath.normpath(item)  # a/./b -> a/b, a/../b -> b; only leading '..' remain
    src = posixpath.normpath(source) if source else ""
    if src not in ("", "/", ".") and path.startswith(src + "/"):
        path = path[len(src) + 1:]
    parts = [UP if p == ".." else p for p in path.split("/") if p not in ("", ".")]
    return "/".join(parts) or "."


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def tidy_output(out: str) -> tuple[list[str], list[str]]:
    """Make ``out`` hold regular files and directories only, before it is uploaded: a link to a
    file inside ``out`` becomes a copy of it; other links and special files are removed.
    Returns (a note per thing removed, the files left); paths relative to ``out``. One walk,
    by directory entry types: no stat of each file."""
    notes: list[str] = []
    files: list[str] = []
    root = None  # out's real path: needed only for a link
    todo = [("", out)]
    while todo:
        rel_dir, here = todo.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                rel = posixpath.join(rel_dir, entry.name) if rel_dir else entry.name
                if entry.is_symlink():
                    root = root or os.path.realpath(out)
                    note = _tidy_link(entry.path, rel, root)
                    if note is None:
                        files.append(rel)
                        continue
                    notes.append(note)
                elif entry.is_dir(follow_symlinks=False):
                    todo.append((rel, entry.path))
                    continue
                elif entry.is_file(follow_symlinks=False):
                    files.append(rel)
                    continue
                else:
                    notes.append(f"{rel}: not a regular file (fifo, socket or device); not uploaded")
                os.remove(entry.path)
    return notes, files


def _tidy_link(path: str, rel: str, root: str) -> str | None:
    """A link to a file inside ``root`` becomes a copy of that file (None); else the note
    saying why it is not uploaded (the caller removes it)."""
    target = os.path.realpath(path)
    if inside(target, root) and os.path.isfile(target):
        shutil.copyfile(target, path + ".ppss-copy")
        os.replace(path + ".ppss-copy", path)
        return None
    why = ("points to nothing" if not os.path.exists(target) else
           "points outside $OUTPUT_DIR" if not inside(target, root) else
           "is a link to a directory" if os.path.isdir(target) else "not a regular file")
    return f"{rel}: symbolic link to {os.readlink(path)} not uploaded ({why})"


class CopyTransfer:
    def __init__(self, files: FileServer, master: FileServer, spec: JobSpec, job_path: str, work_root: str) -> None:
        self.files = files
        self.master = master
        self.spec = spec
        self.output_root = spec.output_dir or posixpath.join(job_path, "results")
        self.work_root = work_root
        self.fetch_seconds = 0.0  # how long a fetch takes lately (smoothed)

    def lead_time(self) -> float:
        """How long an item takes to be ready once claimed: its fetch (for the claim-ahead)."""
        return self.fetch_seconds

    def paths(self, ident: str, item: bytes) -> tuple[str, str, str]:
        work = os.path.join(self.work_root, ident)
        name = os.path.basename(os.fsdecode(item).rstrip("/"))
        name = "item" if name in ("", ".", "..") else name
        return work, os.path.join(work, "in", name), os.path.join(work, "out")

    async def fetch(self, ident: str, item: bytes) -> tuple[str, str, str]:
        work, local, out = self.paths(ident, item)
        began = time.monotonic()
        try:
            os.mkdir(work, 0o700)
        except FileExistsError:  # left by an earlier run of this item
            shutil.rmtree(work, ignore_errors=True)
            os.mkdir(work, 0o700)
        except FileNotFoundError:  # the first item: the work root is made too
            os.makedirs(work, mode=0o700)
        os.mkdir(os.path.dirname(local), 0o700)
        os.mkdir(out, 0o700)
        try:
            await self.files.get_file(os.fsdecode(item), local)
        except (PpssError, OSError) as exc:
            shutil.rmtree(work, ignore_errors=True)  # nothing in it worth keeping
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise TransferError(f"fetching {L.display_item(item)} failed: {reason}") from None
        self.fetch_seconds += 0.3 * (time.monotonic() - began - self.fetch_seconds)
        return work, local, out

    def output_target(self, item: bytes) -> str:
        target = posixpath.join(self.output_root, relative_item_path(os.fsdecode(item), self.spec.source))
        root = posixpath.normpath(self.output_root)
        if not (posixpath.normpath(target) + "/").startswith(root.rstrip("/") + "/"):  # cannot happen
            raise TransferError(f"{L.display_item(item)}: its output would land outside {root}")
        return target

    async def upload(self, item: bytes, out: str) -> bytes:
        """Upload ``out``; returns notes for the item's log (what was not uploaded, and why)."""
        try:
            notes, files = tidy_output(out)
        except OSError as exc:
            raise TransferError(f"reading the output of {L.display_item(item)} failed: "
                                f"{exc.strerror or exc}") from None
        text = "".join(f"ppss: {n}\n" for n in notes).encode()
        if not files:
            return text
        try:
            await self.master.put_tree(out, self.output_target(item), files)
            return text
        except StoreError as exc:  # the master's fault (full, not writable): the item runs again later
            raise StoreError(f"uploading the output of {L.display_item(item)} failed: {exc}") from None
        except PpssError as exc:
            raise TransferError(f"uploading the output of {L.display_item(item)} failed: {exc}") from None
        except OSError as exc:
            raise TransferError(f"uploading the output of {L.display_item(item)} failed: "
                                f"{exc.strerror or exc}") from None

    @staticmethod
    def cleanup(work: str) -> None:
        shutil.rmtree(work, ignore_errors=True)
