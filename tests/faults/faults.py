#!/usr/bin/env python3
"""Black-box fault-injection suite for the `ringwire serve` WebSocket server.

Every scenario runs once per requested backend against a fresh
`ringwire serve` child process on a free loopback port.  While it runs, a
sampler reads the server's RSS and open file descriptors every 200 ms (and
SIGKILLs it if RSS passes the memory limit, which fails the scenario), and
where the scenario asks for one, a canary /echo connection in a separate
helper process measures echo latency.  Each scenario has a hard time bound.

The clients are raw sockets with hand-made RFC 6455 framing (masked client
frames built once with a fixed mask key, an incremental parser for the
server's frames), so every byte on the wire is under the test's control.

    tests/faults/faults.py [--short|--long] [--backend uring|epoll|both]
                           [--bin PATH] [--json FILE] [--serve-arg=ARG]...
                           [SCENARIO...]

tests/faults/README.md describes each scenario and its pass criteria.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import dataclasses
import errno
import hashlib
import json
import math
import os
import random
import re
import resource
import shutil
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
HOST = "127.0.0.1"

# What the server is configured with (`ringwire serve` defaults).
SERVER_CLOSE_TIMEOUT = 5.0  # waits this long for the peer's close frame
SERVER_GRACE = 5.0  # SIGTERM: 1001 to every client, then this long at most
HANDSHAKE_TIMEOUT = 10.0  # a connection that never finishes its upgrade

MASK_KEY = b"\x5a\x13\xc7\x2e"  # fixed: frames are built once, then re-sent
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

REPO_ROOT = Path(__file__).resolve().parents[2]

# Scenario sizes: --short (CI) and --long (the full-size run).
SIZES = {
    "short": dict(
        slow_readers=2000, slow_seconds=5, broadcast_readers=50, broadcast_seconds=5,
        stuck_repeats=1, half_close_iters=20, error_close_iters=20, flood_seconds=10,
        soak_seconds=300,
    ),
    "long": dict(
        slow_readers=2000, slow_seconds=20, broadcast_readers=50, broadcast_seconds=20,
        stuck_repeats=3, half_close_iters=50, error_close_iters=50, flood_seconds=60,
        soak_seconds=300,
    ),
}


def log(msg: str) -> None:
    """Progress output (verdict lines are printed separately)."""
    print(f"  . {msg}", flush=True)


# ---------------------------------------------------------------------------
# Framing (RFC 6455)
# ---------------------------------------------------------------------------


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XORs data with the repeating 4-byte key (fast: one big-int XOR)."""
    n = len(data)
    if n == 0 or key == b"\0\0\0\0":
        return bytes(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def build_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                mask: bytes | None = MASK_KEY) -> bytes:
    """One frame; masked with `mask` (None: unmasked, a protocol error for a client)."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is None:
        return hdr + payload
    return hdr + mask + mask_bytes(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclasses.dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (None when it carries none)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


def _header_len(hdr: bytes | bytearray) -> int:
    """Bytes in the frame header starting at hdr[0] (2 until both first bytes are known)."""
    if len(hdr) < 2:
        return 2
    n = hdr[1] & 0x7F
    return 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if hdr[1] & 0x80 else 0)


def _payload_len(hdr: bytes | bytearray) -> int:
    n = hdr[1] & 0x7F
    if n == 126:
        return int.from_bytes(hdr[2:4], "big")
    if n == 127:
        return int.from_bytes(hdr[2:10], "big")
    return n


def parse_frame(buf: bytearray) -> tuple[Frame, int] | None:
    """Parses one frame at the start of buf: (frame, bytes used), or None if incomplete."""
    if len(buf) < 2:
        return None
    hlen = _header_len(buf)
    if len(buf) < hlen:
        return None
    plen = _payload_len(buf)
    if len(buf) < hlen + plen:
        return None
    payload = bytes(buf[hlen:hlen + plen])
    if buf[1] & 0x80:  # a masked server frame would be a server bug; unmask anyway
        payload = mask_bytes(payload, bytes(buf[hlen - 4:hlen]))
    b0 = buf[0]
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload), hlen + plen


class FrameCounter:
    """Counts the frames of a byte stream without keeping their payloads
    (for the chat sender, which reads hundreds of MB per second)."""

    def __init__(self) -> None:
        self.by_opcode: collections.Counter[int] = collections.Counter()
        self.bytes = 0
        self._hdr = bytearray()
        self._skip = 0

    def feed(self, data: memoryview) -> None:
        self.bytes += len(data)
        i, n = 0, len(data)
        while True:
            if self._skip:
                if i >= n:
                    return
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            need = _header_len(self._hdr)
            if len(self._hdr) >= need:
                self.by_opcode[self._hdr[0] & 0x0F] += 1
                self._skip = _payload_len(self._hdr)
                self._hdr.clear()
                continue
            if i >= n:
                return
            take = min(need - len(self._hdr), n - i)
            self._hdr += data[i:i + take]
            i += take


def split_frames(frames: list[Frame]) -> tuple[list[tuple[int, bytes]], list[int | None], bool]:
    """Assembles data frames into messages: (messages, close codes, data seen after a close)."""
    msgs: list[tuple[int, bytes]] = []
    closes: list[int | None] = []
    partial: tuple[int, list[bytes]] | None = None
    data_after_close = False
    for f in frames:
        if f.opcode == OP_CLOSE:
            closes.append(f.close_code)
        elif f.opcode in (OP_PING, OP_PONG):
            continue
        else:
            if closes:
                data_after_close = True
            if f.opcode == OP_CONT and partial is not None:
                partial[1].append(f.payload)
            else:
                partial = (f.opcode, [f.payload])
            if f.fin and partial is not None:
                msgs.append((partial[0], b"".join(partial[1])))
                partial = None
    return msgs, closes, data_after_close


# ---------------------------------------------------------------------------
# Raw WebSocket client
# ---------------------------------------------------------------------------


class PeerClosed(ConnectionError):
    """The server ended the TCP connection; `how` is 'eof' or 'reset'."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


@dataclasses.dataclass
class Exchange:
    """What WsClient.exchange saw: the frames, how the stream ended
    ('eof', 'reset' or 'timeout'), and a send error if writing failed."""
    frames: list[Frame]
    end: str
    send_error: str | None = None
    sent: int = 0


