"""A drain the network sees (issue 17): on SIGTERM, /healthz answers 503 for
global.drain_delay while lb still serves, then the listeners close and the
graceful stop runs; POST /drain and /undrain (lbctl drain-all, undrain-all)
do the first half by hand."""
import http.client
import json
import os
import signal
import socket
import subprocess
import time

from conftest import ROOT, can_connect, free_port, http_config, wait_until

LBCTL = os.path.join(ROOT, "scripts", "lbctl")


def call(port, method, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def served(port):
    """One request on a new connection: True when answered 200, False
    when the listener is gone (refused; or reset: a connection queued in
    the instant the listening socket closes)."""
    try:
        return call(port, "GET", "/")[0] == 200
    except OSError:  # refused, reset, a broken pipe as the socket closes
        return False


def start(replicas, lb, drain_delay, grace="10s"):
    rs = replicas(2)
    port, admin = free_port(), free_port()
    config = http_config(port, [r.addr for r in rs],
                         extra_global="  drain_delay: %s\n  grace: %s" % (drain_delay, grace),
                         extra_top="admin:\n  bind: 127.0.0.1:%d\n" % admin)
    inst = lb(config, port)
    wait_until(lambda: can_connect(admin), 5, "admin endpoint")
    return inst, port, admin


def test_sigterm_turns_healthz_503_then_closes_after_drain_delay(replicas, lb):
    inst, port, admin = start(replicas, lb, "1500ms")
    assert call(admin, "GET", "/healthz") == (200, "ok\n")
    signalled = time.monotonic()
    inst.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: call(admin, "GET", "/healthz")[0] == 503, 5, "/healthz 503")
    unhealthy = time.monotonic()
    assert call(admin, "GET", "/healthz") == (503, "draining\n")
    stats = json.loads(call(admin, "GET", "/stats")[1])
    assert stats["draining"] is True and stats["stopping"] is True

    # New connections are still served while the front balancer notices;
    # then the listener closes, and lb exits 0.
    last_served = None
    requests = 0
    while served(port):
        last_served = time.monotonic()
        requests += 1
        assert last_served - signalled < 10, "still serving 10 s after SIGTERM"
    refused = time.monotonic()
    assert inst.proc.wait(timeout=15) == 0
    assert last_served is not None and last_served >= unhealthy, "nothing served after /healthz turned 503"
    # (a timer may fire a fraction of a millisecond early)
    assert refused - signalled >= 1.45, "listener closed %.3f s after SIGTERM, before drain_delay" % (
        refused - signalled)
    log = inst.log_text()
    order = [log.index(line) for line in ("/healthz answers 503 for 1500ms", "finishing in-flight", "stopped")]
    assert order == sorted(order), log
    assert requests > 0


def test_a_second_sigterm_cuts_the_delay_short(replicas, lb):
    inst, port, admin = start(replicas, lb, "60s")
    inst.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: call(admin, "GET", "/healthz")[0] == 503, 5, "/healthz 503")
    assert served(port)
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(timeout=10) == 0
    assert "a second signal cut drain_delay short" in inst.log_text()


def test_reload_during_the_delay_is_ignored(replicas, lb):
    inst, port, admin = start(replicas, lb, "60s")
    inst.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: call(admin, "GET", "/healthz")[0] == 503, 5, "/healthz 503")
    inst.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP ignored" in inst.log_text(), 5, "the reload refused")
    assert served(port)
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(timeout=10) == 0


def test_without_drain_delay_the_listeners_close_at_once(replicas, lb):
    inst, port, admin = start(replicas, lb, "0s")
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(timeout=10) == 0
    assert "answers 503 for" not in inst.log_text()


def lbctl(admin, *args):
    env = dict(os.environ, LB_ADMIN="127.0.0.1:%d" % admin)
    return subprocess.run([LBCTL] + list(args), capture_output=True, text=True, env=env, timeout=20)


def metric(admin, name):
    for line in call(admin, "GET", "/metrics")[1].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def test_drain_all_and_undrain_all_by_hand(replicas, lb):
    inst, port, admin = start(replicas, lb, "0s")
    assert metric(admin, "lb_draining") == 0
    out = lbctl(admin, "drain-all")
    assert out.returncode == 0, out.stderr
    assert call(admin, "GET", "/healthz") == (503, "draining\n")
    assert json.loads(call(admin, "GET", "/stats")[1])["draining"] is True
    assert metric(admin, "lb_draining") == 1
    assert "DRAINING" in lbctl(admin, "stats").stdout
    assert all(served(port) for _ in range(10))  # still serving
    out = lbctl(admin, "undrain-all")
    assert out.returncode == 0, out.stderr
    assert call(admin, "GET", "/healthz") == (200, "ok\n")
    assert call(admin, "GET", "/drain")[0] == 405


def test_time_drained_by_hand_counts_toward_drain_delay(replicas, lb):
    inst, port, admin = start(replicas, lb, "1s")
    assert lbctl(admin, "drain-all").returncode == 0
    drained = time.monotonic()
    # The instance serves while drained; keep it busy until drain_delay
    # has passed.
    wait_until(lambda: served(port) and time.monotonic() - drained > 1.2, 10, "drain_delay to pass")
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(timeout=10) == 0
    log = inst.log_text()
    assert "finishing in-flight" in log and "answers 503 for" not in log, log


def test_undrain_is_refused_once_stopping(replicas, lb):
    inst, port, admin = start(replicas, lb, "60s")
    inst.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: call(admin, "GET", "/healthz")[0] == 503, 5, "/healthz 503")
    out = lbctl(admin, "undrain-all")
    assert out.returncode == 1 and "409" in out.stderr and "stopping" in out.stderr, out.stderr
    assert call(admin, "GET", "/healthz")[0] == 503
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(timeout=10) == 0


def closed_by_peer(sock):
    """True once the peer closed sock (EOF or reset), False while it is open."""
    import select
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def get_on(sock, path="/"):
    """One GET on a raw keep-alive socket: (status, Connection header)."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "closed before the answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += sock.recv(4096)
    return int(lines[0].split()[1]), headers.get("connection", "")


def test_while_drained_keep_alive_ends_so_clients_reconnect_elsewhere(replicas, lb):
    """A front balancer (ECMP, a VIP) moves new connections only: while lb
    drains, idle keep-alive connections close at once and every response
    ends its connection; undrained, keep-alive is back."""
    inst, port, admin = start(replicas, lb, "0s")
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    busy = socket.create_connection(("127.0.0.1", port), timeout=5)
    for sock in (idle, busy):
        assert get_on(sock) == (200, "")  # HTTP/1.1 keep-alive: no Connection header
    assert call(admin, "POST", "/drain")[0] == 200
    # The idle connection is closed by lb, without a request on it.
    wait_until(lambda: closed_by_peer(idle), 5, "lb to close the idle keep-alive connection")
    # A request that comes now is answered, with Connection: close, then closed.
    fresh = socket.create_connection(("127.0.0.1", port), timeout=5)
    for sock in (busy, fresh):
        if closed_by_peer(sock):  # busy was idle too when the drain began: closed, as it should
            continue
        assert get_on(sock) == (200, "close")
        wait_until(lambda s=sock: closed_by_peer(s), 5, "the connection to close after its answer")
    assert call(admin, "POST", "/undrain")[0] == 200
    again = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert get_on(again) == (200, "")  # the workers knew before /undrain answered
    assert get_on(again) == (200, "")
    for sock in (idle, busy, fresh, again):
        sock.close()
