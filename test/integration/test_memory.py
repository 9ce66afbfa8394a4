"""Memory per idle connection: what an lb holding thousands of idle
keep-alive clients and pooled server connections keeps resident.

The figures for operators come from `make bench` (scripts/bench.sh, beside
HAProxy and nginx); this test only guards the design against coming back:
an idle connection keeps no buffers and a session of at most one slab slot,
and libevent's per-descriptor entries, born during a burst, do not pin the
burst's freed pages (lb/event/evmem.h).
"""
import os
import resource
import socket
import subprocess

import pytest

from conftest import ROOT, free_port, http_config, proc_status_kb, tcp_config, under_sanitizer, wait_until

PAIRS = 2000
IDLE_CONNS = os.path.join(ROOT, "scripts", "idle_conns.py")


@pytest.fixture
def enough_descriptors():
    """The soft descriptor limit raised to what lb, the replica and the
    client need (the hard limit allows it: see the skip), for the processes
    this test starts; put back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 3 * PAIRS), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def idle_figure(procs, inst, port, batch, limit, what):
    """Bytes of lb's resident memory per connection while scripts/idle_conns.py
    holds PAIRS idle keep-alive connections to port, each after one request
    (sent `batch` at a time). Polled, with a deadline, until under `limit`:
    malloc's free pages go back on the control loop's trim tick, once a
    second. The connections close before it returns."""
    before = proc_status_kb(inst.proc.pid, "VmRSS")
    client = subprocess.Popen(["/usr/bin/python3", IDLE_CONNS, str(port), str(PAIRS), str(batch)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(client)
    try:
        line = client.stdout.readline()
        assert line.startswith("holding %d" % PAIRS), line + client.stdout.read()
        seen = []
        try:
            wait_until(lambda: seen.append((proc_status_kb(inst.proc.pid, "VmRSS") - before) * 1024 // PAIRS)
                       or seen[-1] < limit, 10, what)
        except AssertionError:
            raise AssertionError("%s: still %d bytes each after 10 s (first seen: %d)" % (what, seen[-1], seen[0]))
        print("\n%d %s: %d bytes each" % (PAIRS, what, seen[-1]))
        return seen[-1]
    finally:
        client.stdin.close()
        client.wait(timeout=30)


@pytest.mark.skipif(under_sanitizer(), reason="a sanitizer's allocator keeps what churns: no figure")
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 3 * PAIRS,
                    reason="needs %d descriptors" % (3 * PAIRS))
def test_an_idle_client_and_its_pooled_server_connection_stay_small(enough_descriptors, procs, replicas, lb):
    """make bench's measurement (scripts/idle_conns.py: every request sent
    before any is answered, so lb holds a server connection per client at
    once), smaller: 2,000 pairs."""
    rs = replicas(1, args=("-d", "1000"))  # answers after 1 s
    port = free_port()
    inst = lb(http_config(port, [rs[0].addr], workers=1, extra_global="  max_connections: %d" % (3 * PAIRS),
                          extra_backend="    keepalive: %d" % PAIRS), port)
    # 1,277 bytes measured (a client 896 + its pooled connection 400 at
    # 5,000 in make bench); 2,119 before libevent's entries had a range of
    # their own and the session lost its formatted address.
    idle_figure(procs, inst, port, PAIRS, 1700, "idle clients, each with a pooled server connection")


@pytest.mark.skipif(under_sanitizer(), reason="a sanitizer's allocator keeps what churns: no figure")
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 3 * PAIRS,
                    reason="needs %d descriptors" % (3 * PAIRS))
def test_an_idle_tcp_tunnel_holds_no_buffers(enough_descriptors, procs, replicas, lb):
    """A TCP-mode connection through which nothing moves gives its relay
    buffers back, both sides (conn_buffers_release), as an idle HTTP one."""
    rs = replicas(1)
    port = free_port()
    inst = lb(tcp_config(port, [rs[0].addr], workers=1, extra_global="  max_connections: %d" % (3 * PAIRS)), port)
    # 1,173 bytes at 5,000 (a client and a server side); 1,893 while both
    # sides kept their four buffers.
    idle_figure(procs, inst, port, 500, 1500, "idle tcp tunnels")


@pytest.mark.skipif(under_sanitizer(), reason="a sanitizer's allocator keeps what churns: no figure")
def test_a_crlf_after_a_body_leaves_an_idle_connection_as_small(procs, replicas, lb):
    """400 keep-alive connections idle after one POST each, without and
    then with a CRLF after the body (some clients send one): the CRLF is
    dropped as the exchange ends, so the connection gives back its
    exchange and buffers as the other (it kept ~7.5 KB, against ~1.4)."""
    r = replicas(1)[0]
    port = free_port()
    inst = lb(http_config(port, [r.addr], workers=1), port)
    per_conn = {}
    for tail in (b"", b"\r\n"):
        socks = []
        before = proc_status_kb(inst.proc.pid, "VmRSS")
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd" + tail)
            got = b""
            while not got.endswith(b"\r\n\r\n4"):  # the replica answers the body's length
                data = s.recv(4096)
                assert data
                got += data
            socks.append(s)
        per_conn[tail] = (proc_status_kb(inst.proc.pid, "VmRSS") - before) * 1024 // 400
        for s in socks:
            s.close()
    assert per_conn[b"\r\n"] < 2 * per_conn[b""] + 1024, per_conn  # bytes per connection
