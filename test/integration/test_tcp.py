"""TCP mode (SPEC 8) with real processes."""
import collections
import hashlib
import os
import socket
import subprocess
import threading
import time

from conftest import (LB, can_connect, free_port, greeting, recv_all, recv_line, reload_under_load,
                      tcp_config, wait_until)


def test_tcp_relay_1mb_arrives_intact(replicas, lb):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    lb(tcp_config(port, [r.addr]), port)
    payload = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        echoed = recv_all(s)
        sender.join(10)
    assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_tcp_half_close_passes_through(replicas, lb):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    lb(tcp_config(port, [r.addr]), port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"hello before half-close")
        s.shutdown(socket.SHUT_WR)
        # The replica sees our EOF only if lb passed it on; it then echoes
        # what it has and closes its side, which we see as EOF.
        assert recv_all(s, 5) == b"hello before half-close"


def test_a_fin_before_any_byte_is_a_half_close_too(replicas, lb):
    """SPEC 8: a half-close is passed on, also one sent at once (nc -N
    with nothing to send): the server's greeting still reaches the client
    (lb used to take the FIN, still connecting, for a client gone)."""
    r = replicas(1, mode="tcp", args=["-g"])[0]
    port = free_port()
    lb(tcp_config(port, [r.addr], workers=1), port)
    got = []
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.shutdown(socket.SHUT_WR)
            got.append(recv_all(s, 5))
    assert got == [b"r0\n"] * 20


def test_round_robin_shares_exact_over_300_connections(replicas, lb):
    rs = replicas(3, mode="tcp", args=["-g"])
    port = free_port()
    lb(tcp_config(port, [r.addr for r in rs]), port)
    counts = collections.Counter(greeting(port) for _ in range(300))
    assert counts == {"r0": 100, "r1": 100, "r2": 100}


def test_dead_server_costs_no_client_error(replicas, lb):
    rs = replicas(2, mode="tcp", args=["-g"])
    dead = "127.0.0.1:%d" % free_port()
    port = free_port()
    lb(tcp_config(port, [rs[0].addr, dead, rs[1].addr]), port)
    names = [greeting(port) for _ in range(60)]  # greeting() fails on a closed connection
    assert set(names) == {"r0", "r1"}, names  # every client served, by both live servers


def test_no_candidate_server_closes_the_connection(lb):
    port = free_port()
    lb(tcp_config(port, ["127.0.0.1:%d" % free_port()], extra_backend="    retries: 0"), port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        assert recv_all(s, 5) == b""


def test_idle_timeout_closes_quiet_connection(replicas, lb):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    lb(tcp_config(port, [r.addr], extra_backend="    timeouts:\n      idle: 300ms"), port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        started = time.monotonic()
        assert recv_all(s, 5) == b""
        assert time.monotonic() - started < 3


def test_max_connections_pauses_accept_until_one_closes(replicas, lb):
    rs = replicas(1, mode="tcp", args=["-g"])
    port = free_port()
    lb(tcp_config(port, [rs[0].addr], extra_global="  max_connections: 2", workers=1), port)
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    second = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert recv_line(first) == b"r0\n" and recv_line(second) == b"r0\n"
    # The third connection waits in the backlog: no greeting while two are open.
    third = socket.create_connection(("127.0.0.1", port), timeout=5)
    third.settimeout(0.5)
    try:
        early = third.recv(16)
    except socket.timeout:
        early = None
    assert early is None
    first.close()
    assert recv_line(third, 5) == b"r0\n"
    second.close()
    third.close()


class Load:
    """A client thread opening short connections until stopped."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.failed = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"ping")
                    s.shutdown(socket.SHUT_WR)
                    data = recv_all(s, 5)
                    if data.endswith(b"ping"):
                        self.ok += 1
                    else:
                        self.failed.append(data)
            except OSError as e:
                self.failed.append(repr(e))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(70)


def test_five_sighups_under_load_lose_no_connection(replicas, lb):
    rs = replicas(3, mode="tcp")
    port = free_port()
    configs = [tcp_config(port, [rs[0].addr, rs[1].addr]), tcp_config(port, [r.addr for r in rs])]
    inst = lb(configs[0], port)
    with Load(port) as load:
        reload_under_load(inst, load, configs)
    assert load.failed == []
    assert load.ok > 100


def test_emfile_pauses_accepting_logs_and_recovers(replicas, lb):
    """With few file descriptors, accept fails with EMFILE: lb pauses, says
    so at most once a second, and serves again once descriptors free up."""
    import resource
    r = replicas(1, mode="tcp", args=["-g"])[0]
    port = free_port()

    def small_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    inst = lb(tcp_config(port, [r.addr], workers=1), port, start=False)
    inst.log = open(inst.log_path, "a")
    inst.proc = subprocess.Popen([LB, "-c", inst.path], stdout=inst.log, stderr=subprocess.STDOUT,
                                 preexec_fn=small_fd_limit)
    inst.procs.append(inst.proc)
    wait_until(lambda: can_connect(port), 10, "lb to listen")
    # Each proxied connection costs lb two descriptors: 40 exhaust 64.
    held = []
    for _ in range(40):
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    # Whichever runs out first, accept or the server socket, lb pauses.
    wait_until(lambda: "Too many open files; pausing accepts" in inst.log_text(), 10, "the EMFILE log line")
    time.sleep(1.5)  # a second and more of EMFILE: still one line per second at most
    stamps = [line.split(".", 1)[0] for line in inst.log_text().splitlines()
              if "Too many open files; pausing accepts" in line]
    assert stamps and len(stamps) == len(set(stamps)), stamps  # never two in one second
    for s in held:
        s.close()
    assert greeting(port) == "r0"
    assert inst.proc.poll() is None
