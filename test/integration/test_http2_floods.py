"""HTTP/2 attacks (issue 16): each flood is sent by hand, frame by frame,
and lb must end the connection (or shrug) with its CPU time and memory
bounded, and go on serving others. Figures are printed (pytest -s)."""
import socket
import struct
import time

import pytest

from conftest import Replica, cpu_seconds, free_port, http_config, proc_status_kb, wait_until

hpack = pytest.importorskip("hpack")

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL, ENHANCE_YOUR_CALM = 0x8, 0xb


def frame(kind, flags, stream, payload=b""):
    return struct.pack("!I", len(payload))[1:] + bytes([kind, flags]) + struct.pack("!I", stream) + payload


def block(path="/", method="GET", extra=()):
    return hpack.Encoder().encode([(":method", method), (":path", path), (":scheme", "http"),
                                   (":authority", "t")] + list(extra))


class Raw:
    """A client that writes frames as given and reads until lb closes."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.goaway = None
        self.buf = b""

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:  # lb closed on us: what a flood should get
            return False

    def read_until_closed(self, timeout=20):
        """Read frames until lb closes; remember its GOAWAY error code."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(1)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return True
            if not data:
                return True
            self.buf += data
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                if self.buf[3] == GOAWAY:
                    self.goaway = struct.unpack("!I", self.buf[13:17])[0]
                self.buf = self.buf[9 + length:]
        return False

    def close(self):
        self.sock.close()


@pytest.fixture
def target(procs, lb):
    r = Replica(procs, name="r0").start()
    port = free_port()
    inst = lb(http_config(port, [r.addr], extra_listener="    http2: true", workers=1), port)
    return inst, port, r


def still_serves(port):
    c = Raw(port)
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block("/")))
    c.sock.settimeout(5)
    got = b""
    while b"r0\n" not in got:
        chunk = c.sock.recv(65536)
        assert chunk, "closed without an answer"
        got += chunk
    c.close()
    return True


def measure(inst, attack):
    pid = inst.proc.pid
    cpu, rss = cpu_seconds(pid), proc_status_kb(pid, "VmRSS")
    result = attack()
    return result, cpu_seconds(pid) - cpu, proc_status_kb(pid, "VmHWM") - rss


def test_rapid_reset_ends_the_connection_and_aborts_what_it_started(target):
    inst, port, r = target
    n = 20000

    def attack():
        c = Raw(port)
        batch = b""
        for i in range(n):
            sid = 2 * i + 1
            batch += frame(HEADERS, END_STREAM | END_HEADERS, sid, block("/delay/1000")) + \
                frame(RST_STREAM, 0, sid, struct.pack("!I", CANCEL))
            if len(batch) > 64 * 1024:
                if not c.send(batch):
                    break
                batch = b""
        c.send(batch)
        closed = c.read_until_closed()
        return c, closed
    (c, closed), cpu, grown_kb = measure(inst, attack)
    print("\nrapid reset: %d HEADERS+RST pairs: closed=%s GOAWAY=%s, lb CPU %.2f s, peak RSS +%d KiB"
          % (n, closed, c.goaway, cpu, grown_kb))
    assert closed and c.goaway is not None and c.goaway != 0
    assert cpu < 5 and grown_kb < 64 * 1024
    assert still_serves(port)
    # Every request started was aborted: the replica has none in flight.
    wait_until(lambda: replica_stat(r, "in_flight") == 0, 5, "the aborted requests to end at the server")


def replica_stat(r, key):
    import json
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % r.port, timeout=5) as f:
        return json.loads(f.read())[key]


def test_continuation_flood_is_cut_after_a_few_frames(target):
    inst, port, r = target

    def attack():
        c = Raw(port)
        c.send(frame(HEADERS, 0, 1, block("/", extra=[("x-a", "b")])))
        piece = frame(CONTINUATION, 0, 1, hpack.Encoder().encode([("x-flood", "y" * 50)]))
        for _ in range(2000):
            if not c.send(piece * 50):
                break
        closed = c.read_until_closed()
        return c, closed
    (c, closed), cpu, grown_kb = measure(inst, attack)
    print("\ncontinuation flood: closed=%s GOAWAY=%s, lb CPU %.2f s, peak RSS +%d KiB" % (closed, c.goaway, cpu, grown_kb))
    # nghttp2 stops at the 8th CONTINUATION with a fatal error: no GOAWAY, the connection closes
    assert closed and c.goaway in (None, ENHANCE_YOUR_CALM, 1)
    assert cpu < 5 and grown_kb < 64 * 1024
    assert still_serves(port)


def test_made_you_reset_glitches_end_the_connection_with_enhance_your_calm(target):
    inst, port, r = target

    def attack():
        c = Raw(port)
        batch = b""
        for i in range(1000):
            sid = 2 * i + 1
            # a stream with a malformed field: lb must reset it (a stream
            # error lb commits, at the client's bidding)
            batch += frame(HEADERS, END_STREAM | END_HEADERS, sid, block("/", extra=[("X-Upper", "v")]))
        c.send(batch)
        closed = c.read_until_closed()
        return c, closed
    (c, closed), cpu, grown_kb = measure(inst, attack)
    print("\nMadeYouReset: closed=%s GOAWAY=%s, lb CPU %.2f s, peak RSS +%d KiB" % (closed, c.goaway, cpu, grown_kb))
    assert closed and c.goaway == ENHANCE_YOUR_CALM
    assert cpu < 5 and grown_kb < 64 * 1024
    assert still_serves(port)


@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_settings_and_ping_floods_from_a_client_that_never_reads(target, kind):
    inst, port, r = target
    one = frame(SETTINGS, 0, 0, struct.pack("!HI", 3, 100)) if kind == "settings" else frame(PING, 0, 0, b"12345678")

    def attack():
        c = Raw(port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and reads nothing: the acks pile up
        sent = 0
        for _ in range(400):
            if not c.send(one * 1000):
                break
            sent += 1000
        closed = c.read_until_closed()
        return c, closed, sent
    (c, closed, sent), cpu, grown_kb = measure(inst, attack)
    print("\n%s flood: %d frames sent, closed=%s, lb CPU %.2f s, peak RSS +%d KiB" % (kind, sent, closed, cpu, grown_kb))
    assert closed
    assert cpu < 5 and grown_kb < 64 * 1024
    assert still_serves(port)


def test_frames_that_carry_nothing_are_a_flood(target):
    """Empty DATA frames cost no window; nginx's heuristic (bytes read / 8 >
    payload + 1 MiB) ends the connection."""
    inst, port, r = target

    def attack():
        c = Raw(port)
        c.send(frame(HEADERS, END_HEADERS, 1, block("/count", "POST")))
        empty = frame(DATA, 0, 1) * 10000
        for _ in range(200):  # 18 MB of frames, no payload
            if not c.send(empty):
                break
        closed = c.read_until_closed()
        return c, closed
    (c, closed), cpu, grown_kb = measure(inst, attack)
    print("\nempty-frame flood: closed=%s GOAWAY=%s, lb CPU %.2f s, peak RSS +%d KiB" % (closed, c.goaway, cpu, grown_kb))
    assert closed and c.goaway == ENHANCE_YOUR_CALM
    assert cpu < 5 and grown_kb < 64 * 1024
    assert "HTTP/2 flood from a client" in inst.log_text()
    assert still_serves(port)
