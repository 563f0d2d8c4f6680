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
* Acknowledgements as a far client's: what the proxy reads from the server is acknowledged
  one RTT later (``TCP_QUICKACK`` then), when the client's own acknowledgement would arrive
  (ppss's client asks for immediate ACKs: worker/quickack.py), not when the proxy's delayed-ACK
  timer (40 ms) fires. sshd leaves Nagle's algorithm on in an SFTP session, so its second small
  packet in a row waits for that ACK: at every session start (1.7% of a 3,000-item run at
  10 ms). ``client_acks=False`` keeps the proxy's own ACKs.
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
import socket
import sys
import threading
import time

CHUNK = 256 * 1024


class _Direction:
    """One direction of one connection: bytes read from ``src`` are written to ``dst`` ``delay``
    seconds later, in order. Protocol callbacks and one timer, no task per chunk: the proxy's
    CPU is taken from the processes it stands between, on the same CPUs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, max_pending: int, on_done) -> None:
        self.loop, self.delay, self.max_pending, self.on_done = loop, delay, max_pending, on_done
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()  # None: EOF
        self.pending = 0
        self.peak = 0  # most bytes ever held: queued here + the writer's buffer (<= max + CHUNK)
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.ended = False

    def held(self) -> int:
        return self.pending + (self.dst.get_write_buffer_size() if self.dst else 0)

    def feed(self, data: bytes | None) -> None:
        if self.ended or (self.queue and self.queue[-1][1] is None):
            return
        self.queue.append((self.loop.time() + self.delay, data))
        if data:
            self.pending += len(data)
            self.peak = max(self.peak, self.held())
            if self.held() >= self.max_pending and not self.paused and self.src is not None:
                self.src.pause_reading()
                self.paused = True
        if self.timer is None and self.dst is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        """Write everything due by now in one go; then wait for the next due chunk."""
        self.timer = None
        if self.ended or self.dst is None:
            return
        now, out = self.loop.time(), []
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                self._write(out)
                if self.dst.can_write_eof():
                    self.dst.write_eof()
                self.end()
                return
            out.append(data)
        self._write(out)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)
        self.maybe_resume()

    def _write(self, out: list[bytes]) -> None:
        if out:
            self.pending -= sum(map(len, out))
            self.dst.write(out[0] if len(out) == 1 else b"".join(out))

    def maybe_resume(self) -> None:
        if self.paused and self.held() < self.max_pending and self.src is not None and not self.ended:
            self.src.resume_reading()
            self.paused = False

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            if self.timer:
                self.timer.cancel()
            self.queue.clear()
            self.on_done()


QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _End(asyncio.Protocol):
    """One socket of a proxied connection: what it reads goes out through ``out``; ``into``
    writes to it. ``ack_after``: the server's end acknowledges what it read that long after
    (one round trip: when the client's acknowledgement would arrive), not after the proxy's
    own delayed-ACK timer."""

    def __init__(self, out: _Direction, into: _Direction, on_lost, ack_after: float | None = None) -> None:
        self.out, self.into, self.on_lost = out, into, on_lost
        self.transport: asyncio.Transport | None = None
        self.ack_after = ack_after if QUICKACK is not None else None
        self.sock = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.out.src, self.into.dst = transport, transport
        self.sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        self.out.feed(data)
        if self.ack_after is not None and self.sock is not None:
            self.out.loop.call_later(self.ack_after, self.ack)

    def ack(self) -> None:
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        except OSError:
            pass

    def eof_received(self) -> bool:
        self.out.feed(None)
        return True  # half-closed: the other direction goes on

    def resume_writing(self) -> None:
        self.into.maybe_resume()

    def connection_lost(self, exc) -> None:
        self.out.feed(None)
        self.into.end()  # (nothing more can be written to it)
        self.on_lost(self)


class RttProxy:
    def __init__(self, target_host: str, target_port: int, rtt_ms: float, listen_port: int = 0,
                 max_pending: int = 4 << 20, max_seconds: float = 900.0,
                 listen_host: str = "127.0.0.1", client_acks: bool = True) -> None:
        self.target = (target_host, target_port)
        self.client_acks = client_acks  # False: the server gets the proxy's own delayed ACKs
        self.delay = rtt_ms / 2000.0
        self.listen = (listen_host, listen_port)
        self.max_pending, self.max_seconds = max_pending, max_seconds
        self.port = 0
        self.connections = 0            # accepted so far
        self._directions: list[_Direction] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ends: set[_End] = set()

    @property
    def peak_pending(self) -> int:
        """Most bytes held for one direction of one connection (queued + being written)."""
        return max((d.peak for d in self._directions), default=0)

    # -- the proxy itself ------------------------------------------------------------------
    def _accept(self) -> _End:
        """A client connected: connect to the target; the client is not read until then."""
        loop = asyncio.get_running_loop()
        self.connections += 1
        ends: list[_End] = []

        def done() -> None:  # a direction delivered its EOF (or cannot deliver any more)
            if up.ended and down.ended:
                for e in ends:
                    if e.transport is not None:
                        e.transport.close()

        up = _Direction(loop, self.delay, self.max_pending, done)
        down = _Direction(loop, self.delay, self.max_pending, done)
        self._directions += [up, down]
        client = _End(up, down, self._ends.discard)
        ends.append(client)
        self._ends.add(client)

        async def connect() -> None:
            try:
                ack_after = 2 * self.delay if self.client_acks else None
                _, server = await loop.create_connection(
                    lambda: _End(down, up, self._ends.discard, ack_after), *self.target)
            except OSError:
                if client.transport is not None:
                    client.transport.close()
                return
            ends.append(server)
            self._ends.add(server)
            if up.queue and up.timer is None:  # what the client sent meanwhile
                up.timer = loop.call_at(up.queue[0][0], up.flush)

        loop.create_task(connect())
        return client

    async def serve(self, ready: threading.Event | None = None) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.get_running_loop().create_server(self._accept, *self.listen)
        self.port = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready.set()
        try:
            await asyncio.wait_for(self._stopped.wait(), self.max_seconds)
        except asyncio.TimeoutError:
            pass
        server.close()
        for e in list(self._ends):
            if e.transport is not None:
                e.transport.abort()
        await server.wait_closed()
        await asyncio.sleep(0)  # (connection_lost callbacks)

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
