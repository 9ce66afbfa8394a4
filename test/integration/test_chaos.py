"""Bad input and misbehaving peers (SPEC 10): garbage, binary, stalls,
resets and vanishing clients against a running lb, which must keep serving,
not spin, and exit cleanly (no leak, no sanitizer report: see conftest)."""
import http.client
import random
import socket
import struct
import threading
import time

from conftest import admin_stats, cpu_seconds, free_port, http_config, tcp_config, wait_until




def misbehave(port, rng, deadline):
    """One misbehaving client after another until the deadline. Every byte
    comes from rng (seeded by the caller), so a failure can be replayed."""
    payloads = [
        lambda: rng.randbytes(rng.randint(1, 3000)),
        lambda: b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: " + rng.randbytes(50) + b"\r\n\r\n",
        lambda: b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * rng.randint(0, 5000),
        lambda: b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        lambda: b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + rng.randbytes(100),
        lambda: b"GET /bytes/10000000 HTTP/1.1\r\nHost: t\r\n\r\n",  # then vanish without reading
        lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(200),  # a TLS ClientHello
        lambda: b"GET / HTTP/1.1\r\n" * 200,
        lambda: b"",
    ]
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(rng.choice(payloads)())
            if rng.random() < 0.5:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
            elif rng.random() < 0.5:
                s.settimeout(0.05)
                try:
                    s.recv(1024)
                except OSError:
                    pass
            s.close()
        except OSError:
            pass


def serves(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def test_garbage_stalls_and_resets_do_not_hurt_http_mode(replicas, lb):
    rs = replicas(2)
    port, admin = free_port(), free_port()
    inst = lb(http_config(port, [r.addr for r in rs],
                          extra_listener="    timeouts:\n      header: 500ms\n      client: 500ms",
                          extra_top="admin:\n  bind: 127.0.0.1:%d\n" % admin), port)
    deadline = time.monotonic() + 3
    threads = [threading.Thread(target=misbehave, args=(port, random.Random(seed), deadline)) for seed in range(4)]
    for t in threads:
        t.start()
    while time.monotonic() < deadline:
        assert serves(port)
    for t in threads:
        t.join(10)
    assert all(r.proc.poll() is None for r in rs)
    # Every bad connection is gone within the timeouts (lb's own count says
    # so: an idle leaked session would not show in the CPU), and lb is idle.
    wait_until(lambda: serves(port) and open_connections(admin) == 0, 10, "every bad connection closed")
    wait_until(lambda: cpu_idle(inst.proc.pid), 10, "lb idle again")


def open_connections(admin):
    return admin_stats(admin)["connections"]


def cpu_idle(pid):
    before = cpu_seconds(pid)
    time.sleep(0.5)  # measuring CPU use over a window: the sleep is the measurement
    return cpu_seconds(pid) - before < 0.05


def test_garbage_and_resets_do_not_hurt_tcp_mode(replicas, lb):
    rs = replicas(2, mode="tcp")
    port, admin = free_port(), free_port()
    inst = lb(tcp_config(port, [r.addr for r in rs], extra_backend="    timeouts:\n      idle: 500ms\n"
                         "admin:\n  bind: 127.0.0.1:%d\n" % admin), port)
    deadline = time.monotonic() + 2
    threads = [threading.Thread(target=misbehave, args=(port, random.Random(seed), deadline)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"still here")
        assert s.recv(100) == b"still here"
    wait_until(lambda: open_connections(admin) == 0, 10, "every bad connection closed")
    wait_until(lambda: cpu_idle(inst.proc.pid), 10, "lb idle again")
