"""PROXY protocol out (issue 18, SPEC 11): backends[].send_proxy v1 | v2.
A TCP-mode lb in front of an HTTP-mode lb that expects the header: the
HTTP tier sees every client's own address (X-Forwarded-For at the replica),
and its source_ip hashing sends each client where it would send it
directly. Clients come from distinct loopback addresses (127.0.0.0/8 is all
loopback). Health checks start with a header that names no client."""
import http.client
import socket

import pytest

from conftest import admin_stats, can_connect, cpu_seconds, free_port, wait_until


def echo_from(source_ip, port):
    """GET /echo from source_ip: (the replica, the X-Forwarded-For it saw)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source_ip, 0))
    try:
        conn.request("GET", "/echo")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        return resp.getheader("X-Replica"), resp.getheader("X-Echo-X-Forwarded-For")
    finally:
        conn.close()


def http_tier(port, direct, admin, servers):
    """An HTTP lb hashing on source_ip: `port` expects a PROXY header,
    `direct` takes clients as they are."""
    lines = "\n".join("      - addr: %s" % s for s in servers)
    return """\
global:
  workers: 2
admin:
  bind: 127.0.0.1:%d
listeners:
  - name: behind
    bind: "127.0.0.1:%d"
    backend: app
    proxy_protocol: true
  - name: direct
    bind: "127.0.0.1:%d"
    backend: app
backends:
  - name: app
    balance: hash
    hash: {key: source_ip}
    health_check: {type: none}
    servers:
%s
""" % (admin, port, direct, lines)


def front_tier(port, mode, server, version, extra=""):
    return """\
global:
  workers: 2
listeners:
  - name: front
    bind: "127.0.0.1:%d"
    mode: %s
    backend: tier2
backends:
  - name: tier2
    send_proxy: %s
    health_check: {type: none}
%s    servers:
      - addr: %s
