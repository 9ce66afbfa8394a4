"""Servers from DNS SRV records (SPEC 11): `addr: srv:NAME` takes targets,
ports and weights from a real dnsmasq (--srv-host), re-resolved every
resolve_interval like host names; only the lowest priority value is used;
an outage keeps the servers; a target that does not exist is left out."""
import collections
import http.client
import shutil
import subprocess

import pytest

from conftest import Replica, admin_stats, free_port, wait_until

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
NAME = "_http._tcp.app.lb-test"

pytestmark = pytest.mark.skipif(not shutil.which(DNSMASQ), reason="dnsmasq is not installed (scripts/deps.sh)")


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port answering `records` (target, port, priority,
    weight) for NAME, every target but those in `missing` at 127.0.0.1."""

    def __init__(self, procs):
        self.procs = procs
        self.port = free_port()
        self.proc = None

    def start(self, records, missing=(), extra=()):
        cmd = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
               "--pid-file=", "--listen-address=127.0.0.1", "--bind-interfaces", "--port=%d" % self.port,
               "--log-facility=-", "--local=/lb-test/"]
        for target, port, priority, weight in records:
            cmd.append("--srv-host=%s,%s,%d,%d,%d" % (NAME, target, port, priority, weight))
        for target in sorted({r[0] for r in records} - set(missing)):
            cmd.append("--host-record=%s,127.0.0.1" % target)
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(self.proc)
        wait_until(lambda: self.answers() or self.proc.poll() is not None, 5, "dnsmasq to answer")
        assert self.proc.poll() is None, self.proc.stderr.read()
        return self

    def answers(self):
        import socket
        import struct
        query = struct.pack("!HHHHHH", 7, 0x100, 1, 0, 0, 0) + b"".join(
            bytes([len(l)]) + l.encode() for l in NAME.split(".")) + b"\0" + struct.pack("!HH", 33, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                return len(s.recv(512)) > 12
            except OSError:
                return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def config(port, admin, dns_port, extra="", interval="1s"):
    return """\
global:
  workers: 1
  resolvers: ["127.0.0.1:%d"]
admin:
  bind: 127.0.0.1:%d
listeners:
  - name: web
    bind: "127.0.0.1:%d"
    backend: app
backends:
  - name: app
    resolve_interval: %s
    health_check:
      type: none
    servers:
      - addr: srv:%s%s