def tcp_connect(port: int, *, timeout: float = 5.0, rcvbuf: int | None = None,
                sndbuf: int | None = None) -> socket.socket:
    """A connected TCP socket to the server (buffer sizes set before connect)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.connect((HOST, port))
    except BaseException:
        s.close()
        raise
    return s


def err_name(e: BaseException) -> str:
    """'ConnectionResetError', or 'OSError(ENOTCONN)' when the class says less than errno."""
    name = type(e).__name__
    code = getattr(e, "errno", None)
    if name == "OSError" and code in errno.errorcode:
        return f"OSError({errno.errorcode[code]})"
    return name


def wait_io(fileobj, *, read: bool = False, write: bool = False,
            timeout: float | None = None) -> tuple[bool, bool]:
    """poll() for readability/writability: (readable, writable).  (select()
    cannot wait on fds >= 1024, and the slow-readers scenario has 2000.)"""
    poller = select.poll()
    poller.register(fileobj, (select.POLLIN if read else 0) | (select.POLLOUT if write else 0))
    events = poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
    mask = events[0][1] if events else 0
    hup = mask & (select.POLLERR | select.POLLHUP)
    return bool(mask & select.POLLIN or (read and hup)), bool(mask & select.POLLOUT or (write and hup))


def abort_socket(s: socket.socket) -> None:
    """Closes with RST (SO_LINGER 0)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def upgrade_request(port: int, path: str, key: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


class WsClient:
    """A raw-socket WebSocket client: HTTP upgrade (checked: 101 and
    Sec-WebSocket-Accept), masked frames out, server frames parsed in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    @classmethod
    def connect(cls, port: int, path: str = "/echo", *, timeout: float = 5.0,
                rcvbuf: int | None = None, sndbuf: int | None = None) -> WsClient:
        """Connects and upgrades; raises on any failure (closing the socket)."""
        sock = tcp_connect(port, timeout=timeout, rcvbuf=rcvbuf, sndbuf=sndbuf)
        client = cls(sock)
        try:
            client.upgrade(port, path, timeout)
        except BaseException:
            sock.close()
            raise
        return client

    def upgrade(self, port: int, path: str, timeout: float) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.settimeout(timeout)
        self.sock.sendall(upgrade_request(port, path, key))
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 16 * KIB:
                raise ConnectionError("upgrade response headers too long")
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ConnectionError(f"upgrade refused: {lines[0]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise ConnectionError("wrong Sec-WebSocket-Accept")

    def send(self, opcode: int, payload: bytes = b"") -> None:
        self.sock.sendall(build_frame(opcode, payload))

    def send_close(self, code: int = 1000) -> None:
        self.sock.sendall(build_frame(OP_CLOSE, close_payload(code)))

    def _fill(self, deadline: float | None) -> None:
        """Reads more bytes into buf; PeerClosed on EOF/RST, socket.timeout past deadline."""
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
        try:
            data = self.sock.recv(256 * KIB)
        except ConnectionResetError:
            raise PeerClosed("reset") from None
        if not data:
            raise PeerClosed("eof")
        self.buf += data

    def recv_frame(self, timeout: float | None) -> Frame:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            parsed = parse_frame(self.buf)
            if parsed:
                frame, used = parsed
                del self.buf[:used]
                return frame
            self._fill(deadline)

    def exchange(self, data: bytes, *, shut_wr: bool, timeout: float) -> Exchange:
        """Writes data (then SHUT_WR if asked) while reading whatever comes
        back, until EOF, RST or the timeout; never blocks on a full buffer."""
        sock = self.sock
        sock.setblocking(False)
        frames: list[Frame] = []
        view, off = memoryview(data), 0
        send_error = None
        deadline = time.monotonic() + timeout
        if not data and shut_wr:
            sock.shutdown(socket.SHUT_WR)
        end = "timeout"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            writing = off < len(data) and send_error is None
            readable, writable = wait_io(sock, read=True, write=writing, timeout=left)
            if writable:
                try:
                    off += sock.send(view[off:off + 256 * KIB])
                except BlockingIOError:
                    pass
                except OSError as e:
                    send_error = err_name(e)
                if off == len(data) and shut_wr and send_error is None:
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError as e:
                        send_error = f"shutdown {err_name(e)}"
            if readable:
                try:
                    chunk = sock.recv(256 * KIB)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    end = "reset"
                    break
                if not chunk:
                    end = "eof"
                    break
                self.buf += chunk
                while (parsed := parse_frame(self.buf)) is not None:
                    frames.append(parsed[0])
                    del self.buf[:parsed[1]]
        return Exchange(frames, end, send_error, off)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def drain(sock: socket.socket, timeout: float) -> str:
    """Reads and discards until EOF ('eof'), RST ('reset') or the timeout ('timeout')."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            sock.settimeout(left)
            if not sock.recv(64 * KIB):
                return "eof"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return f"error:{err_name(e)}"


def peer_state(sock: socket.socket, max_bytes: int = 256 * KIB) -> str:
    """Without blocking: 'eof' or 'reset' if the server has closed this
    connection (reading up to max_bytes of buffered data), else 'open'."""
    sock.setblocking(False)
    got = 0
    try:
        while got < max_bytes:
            data = sock.recv(64 * KIB)
            if not data:
                return "eof"
            got += len(data)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError:
        return "reset"
    return "open"


def open_many(port: int, path: str, n: int, *, rcvbuf: int | None = None,
              workers: int = 16, stop: threading.Event | None = None) -> tuple[list[WsClient], collections.Counter]:
    """Opens n upgraded connections with a thread pool: (clients, error counts)."""
    errors: collections.Counter[str] = collections.Counter()

    def one(_: int) -> WsClient | None:
        if stop is not None and stop.is_set():
            return None
        try:
            return WsClient.connect(port, path, timeout=15.0, rcvbuf=rcvbuf)
        except Exception as e:  # noqa: BLE001 - counted, reported
            errors[type(e).__name__] += 1
            return None

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        clients = [c for c in pool.map(one, range(n)) if c is not None]
    return clients, errors


# ---------------------------------------------------------------------------
# The server under test, and its sampler/watchdog
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """A `ringwire serve` child on a free loopback port, stderr and stdout to files."""

    def __init__(self, binary: str, backend: str, serve_args: list[str], workdir: Path) -> None:
        self.binary, self.backend, self.serve_args = binary, backend, serve_args
        self.workdir = workdir
        self.stderr_path = workdir / "server.stderr"
        self.stdout_path = workdir / "server.stdout"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.stopping = False  # set once the test itself stops it (SIGTERM/kill)

    def start(self, ready_timeout: float = 15.0) -> None:
        self.port = free_port()
        cmd = [self.binary, "serve", "--listen", f"{HOST}:{self.port}",
               "--backend", self.backend, *self.serve_args]
        env = {k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "RINGWIRE_BACKEND")}
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        _LIVE_SERVERS.add(self)
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"server exited at start-up (rc {self.proc.returncode}): "
                                   f"{self.log_text()[-500:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=1.0).close()
                time.sleep(0.3)  # let it log and drop the readiness probe
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server not accepting connections after %.0f s" % timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int | None:
        """VmRSS in bytes (None once the process is gone)."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * KIB
        except OSError:
            pass
        return None

    def fds(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def log_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, start: int = 0, end: int | None = None) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(max(0, end - start))
        return data.decode("utf-8", "replace")

    def sigterm(self, timeout: float = 10.0) -> tuple[float | None, int | None]:
        """SIGTERM; (seconds to exit or None if it had to be SIGKILLed, exit status)."""
        self.stopping = True
        if not self.alive():
            return None, self.proc.returncode
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
            return time.monotonic() - t, rc
        except subprocess.TimeoutExpired:
            self.kill()
            return None, self.proc.returncode

    def kill(self) -> None:
        self.stopping = True
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        _LIVE_SERVERS.discard(self)


_LIVE_SERVERS: set[Server] = set()


class Sampler(threading.Thread):
    """Samples the server's RSS and fd count every `interval` seconds; the
    watchdog SIGKILLs the server if RSS passes `rss_limit`."""

    def __init__(self, server: Server, rss_limit: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="sampler")
        self.server, self.rss_limit, self.interval = server, rss_limit, interval
        self.t0 = time.monotonic()
        self.timeline: list[tuple[float, int, int]] = []  # (seconds, rss bytes, fds)
        self.peak_rss = 0
        self.peak_fds = 0
        self.killed_rss: int | None = None  # RSS that triggered the watchdog
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss, fds = self.server.rss(), self.server.fds()
            if rss is None or fds is None:
                if not self.server.alive():
                    return
            else:
                self.timeline.append((time.monotonic() - self.t0, rss, fds))
                self.peak_rss = max(self.peak_rss, rss)
                self.peak_fds = max(self.peak_fds, fds)
                if rss > self.rss_limit:
                    self.killed_rss = rss
                    log(f"watchdog: RSS {fmt_bytes(rss)} > {fmt_bytes(self.rss_limit)}: SIGKILL")
                    self.server.kill()
                    return
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def wait_rss_below(self, threshold: int, timeout: float) -> tuple[bool, int | None, float]:
        """Waits until RSS < threshold: (reached, last RSS, seconds waited)."""
        t = time.monotonic()
        rss = self.server.rss()
        while time.monotonic() - t < timeout and self.server.alive():
            rss = self.server.rss()
            if rss is not None and rss < threshold:
                return True, rss, time.monotonic() - t
            time.sleep(0.2)
        return False, rss, time.monotonic() - t

    def rss_at(self, seconds: float) -> int | None:
        """RSS of the sample nearest to `seconds` after the sampler started."""
        if not self.timeline:
            return None
        return min(self.timeline, key=lambda s: abs(s[0] - seconds))[1]


# ---------------------------------------------------------------------------
# Canary and prober (run in a helper process: their timing is not
# disturbed by this process's load threads and its GIL)
# ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class Canary:
    """One /echo connection: a small text message every `interval`, waiting
    for its echo; no echo within `miss_after` (or a lost connection) is a miss."""

    def __init__(self, port: int, interval: float = 0.010, miss_after: float = 1.0) -> None:
        self.port, self.interval, self.miss_after = port, interval, miss_after
        self.latencies: list[float] = []
        self.sent = self.misses = self.connect_failures = 0
        self.miss_at: list[float] = []
        self.first_echo = threading.Event()

    def _connect(self, stop: threading.Event) -> WsClient | None:
        while not stop.is_set():
            try:
                return WsClient.connect(self.port, "/echo", timeout=2.0)
            except OSError:
                self.connect_failures += 1
                stop.wait(0.2)
        return None

    def run(self, stop: threading.Event) -> None:
        t_start = time.monotonic()
        client = self._connect(stop)
        next_at = time.monotonic()
        while client is not None and not stop.is_set():
            self.sent += 1
            payload = f"canary {self.sent}".encode()
            t = time.monotonic()
            try:
                client.send(OP_TEXT, payload)
                while True:
                    left = t + self.miss_after - time.monotonic()
                    f = client.recv_frame(max(left, 0.001))
                    if f.opcode == OP_CLOSE:
                        client.send_close(1000)
                        raise PeerClosed("close frame")
                    if f.opcode == OP_TEXT and f.payload == payload:
                        self.latencies.append(time.monotonic() - t)
                        self.first_echo.set()
                        break
            except socket.timeout:
                self.misses += 1
                self.miss_at.append(round(t - t_start, 2))
            except OSError:
                self.misses += 1
                self.miss_at.append(round(t - t_start, 2))
                client.close()
                client = self._connect(stop)
            next_at = max(next_at + self.interval, time.monotonic())
            stop.wait(next_at - time.monotonic())
        if client is not None:
            try:
                client.send_close(1000)
            except OSError:
                pass
            client.close()
        self.first_echo.set()

    def result(self) -> dict:
        ms = [x * 1000 for x in self.latencies]
        return {"sent": self.sent, "echoed": len(ms), "misses": self.misses,
                "connect_failures": self.connect_failures, "miss_at_s": self.miss_at[:10],
                "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
                "max_ms": max(ms) if ms else None}


class Prober:
    """Every `interval`: a new connection, upgrade to /echo, one echo, close;
    the whole probe must succeed within `limit` seconds."""

    def __init__(self, port: int, interval: float = 0.5, limit: float = 2.0) -> None:
        self.port, self.interval, self.limit = port, interval, limit
        self.ok = self.total = 0
        self.worst = 0.0
        self.failures: collections.Counter[str] = collections.Counter()

    def probe(self) -> None:
        t = time.monotonic()
        self.total += 1
        try:
            c = WsClient.connect(self.port, "/echo", timeout=self.limit)
            try:
                c.send(OP_TEXT, b"probe")
                while True:
                    f = c.recv_frame(t + self.limit - time.monotonic())
                    if f.opcode == OP_TEXT and f.payload == b"probe":
                        break
                self.ok += 1
                self.worst = max(self.worst, time.monotonic() - t)
                c.send_close(1000)
                try:
                    c.recv_frame(0.2)  # the server's close reply, best effort
                except OSError:
                    pass
            finally:
                c.close()
        except socket.timeout:
            self.failures["timeout"] += 1
        except PeerClosed as e:
            self.failures[e.how] += 1
        except (OSError, ValueError) as e:
            self.failures[err_name(e)] += 1

    def run(self, stop: threading.Event) -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            self.probe()
            next_at = max(next_at + self.interval, time.monotonic())
            stop.wait(next_at - time.monotonic())

    def result(self) -> dict:
        return {"ok": self.ok, "total": self.total, "worst_s": round(self.worst, 3),
                "failures": dict(self.failures)}


def monitor_main(cfg: dict) -> None:
    """Helper-process entry: runs the canary (and prober) until stdin closes
    or max_seconds pass; prints 'ready' once the canary got its first echo,
    and a JSON result line at the end."""
    stop = threading.Event()
    timer = threading.Timer(cfg["max_seconds"], stop.set)
    timer.daemon = True
    timer.start()
    workers: list[tuple[str, object, threading.Thread]] = []
    canary = Canary(cfg["port"]) if cfg.get("canary") else None
    prober = Prober(cfg["port"]) if cfg.get("prober") else None
    for name, obj in (("canary", canary), ("prober", prober)):
        if obj is not None:
            th = threading.Thread(target=obj.run, args=(stop,), daemon=True)
            th.start()
            workers.append((name, obj, th))
    if canary is not None:
        canary.first_echo.wait(10)
    print("ready", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    out = {}
    for name, obj, th in workers:
        th.join(5)
        out[name] = obj.result()
    try:
        print(json.dumps(out), flush=True)
    finally:
        os._exit(0)  # also when the parent is gone (broken pipe)


class Monitor:
    """The parent side of the helper process running the canary/prober."""

    def __init__(self, port: int, *, canary: bool = True, prober: bool = False,
                 max_seconds: float = 600) -> None:
        cfg = {"port": port, "canary": canary, "prober": prober, "max_seconds": max_seconds}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--monitor",
                                      json.dumps(cfg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Waits for the helper's 'ready' (its canary got a first echo)."""
        if wait_io(self.proc.stdout, read=True, timeout=timeout)[0]:
            self.proc.stdout.readline()

    def stop(self) -> dict:
        """Stops the helper and returns its result ({"error": ...} if it failed)."""
        out = ""
        try:
            out, _ = self.proc.communicate(input="", timeout=15)  # stdin EOF: stop
            return json.loads(out.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError, OSError) as e:
            self.kill()
            return {"error": f"{type(e).__name__}: {e} (status {self.proc.returncode}, output {out[-200:]!r})"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------
# Scenario plumbing
# ---------------------------------------------------------------------------


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    if n >= GIB:
        return f"{n / GIB:.2f}GiB"
    if n >= MIB:
        return f"{n / MIB:.0f}MiB"
    return f"{n / KIB:.0f}KiB"


def fmt_ms(x: float | None) -> str:
    return "?" if x is None else f"{x:.1f}"


@dataclasses.dataclass
class Options:
    binary: str
    mode: str  # "short" or "long"
    serve_args: list[str]
    rss_limit: int
    soak_seconds: float | None

    def size(self, key: str):
        if key == "soak_seconds" and self.soak_seconds:
            return self.soak_seconds
        return SIZES[self.mode][key]


@dataclasses.dataclass
class Result:
    scenario: str
    backend: str
    passed: bool
    numbers: dict
    reasons: list[str]
    notes: list[str]
    wall_s: float
    raw: dict  # unformatted numbers: peak RSS/fds in bytes/count, canary/prober results
    timeline: list  # (seconds, RSS bytes, fds) every ~200 ms

    def verdict(self) -> str:
        nums = " ".join(f"{k}={v}" for k, v in self.numbers.items())
        why = "; ".join(self.reasons) if self.reasons else "all criteria met"
        return f"{'PASS' if self.passed else 'FAIL'} {self.scenario} {self.backend}: {nums} ({why})"


class Ctx:
    """What a scenario works with: the server, its sampler, the options,
    a stop event (set at the hard time bound), the numbers it reports and
    the failed criteria."""

    def __init__(self, opts: Options, backend: str, server: Server, sampler: Sampler) -> None:
        self.opts, self.backend, self.server, self.sampler = opts, backend, server, sampler
        self.stop = threading.Event()
        self.numbers: dict = {}
        self.raw: dict = {}
        self.reasons: list[str] = []
        self.notes: list[str] = []  # extra lines printed under the verdict
        self._sockets: list[socket.socket] = []
        self._monitors: list[Monitor] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server.port

    def num(self, **kv) -> None:
        self.numbers.update(kv)

    def check(self, ok: bool, reason: str) -> bool:
        """Records a failed criterion."""
        if not ok:
            self.reasons.append(reason)
        return ok

    def track(self, *objs) -> None:
        """Remembers sockets/clients so they are closed at the end (or the time bound)."""
        with self._lock:
            for o in objs:
                self._sockets.append(o.sock if isinstance(o, WsClient) else o)

    def monitor(self, *, canary: bool = True, prober: bool = False) -> Monitor:
        m = Monitor(self.port, canary=canary, prober=prober, max_seconds=900)
        self._monitors.append(m)
        m.wait_ready()
        return m

    def sleep(self, seconds: float) -> bool:
        """Sleeps; False (early) if the scenario was stopped or the server died."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.wait(min(left, 0.2)) or not self.server.alive():
                return False
        return True

    def stable_fds(self, timeout: float = 5.0) -> int | None:
        """The server's fd count once it has not changed for 0.5 s."""
        last, same, deadline = None, 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.server.fds()
            same = same + 1 if n == last else 0
            last = n
            if same >= 5:
                break
            time.sleep(0.1)
        return last

    def close_all(self, abort: bool = False) -> None:
        """Closes every tracked socket (abort: shutdown first, to wake blocked threads)."""
        with self._lock:
            socks, self._sockets = self._sockets, []
        for s in socks:
            try:
                if abort:
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        for m in self._monitors:
            m.kill()

    def canary_check(self, res: dict, *, judge: bool = True) -> None:
        """Reports the canary numbers; with judge, p99 < 50 ms and 0 misses are criteria."""
        self.raw.update(res)
        c = res.get("canary")
        if not c:
            self.num(canary="none")
            self.check(not judge, f"canary helper failed: {res.get('error')}")
            return
        self.num(canary_p50_ms=fmt_ms(c["p50_ms"]), canary_p99_ms=fmt_ms(c["p99_ms"]),
                 canary_max_ms=fmt_ms(c["max_ms"]), canary_misses=f"{c['misses']}/{c['sent']}")
        if judge:
            self.check(c["p99_ms"] is not None and c["p99_ms"] < 50,
                       f"canary p99 {fmt_ms(c['p99_ms'])} ms >= 50 ms")
            self.check(c["misses"] == 0, f"canary {c['misses']} misses"
                       + (f" (first at {c['miss_at_s'][:3]} s)" if c["miss_at_s"] else ""))


@dataclasses.dataclass
class Scenario:
    name: str
    func: Callable[[Ctx], None]
    budget: Callable[[Options], float]  # hard time bound in seconds
    long_only: bool = False
    doc: str = ""


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, budget: Callable[[Options], float], long_only: bool = False):
    def register(func: Callable[[Ctx], None]):
        SCENARIOS[name] = Scenario(name, func, budget, long_only, (func.__doc__ or "").strip())
        return func
    return register


