"""Is the node key really SFTP-only?

``restrict,command="internal-sftp"`` in ``~/.ssh/authorized_keys`` gives the key no shell, but
over SFTP it can ``put`` a new ``~/.ssh/authorized_keys`` and then log in with a shell. The key
is SFTP-only when sshd reads its keys from a file the account cannot replace
(``AuthorizedKeysFile /etc/ssh/authorized_keys/%u``, root-owned) — see README and
docs/protocol.md. ``key_can_rewrite_authorized_keys`` checks that from the SFTP session itself,
changing nothing (a probe file it may create is removed at once).
"""

from __future__ import annotations

import fnmatch
import posixpath
import secrets

import asyncssh

SSHD_CONFIG = "/etc/ssh/sshd_config"
DEFAULT_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2")


async def key_can_rewrite_authorized_keys(conn, sshd_config: str = SSHD_CONFIG) -> bool:
    """True if the account ``conn`` logs in as can replace a file sshd reads its authorized
    keys from: it owns the file or a directory above it, or may write it or create it.

    ``conn``: an asyncssh ``SSHClientConnection`` (e.g. ``SftpStore.connection``) or an open
    ``SFTPClient``. ``sshd_config`` is read over SFTP when readable (AuthorizedKeysFile, global
    or in a ``Match User`` block for this account); otherwise sshd's default applies."""
    if hasattr(conn, "start_sftp_client"):
        user = conn.get_extra_info("username") or ""
        async with conn.start_sftp_client() as sftp:
            return await _check(sftp, user, sshd_config)
    user = conn.channel.get_connection().get_extra_info("username") or ""
    return await _check(conn, user, sshd_config)


async def _check(sftp, user: str, sshd_config: str) -> bool:
    home = await sftp.realpath(".")
    uid = await _login_uid(sftp, home)
    try:
        async with sftp.open(sshd_config, "rb") as f:
            text = (await f.read()).decode("utf-8", "replace")
    except (asyncssh.SFTPError, OSError):
        text = ""
    patterns = authorized_keys_files(text, user) or DEFAULT_FILES
    for pattern in patterns:
        path = posixpath.join(home, expand(pattern, home, user, uid))
        if await _replaceable(sftp, posixpath.normpath(path), uid):
            return True
    return False


def authorized_keys_files(config: str, user: str) -> tuple[str, ...]:
    """AuthorizedKeysFile in effect for ``user``: the first global value, unless a ``Match User``
    (or ``Match all``) block for the user sets one (other Match criteria are not evaluated)."""
    section = "global"  # global | match (applies to the user) | other
    found: dict[str, tuple[str, ...]] = {}
    for raw in config.splitlines():
        words = raw.split("#", 1)[0].replace("=", " ", 1).split()
        if not words:
            continue
        key = words[0].lower()
        if key == "match":
            crit = [w.lower() for w in words[1:]]
            section = "match" if crit[:1] == ["all"] or (
                len(crit) == 2 and crit[0] == "user"
                and any(fnmatch.fnmatchcase(user, p) for p in words[2].split(","))) else "other"
        elif key == "authorizedkeysfile" and section != "other" and len(words) > 1:
            found.setdefault(section, tuple(w for w in words[1:] if w.lower() != "none"))
    return found.get("match", found.get("global", ()))


def expand(pattern: str, home: str, user: str, uid: int | None) -> str:
    out = pattern.replace("%%", "\0").replace("%h", home).replace("%u", user)
    out = out.replace("%U", str(uid if uid is not None else "")).replace("\0", "%")
    return out[2:] if out.startswith("~/") else out


async def _login_uid(sftp, home: str) -> int | None:
    """The account's uid: the owner of a probe file it creates (home, else /tmp), else of home."""
    for where in (home, "/tmp"):
        probe = posixpath.join(where, f".ppss-probe-{secrets.token_hex(4)}")
        try:
            async with sftp.open(probe, "xb"):
                pass
        except (asyncssh.SFTPError, OSError):
            continue
        try:
            return (await sftp.lstat(probe)).uid
        finally:
            await _remove(sftp, probe)
    try:
        return (await sftp.stat(home)).uid
    except (asyncssh.SFTPError, OSError):
        return None


async def _replaceable(sftp, path: str, uid: int | None) -> bool:
    missing_to = None  # the deepest existing directory, when everything below it is missing
    blocked = False
    comp = path
    leaf_exists = False
    while True:
        try:
            attrs = await sftp.lstat(comp)
        except asyncssh.SFTPNoSuchFile:
            attrs = None
        except (asyncssh.SFTPError, OSError):
            blocked = True  # cannot look: cannot change anything below either
            attrs = None
        if attrs is not None:
            if uid is not None and attrs.uid == uid:
                return True  # its owner can chmod it, or move it away and make another
            if comp == path:
                leaf_exists = True
            elif missing_to is None and not leaf_exists and not blocked:
                missing_to = comp
        if comp == "/":
            break
        comp = posixpath.dirname(comp)
    if blocked:
        return False
    if leaf_exists:
        try:
            async with sftp.open(path, "ab"):  # opened for writing, nothing written
                return True
        except (asyncssh.SFTPError, OSError):
            return False
    if missing_to is not None:
        probe = posixpath.join(missing_to, f".ppss-probe-{secrets.token_hex(4)}")
        try:
            async with sftp.open(probe, "xb"):
                pass
        except (asyncssh.SFTPError, OSError):
            return False
        await _remove(sftp, probe)
        return True
    return False


async def _remove(sftp, path: str) -> None:
    try:
        await sftp.remove(path)
    except (asyncssh.SFTPError, OSError):
        pass
