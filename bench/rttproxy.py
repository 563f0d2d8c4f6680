#!/usr/bin/env python3
"""A TCP proxy that adds a round-trip time: each direction's bytes are delayed by RTT/2.

    python3 bench/rttproxy.py --target HOST:PORT --rtt MS [--listen PORT] [--max-seconds S]

prints ``listening on 127.0.0.1:PORT`` and forwards every connection to HOST:PORT.  netem is
not available on the project's machines, so this is how the benchmarks and the tests put a
master "far away".

* Delay: every chunk read from one side is written to the other side RTT/2 ms after it was
  read (a timestamped FIFO per direction, so the order of bytes is kept and a connection's
  throughput is not cut to one chunk per delay).
* Bounded: at most ``max_pending`` bytes (default 4 MiB) wait per direction; reading pauses
  while the queue is full, so a fast sender is slowed by TCP flow control, never buffered
  without limit.  A half-close (EOF) is passed on after the same delay.
* Stops by itself: after ``max_seconds`` (default 900 s; the CLI also exits when its parent
  process goes away), closing every connection.

In-process use (tests, bench scripts): ``RttProxy(host, port, rtt_ms).start()`` runs the proxy
in a daemon thread with its own event loop and returns it with ``.port`` set; ``.stop()`` (or
``with RttProxy(...) as p:``) closes it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import threading
import time

CHUNK = 256 * 1024


class _Pipe:
    """One direction of one connection: reader -> delayed FIFO -> writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                 max_pending: int) -> None:
        self.reader, self.writer = reader, writer
        self.delay, self.max_pending = delay, max_pending
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.pending = 0
        self.peak = 0                  # most bytes ever queued (the bound holds: <= max + CHUNK)
        self.more = asyncio.Event()    # something queued
        self.room = asyncio.Event()    # the queue is below its bound
        self.room.set()

    async def pump_in(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.room.wait()
                data = await self.reader.read(CHUNK)
                self.queue.append((loop.time() + self.delay, data))
                self.pending += len(data)
                self.peak = max(self.peak, self.pending)
                if self.pending >= self.max_pending:
                    self.room.clear()
                self.more.set()
                if not data:
                    return
        except (ConnectionError, OSError):
            self.queue.append((loop.time(), b""))
            self.more.set()

    async def pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.more.clear()
                await self.more.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            # Everything due by now goes out in one write (fewer wake-ups and system calls: the
            # proxy's CPU is taken from the processes it stands between).
            now, out = loop.time(), []
            while self.queue and self.queue[0][0] <= now and self.queue[0][1]:
                out.append(self.queue.popleft()[1])
            if out:
                self.pending -= sum(map(len, out))
                if self.pending < self.max_pending:
                    self.room.set()
                self.writer.write(b"".join(out) if len(out) > 1 else out[0])
                await self.writer.drain()
                continue
            self.queue.popleft()  # (the end: EOF)
            if self.writer.can_write_eof():
                self.writer.write_eof()
            return


class RttProxy:
    def __init__(self, target_host: str, target_port: int, rtt_ms: float, listen_port: int = 0,
                 max_pending: int = 4 << 20, max_seconds: float = 900.0,
                 listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay = rtt_ms / 2000.0
        self.listen = (listen_host, listen_port)
        self.max_pending, self.max_seconds = max_pending, max_seconds
        self.port = 0
        self.connections = 0            # accepted so far
        self.peak_pending = 0           # most bytes queued in one direction of one connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- the proxy itself ------------------------------------------------------------------
    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        me = asyncio.current_task()
        self._tasks.add(me)
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.close()
            self._tasks.discard(me)
            return
        up = _Pipe(c_reader, s_writer, self.delay, self.max_pending)
        down = _Pipe(s_reader, c_writer, self.delay, self.max_pending)
        tasks = [asyncio.ensure_future(t) for t in (up.pump_in(), up.pump_out(), down.pump_in(), down.pump_out())]
        self._tasks.update(tasks)
        peak = asyncio.ensure_future(self._watch_peak(up, down))
        tasks.append(peak)
        try:
            # Done when both directions have delivered their EOF, or a write fails.
            outs = {tasks[1], tasks[3]}
            while outs:
                done, _ = await asyncio.wait(outs, return_when=asyncio.FIRST_COMPLETED)
                outs -= done
                if any(t.exception() for t in done if not t.cancelled()):
                    break
        except asyncio.CancelledError:
            pass
        finally:
            for t in tasks:
                t.cancel()
                self._tasks.discard(t)
            for w in (c_writer, s_writer):
                w.close()
            self._tasks.discard(me)

    async def _watch_peak(self, *pipes: _Pipe) -> None:
        while True:
            self.peak_pending = max(self.peak_pending, *(p.peak for p in pipes))
            await asyncio.sleep(0.05)

    async def serve(self, ready: threading.Event | None = None) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, *self.listen)
        self.port = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready.set()
        try:
            await asyncio.wait_for(self._stopped.wait(), self.max_seconds)
        except asyncio.TimeoutError:
            pass
        server.close()
        pending = list(self._tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()

    # -- in a thread -------------------------------------------------------------------------
    def start(self) -> "RttProxy":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.serve(ready))
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="rttproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("rttproxy did not start")
        return self

    def stop(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        assert self._loop is not None and self._stopped is not None
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def __enter__(self) -> "RttProxy":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/rttproxy.py", description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True, metavar="HOST:PORT")
    p.add_argument("--rtt", type=float, required=True, metavar="MS", help="round trip added, ms")
    p.add_argument("--listen", type=int, default=0, metavar="PORT", help="default: a free port")
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long (900)")
    a = p.parse_args(argv)
    host, _, port = a.target.rpartition(":")
    if not host or not port.isdigit():
        print(f"rttproxy: --target must be HOST:PORT, not {a.target!r}", file=sys.stderr)
        return 2
    proxy = RttProxy(host, int(port), a.rtt, a.listen, max_seconds=a.max_seconds).start()
    print(f"listening on 127.0.0.1:{proxy.port}", flush=True)
    parent, end = os.getppid(), time.monotonic() + a.max_seconds
    try:
        while proxy._thread.is_alive() and os.getppid() == parent and time.monotonic() < end:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