def run_scenario(scn: Scenario, backend: str, opts: Options) -> Result:
    """Runs one scenario on one backend against a fresh server, within its hard time bound."""
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"rw-faults-{scn.name}-{backend}-"))
    server = Server(opts.binary, backend, opts.serve_args, workdir)
    try:
        server.start()
    except Exception as e:  # noqa: BLE001
        server.kill()
        return Result(scn.name, backend, False, {}, [f"server did not start: {e}"],
                      [f"server output: {workdir}"], round(time.monotonic() - t_start, 1), {}, [])
    sampler = Sampler(server, opts.rss_limit)
    sampler.start()
    ctx = Ctx(opts, backend, server, sampler)
    errors: list[str] = []

    def body() -> None:
        try:
            scn.func(ctx)
        except Exception:  # noqa: BLE001 - a scenario bug or an unexpected server reaction
            errors.append(traceback.format_exc(limit=4).strip().splitlines()[-1])

    budget = scn.budget(opts)
    worker = threading.Thread(target=body, daemon=True, name=scn.name)
    worker.start()
    worker.join(budget)
    if worker.is_alive():
        ctx.reasons.append(f"hard time bound of {budget:.0f} s exceeded")
        ctx.stop.set()
        ctx.close_all(abort=True)
        server.kill()
        worker.join(10)
    ctx.close_all()
    if errors:
        ctx.reasons.append(f"scenario error: {errors[0]}")
    if sampler.killed_rss is not None:
        ctx.reasons.append(f"watchdog killed the server at RSS {fmt_bytes(sampler.killed_rss)}")
    elif server.proc.poll() is not None and not server.stopping:
        ctx.reasons.append(f"server exited unexpectedly (status {server.proc.returncode})")
    if server.alive():  # scenarios that do not time their own shutdown
        exit_s, rc = server.sigterm(SERVER_GRACE + 5)
        ctx.notes.append(f"shutdown: SIGTERM exit in {fmt_ms(exit_s)} s, status {rc}")
    server.kill()
    sampler.stop()
    ctx.numbers.setdefault("peak_rss", fmt_bytes(sampler.peak_rss))
    ctx.raw.update(peak_rss_bytes=sampler.peak_rss, peak_fds=sampler.peak_fds)
    if ctx.reasons:
        ctx.notes.append(f"server log: {server.stderr_path}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    timeline = [(round(t, 2), r, f) for t, r, f in sampler.timeline]
    if len(timeline) > 2000:
        timeline = timeline[:: len(timeline) // 2000 + 1]
    return Result(scn.name, backend, not ctx.reasons, ctx.numbers, ctx.reasons, ctx.notes,
                  round(time.monotonic() - t_start, 1), ctx.raw, timeline)


# ---------------------------------------------------------------------------
# Load helpers
# ---------------------------------------------------------------------------


class ChatSender:
    """One /chat client sending a pre-built text message as fast as it can,
    with a second thread that reads (and counts) everything it receives, so
    that it is not itself a slow reader."""

    def __init__(self, ctx: Ctx, size: int = 64 * KIB) -> None:
        self.ctx = ctx
        self.client = WsClient.connect(ctx.port, "/chat", timeout=10.0)
        ctx.track(self.client)
        self.frame = build_frame(OP_TEXT, b"x" * size)
        self.sent = 0
        self.counter = FrameCounter()
        self.error: str | None = None
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._send_loop, daemon=True),
                         threading.Thread(target=self._recv_loop, daemon=True)]

    def start(self) -> None:
        self.client.sock.settimeout(0.5)
        for t in self._threads:
            t.start()

    def _send_loop(self) -> None:
        sock, view = self.client.sock, memoryview(self.frame)
        while not self._halt.is_set() and not self.ctx.stop.is_set():
            off = 0
            while off < len(view):
                try:
                    off += sock.send(view[off:])
                except socket.timeout:
                    if self._halt.is_set():
                        return
                except OSError as e:
                    self.error = self.error or f"send: {type(e).__name__}"
                    return
            self.sent += 1

    def _recv_loop(self) -> None:
        sock, buf = self.client.sock, bytearray(MIB)
        view = memoryview(buf)
        while not self._halt.is_set() and not self.ctx.stop.is_set():
            try:
                n = sock.recv_into(buf)
            except socket.timeout:
                continue
            except OSError as e:
                self.error = self.error or f"recv: {type(e).__name__}"
                return
            if n == 0:
                self.error = self.error or "recv: eof"
                return
            self.counter.feed(view[:n])

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(5)

    @property
    def received(self) -> int:
        return self.counter.by_opcode[OP_TEXT]


