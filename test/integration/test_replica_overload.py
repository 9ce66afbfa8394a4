"""The test replica's overload mode (-o N) and its in-flight counters (issue 15).

lb's overload tests and scripts/overload.sh rely on them: /stats reports
"in_flight" and "peak_in_flight", /control/reset-peak restarts the peak, and
with -o N a request that finds c requests in service (itself included) takes
its base time x max(1, (c/N)^2). Timings are only compared with each other,
loosely, never with absolute bounds.
"""
import http.client
import json
import socket
import subprocess
import threading
import time

from conftest import REPLICA, Replica, wait_until


def get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def stats(port):
    status, body = get(port, "/stats")
    assert status == 200
    return json.loads(body)


def timed_get(port, path="/"):
    start = time.monotonic()
    status, _ = get(port, path)
    assert status == 200
    return time.monotonic() - start


def burst(port, count, path="/"):
    """count requests sent at the same moment, each on its own connection
    made beforehand; returns their latencies, sorted."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    request = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode()
    barrier = threading.Barrier(count)
    times = []
    lock = threading.Lock()

    def one(s):
        barrier.wait(5)
        start = time.monotonic()
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - start
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        with lock:
            times.append(elapsed)

    threads = [threading.Thread(target=one, args=(s,)) for s in socks]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "burst clients still running"
    finally:
        for s in socks:
            s.close()
    assert len(times) == count
    return sorted(times)


class Holders:
    """k connections whose /hang requests stay in service until closed."""

    def __init__(self, port, k):
        self.port = port
        self.socks = []
        for _ in range(k):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def test_peak_in_flight_counts_concurrent_delayed_requests_exactly(procs):
    r = Replica(procs).start()
    assert stats(r.port)["in_flight"] == 0
    assert stats(r.port)["peak_in_flight"] == 0

    results = []
    threads = [threading.Thread(target=lambda: results.append(get(r.port, "/delay/300")[0]))
               for _ in range(5)]
    for t in threads:
        t.start()
    # While they wait: all five in service (the /stats requests never count).
    wait_until(lambda: stats(r.port)["in_flight"] == 5, 5, "5 requests in service")
    for t in threads:
        t.join(10)
    assert results == [200] * 5
    s = stats(r.port)
    assert s["in_flight"] == 0
    assert s["peak_in_flight"] == 5

    # /healthz and the controls are instruments, not load.
    assert get(r.port, "/healthz")[0] == 200
    assert stats(r.port)["peak_in_flight"] == 5
    assert get(r.port, "/control/reset-peak") == (200, b"ok\n")
    s = stats(r.port)
    assert (s["in_flight"], s["peak_in_flight"]) == (0, 0)

    # After a reset the peak starts from what is in service then.
    holders = Holders(r.port, 2)
    try:
        wait_until(lambda: stats(r.port)["in_flight"] == 2, 5, "2 hanging requests in service")
        assert get(r.port, "/control/reset-peak")[0] == 200
        assert stats(r.port)["peak_in_flight"] == 2
        assert get(r.port, "/")[0] == 200
        assert stats(r.port)["peak_in_flight"] == 3
    finally:
        holders.close()
    # A request whose client has gone leaves service with its connection.
    wait_until(lambda: stats(r.port)["in_flight"] == 0, 5, "hanging requests to leave")
    assert stats(r.port)["peak_in_flight"] == 3


def test_sequential_requests_on_one_connection_count_once(procs):
    r = Replica(procs, args=["-d", "20"]).start()
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
    for _ in range(5):
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.close()
    s = stats(r.port)
    assert (s["in_flight"], s["peak_in_flight"]) == (0, 1)


def test_overload_law_two_concurrent_vs_four_concurrent(procs):
    r = Replica(procs, args=["-o", "2", "-d", "50"]).start()
    # Two at once: both within N, the base time each. Four at once: the
    # one that arrives third takes 50 x (3/2)^2, the fourth 50 x (4/2)^2 =
    # 200 ms. A burst whose requests did not all meet (peak below its size,
    # on a busy machine) is repeated.
    for attempt in range(3):
        get(r.port, "/control/reset-peak")
        two = burst(r.port, 2)
        two_peak = stats(r.port)["peak_in_flight"]
        wait_until(lambda: stats(r.port)["in_flight"] == 0, 5, "idle")
        get(r.port, "/control/reset-peak")
        four = burst(r.port, 4)
        four_peak = stats(r.port)["peak_in_flight"]
        if two_peak == 2 and four_peak == 4:
            break
    assert (two_peak, four_peak) == (2, 4), "the bursts never overlapped"
    assert four[-1] >= 3 * two[-1], (two, four)
    assert four[0] < 2 * two[-1], (two, four)  # the first two still at the base time


def test_overload_law_by_requests_in_service(procs):
    # c is counted at arrival, itself included: k hanging requests hold
    # c = k + 1 exactly for the one measured.
    r = Replica(procs, args=["-o", "2", "-d", "40"]).start()

    def with_holding(k):
        holders = Holders(r.port, k)
        try:
            wait_until(lambda: stats(r.port)["in_flight"] == k, 5, "%d in service" % k)
            return timed_get(r.port)
        finally:
            holders.close()
            wait_until(lambda: stats(r.port)["in_flight"] == 0, 10, "idle")

    base = with_holding(0)     # c = 1: 40 ms
    at_n = with_holding(1)     # c = 2 = N: still 40 ms
    at_2n = with_holding(3)    # c = 4: 40 x 4 = 160 ms
    at_3n = with_holding(5)    # c = 6: 40 x 9 = 360 ms
    assert at_n < 2 * base, (base, at_n)
    assert at_2n >= 3 * max(base, at_n), (base, at_n, at_2n)
    assert at_3n >= 1.6 * at_2n, (at_2n, at_3n)
    # The base time and /delay/MS add up before the law applies.
    holders = Holders(r.port, 3)
    try:
        wait_until(lambda: stats(r.port)["in_flight"] == 3, 5, "3 in service")
        delayed = timed_get(r.port, "/delay/40")  # (40 + 40) x 4 = 320 ms
    finally:
        holders.close()
    assert delayed >= 1.6 * at_2n, (at_2n, delayed)


def test_overload_never_slows_the_instruments(procs):
    r = Replica(procs, args=["-o", "1", "-d", "2000"]).start()
    holders = Holders(r.port, 4)
    try:
        wait_until(lambda: stats(r.port)["in_flight"] == 4, 5, "4 in service")
        start = time.monotonic()
        assert get(r.port, "/healthz")[0] == 200
        assert get(r.port, "/stats")[0] == 200
        assert get(r.port, "/control/reset-peak")[0] == 200
        # Each would take 2 s at least if delayed, and far more if slowed.
        assert time.monotonic() - start < 1.5
        assert stats(r.port)["in_flight"] == 4
    finally:
        holders.close()


def test_overload_option_is_checked(procs):
    for bad in ("0", "x", "-1"):
        p = subprocess.Popen([REPLICA, "-p", "0", "-o", bad], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.wait(timeout=5) == 2
        assert "usage" in p.stderr.read()
