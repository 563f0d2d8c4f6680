"""A job directory on this host (or on a shared mount): the same protocol, plain syscalls."""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import secrets
import shutil
import stat as st_mod
import time

from .base import Entry, Store, tree_files
from .errors import mapped_errors


class LocalStore(Store):
    def __init__(self, root: str) -> None:
        self.root = root
        self.label = root
        self._append_fds: dict[str, int] = {}

    async def mkdir(self, rel: str, mode: int | None = None) -> bool:
        mode = (await self.modes())[0] if mode is None else mode
        with mapped_errors(self.where(rel)):
            try:
                os.mkdir(self.path(rel), mode & 0o777)
            except FileExistsError:
                return False
            if mode & 0o2070 == 0o2070:  # a shared job: setgid and group-writable despite the umask
                os.chmod(self.path(rel), mode)
            return True

    async def share(self, rel: str, gid: int, mode: int) -> None:
        with mapped_errors(self.where(rel)):
            os.chown(self.path(rel), -1, gid)
            os.chmod(self.path(rel), mode)

    async def _create(self, rel: str, flags: int, mode: int | None = None) -> int:
        mode = (await self.modes())[1] if mode is None else mode
        return os.open(self.path(rel), os.O_WRONLY | os.O_CREAT | flags, mode)

    async def rmdir(self, rel: str) -> bool:
        with mapped_errors(self.where(rel)):
            try:
                os.rmdir(self.path(rel))
            except FileNotFoundError:
                return False
            return True

    async def remove(self, rel: str) -> bool:
        with mapped_errors(self.where(rel)):
            try:
                os.unlink(self.path(rel))
            except FileNotFoundError:
                return False
            return True

    async def rename(self, src: str, dst: str) -> bool:
        # rename(2) replaces an empty target directory: refuse an existing target first,
        # as OpenSSH's sftp-server does. Only the holder of a name renames it, so this is safe.
        s, d = self.path(src), self.path(dst)
        if os.path.lexists(d):
            return False
        with mapped_errors(self.where(src)):
            try:
                os.rename(s, d)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False
                raise
            return True

    async def replace(self, src: str, dst: str) -> None:
        with mapped_errors(self.where(dst)):
            os.replace(self.path(src), self.path(dst))

    async def read(self, rel: str) -> bytes | None:
        return await self.read_range(rel, 0, -1)

    async def read_range(self, rel: str, offset: int, size: int) -> bytes | None:
        with mapped_errors(self.where(rel)):
            try:
                with open(self.path(rel), "rb") as fh:
                    if offset:
                        fh.seek(offset)
                    return fh.read(size)
            except FileNotFoundError:
                return None

    async def write(self, rel: str, data: bytes, mode: int | None = None) -> None:
        with mapped_errors(self.where(rel)):
            with open(await self._create(rel, os.O_TRUNC, mode), "wb") as fh:
                fh.write(data)

    async def overwrite(self, rel: str, data: bytes) -> bool:
        with mapped_errors(self.where(rel)):
            try:
                fd = os.open(self.path(rel), os.O_WRONLY)
            except FileNotFoundError:
                return False
            try:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
            return True

    async def append(self, rel: str, data: bytes, mode: int | None = None) -> None:
        with mapped_errors(self.where(rel)):
            fd = self._append_fds.get(rel)
            if fd is None:
                fd = await self._create(rel, os.O_APPEND, mode)
                self._append_fds[rel] = fd
            view = memoryview(data)
            while view:  # a short write (a full disk): the next one says why
                view = view[os.write(fd, view):]

    async def truncate(self, rel: str, size: int) -> None:
        with mapped_errors(self.where(rel)):
            os.truncate(self.path(rel), size)

    async def scandir(self, rel: str) -> list[Entry] | None:
        with mapped_errors(self.where(rel)):
            try:
                with os.scandir(self.path(rel) or ".") as it:
                    return [e for e in map(_entry, it) if e]
            except FileNotFoundError:
                return None

    async def stat(self, rel: str) -> Entry | None:
        with mapped_errors(self.where(rel)):
            try:
                st = os.lstat(self.path(rel))
            except (FileNotFoundError, NotADirectoryError):
                return None
        return Entry(posixpath.basename(rel), st_mod.S_ISDIR(st.st_mode), st.st_mtime, st.st_size,
                     st_mod.S_ISREG(st.st_mode), st_mod.S_IMODE(st.st_mode))

    async def now(self) -> float:
        return time.time()

    async def get_file(self, remote: str, local: str) -> None:
        with mapped_errors(remote):
            shutil.copyfile(remote, local)

    async def put_tree(self, local_dir: str, remote_dir: str, files: list[str] | None = None) -> int:
        staged: list[tuple[str, str]] = []  # (temporary, final): see SftpStore.put_tree
        try:
            with mapped_errors(remote_dir):
                os.makedirs(remote_dir, exist_ok=True)
                for rel in tree_files(local_dir) if files is None else files:
                    final = os.path.join(remote_dir, rel)
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    staged.append((f"{final}.tmp-{secrets.token_hex(4)}", final))
                    shutil.copyfile(os.path.join(local_dir, rel), staged[-1][0])
                for tmp, final in staged:
                    os.replace(tmp, final)
        except BaseException:
            for tmp, _ in staged:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
        return len(staged)

    async def realpath(self, path: str) -> str:
        return os.path.realpath(os.path.expanduser(path))

    async def close(self) -> None:
        for fd in self._append_fds.values():
            os.close(fd)
        self._append_fds.clear()


def _entry(e: os.DirEntry) -> Entry | None:
    try:
        st = e.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None  # removed while listing
    return Entry(e.name, e.is_dir(follow_symlinks=False), st.st_mtime, st.st_size,
                 e.is_file(follow_symlinks=False))