def classify_peers(clients: list[WsClient], budget_s: float = 10.0) -> collections.Counter:
    """How many connections the server has closed: counts of 'eof', 'reset', 'open'."""
    counts: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + budget_s
    for c in clients:
        counts["open" if time.monotonic() > deadline else peer_state(c.sock)] += 1
    return counts


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


@scenario("slow-readers", budget=lambda o: o.size("slow_seconds") + 120)
def slow_readers(ctx: Ctx) -> None:
    """N /chat clients that never read, one full-speed 64 KiB sender, a
    canary and a new-connection prober; then memory must fall back and
    SIGTERM must finish within the grace period."""
    n, seconds = ctx.opts.size("slow_readers"), ctx.opts.size("slow_seconds")
    t = time.monotonic()
    readers, errors = open_many(ctx.port, "/chat", n, rcvbuf=4096, stop=ctx.stop)
    ctx.track(*readers)
    log(f"slow-readers {ctx.backend}: {len(readers)}/{n} non-readers open in "
        f"{time.monotonic() - t:.1f} s{' errors ' + str(dict(errors)) if errors else ''}")
    ctx.check(len(readers) == n, f"only {len(readers)}/{n} non-readers connected {dict(errors)}")
    fds_loaded = ctx.server.fds()
    mon = ctx.monitor(canary=True, prober=True)
    sender = ChatSender(ctx)
    sender.start()
    ctx.sleep(seconds)
    sender.stop()
    res = mon.stop()
    peak = ctx.sampler.peak_rss
    fds_end = ctx.server.fds()
    alive = ctx.server.alive()
    peers = classify_peers(readers) if alive else None
    if not ctx.server.alive():  # the watchdog may have struck meanwhile
        peers = None
    for c in readers + [sender.client]:
        c.close()

    ctx.num(peak_rss=fmt_bytes(peak), sent=sender.sent, echoed_to_sender=sender.received)
    ctx.canary_check(res)
    p = res.get("prober", {"ok": 0, "total": 0, "failures": {"helper": 1}})
    ctx.num(probes=f"{p['ok']}/{p['total']}")
    ctx.check(p["total"] > 0 and p["ok"] == p["total"],
              f"probes {p['ok']}/{p['total']} ok {p.get('failures') or ''}".strip())
    ctx.check(peak < GIB, f"RSS peak {fmt_bytes(peak)} >= 1GiB")
    if peers is not None:
        ctx.num(disconnected=peers["eof"] + peers["reset"])
        ctx.notes.append(f"non-readers at the end: server closed {peers['eof'] + peers['reset']} "
                         f"(eof {peers['eof']}, rst {peers['reset']}), still open {peers['open']}; "
                         f"server fds {fds_loaded} loaded -> {fds_end} at the end")
    else:
        ctx.notes.append("non-readers at the end: not counted (the server had died)")
    if sender.error:
        ctx.notes.append(f"sender: {sender.error}")

    if not ctx.server.alive():
        return
    target = max(100 * MIB, peak // 4)
    fell, rss, waited = ctx.sampler.wait_rss_below(target, 15.0)
    ctx.num(fallback_rss=fmt_bytes(rss))
    ctx.check(fell, f"RSS {fmt_bytes(rss)} not below {fmt_bytes(target)} after 15 s")
    exit_s, rc = ctx.server.sigterm(SERVER_GRACE + 5)
    ctx.num(exit_s=fmt_ms(exit_s))
    ctx.check(exit_s is not None and exit_s <= SERVER_GRACE + 1,
              f"SIGTERM exit took {fmt_ms(exit_s)} s (> {SERVER_GRACE + 1:.0f} s)"
              if exit_s is not None else "no exit within 10 s of SIGTERM (SIGKILLed)")
    ctx.check(rc == 0, f"exit status {rc}")


@scenario("fast-broadcast", budget=lambda o: o.size("broadcast_seconds") + 60)
def fast_broadcast(ctx: Ctx) -> None:
    """50 non-reading /chat clients and a full-speed 64 KiB sender: memory
    stays bounded, the sender keeps getting its own broadcasts, the canary
    stays fast."""
    n, seconds = ctx.opts.size("broadcast_readers"), ctx.opts.size("broadcast_seconds")
    readers, errors = open_many(ctx.port, "/chat", n, rcvbuf=4096, stop=ctx.stop)
    ctx.track(*readers)
    ctx.check(len(readers) == n, f"only {len(readers)}/{n} non-readers connected {dict(errors)}")
    mon = ctx.monitor(canary=True)
    sender = ChatSender(ctx)
    sender.start()
    ctx.sleep(seconds)
    sender.stop()
    res = mon.stop()
    peers = classify_peers(readers) if ctx.server.alive() else None
    peak = ctx.sampler.peak_rss
    ctx.num(peak_rss=fmt_bytes(peak), sent=sender.sent, own_broadcasts_received=sender.received)
    ctx.canary_check(res)
    ctx.check(peak < GIB, f"RSS peak {fmt_bytes(peak)} >= 1GiB")
    ctx.check(sender.received > 0, "the sender received none of its own broadcasts")
    if peers is not None:
        ctx.notes.append(f"non-readers closed by the server: {peers['eof'] + peers['reset']}/{n}")
    if sender.error:
        ctx.notes.append(f"sender: {sender.error}")


def pump_until_blocked(sock: socket.socket, frame: bytes, stop: threading.Event, *,
                       block_for: float = 1.0, cap_s: float = 20.0) -> tuple[str, float, int]:
    """Sends frame after frame without ever reading until no byte could be
    written for block_for seconds.  Returns (outcome, t0, bytes sent):
    'blocked' with t0 = when the writes started blocking; 'dropped' if the
    server closed the connection first (t0 = then); 'never-blocked' after
    cap_s; 'stopped'."""
    sock.setblocking(False)
    view, off, sent = memoryview(frame), 0, 0
    start, blocked_since = time.monotonic(), None
    while not stop.is_set():
        now = time.monotonic()
        if blocked_since is not None and now - blocked_since >= block_for:
            return "blocked", blocked_since, sent
        if now - start > cap_s:
            return "never-blocked", now, sent
        try:
            k = sock.send(view[off:])
        except BlockingIOError:
            blocked_since = blocked_since or now
            wait_io(sock, write=True, timeout=0.05)
            continue
        except OSError:
            return "dropped", now, sent
        blocked_since = None
        sent += k
        off = (off + k) % len(frame)
    return "stopped", time.monotonic(), sent


def log_lines(text: str) -> list[str]:
    """The server's log lines without ANSI colours."""
    return [ANSI.sub("", ln).rstrip() for ln in text.splitlines() if ln.strip()]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wait_fds_at_most(ctx: Ctx, baseline: int, until: float) -> float | None:
    """Polls the server's fd count until it is <= baseline: the time it got
    there (monotonic), or None if not by `until`."""
    while time.monotonic() < until and ctx.server.alive() and not ctx.stop.is_set():
        fds = ctx.server.fds()
        if fds is not None and fds <= baseline:
            return time.monotonic()
        time.sleep(0.1)
    return None


STUCK_CAP_S = 15.0  # the writes must block, or the server drop the peer, within this


def stuck_peer_once(ctx: Ctx, run: int, frame: bytes, limit: float) -> tuple[str, str]:
    """One stuck /echo client: (seconds from t0 until the fds were back,
    seconds of sending until t0), formatted for the verdict line."""
    baseline = ctx.stable_fds()
    log_from = ctx.server.log_size()
    client = WsClient.connect(ctx.port, "/echo", timeout=10.0, rcvbuf=4096)
    ctx.track(client)
    t_start = time.monotonic()
    outcome, t0, sent = pump_until_blocked(client.sock, frame, ctx.stop, cap_s=STUCK_CAP_S)
    back_at = None
    if outcome in ("blocked", "dropped"):
        back_at = wait_fds_at_most(ctx, baseline, t0 + 20)
    back = None if back_at is None else back_at - t0
    fds_now = ctx.server.fds()
    state = peer_state(client.sock)
    client.close()
    if outcome == "never-blocked":
        ctx.check(False, f"run {run}: writes never blocked for 1 s and the connection stayed open: "
                  f"the server kept reading ({fmt_bytes(sent)} in {STUCK_CAP_S:.0f} s), fds "
                  f"{fds_now} vs baseline {baseline}")
    elif outcome in ("blocked", "dropped"):
        ctx.check(back is not None and back <= limit,
                  f"run {run}: fds back to baseline {fmt_ms(back)} s after t0 (limit {limit:.0f} s)"
                  if back is not None else
                  f"run {run}: fds not back to baseline {baseline} within 20 s of t0 (now {ctx.server.fds()})")
    lines = log_lines(ctx.server.log_text(log_from))
    what = {"blocked": "then the writes blocked (t0)",
            "dropped": "then the server dropped the connection (t0) while our writes still made progress",
            "never-blocked": "and the writes never blocked", "stopped": "stopped"}[outcome]
    ctx.notes.append(f"run {run}: sent {fmt_bytes(sent)} in {t0 - t_start:.1f} s, {what}; fds back "
                     f"to baseline {baseline} {fmt_ms(back)} s after t0 (then {fds_now}); client "
                     f"socket {state}; {len(lines)} server log lines:")
    ctx.notes.extend(f"  log: {ln[:200]}" for ln in lines[:8])
    tag = {"blocked": "blocked", "dropped": "dropped"}.get(outcome, outcome)
    return ("-" if back is None else fmt_ms(back)), f"{t0 - t_start:.1f}({tag})"


@scenario("stuck-peer", budget=lambda o: o.size("stuck_repeats") * 60 + 30)
def stuck_peer(ctx: Ctx) -> None:
    """An /echo client that sends 64 KiB messages and never reads: once its
    writes block (t0), the server must drop it by t0 + close timeout + 1 s
    (+ 2 s tolerance): its fd count is back to the baseline."""
    limit = SERVER_CLOSE_TIMEOUT + 1 + 2
    frame = build_frame(OP_BINARY, random.Random(7).randbytes(64 * KIB))
    runs = [stuck_peer_once(ctx, run + 1, frame, limit)
            for run in range(ctx.opts.size("stuck_repeats")) if not ctx.stop.is_set()]
    ctx.num(t0_after_s="/".join(r[1] for r in runs), fd_back_s="/".join(r[0] for r in runs),
            limit_s=f"{limit:.0f}")


# -- half-close and error-close ------------------------------------------------

def judge_exchange(ex: Exchange, want: list[tuple[int, bytes]], want_close: int | None,
                   close_optional: bool) -> str | None:
    """None if the exchange got exactly `want`, then (if asked) a close frame
    with `want_close`, then a clean EOF; else what went wrong."""
    msgs, closes, data_after_close = split_frames(ex.frames)
    problems = []
    if msgs != want:
        good = sum(1 for a, b in zip(msgs, want) if a == b)
        problems.append(f"{len(msgs)} messages back ({good}/{len(want)} as sent)")
    if data_after_close:
        problems.append("data after the close frame")
    if want_close is not None and closes[:1] != [want_close]:
        problems.append(f"close codes {closes} (want {want_close})")
    elif want_close is None and closes and not close_optional:
        problems.append(f"unexpected close frame {closes}")
    if ex.send_error:
        problems.append(f"write: {ex.send_error}")
    if ex.end != "eof":
        problems.append(f"ended with {ex.end}")
    return "; ".join(problems) if problems else None


def run_iterations(ctx: Ctx, n: int, once: Callable[[], str | None], workers: int = 8) -> tuple[int, collections.Counter]:
    """Runs `once` n times (a few at a time): (successes, failure descriptions)."""
    failures: collections.Counter[str] = collections.Counter()

    def guarded(_: int) -> str | None:
        if ctx.stop.is_set():
            return "stopped"
        try:
            return once()
        except PeerClosed as e:
            return f"upgrade: {e.how}"
        except OSError as e:
            return f"{err_name(e)}: {e}"

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(guarded, range(n)))
    for o in outcomes:
        if o is not None:
            failures[o] += 1
    return outcomes.count(None), failures