""" % (port, mode, version, extra, server)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_two_tiers_keep_the_client_address_and_the_hash(replicas, lb, version):
    rs = replicas(3)
    behind, direct, admin, front = free_port(), free_port(), free_port(), free_port()
    lb(http_tier(behind, direct, admin, [r.addr for r in rs]), behind)
    wait_until(lambda: can_connect(direct), 5, "the direct listener")
    lb(front_tier(front, "tcp", "127.0.0.1:%d" % behind, version), front)
    seen = set()
    for i in range(10, 30):
        ip = "127.0.0.%d" % i
        replica, forwarded = echo_from(ip, front)
        assert forwarded == ip, (ip, forwarded)  # the HTTP tier saw the client, not the TCP tier
        assert echo_from(ip, direct)[0] == replica, ip  # the same server as directly
        seen.add(replica)
    assert len(seen) >= 2, seen  # the keys spread: the hash saw 20 addresses, not one


def test_health_checks_send_a_header_that_names_no_client(replicas, lb):
    rs = replicas(1)
    behind, direct, admin, front, front_admin = free_port(), free_port(), free_port(), free_port(), free_port()
    lb(http_tier(behind, direct, admin, [rs[0].addr]), behind)
    checks = "    health_check: {type: http, path: /healthz, interval: 100ms, rise: 1, fall: 1}\n"
    config = front_tier(front, "http", "127.0.0.1:%d" % behind, "v1").replace(
        "    health_check: {type: none}\n", checks) + "admin:\n  bind: 127.0.0.1:%d\n" % front_admin
    lb(config, front)

    wait_until(lambda: admin_stats(front_admin)["backends"][0]["servers"][0]["last_check"] == "ok", 10,
               "a passed check through the PROXY listener")
    # HTTP mode: each request on a connection of its own (a header names one client).
    replica, forwarded = echo_from("127.0.0.9", front)
    assert replica == "r0" and forwarded.startswith("127.0.0.9")


def raw_receiver():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(10)
    return s


def header_through(lb_port, receiver, source_ip, first=b""):
    """Connect to lb from source_ip, send `first` (a PROXY header in, say)
    and a byte; what the receiver reads before that byte, and the local port
    used."""
    c = socket.create_connection(("127.0.0.1", lb_port), timeout=10, source_address=(source_ip, 0))
    try:
        c.sendall(first + b"!")
        conn, _ = receiver.accept()
        with conn:
            conn.settimeout(10)
            got = b""
            while not got.endswith(b"!"):
                chunk = conn.recv(4096)
                assert chunk, got
                got += chunk
        return got[:-1], c.getsockname()[1]
    finally:
        c.close()


def test_the_header_lb_writes_byte_for_byte(lb):
    receiver = raw_receiver()
    try:
        port = free_port()
        server = "127.0.0.1:%d" % receiver.getsockname()[1]
        lb(front_tier(port, "tcp", server, "v1"), port)
        got, client_port = header_through(port, receiver, "127.0.0.9")
        assert got == b"PROXY TCP4 127.0.0.9 127.0.0.1 %d %d\r\n" % (client_port, port)

        # Behind an L4 tier: the client and the address it connected to, as
        # that tier's header named them, passed on as they came.
        port2 = free_port()
        lb(front_tier(port2, "tcp", server, "v2").replace("    backend: tier2\n",
                                                           "    backend: tier2\n    proxy_protocol: true\n"), port2)
        got, _ = header_through(port2, receiver, "127.0.0.9", b"PROXY TCP4 198.51.100.7 10.0.0.1 5555 443\r\n")
        assert got == (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 7, 10, 0, 0, 1]) +
                       (5555).to_bytes(2, "big") + (443).to_bytes(2, "big"))
        got, _ = header_through(port2, receiver, "127.0.0.9",
                                b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n")
        assert got[12:16] == b"\x21\x21\x00\x24"  # TCP6, 36 bytes: the client's IPv6 address kept
        assert socket.inet_ntop(socket.AF_INET6, got[16:32]) == "2001:db8::7"
        assert socket.inet_ntop(socket.AF_INET6, got[32:48]) == "2001:db8::1"
    finally:
        receiver.close()


def test_http_keeps_a_private_connection_per_client(replicas, lb):
    """In http mode a server connection speaks for the client its header
    named: it serves that client's next requests (HAProxy's private
    connections), never another client's; closed by the server while idle,
    it goes quietly and the next request opens another."""
    rs = replicas(1)
    behind, direct, admin, front = free_port(), free_port(), free_port(), free_port()
    back_config = http_tier(behind, direct, admin, [rs[0].addr]).replace(
        "    proxy_protocol: true\n", "    proxy_protocol: true\n    timeouts: {client: 500ms}\n")
    lb(back_config, behind)
    inst = lb(front_tier(front, "http", "127.0.0.1:%d" % behind, "v1"), front)

    def accepted():
        return admin_stats(admin)["connections_total"]

    def requests(client, ip, n):
        for _ in range(n):
            client.request("GET", "/echo")
            resp = client.getresponse()
            resp.read()
            assert resp.status == 200 and resp.getheader("X-Echo-X-Forwarded-For").endswith(ip)

    before = accepted()
    a = http.client.HTTPConnection("127.0.0.1", front, timeout=10, source_address=("127.0.0.21", 0))
    b = http.client.HTTPConnection("127.0.0.1", front, timeout=10, source_address=("127.0.0.22", 0))
    try:
        requests(a, "127.0.0.21", 5)
        requests(b, "127.0.0.22", 5)
        requests(a, "127.0.0.21", 2)
        assert accepted() - before == 2  # one server connection per client, each its own
        # The back tier closes the idle ones (timeouts.client 500ms): lb
        # drops them without spinning on their EOF, and the next request
        # opens another.
        cpu = cpu_seconds(inst.proc.pid)
        wait_until(lambda: admin_stats(admin)["connections"] == 0, 10, "the back tier to close them")
        assert cpu_seconds(inst.proc.pid) - cpu < 0.25
        requests(a, "127.0.0.21", 1)
        assert accepted() - before == 3
    finally:
        a.close()
        b.close()

