"""bench/rttproxy.py: the delaying TCP proxy the benchmarks (and later tests) put in front of
a master's sshd.  Real sockets, a real echo server and a real sshd; no mocks."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from sshcluster import SshCluster, ssh_run

_spec = importlib.util.spec_from_file_location(
    "rttproxy", Path(__file__).resolve().parent.parent / "bench" / "rttproxy.py")
rttproxy = importlib.util.module_from_spec(_spec)
sys.modules["rttproxy"] = rttproxy
_spec.loader.exec_module(rttproxy)


@pytest.fixture
def echo_server():
    """A threaded TCP echo server on 127.0.0.1; yields its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


def _roundtrip(port: int, payload: bytes) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t = time.monotonic()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk, "proxy closed the connection early"
            got += chunk
        return got, time.monotonic() - t


def test_each_round_trip_is_delayed_by_the_rtt(echo_server):
    with rttproxy.RttProxy("127.0.0.1", echo_server, rtt_ms=80) as p:
        for _ in range(3):
            got, dt = _roundtrip(p.port, b"ping")
            assert got == b"ping"
            assert dt >= 0.079, f"round trip {dt * 1000:.1f} ms through an 80 ms proxy"


def test_bytes_arrive_whole_and_in_order_through_a_small_bound(echo_server):
    payload = os.urandom(3 << 20)
    # A bound far below the payload: reading must pause and resume without losing a byte.
    with rttproxy.RttProxy("127.0.0.1", echo_server, rtt_ms=4, max_pending=64 << 10) as p:
        got, _ = _roundtrip(p.port, payload)
    assert got == payload


def test_eof_is_passed_on(echo_server):
    with rttproxy.RttProxy("127.0.0.1", echo_server, rtt_ms=10) as p:
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            s.sendall(b"last words")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(1024):
                got += chunk
    assert got == b"last words"


def test_stops_by_itself_after_max_seconds(echo_server):
    p = rttproxy.RttProxy("127.0.0.1", echo_server, rtt_ms=0, max_seconds=0.5).start()
    port = p.port
    p._thread.join(5)
    assert not p._thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.ssh
def test_real_ssh_session_through_the_proxy(require_sshd, tmp_path):
    with SshCluster(tmp_path / "c", n_nodes=0) as cluster:
        with rttproxy.RttProxy("127.0.0.1", cluster.master.port, rtt_ms=20) as p:
            # The proxy's port needs its own known_hosts line (same host key, another port).
            with open(cluster.known_hosts, "a") as fh:
                fh.write(f"[127.0.0.1]:{p.port} {cluster.master.host_key_pub}\n")
            cluster.master.port, real = p.port, cluster.master.port
            try:
                r = ssh_run(cluster.master, cluster, "echo", "through-the-proxy")
            finally:
                cluster.master.port = real
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "through-the-proxy"
            assert p.connections == 1


def test_a_reader_that_stops_reading_holds_the_queue_to_its_bound():
    """The far side never reads: the proxy must stop reading too (flow control), not buffer
    everything the sender offers."""
    sink = socket.create_server(("127.0.0.1", 0))
    bound = 256 << 10
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(sink.accept()[0]), daemon=True).start()
    with rttproxy.RttProxy("127.0.0.1", sink.getsockname()[1], rtt_ms=2, max_pending=bound) as p:
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            s.settimeout(2.0)
            sent = 0
            block = b"x" * (1 << 20)
            try:
                while sent < (256 << 20):
                    sent += s.send(block)
            except TimeoutError:
                pass
            time.sleep(0.3)
            assert sent < (256 << 20), "the sender was never slowed down"
            assert 0 < p.peak_pending <= bound + rttproxy.CHUNK
    for c in held:
        c.close()
    sink.close()


@pytest.fixture
def nagle_server():
    """A server that answers each byte with two small writes in a row, Nagle's algorithm on (as
    sshd in an SFTP session): its second write waits until the first is acknowledged."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while conn.recv(100):
                    conn.send(b"a")
                    conn.send(b"b")

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def _second_write_gaps(port: int, n: int = 12) -> list[float]:
    """ms between the two small writes' arrivals, for n exchanges."""
    gaps = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            s.sendall(b"x")
            got, first = s.recv(10), time.monotonic()
            while len(got) < 2:
                got += s.recv(10)
            gaps.append((time.monotonic() - first) * 1000)
            time.sleep(0.01)
    return sorted(gaps)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux's TCP_QUICKACK")
def test_the_server_gets_acks_a_round_trip_later_as_from_a_far_client(nagle_server) -> None:
    """The server's second small write waits for the first one's ACK: with the proxy about one
    RTT (a far client that acknowledges at once: worker/quickack.py), not the proxy's own
    delayed-ACK timer (40 ms on Linux)."""
    with rttproxy.RttProxy("127.0.0.1", nagle_server, rtt_ms=4) as p:
        like_client = _second_write_gaps(p.port)
    with rttproxy.RttProxy("127.0.0.1", nagle_server, rtt_ms=4, client_acks=False) as p:
        own_acks = _second_write_gaps(p.port)
    assert like_client[len(like_client) // 2] < 20, like_client
    assert own_acks[len(own_acks) // 2] >= 30, own_acks  # (what the benchmarks saw before)