def half_close_variants() -> dict[str, tuple[bytes, list[tuple[int, bytes]], int | None]]:
    """Pre-built wire bytes per variant: (bytes, the messages expected back, close code expected)."""
    one = b"half-close: one message"
    pipelined = [(OP_TEXT, f"pipelined message {i}".encode()) for i in range(10)]
    big = random.Random(1).randbytes(MIB)
    return {
        "a": (build_frame(OP_TEXT, one), [(OP_TEXT, one)], None),
        "b": (b"".join(build_frame(op, p) for op, p in pipelined), pipelined, None),
        "c": (build_frame(OP_BINARY, big), [(OP_BINARY, big)], None),
        "d": (build_frame(OP_TEXT, one) + build_frame(OP_CLOSE, close_payload(1000)),
              [(OP_TEXT, one)], 1000),
    }


@scenario("half-close", budget=lambda o: 4 * (math.ceil(o.size("half_close_iters") / 8) * 12) + 60)
def half_close(ctx: Ctx) -> None:
    """Messages followed by shutdown(SHUT_WR): every echo (and close frame)
    must still arrive, then EOF.  Variants a-d, fresh connection each."""
    n = ctx.opts.size("half_close_iters")
    for name, (data, want, want_close) in half_close_variants().items():
        def once(data=data, want=want, want_close=want_close) -> str | None:
            c = WsClient.connect(ctx.port, "/echo", timeout=10.0)
            try:
                return judge_exchange(c.exchange(data, shut_wr=True, timeout=10.0), want,
                                      want_close, close_optional=True)
            finally:
                c.close()
        ok, failures = run_iterations(ctx, n, once)
        ctx.num(**{name: f"{ok}/{n}"})
        ctx.check(ok == n, f"{name}: {ok}/{n}, e.g. {failures.most_common(1)[0][0]}"
                  if failures else f"{name}: {ok}/{n}")
        for what, count in failures.most_common(3):
            ctx.notes.append(f"{name}: {count}x {what}")


