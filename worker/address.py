"""The master address: ``ssh://[user@]host[:port]/path``, ``ssh://host/~/path`` or a local path."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import UsageError


@dataclass(frozen=True)
class MasterAddress:
    path: str  # absolute, or "~/..." relative to the login home (ssh only)
    host: str | None = None  # None: a local path (or a shared mount)
    user: str | None = None
    port: int | None = None

    @property
    def is_local(self) -> bool:
        return self.host is None

    def display(self) -> str:
        if self.is_local:
            return self.path
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.path.startswith("/") else "/" + self.path
        return f"ssh://{user}{host}{port}{path}"

    def join(self, *parts: str) -> str:
        return posixpath.join(self.path, *parts)


def parse_address(text: str) -> MasterAddress:
    """Parse a master address; raise UsageError with a one-line reason."""
    if not text:
        raise UsageError("empty master address (expected ssh://[user@]host[:port]/path or a local path)")
    if "://" not in text:
        return MasterAddress(path=os.path.abspath(os.path.expanduser(text)))
    scheme, rest = text.split("://", 1)
    if scheme != "ssh":
        raise UsageError(f"{text}: unsupported scheme {scheme!r} (expected ssh://[user@]host[:port]/path)")
    netloc, sep, path = rest.partition("/")
    if not sep or not path.strip("/"):
        raise UsageError(f"{text}: no job path (expected ssh://[user@]host[:port]/path)")
    path = unquote(path)
    path = path if path.startswith("~") else "/" + path
    user = None
    if "@" in netloc:
        user, netloc = netloc.rsplit("@", 1)
        user = unquote(user)
        if not user:
            raise UsageError(f"{text}: empty user name")
    port: int | None = None
    if netloc.startswith("["):
        host, bracket, tail = netloc[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if not bracket or (tail and not tail.startswith(":")):
            raise UsageError(f"{text}: malformed host {netloc!r}")
    else:
        host, _, port_text = netloc.partition(":")
    if not host:
        raise UsageError(f"{text}: no host")
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise UsageError(f"{text}: bad port {port_text!r}")
        port = int(port_text)
    path = posixpath.normpath(path)
    if path.startswith("~") and path != "~" and not path.startswith("~/"):
        raise UsageError(f"{text}: only ~/path (the login home) is supported, not {path.split('/')[0]}")
    return MasterAddress(path=path, host=host, user=user, port=port)
