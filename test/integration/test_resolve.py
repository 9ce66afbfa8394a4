"""Host-name servers (SPEC 4, 11): every A record is a server, names are
re-resolved every resolve_interval through global.resolvers, and a DNS
outage keeps the addresses a name had. A tiny DNS server on 127.0.0.1
answers for the test."""
import http.client
import socket
import struct
import threading

import pytest

from conftest import Replica, free_port, wait_until


class TinyDns:
    """Answers A queries for the names in `records` (a dict name -> [ip]);
    AAAA queries get an empty answer; `failing` makes it answer SERVFAIL."""

    def __init__(self):
        self.records = {}
        self.failing = False
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            answer = self.answer(data)
            if answer:
                self.sock.sendto(answer, peer)

    def answer(self, query):
        if len(query) < 12:
            return None
        qid, _, qdcount = struct.unpack("!HHH", query[:6])
        pos, labels = 12, []
        while pos < len(query) and query[pos] != 0:
            n = query[pos]
            labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace").lower())
            pos += 1 + n
        question_end = pos + 5
        qtype = struct.unpack("!H", query[pos + 1:pos + 3])[0]
        name = ".".join(labels)
        self.queries += 1
        question = query[12:question_end]
        if self.failing:
            return struct.pack("!HHHHHH", qid, 0x8182, 1, 0, 0, 0) + question
        ips = self.records.get(name)
        if ips is None:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        rrs = b""
        if qtype == 1:
            for ip in ips:
                rrs += struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(ip)
        count = len(ips) if qtype == 1 else 0
        return struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + rrs

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def dns():
    server = TinyDns()
    yield server
    server.close()


def names_seen(port, n=12):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    seen = set()
    for _ in range(n):
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        seen.add(resp.read().decode().strip())
    conn.close()
    return seen


def config(port, dns_port, server_port):
    return """\
global:
  workers: 2
  resolvers: ["127.0.0.1:%d"]
listeners:
  - name: web
    bind: "127.0.0.1:%d"
    backend: app
backends:
  - name: app
    resolve_interval: 1s
    health_check:
      type: none
    servers:
      - addr: svc.lb-test:%d
""" % (dns_port, port, server_port)


def test_host_name_servers_follow_dns_changes(procs, lb, dns):
    server_port = free_port()
    a = Replica(procs, port=server_port, name="a", args=["-a", "127.0.0.1"]).start()
    b = Replica(procs, port=server_port, name="b", args=["-a", "127.0.0.2"]).start()
    dns.records["svc.lb-test"] = ["127.0.0.1"]
    port = free_port()
    inst = lb(config(port, dns.port, server_port), port)
    assert names_seen(port) == {"a"}
    # A record added: the new address becomes a server within an interval or two.
    dns.records["svc.lb-test"] = ["127.0.0.1", "127.0.0.2"]
    wait_until(lambda: names_seen(port) == {"a", "b"}, 6, "the added address to get traffic")
    assert "servers re-resolved" in inst.log_text()
    # A record removed: only the remaining address is used.
    dns.records["svc.lb-test"] = ["127.0.0.2"]
    wait_until(lambda: names_seen(port) == {"b"}, 6, "the removed address to leave")
    # DNS fails: the name keeps the address it had.
    dns.failing = True
    asked = dns.queries
    wait_until(lambda: dns.queries > asked + 2, 6, "failing DNS queries")
    assert names_seen(port) == {"b"}
    assert a.proc.poll() is None and b.proc.poll() is None


def test_unknown_host_name_starts_with_no_server_and_503(procs, lb, dns):
    port = free_port()
    inst = lb(config(port, dns.port, free_port()), port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 503
    conn.close()
    assert "does not resolve" in inst.log_text()


def test_name_resolving_to_an_address_listed_literally_makes_no_new_generations(procs, lb, dns):
    server_port = free_port()
    Replica(procs, port=server_port, name="a").start()
    dns.records["svc.lb-test"] = ["127.0.0.1"]
    port = free_port()
    # The literal first: the name's address is then a server of another entry.
    name_line = "      - addr: svc.lb-test:%d\n" % server_port
    text = config(port, dns.port, server_port).replace(
        name_line, "      - addr: 127.0.0.1:%d\n" % server_port + name_line)
    inst = lb(text, port)
    assert names_seen(port) == {"a"}
    # Several resolve intervals, each resolving the name to the same address.
    asked = dns.queries
    wait_until(lambda: dns.queries >= asked + 6, 10, "three more resolutions")
    assert "servers re-resolved" not in inst.log_text()