@scenario("error-close", budget=lambda o: math.ceil(o.size("error_close_iters") / 8) * 12 + 60)
def error_close(ctx: Ctx) -> None:
    """A valid 100 KB message, an invalid frame and 256 KiB of garbage in
    one write: the echo, a 1002 close frame, then a clean EOF (not RST)."""
    n = ctx.opts.size("error_close_iters")
    rng = random.Random(2)
    payload = rng.randbytes(100_000)
    garbage = rng.randbytes(256 * KIB)
    invalid = {"opcode 0x3": build_frame(0x3, b"reserved"), "RSV1": build_frame(OP_TEXT, b"rsv1", rsv=4)}
    wires = [build_frame(OP_BINARY, payload) + bad + garbage for bad in invalid.values()]
    counter = iter(range(10 ** 9))

    def once() -> str | None:
        i = next(counter)
        c = WsClient.connect(ctx.port, "/echo", timeout=10.0)
        try:
            problem = judge_exchange(c.exchange(wires[i % 2], shut_wr=True, timeout=10.0),
                                     [(OP_BINARY, payload)], 1002, close_optional=False)
            return problem and f"[{list(invalid)[i % 2]}] {problem}"
        finally:
            c.close()

    ok, failures = run_iterations(ctx, n, once)
    ctx.num(ok=f"{ok}/{n}")
    ctx.check(ok == n, f"{ok}/{n}, e.g. {failures.most_common(1)[0][0]}" if failures else f"{ok}/{n}")
    for what, count in failures.most_common(4):
        ctx.notes.append(f"{count}x {what}")


# -- attacks for log-flood and garbage-soak -------------------------------------

