"""Host-name servers (SPEC 4, 11): every A record is a server, names are
re-resolved every resolve_interval through global.resolvers, and a DNS
outage keeps the addresses a name had. A tiny DNS server on 127.0.0.1
answers for the test."""
import http.client
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import LB, Replica, free_port, wait_until


class TinyDns:
    """Answers A queries for the names in `records` (a dict name -> [ip]);
    AAAA queries get an empty answer; `failing` makes it answer SERVFAIL."""

    def __init__(self):
        self.records = {}
        self.failing = False
        self.silent = False  # drop every query: a DNS server that does not answer
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
            if answer and not self.silent:
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


def healthz_ms(admin):
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()
    return (time.monotonic() - began) * 1000


def test_reload_while_dns_does_not_answer_never_stalls_the_control_thread(procs, lb, dns):
    server_port, admin = free_port(), free_port()
    Replica(procs, port=server_port, name="a").start()
    dns.records["svc.lb-test"] = ["127.0.0.1"]
    port = free_port()
    text = config(port, dns.port, server_port) + "admin:\n  bind: 127.0.0.1:%d\n" % admin
    inst = lb(text.replace("resolve_interval: 1s", "resolve_interval: 1h"), port)
    assert names_seen(port) == {"a"}
    dns.silent = True
    asked = dns.queries
    began = time.monotonic()
    inst.reload(text.replace("resolve_interval: 1s", "resolve_interval: 1h").replace("workers: 2", "workers: 2\n  grace: 3s"))
    reloaded = time.monotonic() - began
    wait_until(lambda: dns.queries > asked, 5, "the reload's query")
    # While that query waits for an answer that never comes (1.5 s + 3 s):
    # the admin endpoint answers at once, and the name keeps its address.
    slowest = max(healthz_ms(admin) for _ in range(40))
    print("\nreload with DNS silent: applied in %.0f ms; slowest /healthz after it %.1f ms" % (reloaded * 1000, slowest))
    assert reloaded < 1.0
    assert slowest < 100
    assert names_seen(port) == {"a"}


def test_start_with_dns_down_listens_at_once_and_serves_names_when_they_resolve(procs, tmp_path, dns):
    server_port, literal_port, admin, port = free_port(), free_port(), free_port(), free_port()
    Replica(procs, port=server_port, name="named").start()
    Replica(procs, port=literal_port, name="literal").start()
    dns.records["svc.lb-test"] = ["127.0.0.1"]
    dns.silent = True
    path = tmp_path / "lb.yaml"
    path.write_text(config(port, dns.port, server_port) + "      - addr: 127.0.0.1:%d\n" % literal_port +
                    "admin:\n  bind: 127.0.0.1:%d\n" % admin)
    log = open(tmp_path / "lb.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen([LB, "-c", str(path)], stdout=log, stderr=subprocess.STDOUT)
    procs.append(proc)
    try:
        # At once: listening, the admin endpoint up, the written address served.
        wait_until(lambda: can_get(port), 1.0, "lb serving within a second of its start")
        assert time.monotonic() - started < 1.0
        assert names_seen(port) == {"literal"}
        assert healthz_ms(admin) < 100
        # DNS comes back: the name joins at the next resolution.
        dns.silent = False
        wait_until(lambda: names_seen(port) == {"named", "literal"}, 10, "the name to resolve")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        log.close()


def can_get(port):
    try:
        return names_seen(port, 1) == {"literal"}
    except (OSError, AssertionError, http.client.HTTPException):
        return False


def test_dns_timeouts_go_through_lbs_log_said_as_such(procs, lb, dns):
    dns.records["svc.lb-test"] = ["127.0.0.1"]
    dns.silent = True  # for the whole test: every query times out
    port = free_port()
    inst = lb(config(port, dns.port, free_port()), port)
    wait_until(lambda: "does not resolve: timeout (no DNS server answered)" in inst.log_text(), 10,
               "the query's timeout, said as such")
    lines = inst.log_text().splitlines()
    # Every line is lb's: timestamp, "lb[PID]:", level.
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z lb\[\d+\]: \w+: ", l) for l in lines), lines


def test_reload_during_the_first_resolution_still_announces_running(procs, lb, dns):
    dns.records["svc.lb-test"] = ["127.0.0.1"]
    dns.silent = True  # the first round waits for its timeout
    port, admin = free_port(), free_port()
    text = config(port, dns.port, free_port()) + "admin:\n  bind: 127.0.0.1:%d\n" % admin
    inst = lb(text, start=False)
    inst.start()  # no port: do not wait for "lb running"
    wait_until(lambda: healthz_or_none(admin), 5, "the admin endpoint (signals are handled by then)")
    assert "lb running" not in inst.log_text()
    inst.reload()
    wait_until(lambda: "lb running" in inst.log_text(), 10, "lb running, after the first round")


def healthz_or_none(admin):
    try:
        return healthz_ms(admin) is not None
    except OSError:
        return None
