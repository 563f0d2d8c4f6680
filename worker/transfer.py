"""Copy mode: fetch each item into a local work directory, upload what it wrote.

With ``init --transfer copy`` the item is a path on the file server (the master unless
``--file-server`` names another host). The worker fetches it over SFTP into
``<work>/<id>/in/<name>`` (``ITEM`` points there), gives the command ``<work>/<id>/out`` as
``OUTPUT_DIR``, and after success uploads that directory to ``<output dir>/<item's path below
the source>/`` on the master, so the output tree mirrors the source tree. The work directory
is removed after success and kept after a failure (its path is in the item's log).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil

from . import layout as L
from .errors import PpssError
from .jobspec import JobSpec
from .store import FileServer


class TransferError(PpssError):
    pass


def default_work_root(job_label: str) -> str:
    key = hashlib.blake2b(job_label.encode(), digest_size=6).hexdigest()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "ppss", "work", key)


def relative_item_path(item: str, source: str) -> str:
    """The item's path below the source directory (or its absolute path without the '/')."""
    if source and item.startswith(source.rstrip("/") + "/"):
        return item[len(source.rstrip("/")) + 1:]
    return item.lstrip("/")


class CopyTransfer:
    def __init__(self, files: FileServer, master: FileServer, spec: JobSpec, job_path: str, work_root: str) -> None:
        self.files = files
        self.master = master
        self.spec = spec
        self.output_root = spec.output_dir or posixpath.join(job_path, "results")
        self.work_root = work_root

    def paths(self, ident: str, item: bytes) -> tuple[str, str, str]:
        work = os.path.join(self.work_root, ident)
        name = os.path.basename(os.fsdecode(item).rstrip("/")) or "item"
        return work, os.path.join(work, "in", name), os.path.join(work, "out")

    async def fetch(self, ident: str, item: bytes) -> tuple[str, str, str]:
        work, local, out = self.paths(ident, item)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(os.path.dirname(local), mode=0o700)
        os.makedirs(out, mode=0o700)
        try:
            await self.files.get_file(os.fsdecode(item), local)
        except (PpssError, OSError) as exc:
            shutil.rmtree(work, ignore_errors=True)  # nothing in it worth keeping
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise TransferError(f"fetching {L.display_item(item)} failed: {reason}") from None
        return work, local, out

    def output_target(self, item: bytes) -> str:
        return posixpath.join(self.output_root, relative_item_path(os.fsdecode(item), self.spec.source))

    async def upload(self, item: bytes, out: str) -> int:
        if not any(files for _, _, files in os.walk(out)):
            return 0
        try:
            return await self.master.put_tree(out, self.output_target(item))
        except PpssError as exc:
            raise TransferError(f"uploading the output of {L.display_item(item)} failed: {exc}") from None
        except OSError as exc:
            raise TransferError(f"uploading the output of {L.display_item(item)} failed: "
                                f"{exc.strerror or exc}") from None

    @staticmethod
    def cleanup(work: str) -> None:
        shutil.rmtree(work, ignore_errors=True)