PROTOCOL_ERRORS: dict[str, bytes] = {
    "reserved-opcode": build_frame(0x3, b"x"),
    "reserved-control-opcode": build_frame(0xB, b""),
    "rsv1": build_frame(OP_TEXT, b"x", rsv=4),
    "unmasked": build_frame(OP_TEXT, b"hello", mask=None),
    "long-control": build_frame(OP_PING, b"x" * 126),
    "fragmented-control": build_frame(OP_PING, b"x", fin=False),
    "bad-utf8": build_frame(OP_TEXT, b"ok \xff\xfe"),
    "bad-close-code": build_frame(OP_CLOSE, close_payload(999)),
    "one-byte-close": build_frame(OP_CLOSE, b"\x03"),
    "orphan-continuation": build_frame(OP_CONT, b"x"),
    "interleaved-message": build_frame(OP_TEXT, b"a", fin=False) + build_frame(OP_TEXT, b"b"),
    "too-big": b"\x82\xff" + struct.pack("!Q", 1 << 40) + MASK_KEY,
}

VALID_FRAMES: list[bytes] = [
    build_frame(OP_TEXT, b"hello"),
    build_frame(OP_TEXT, b""),
    build_frame(OP_BINARY, bytes(range(256)) * 8),
    build_frame(OP_BINARY, random.Random(3).randbytes(64 * KIB)),
    build_frame(OP_PING, b"ping"),
    build_frame(OP_PONG, b"pong"),
    build_frame(OP_TEXT, b"frag", fin=False) + build_frame(OP_CONT, b"mented"),
    build_frame(OP_TEXT, "ünïcödé €".encode()),
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation: bit flips, truncation, insertion, a random header byte, duplication."""
    b = bytearray(data)
    op = rng.randrange(6)
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1 and len(b) > 1:
        del b[rng.randrange(1, len(b)):]
    elif op == 2:
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 64))
    elif op == 3:
        b[0] = rng.randrange(256)
    elif op == 4 and len(b) > 1:
        b[1] = rng.randrange(256)
    else:
        b += b[: rng.randint(1, len(b))]
    return bytes(b)


def attack_garbage_request(port: int, rng: random.Random) -> str:
    """Random bytes instead of an HTTP request."""
    s = tcp_connect(port, timeout=2.0)
    try:
        s.sendall(rng.randbytes(rng.randint(16, 4096)))
        return drain(s, 1.0)
    finally:
        s.close()


def attack_mutated_request(port: int, rng: random.Random) -> str:
    """A mutated upgrade request (bit flips, truncation, junk headers, ...)."""
    s = tcp_connect(port, timeout=2.0)
    try:
        req = upgrade_request(port, rng.choice(["/echo", "/chat", "/nope"]), "dGhlIHNhbXBsZSBub25jZQ==")
        if rng.random() < 0.2:
            req = req[:-2] + b"X-Junk: " + b"j" * rng.randint(1000, 20000) + b"\r\n\r\n"
        s.sendall(mutate(req, rng))
        return drain(s, 1.0)
    finally:
        s.close()


def attack_garbage_after_upgrade(port: int, rng: random.Random) -> str:
    """A valid upgrade, then random bytes."""
    c = WsClient.connect(port, rng.choice(["/echo", "/chat"]), timeout=2.0)
    try:
        c.sock.sendall(rng.randbytes(rng.randint(16, 8192)))
        return drain(c.sock, 1.0)
    finally:
        c.close()


def polite_finish(c: WsClient, timeout: float = 1.0, *, answer: bool = True) -> str:
    """Reads until the server's close frame, answers it (unless we sent
    ours first: answer=False), then reads to EOF."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            if c.recv_frame(max(0.01, deadline - time.monotonic())).opcode == OP_CLOSE:
                break
    except PeerClosed as e:
        return e.how
    except socket.timeout:
        return "timeout"
    try:
        if answer:
            c.send_close(1000)
        c.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may already have closed: drain tells how
    return drain(c.sock, max(0.1, deadline - time.monotonic()))


def attack_protocol_error(port: int, rng: random.Random) -> str:
    """A valid upgrade, then one protocol-error frame."""
    c = WsClient.connect(port, "/echo", timeout=2.0)
    try:
        c.sock.sendall(rng.choice(list(PROTOCOL_ERRORS.values())))
        return polite_finish(c)
    finally:
        c.close()


def attack_mutated_frames(port: int, rng: random.Random) -> str:
    """A valid upgrade, a burst of valid and mutated frames, then one of:
    RST, half-close, a close handshake, or just dropping the socket."""
    c = WsClient.connect(port, rng.choice(["/echo", "/echo", "/chat"]), timeout=2.0)
    try:
        pool = VALID_FRAMES + list(PROTOCOL_ERRORS.values())
        burst = [rng.choice(VALID_FRAMES) if rng.random() < 0.5 else mutate(rng.choice(pool), rng)
                 for _ in range(rng.randint(1, 12))]
        c.sock.sendall(b"".join(burst))
        end = rng.random()
        if end < 0.25:
            abort_socket(c.sock)
            return "rst"
        if end < 0.45:
            c.sock.shutdown(socket.SHUT_WR)
            return drain(c.sock, 1.0)
        if end < 0.55:
            return "dropped"
        c.send_close(1000)
        return polite_finish(c, answer=False)
    finally:
        c.close()


def attack_echo(port: int, rng: random.Random) -> str:
    """Plain valid traffic between the attacks: a few echoes and a clean close."""
    c = WsClient.connect(port, "/echo", timeout=2.0)
    try:
        for _ in range(rng.randint(1, 5)):
            c.sock.sendall(rng.choice(VALID_FRAMES[:4]))
        c.send_close(1000)
        return polite_finish(c, 2.0, answer=False)
    finally:
        c.close()


class Churn:
    """Worker threads repeating randomly chosen (weighted) attacks, each on
    a new connection, until stopped; counts attacks and outcomes."""

    def __init__(self, ctx: Ctx, attacks: dict[Callable, float], workers: int, seed: int) -> None:
        self.ctx = ctx
        self.funcs, self.weights = list(attacks), list(attacks.values())
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.count = 0
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(random.Random(seed + i),), daemon=True)
                         for i in range(workers)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _loop(self, rng: random.Random) -> None:
        while not self._halt.is_set() and not self.ctx.stop.is_set():
            func = rng.choices(self.funcs, self.weights)[0]
            try:
                outcome = func(self.ctx.port, rng)
            except OSError as e:
                outcome = f"error:{err_name(e)}"
                self._halt.wait(0.01)  # e.g. connection refused: don't spin
            self.outcomes[f"{func.__name__.removeprefix('attack_')}:{outcome}"] += 1
            self.count += 1

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(5)


