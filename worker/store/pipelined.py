"""SFTP operations of a few requests sent together (fewer round trips to a far master).

The requests of one step go out at once and the server answers them in order: a small file's
read is open, then read + fstat + close together (2 round trips instead of 4); a write is open,
then write + close (2 instead of 3); a listing reads two batches at once and closes without
waiting.

Over SFTP version 3 (OpenSSH's sftp-server, and so what asyncssh speaks with it) a step's
requests are written straight on asyncssh's SFTP handler and answered through its futures:
what ``asyncio.gather`` over the handler's own calls does, without a task, a coroutine and a
debug line for each request (bench/README.md, "Sixth round"). Another version goes through the
handler's calls. The private parts used are checked by tests/test_store.py.
"""

from __future__ import annotations

import asyncio
import logging

import asyncssh
from asyncssh.packet import String, UInt32, UInt64
from asyncssh.sftp import FXP_CLOSE, FXP_FSTAT, FXP_MKDIR, FXP_OPEN, FXP_READ, FXP_STATUS, FXP_WRITE

QUICK_MAX = 256 * 1024 - 1024  # one read or write request (OpenSSH's sftp-server limit)
DIRECT = True  # False: always through asyncssh's calls (the tests run both ways)

_Sent = tuple[int, asyncio.Future]
_NAMES = {FXP_CLOSE: "close", FXP_FSTAT: "fstat", FXP_MKDIR: "mkdir", FXP_OPEN: "open", FXP_READ: "read",
          FXP_WRITE: "write"}


def background(coro) -> None:
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _direct(h) -> bool:
    return DIRECT and getattr(h, "_version", None) == 3 and hasattr(h, "_send_request")


def _send(h, pkttype: int, *args: bytes) -> _Sent:
    if h.logger.isEnabledFor(logging.DEBUG):  # (asyncssh's own calls log their requests too)
        h.logger.debug1("Sending %s (pipelined)", _NAMES.get(pkttype, pkttype))
    waiter = h._loop.create_future()
    h._send_request(pkttype, args, waiter)
    return pkttype, waiter


def _send_all(h, requests: list[tuple]) -> list[_Sent]:
    """_send each (pkttype, *args); if one cannot go (the channel closed), those sent before
    it are dropped (cancelled: nobody will read their answers) and the error is raised."""
    sent: list[_Sent] = []
    try:
        for pkttype, *args in requests:
            sent.append(_send(h, pkttype, *args))
    except BaseException:
        for _, waiter in sent:
            waiter.cancel()
        raise
    return sent


def _result(h, pkttype: int, resptype: int, resp):
    """The answer as asyncssh's own call gives it, or its error raised (as _make_request)."""
    return_type = h._return_types.get(pkttype)
    if resptype not in (FXP_STATUS, return_type):
        raise asyncssh.SFTPBadMessage(f"Unexpected response type: {resptype}")
    result = h._packet_handlers[resptype](h, resp)
    if result is None and return_type is not None:
        raise asyncssh.SFTPBadMessage("Unexpected FX_OK response")
    return result


async def _answers(h, sent: list[_Sent]) -> list:
    """Each request's result or its error, in order (as gather(..., return_exceptions=True))."""
    out: list = []
    try:
        for pkttype, waiter in sent:
            try:
                out.append(_result(h, pkttype, *await waiter))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an SFTP error, or the connection lost
                out.append(exc)
    finally:
        for _, waiter in sent[len(out):]:
            waiter.cancel()  # (cancelled here: asyncssh drops their answers)
    return out


async def each(coros: list) -> list:
    """``asyncio.gather(*coros, return_exceptions=True)``, without a task when there is one."""
    if len(coros) != 1:
        return await asyncio.gather(*coros, return_exceptions=True)
    try:
        return [await coros[0]]
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return [exc]


async def _step(h, requests, calls) -> list:
    """One step's answers (or errors), in order: ``requests()`` ((pkttype, *args) each) written
    straight over SFTP v3, else ``calls()`` (asyncssh's own coroutines for them)."""
    if _direct(h):
        return await _answers(h, _send_all(h, requests()))
    return await each(calls())


async def _open(sftp: asyncssh.SFTPClient, path: str, pflags: int, attrs: asyncssh.SFTPAttrs) -> bytes:
    h, name = sftp._handler, sftp.compose_path(path)
    (handle,) = await _step(h, lambda: [(FXP_OPEN, String(name), UInt32(pflags), attrs.encode(3))],
                            lambda: [h.open(name, pflags, attrs)])
    if isinstance(handle, BaseException):
        raise handle
    return handle


async def quick_read(sftp: asyncssh.SFTPClient, path: str, whole: bool = True) -> bytes | None:
    """The whole file (SFTPNoSuchFile if missing); a file larger than one request is read
    with asyncssh's parallel reads, or (``whole`` false) gives None."""
    h = sftp._handler
    handle = await _open(sftp, path, asyncssh.FXF_READ, asyncssh.SFTPAttrs())
    size = min(QUICK_MAX, getattr(getattr(sftp, "limits", None), "max_read_len", QUICK_MAX))
    data, attrs, _ = await _step(
        h, lambda: [(FXP_READ, String(handle), UInt64(0), UInt32(size)), (FXP_FSTAT, String(handle)),
                    (FXP_CLOSE, String(handle))],
        lambda: [h.read(handle, 0, size), h.fstat(handle, 0x800001FD), h.close(handle)])
    if isinstance(data, asyncssh.SFTPEOFError):
        data = (b"", False)
    for r in (data, attrs):
        if isinstance(r, BaseException):
            raise r
    if attrs.size is not None and attrs.size > len(data[0]):
        if not whole:
            return None
        async with sftp.open(path, "rb") as fh:  # larger than one request (or growing)
            return await fh.read()
    return data[0]


async def quick_write(sftp: asyncssh.SFTPClient, path: str, data: bytes,
                      attrs: asyncssh.SFTPAttrs | None = None) -> None:
    attrs = attrs or asyncssh.SFTPAttrs()
    if len(data) > QUICK_MAX:
        async with sftp.open(path, "wb", attrs) as fh:
            await fh.write(data)
        return
    h = sftp._handler
    handle = await _open(sftp, path, asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC, attrs)
    for r in await _step(h, lambda: [(FXP_WRITE, String(handle), UInt64(0), String(data)), (FXP_CLOSE, String(handle))],
                         lambda: [h.write(handle, 0, data), h.close(handle)]):
        if isinstance(r, BaseException):
            raise r


async def mkdirs(sftp: asyncssh.SFTPClient, paths: list[str], attrs: asyncssh.SFTPAttrs) -> list:
    """mkdir each path, all sent at once: None for each made, else its error."""
    encoded = attrs.encode(3)
    return await _step(getattr(sftp, "_handler", None),
                       lambda: [(FXP_MKDIR, String(sftp.compose_path(p)), encoded) for p in paths],
                       lambda: [sftp.mkdir(p, attrs) for p in paths])


async def quick_listdir(sftp: asyncssh.SFTPClient, path: str) -> list:
    h = sftp._handler
    handle = await h.opendir(sftp.compose_path(path))
    names: list = []
    try:
        while True:
            batches = await asyncio.gather(h.readdir(handle), h.readdir(handle), return_exceptions=True)
            for b in batches:
                if isinstance(b, asyncssh.SFTPEOFError):
                    return names
                if isinstance(b, BaseException):
                    raise b
                for n in b[0]:
                    n.filename = sftp.decode(n.filename)
                names += b[0]
    finally:
        background(h.close(handle))