""" % (dns_port, admin, port, interval, NAME, extra)


def shares(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    seen = collections.Counter()
    for _ in range(n):
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        seen[resp.read().decode().strip()] += 1
    conn.close()
    return dict(seen)


def weights(admin):
    backend = admin_stats(admin)["backends"][0]
    return {s["addr"]: s["weight"] for s in backend["servers"]}


def test_srv_records_give_servers_ports_and_weights_and_follow_changes(procs, lb):
    ports = {name: free_port() for name in ("a", "b", "c")}
    for name, p in ports.items():
        Replica(procs, port=p, name=name).start()
    dns = Dnsmasq(procs).start([("a.lb-test", ports["a"], 0, 30), ("b.lb-test", ports["b"], 0, 10),
                                ("c.lb-test", ports["c"], 10, 50)])
    port, admin = free_port(), free_port()
    inst = lb(config(port, admin, dns.port), port)
    # Priority 0 only, weighted 3:1 by the records (round-robin shares are exact).
    wait_until(lambda: len(weights(admin)) == 2, 10, "the SRV targets to become servers")
    assert weights(admin) == {"127.0.0.1:%d" % ports["a"]: 30, "127.0.0.1:%d" % ports["b"]: 10}
    assert shares(port, 80) == {"a": 60, "b": 20}

    # The records change: c joins priority 0, b's weight grows, and a target
    # that does not exist is left out (logged), not a reason to keep the old set.
    dns.stop()
    dns.start([("a.lb-test", ports["a"], 0, 10), ("b.lb-test", ports["b"], 0, 10),
               ("c.lb-test", ports["c"], 0, 20), ("gone.lb-test", ports["c"] + 1, 0, 10)],
              missing=("gone.lb-test",))
    want = {"127.0.0.1:%d" % ports["a"]: 10, "127.0.0.1:%d" % ports["b"]: 10, "127.0.0.1:%d" % ports["c"]: 20}
    wait_until(lambda: weights(admin) == want, 10, "the changed records to apply")
    assert shares(port, 40) == {"a": 10, "b": 10, "c": 20}
    assert "target gone.lb-test: no such name or record" in inst.log_text()

    # DNS goes away: the servers stay.
    dns.stop()
    wait_until(lambda: "server srv:%s does not resolve" % NAME in inst.log_text().split("gone.lb-test")[-1], 15,
               "a failed SRV query")
    assert weights(admin) == want
    assert shares(port, 40) == {"a": 10, "b": 10, "c": 20}


def test_srv_server_with_weight_is_refused_with_its_position(procs, lb, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(config(free_port(), free_port(), 53, extra="\n        weight: 2"))
    from conftest import LB
    out = subprocess.run([LB, "-t", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert "bad.yaml:17:17: backends[0].servers[0].weight: an srv: server takes its weights from its SRV records" \
        in out.stderr + out.stdout


def test_an_address_two_targets_share_is_one_server_and_no_generation_churn(procs, lb):
    p = free_port()
    Replica(procs, port=p, name="a").start()
    dns = Dnsmasq(procs).start([("a.lb-test", p, 0, 10), ("b.lb-test", p, 0, 20)])
    port, admin = free_port(), free_port()
    inst = lb(config(port, admin, dns.port), port)
    wait_until(lambda: weights(admin) == {"127.0.0.1:%d" % p: 30}, 10, "one server, weights summed")
    before = inst.log_text().count("servers re-resolved")
    # Several intervals of answers in any order: nothing changes.
    asked = admin_stats(admin)["uptime_s"]
    wait_until(lambda: admin_stats(admin)["uptime_s"] >= asked + 4, 10, "four more intervals")
    assert inst.log_text().count("servers re-resolved") == before


def test_a_changed_srv_weight_wins_over_a_runtime_weight_for_good(procs, lb):
    p = free_port()
    Replica(procs, port=p, name="a").start()
    dns = Dnsmasq(procs).start([("a.lb-test", p, 0, 10)])
    port, admin = free_port(), free_port()
    lb(config(port, admin, dns.port), port)
    key = "127.0.0.1:%d" % p
    wait_until(lambda: weights(admin) == {key: 10}, 10, "the SRV weight")
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("POST", "/backends/app/servers/%s/weight/0" % key)
    assert conn.getresponse().status == 200
    conn.close()
    assert weights(admin) == {key: 0}
    dns.stop()
    dns.start([("a.lb-test", p, 0, 20)])
    wait_until(lambda: weights(admin) == {key: 20}, 10, "the new SRV weight")
    dns.stop()
    dns.start([("a.lb-test", p, 0, 10)])
    wait_until(lambda: weights(admin) == {key: 10}, 10, "the SRV weight again, not the forgotten runtime 0")


def test_targets_are_absolute_names_and_own_resolvers_skip_the_search_list(procs, lb, monkeypatch):
    """A search domain whose wildcard answers everything must not catch
    the SRV name or its targets (RFC 2782 targets are absolute)."""
    p = free_port()
    Replica(procs, port=p, name="a").start()
    dns = Dnsmasq(procs).start([("a.lb-test", p, 0, 1)], extra=["--address=/wild.test/127.0.0.9"])
    monkeypatch.setenv("LOCALDOMAIN", "wild.test")
    monkeypatch.setenv("RES_OPTIONS", "ndots:5")
    port, admin = free_port(), free_port()
    lb(config(port, admin, dns.port), port)
    wait_until(lambda: weights(admin) == {"127.0.0.1:%d" % p: 1}, 10, "the target's own address")
    assert shares(port, 3) == {"a": 3}


def test_a_name_that_fails_keeps_all_its_servers_even_past_64(procs, lb):
    """A runtime weight rebuilds the generation from what names had: every
    one of 100 SRV targets stays, not the first 64."""
    p = free_port()
    Replica(procs, port=p, name="a").start()
    records = [("t%d.lb-test" % i, p, 0, 1) for i in range(100)]
    extra = ["--host-record=t%d.lb-test,127.0.%d.%d" % (i, 1 + i // 200, 1 + i % 200) for i in range(100)]
    dns = Dnsmasq(procs).start(records, missing=[r[0] for r in records], extra=extra)
    port, admin = free_port(), free_port()
    lb(config(port, admin, dns.port, interval="1h"), port)
    wait_until(lambda: len(weights(admin)) == 100, 15, "100 servers")
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("POST", "/backends/app/servers/127.0.1.1:%d/weight/5" % p)
    assert conn.getresponse().status == 200
    conn.close()
    w = weights(admin)
    assert len(w) == 100 and w["127.0.1.1:%d" % p] == 5