class IdleOpener(threading.Thread):
    """Opens a TCP connection every `every` seconds (at most `cap`) that
    never sends a byte; `closed_by_server` checks them at the end."""

    def __init__(self, ctx: Ctx, every: float, cap: int) -> None:
        super().__init__(daemon=True)
        self.ctx, self.every, self.cap = ctx, every, cap
        self.socks: list[tuple[float, socket.socket]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while len(self.socks) < self.cap and not self._halt.wait(self.every) and not self.ctx.stop.is_set():
            try:
                s = tcp_connect(self.ctx.port, timeout=2.0)
            except OSError:
                continue
            self.ctx.track(s)
            self.socks.append((time.monotonic(), s))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def closed_by_server(self, timeout: float) -> tuple[int, int, int, int]:
        """(opened, how many are older than `timeout` + 1 s, how many of those
        the server has closed, how many it closed well before `timeout`)."""
        now, old, old_closed, early = time.monotonic(), 0, 0, 0
        for t, s in self.socks:
            closed = peer_state(s) != "open"
            if now - t > timeout + 1:
                old += 1
                old_closed += closed
            elif now - t < timeout - 0.5:
                early += closed
        return len(self.socks), old, old_closed, early


LOG_FIELD = re.compile(r"\s\w[\w.]*=(\"[^\"]*\"|\S+)")
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+")


def log_kind(line: str) -> str:
    """A log line without its timestamp, key=value fields and numbers."""
    kind = LOG_FIELD.sub("", LOG_TIME.sub("", line))
    return re.sub(r"\d+", "N", kind).strip()[:120]


@scenario("log-flood", budget=lambda o: o.size("flood_seconds") + 60)
def log_flood(ctx: Ctx) -> None:
    """Garbage, idle and protocol-error connections for T seconds: the
    server's log must stay under 200 lines per minute."""
    seconds = ctx.opts.size("flood_seconds")
    time.sleep(0.5)
    log_from = ctx.server.log_size()
    t = time.monotonic()
    mon = ctx.monitor(canary=True)
    idle = IdleOpener(ctx, every=0.05, cap=1000)
    churn = Churn(ctx, {attack_garbage_request: 3, attack_garbage_after_upgrade: 3,
                        attack_protocol_error: 3, attack_mutated_request: 1}, workers=6, seed=10)
    idle.start()
    churn.start()
    ctx.sleep(seconds)
    churn.stop()
    idle.stop()
    res = mon.stop()
    ctx.sleep(1.0)
    window = time.monotonic() - t
    log_to = ctx.server.log_size()
    opened, old, old_closed, early = idle.closed_by_server(HANDSHAKE_TIMEOUT)
    lines = log_lines(ctx.server.log_text(log_from, log_to))
    per_min = len(lines) / (seconds / 60)
    allowed = 200 * seconds / 60
    ctx.num(log_lines=len(lines), log_bytes=log_to - log_from, lines_per_min=f"{per_min:.0f}",
            attacks=churn.count)
    ctx.canary_check(res, judge=False)
    ctx.check(len(lines) < allowed, f"{len(lines)} log lines in {seconds} s "
              f"({per_min:.0f}/min >= 200/min)")
    ctx.notes.append(f"idle connections: {opened} opened; of those older than the "
                     f"{HANDSHAKE_TIMEOUT:.0f} s handshake timeout + 1 s the server closed "
                     f"{old_closed}/{old}; closed more than 0.5 s before the timeout: {early}")
    ctx.notes.append(f"outcomes: {dict(churn.outcomes.most_common(8))}")
    ctx.notes.append(f"(measured over {window:.1f} s: the flood plus 1 s)")
    for kind, count in collections.Counter(map(log_kind, lines)).most_common(5):
        ctx.notes.append(f"  {count:7d}x {kind}")


@scenario("garbage-soak", budget=lambda o: o.size("soak_seconds") + 90, long_only=True)
def garbage_soak(ctx: Ctx) -> None:
    """Mutated frames and garbage with connection churn for 5 minutes: RSS
    must level off (report), no watchdog kill, canary without misses."""
    seconds = ctx.opts.size("soak_seconds")
    t_rel = time.monotonic() - ctx.sampler.t0
    mon = ctx.monitor(canary=True)
    churn = Churn(ctx, {attack_mutated_frames: 6, attack_garbage_after_upgrade: 1,
                        attack_garbage_request: 1, attack_mutated_request: 1,
                        attack_protocol_error: 1, attack_echo: 2}, workers=4, seed=20)
    churn.start()
    marks = [10] + list(range(60, int(seconds) + 1, 60))
    for m in marks:
        if not ctx.sleep(max(0.0, t_rel + m - (time.monotonic() - ctx.sampler.t0))):
            break
        log(f"garbage-soak {ctx.backend}: {m:>3d} s RSS {fmt_bytes(ctx.server.rss())} "
            f"fds {ctx.server.fds()} attacks {churn.count}")
    ctx.sleep(max(0.0, t_rel + seconds - (time.monotonic() - ctx.sampler.t0)))
    churn.stop()
    res = mon.stop()
    per_s = [(t, r) for t, r, _ in ctx.sampler.timeline if t >= t_rel]
    at = {m: ctx.sampler.rss_at(t_rel + m) for m in marks}
    second_half = [(t, r) for t, r in per_s if t >= t_rel + seconds / 2]
    slope = linear_slope(second_half) * 60 / MIB if len(second_half) > 2 else float("nan")
    ctx.num(attacks=churn.count, peak_rss=fmt_bytes(ctx.sampler.peak_rss),
            slope_last_half=f"{slope:+.2f}MiB/min", levels_off="yes" if abs(slope) < 2 else "no")
    ctx.notes.append("RSS at " + ", ".join(f"{m}s={fmt_bytes(r)}" for m, r in at.items()))
    ctx.notes.append(f"outcomes: {dict(churn.outcomes.most_common(10))}")
    ctx.canary_check(res, judge=False)
    c = res.get("canary")
    ctx.check(bool(c) and c["misses"] == 0, f"canary {c['misses'] if c else '?'} misses")


def linear_slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="scenarios:\n" + "\n".join(
                                    f"  {n:15} {' '.join(s.doc.split())}" for n, s in SCENARIOS.items()))
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="run only these (default: all; garbage-soak only with --long or when named)")
    p.add_argument("--bin", default=str(REPO_ROOT / "target/release/ringwire"),
                   help="server binary (default: target/release/ringwire in the repo)")
    p.add_argument("--backend", choices=["uring", "epoll", "both"], default="both")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--short", dest="mode", action="store_const", const="short",
                      help="CI sizes (the default)")
    size.add_argument("--long", dest="mode", action="store_const", const="long",
                      help="full sizes, including garbage-soak")
    p.add_argument("--json", metavar="FILE", help="write the results (with RSS/fd timelines) here")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `ringwire serve` (repeatable; write --serve-arg=--reactors=2)")
    p.add_argument("--rss-limit-mb", type=int, default=2048,
                   help="watchdog: SIGKILL the server above this RSS (default 2048)")
    p.add_argument("--soak-seconds", type=float, help="garbage-soak duration (default 300)")
    p.add_argument("--retries", type=int, default=0,
                   help="run a failed scenario again up to N times (timing criteria on a shared "
                        "2-core machine); every attempt's verdict is printed, the last one counts")
    p.set_defaults(mode="short")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    return args


def raise_fd_limit() -> None:
    """Raises the soft open-files limit to the hard one (the slow readers need ~2000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--monitor"]:
        monitor_main(json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    if not os.access(args.bin, os.X_OK):
        print(f"server binary not found or not executable: {args.bin}", file=sys.stderr)
        return 2
    raise_fd_limit()
    opts = Options(binary=args.bin, mode=args.mode,
                   serve_args=[a for arg in args.serve_arg for a in shlex.split(arg)],
                   rss_limit=args.rss_limit_mb * MIB, soak_seconds=args.soak_seconds)
    names = args.scenarios or [n for n, s in SCENARIOS.items() if opts.mode == "long" or not s.long_only]
    backends = ["uring", "epoll"] if args.backend == "both" else [args.backend]
    print(f"ringwire fault injection ({opts.mode}): {args.bin} {' '.join(opts.serve_args)}".rstrip(), flush=True)
    t0 = time.monotonic()
    results: list[Result] = []
    retried: list[str] = []
    try:
        for name in names:
            for backend in backends:
                for attempt in range(args.retries + 1):
                    again = f" (retry {attempt} of {args.retries})" if attempt else ""
                    print(f"--- {name} [{backend}]{again}", flush=True)
                    r = run_scenario(SCENARIOS[name], backend, opts)
                    print(r.verdict(), flush=True)
                    for note in r.notes:
                        print(f"    {note}", flush=True)
                    if r.passed:
                        break
                    if attempt < args.retries:
                        retried.append(f"{name} {backend}: {r.verdict()}")
                results.append(r)
    finally:
        for s in list(_LIVE_SERVERS):
            s.kill()
    wall = time.monotonic() - t0
    failed = [r for r in results if not r.passed]
    print(f"\n=== summary ({opts.mode}, {wall:.0f} s): {len(results) - len(failed)}/{len(results)} passed")
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'} {r.scenario} {r.backend} ({r.wall_s:.0f} s)")
    for line in retried:
        print(f"retried after: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "mode": opts.mode, "binary": args.bin, "serve_args": opts.serve_args,
            "wall_s": round(wall, 1), "results": [dataclasses.asdict(r) for r in results]}, indent=1))
    return 0 if results and not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
