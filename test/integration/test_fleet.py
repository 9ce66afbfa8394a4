"""A fleet of lb on the engines operators run (issue 18): two lb hosts, three
replicas and a DNS server, as network namespaces (fleet/bed.py draws them),
behind BGP + ECMP (bird2) and behind a VRRP address (keepalived), with
scripts/lb-healthwatch telling each speaker whether its lb is healthy.

  - BGP + ECMP: bird2 in lb1 and lb2 announces 10.99.100.1/32 (on each lb
    host's loopback) to a bird2 in the router, which installs one route
    with both lbs as next hops and hashes flows on addresses and ports. The
    watch (a poll every 50 ms) enables or disables the static protocol that
    holds the route.
  - VRRP: keepalived in lb1 (priority 254) and lb2 (253) moves 10.99.2.100;
    the watch writes a keepalived track_file (0 = ok), and a vrrp_script
    running curl on /healthz every second backs it up. Two recipes, see
    VRRP_RECIPES.

Measured, with a client in its own namespace: the split of new connections
between the lbs, that a key reaches the same replica through either lb or
the shared address, and, with a new connection every 7 ms, the requests
lost and the time the traffic takes to move when lb1 stops gracefully
(SIGTERM; global.drain_delay keeps it serving while /healthz says 503),
is killed, or (VRRP) loses its link; for a graceful stop also with a
keep-alive client (figures only). The figures are printed and written to
$LB_BUILD/fleet-figures.txt; each run's requests to fleet/run-TAG.json in
the test's temporary directory, with every process's log.

Root only; skipped (with the reason) without network namespaces or without
bird2, keepalived, dnsmasq or curl. test_healthwatch_follows_healthz needs
neither.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import BUILD, LB, REPLICA, ROOT, can_connect, free_port, http_config, wait_until

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleet.bed import ADDR, Bed, Unavailable  # noqa: E402

HEALTHWATCH = os.path.join(ROOT, "scripts", "lb-healthwatch")
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fleet", "client.py")
FIGURES = os.path.join(BUILD, "fleet-figures.txt")

# The servers of lb's backend, from the bed's DNS server (dnsmasq serves
# both the A records and the SRV records of app.fleet).
SERVERS = "srv:_http._tcp.app.fleet"  # the replicas, from the DNS namespace's SRV records

ECMP_VIP = "10.99.100.1"
VRRP_VIP = "10.99.2.100"
DRAIN_DELAY = "2s"
INTERVAL_MS = 7        # the steady client: a new connection every 7 ms...
TIMEOUT_MS = 1000      # ...each with 1 s to be answered (a lost SYN is lost)
RECOVERY_BOUND = 10.0  # kill, link loss: all traffic OK again within this
SPLIT_CONNECTIONS = 400
KEEPALIVE_CONNECTIONS = 8
KEYS = 200
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:")


def lb_config(name, directory):
    return textwrap.dedent("""\
        global:
          workers: 1
          max_connections: 1000
          drain_delay: %(drain)s
          grace: 5s
          resolvers: ["%(dns)s:53"]
          access_log: %(dir)s/%(name)s-access.log
          log:
            level: info
        admin:
          bind: 127.0.0.1:9090
        listeners:
          - name: web
            bind: "*:80"
            backend: app
        backends:
          - name: app
            balance: hash
            hash: { key: "header:X-Key" }
            resolve_interval: 2s
            health_check:
              type: none
            servers:
              - addr: %(servers)s
        """) % {"drain": DRAIN_DELAY, "dns": ADDR["dns"], "dir": directory, "name": name, "servers": SERVERS}


BIRD_ROUTER = """\
router id %(router)s;
log stderr all;
protocol device { scan time 10; }
# Every path of the best routes goes to the kernel as one multipath route.
protocol kernel {
  ipv4 { import none; export all; };
  merge paths on;
}
template bgp lbhost {
  local %(router)s as 65000;
  passive on;
  hold time 3;
  keepalive time 1;
  ipv4 { import all; export none; };
}
protocol bgp lb1 from lbhost { neighbor %(lb1)s as 65001; }
protocol bgp lb2 from lbhost { neighbor %(lb2)s as 65001; }
"""

# The lb hosts: the static protocol vip holds the service route and starts
# disabled; lb-healthwatch enables it while /healthz answers 200.
BIRD_LB = """\
router id %(me)s;
log stderr all;
protocol device { scan time 10; }
protocol static vip {
  disabled;
  ipv4;
  route %(vip)s/32 blackhole;
}
protocol bgp uplink {
  local %(me)s as 65001;
  neighbor %(router)s as 65000;
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import none; export where proto = "vip"; };
}
"""

KEEPALIVED = """\
global_defs {
  router_id %(name)s
  script_user root
  enable_script_security
  vrrp_garp_master_delay 0
  vrrp_garp_master_repeat 2
}
# lb-healthwatch writes 0 (healthy) or 1 here within 50 ms of a change;
# keepalived reads the file when it is written (inotify).
track_file lb_watch {
  file "%(track)s"
  weight %(weight)d
  init_file 1
}
# The backstop, should the watch die: keepalived's own check, whole seconds
# (keepalived 2.2 takes no fraction of a second here).
vrrp_script lb_healthz {
  script "/usr/bin/curl -sf -m 1 -o /dev/null http://127.0.0.1:9090/healthz"
  interval 1
  timeout 1
  fall 1
  rise 1
  weight %(weight)d
}
vrrp_instance fleet {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %(priority)d
  advert_int 0.1
  version 3
  virtual_ipaddress {
    %(vip)s/24 dev eth0
  }
  track_file {
    lb_watch
  }
  track_script {
    lb_healthz
  }
}
"""


# ---- the bed and what runs in it ----

class Fleet:
    def __init__(self, bed, workdir):
        self.bed = bed
        self.dir = workdir
        self.lbs = {}        # host -> Popen
        self.speakers = []   # bird, keepalived, watches of the current test

    def path(self, name):
        return os.path.join(self.dir, name)

    # -- replicas and DNS --

    def start_backends(self):
        for i in (1, 2, 3):
            host = "r%d" % i
            self.bed.spawn(host, host, [REPLICA, "-a", ADDR[host], "-p", "8080", "-n", host])
        args = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=", "--listen-address=" + ADDR["dns"], "--bind-interfaces", "--log-facility=-",
                "--user=root", "--group=root"]
        for i in (1, 2, 3):
            host = "r%d" % i
            args += ["--host-record=app.fleet," + ADDR[host],
                     "--host-record=%s.fleet,%s" % (host, ADDR[host]),
                     "--srv-host=_http._tcp.app.fleet,%s.fleet,8080,0,1" % host]
        dns = self.bed.spawn("dns", "dnsmasq", args)
        for i in (1, 2, 3):
            wait_until(lambda h="r%d" % i: "listening" in self.bed.log_text(h), 10, "replica r%d" % i)
        wait_until(lambda: "started" in self.bed.log_text("dnsmasq") or dns.poll() is not None, 10, "dnsmasq")
        assert dns.poll() is None, self.bed.log_text("dnsmasq")

    # -- lb --

    def start_lb(self, host):
        path = self.path(host + ".yaml")
        with open(path, "w") as f:
            f.write(lb_config(host, self.dir))
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8")
        before = self.bed.log_text(host).count("lb running")
        proc = self.bed.spawn(host, host, [LB, "-c", path], env=env)
        self.lbs[host] = proc
        wait_until(lambda: self.bed.log_text(host).count("lb running") > before or proc.poll() is not None,
                   10, host + " to start")
        assert proc.poll() is None, self.bed.log_text(host)
        wait_until(lambda: self.servers_up(host) == 3, 10, host + " to resolve app.fleet to 3 servers")
        return proc

    def stats(self, host):
        out = self.bed.run_in(host, "curl", "-s", "-m", "2", "http://127.0.0.1:9090/stats", check=False).stdout
        return json.loads(out) if out.strip() else None

    def servers_up(self, host):
        stats = self.stats(host)
        if not stats:
            return 0
        return sum(1 for s in stats["backends"][0]["servers"] if s["state"] == "up")

    def connections_total(self, host):
        return self.stats(host)["connections_total"]

    def served(self, host, tag):
        """The request ids of run `tag` that host's access log shows."""
        try:
            with open(self.path(host + "-access.log")) as f:
                text = f.read()
        except FileNotFoundError:
            return set()
        return set(re.findall(r" (%s-\d+)$" % re.escape(tag), text, re.M))

    def check_lb_log(self, host):
        text = self.bed.log_text(host)
        for marker in SANITIZER_MARKERS:
            assert marker not in text, marker + " report in %s's log:\n%s" % (host, text[-4000:])

    def stop_lb(self, host, sig=signal.SIGTERM, quick=False):
        """SIGTERM (quick: twice, cutting drain_delay short) and expect exit 0
        with a clean log; SIGKILL: just gone."""
        proc = self.lbs.pop(host)
        if proc.poll() is not None:
            return proc.returncode
        if sig == signal.SIGKILL:
            proc.kill()
            proc.wait(timeout=5)
            return proc.returncode
        proc.send_signal(sig)
        if quick:
            wait_until(lambda: "answers 503 for" in self.bed.log_text(host) or proc.poll() is not None,
                       5, host + " to start draining")
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(host + " did not stop on SIGTERM")
        assert rc == 0, "%s exited %d:\n%s" % (host, rc, self.bed.log_text(host)[-3000:])
        self.check_lb_log(host)
        return rc

    # -- speakers --

    def speaker(self, host, name, argv):
        proc = self.bed.spawn(host, name, argv)
        self.speakers.append(proc)
        return proc

    def stop_speakers(self):
        for proc in reversed(self.speakers):
            self.bed.stop(proc)
        self.speakers = []

    def watch(self, host, up, down):
        return self.speaker(host, "watch-" + host, [
            HEALTHWATCH, "-i", "0.05", "-t", "0.5", "-r", "1", "-f", "1",
            "http://127.0.0.1:9090/healthz", up, down])

    def bird(self, host, conf):
        conf_path = self.path("bird-%s.conf" % host)
        with open(conf_path, "w") as f:
            f.write(conf)
        sock = self.path("bird-%s.ctl" % host)
        self.speaker(host, "bird-" + host, ["bird", "-f", "-c", conf_path, "-s", sock,
                                            "-P", self.path("bird-%s.pid" % host)])
        return sock

    def keepalived(self, host, priority, weight):
        track = self.path("%s.health" % host)
        with open(track, "w") as f:
            f.write("1\n")
        conf = self.path("keepalived-%s.conf" % host)
        with open(conf, "w") as f:
            f.write(KEEPALIVED % {"name": host, "track": track, "priority": priority, "weight": weight,
                                  "vip": VRRP_VIP})
        self.speaker(host, "keepalived-" + host, [
            "keepalived", "-n", "-l", "-D", "-P", "-f", conf,
            "-p", self.path("keepalived-%s.pid" % host), "-r", self.path("keepalived-%s-vrrp.pid" % host),
            "-c", self.path("keepalived-%s-checkers.pid" % host)])
        return track

    def ecmp_paths(self):
        out = self.bed.ip("router", "route", "show", ECMP_VIP + "/32").stdout
        return sorted(re.findall(r"via (\S+)", out))

    def mac(self, host):
        return re.search(r"link/ether (\S+)", self.bed.ip(host, "-o", "link", "show", "dev", "eth0").stdout).group(1)

    def router_mac_for(self, addr):
        """The MAC address the router sends addr's packets to (None: no entry)."""
        found = re.search(r"lladdr (\S+)", self.bed.ip("router", "neigh", "show", addr, "dev", "eth1").stdout)
        return found.group(1) if found else None

    def has_vrrp_vip(self, host):
        return (VRRP_VIP + "/") in self.bed.ip(host, "-o", "-4", "addr", "show", "dev", "eth0").stdout

    # -- the client --

    def client(self, *args, timeout=60):
        done = self.bed.run_in("client", "/usr/bin/python3", CLIENT, *args, timeout=timeout)
        return json.loads(done.stdout)

    def steady(self, tag, target, keepalive=0):
        name = "client-" + tag
        interval = INTERVAL_MS * (keepalive or 1)  # the same rate in all
        argv = ["/usr/bin/python3", CLIENT, "steady", tag, target, "80", str(interval), str(TIMEOUT_MS)]
        if keepalive:
            argv += ["--keepalive", str(keepalive)]
        proc = self.bed.spawn("client", name, argv, stdout_pipe=True)
        wait_until(lambda: "started" in self.bed.log_text(name) or proc.poll() is not None, 10,
                   "the client's first answer")
        assert proc.poll() is None, self.bed.log_text(name)
        return proc

    def finish(self, proc):
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        return json.loads(out)


class Run:
    """What a steady client saw around an event at t0 (monotonic), and when
    the route or address was seen to move (seconds after t0)."""

    def __init__(self, fleet, tag, records, t0, moved):
        self.records = records
        self.t0 = t0
        self.moved = moved
        self.on = {host: fleet.served(host, tag) for host in ("lb1", "lb2")}
        self.failed = [r for r in records if not r[3]]
        with open(fleet.path("run-%s.json" % tag), "w") as f:  # for a look afterwards
            json.dump({"t0": t0, "moved": moved, "records": [r + [self.where(r)] for r in records]}, f)

    def where(self, record):
        return "lb1" if record[0] in self.on["lb1"] else "lb2" if record[0] in self.on["lb2"] else None

    def last_failure(self):
        return max(r[1] for r in self.failed) - self.t0 if self.failed else None

    def done_before(self):
        """The requests finished before t0 (one in flight at t0 may be lost
        to a kill or a link cut)."""
        return [r for r in self.records if r[2] < self.t0]

    def failures_text(self):
        return ", ".join("%s at %+.3f s: %s" % (r[0], r[1] - self.t0, r[4]) for r in self.failed[:20])

    def lost_text(self):
        text = "lost %d of %d" % (len(self.failed), len(self.records))
        if self.failed:
            text += " (the last begun %s after)" % secs(self.last_failure())
        return text

    def recovered(self):
        """Fine before t0; after it, the traffic all on lb2 within the bound."""
        assert self.done_before() and all(r[3] for r in self.done_before()), self.failures_text()
        assert self.moved is not None and self.moved < RECOVERY_BOUND
        assert self.last_failure() is None or self.last_failure() < RECOVERY_BOUND, self.failures_text()
        assert all(r[3] and self.where(r) == "lb2" for r in self.records[-50:]), self.failures_text()


RESETS = ("ConnectionResetError", "BrokenPipeError")


def check_graceful(run):
    """The goal is 0 lost. What a graceful stop may still cost: a new
    connection whose handshake straddles the instant the router moves to
    lb2 (its SYN reached lb1, the rest reaches lb2, which resets it: about
    one move in 30 catches one, at a connection every 7 ms all to lb1;
    two, should the client stall right then). Nothing else: no SYN
    dropped, nothing refused when lb1's listeners close."""
    assert run.moved is not None, "the traffic never moved"
    caught = [r for r in run.failed if r[4] in RESETS and abs(r[1] - run.t0 - run.moved) < 0.1]
    assert len(run.failed) <= 2 and caught == run.failed, (
        "the move at %.3f s lost: %s" % (run.moved, run.failures_text()))


def graceful_text(run, keepalive=False):
    if not run.failed:
        return "lost 0 of %d" % len(run.records)
    return "lost %d of %d (%s%s)" % (len(run.failed), len(run.records), run.failures_text(),
                                     "" if keepalive else ": a handshake the move caught")


def measure(fleet, tag, target, action, moved, baseline, until=lambda: True, keepalive=0):
    """Run the steady client at target; once baseline() holds, note t0 and
    run action(); poll moved() to time the move; stop the client once the
    move was seen, until() holds and lb2 has served 50 more requests."""
    client = fleet.steady(tag, target, keepalive)
    seen = {}
    try:
        wait_until(baseline, 10, "traffic before " + tag)
        t0 = time.monotonic()
        action()

        def done():
            if "moved" not in seen and moved():
                seen["moved"] = time.monotonic() - t0
            if "moved" not in seen or not until():
                return False
            served = len(fleet.served("lb2", tag))
            seen.setdefault("mark", served)
            return served >= seen["mark"] + 50
        wait_until(done, 20, "the traffic of %s to move to lb2" % tag)
    finally:
        records = fleet.finish(client)
    return Run(fleet, tag, records, t0, seen.get("moved"))


def secs(value):
    return "-" if value is None else "%.3f s" % value


FIGURE_LINES = []


def figure(line):
    """Print a figure and (re)write the figures file with all so far."""
    FIGURE_LINES.append(line)
    print(line)
    with open(FIGURES, "w") as f:
        f.write("# lb fleet figures: test/integration/test_fleet.py (%s), %s\n" % (
            os.path.basename(BUILD), time.strftime("%Y-%m-%d %H:%M")))
        f.write("# a new connection every %d ms, each given %d ms; drain_delay %s\n" % (
            INTERVAL_MS, TIMEOUT_MS, DRAIN_DELAY))
        f.write("\n".join(FIGURE_LINES) + "\n")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("fleet"))
    bed = Bed(workdir)
    try:
        bed.build()
    except Unavailable as e:
        bed.teardown()
        pytest.skip(str(e))
    except Exception:
        bed.teardown()
        raise
    fl = Fleet(bed, workdir)
    try:
        fl.start_backends()
        for host in ("lb1", "lb2"):
            fl.start_lb(host)
        yield fl
        fl.stop_speakers()
        for host in list(fl.lbs):
            fl.stop_lb(host, quick=True)
    finally:
        bed.teardown()


def ensure_lbs(fleet):
    for host in ("lb1", "lb2"):
        if host not in fleet.lbs or fleet.lbs[host].poll() is not None:
            fleet.lbs.pop(host, None)
            fleet.start_lb(host)


# ---- the watch alone (no namespaces, no root) ----

def test_healthwatch_follows_healthz(replicas, lb, procs, tmp_path):
    rs = replicas(1)
    port, admin = free_port(), free_port()
    lb(http_config(port, [r.addr for r in rs], workers=1,
                   extra_top="admin:\n  bind: 127.0.0.1:%d\n" % admin), port)
    wait_until(lambda: can_connect(admin), 5, "admin endpoint")
    states = tmp_path / "states"
    flag = tmp_path / "speaker-ready"
    # The up command fails until the "speaker" is there: retried at every poll.
    up = 'test -e %s && echo "$LB_HEALTHWATCH_STATE" >> %s' % (flag, states)
    down = 'echo "$LB_HEALTHWATCH_STATE" >> %s' % states
    url = "http://127.0.0.1:%d/healthz" % admin
    log = tmp_path / "watch.log"
    with open(log, "w") as f:
        watch = subprocess.Popen([HEALTHWATCH, "-i", "0.05", "-r", "2", "-x", url, up, down], stderr=f)
    procs.append(watch)

    def seen():
        return states.read_text().split() if states.exists() else []

    def admin_post(path):
        conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
        try:
            conn.request("POST", path)
            assert conn.getresponse().status == 200
        finally:
            conn.close()

    wait_until(lambda: "up command exited 1" in log.read_text(), 5, "the failing up command")
    assert seen() == []
    flag.touch()
    wait_until(lambda: seen() == ["up"], 5, "up once the command can succeed")
    admin_post("/drain")  # /healthz 503
    wait_until(lambda: seen() == ["up", "down"], 5, "down on 503")
    admin_post("/undrain")
    wait_until(lambda: seen() == ["up", "down", "up"], 5, "up again")
    watch.send_signal(signal.SIGTERM)  # -x: down on the way out
    assert watch.wait(timeout=10) == 0
    assert seen() == ["up", "down", "up", "down"]

    bad = subprocess.run([HEALTHWATCH, "-i", "x", url, "true", "true"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr
    bad = subprocess.run([HEALTHWATCH, url, "true"], capture_output=True, text=True)
    assert bad.returncode == 2


# ---- BGP + ECMP ----

def test_bgp_ecmp(fleet):
    ensure_lbs(fleet)
    both = sorted([ADDR["lb1"], ADDR["lb2"]])
    for host in ("lb1", "lb2"):  # the service address, on each lb host's loopback
        fleet.bed.ip(host, "addr", "replace", ECMP_VIP + "/32", "dev", "lo")
    try:
        fleet.bird("router", BIRD_ROUTER % ADDR)
        for host in ("lb1", "lb2"):
            sock = fleet.bird(host, BIRD_LB % dict(ADDR, me=ADDR[host], vip=ECMP_VIP))
            fleet.watch(host, "birdc -s %s enable vip" % sock, "birdc -s %s disable vip" % sock)
        wait_until(lambda: fleet.ecmp_paths() == both, 20, "the router's route through both lbs")

        def withdrawn():
            return fleet.ecmp_paths() == [ADDR["lb2"]]

        def both_serving(tag):
            return lambda: len(fleet.served("lb1", tag)) >= 20 and len(fleet.served("lb2", tag)) >= 20

        # (a) the split of new connections
        before = {h: fleet.connections_total(h) for h in ("lb1", "lb2")}
        burst = fleet.client("burst", ECMP_VIP, "80", str(SPLIT_CONNECTIONS))
        share = {h: fleet.connections_total(h) - before[h] for h in ("lb1", "lb2")}
        figure("bgp+ecmp  split of %d new connections: lb1 %d (%.1f%%), lb2 %d (%.1f%%)" % (
            SPLIT_CONNECTIONS, share["lb1"], 100.0 * share["lb1"] / SPLIT_CONNECTIONS,
            share["lb2"], 100.0 * share["lb2"] / SPLIT_CONNECTIONS))
        assert burst["ok"] == SPLIT_CONNECTIONS, burst["failed"][:10]
        assert share["lb1"] + share["lb2"] == SPLIT_CONNECTIONS, share
        for h in ("lb1", "lb2"):
            assert share[h] >= SPLIT_CONNECTIONS // 4, "%s got %d of %d new connections" % (
                h, share[h], SPLIT_CONNECTIONS)

        # (b) a key reaches the same replica through lb1, lb2 or the shared address
        targets = ["%s:80" % ADDR["lb1"], "%s:80" % ADDR["lb2"], "%s:80" % ECMP_VIP]
        answers = fleet.client("keys", str(KEYS), *targets)
        agree = [k for k in answers[targets[0]]
                 if answers[targets[0]][k] in ("r1", "r2", "r3")
                 and answers[targets[0]][k] == answers[targets[1]][k] == answers[targets[2]][k]]
        figure("bgp+ecmp  key agreement: %d of %d keys reach the same replica through lb1, lb2 and the "
               "address (replicas: %s)" % (len(agree), KEYS, ", ".join(
                   "%s %d" % (r, list(answers[targets[0]].values()).count(r)) for r in ("r1", "r2", "r3"))))
        assert len(agree) == KEYS, {k: [answers[t][k] for t in targets] for k in answers[targets[0]]
                                    if k not in agree}
        assert set(answers[targets[0]].values()) == {"r1", "r2", "r3"}

        # (c) lb1 stops gracefully: /healthz 503, the watch withdraws the
        # route, and only drain_delay later do lb1's listeners close
        lb1 = fleet.lbs["lb1"]
        run = measure(fleet, "eg", ECMP_VIP, action=lambda: lb1.send_signal(signal.SIGTERM),
                      moved=withdrawn, baseline=both_serving("eg"), until=lambda: lb1.poll() is not None)
        fleet.stop_lb("lb1")  # exit 0, clean log
        figure("bgp+ecmp  graceful stop of lb1 (SIGTERM): route withdrawn %s after the signal, %s" % (
            secs(run.moved), graceful_text(run)))
        check_graceful(run)
        assert run.moved < 1.0, "the route went %s after SIGTERM (see %s)" % (
            secs(run.moved), fleet.path("watch-lb1.log"))
        fleet.start_lb("lb1")
        wait_until(lambda: fleet.ecmp_paths() == both, 10, "lb1's route back")

        # (c') the same with a keep-alive client: figures only (it reopens a
        # connection lb closed, but retries no request; the move resets the
        # connections it still has on lb1, so lb closing them as it drains
        # is what spares them)
        lb1 = fleet.lbs["lb1"]
        run = measure(fleet, "eka", ECMP_VIP, action=lambda: lb1.send_signal(signal.SIGTERM),
                      moved=withdrawn, baseline=lambda: len(fleet.served("lb1", "eka")) >= 20,
                      until=lambda: lb1.poll() is not None, keepalive=KEEPALIVE_CONNECTIONS)
        fleet.stop_lb("lb1")
        figure("bgp+ecmp  graceful stop of lb1, keep-alive client (%d connections): route withdrawn %s after, "
               "%s" % (KEEPALIVE_CONNECTIONS, secs(run.moved), graceful_text(run, keepalive=True)))
        assert all(r[3] for r in run.records[-50:]), run.failures_text()
        fleet.start_lb("lb1")
        wait_until(lambda: fleet.ecmp_paths() == both, 10, "lb1's route back")

        # (d) lb1 is killed: its new connections are refused until the watch
        # withdraws the route
        lb1 = fleet.lbs["lb1"]
        run = measure(fleet, "ek", ECMP_VIP, action=lambda: lb1.kill(), moved=withdrawn,
                      baseline=both_serving("ek"))
        fleet.stop_lb("lb1", signal.SIGKILL)
        figure("bgp+ecmp  kill of lb1 (SIGKILL): route withdrawn %s after, %s" % (
            secs(run.moved), run.lost_text()))
        run.recovered()
        fleet.start_lb("lb1")
        wait_until(lambda: fleet.ecmp_paths() == both, 10, "lb1's route back")
    finally:
        fleet.stop_speakers()


# ---- VRRP ----

# Every lb host keeps the VRRP address as a local route (`ip route add
# local VIP dev lo table local`, with arp_ignore=1 so that only the master,
# which has the address on eth0, answers ARP for it): when the address
# moves, lb1 goes on accepting what the router still sends to its MAC
# address until the router has heard lb2's gratuitous ARP. Without it,
# keepalived takes the address off lb1 a moment before the router learns
# (the new master's advert leaves before its ARPs), and a SYN falling in
# that gap is dropped, retried by the client only after 1 s: lost.
# Two ways to move the address when lb turns unhealthy:
#  - fault: the tracks have weight 0, so lb1 enters FAULT, drops the address
#    and sends priority 0: lb2 takes over after its skew time (1.2 ms at
#    priority 253, advert_int 0.1).
#  - priority: the tracks lower lb1's priority below lb2's (weight -100);
#    lb2 preempts after the master-down interval (~0.3 s). Slower, and a
#    killed lb1 loses more.
VRRP_RECIPES = {"fault": 0, "priority": -100}


@pytest.mark.parametrize("recipe", sorted(VRRP_RECIPES))
def test_vrrp(fleet, recipe):
    ensure_lbs(fleet)
    for host in ("lb1", "lb2"):
        fleet.bed.ip(host, "route", "replace", "local", VRRP_VIP + "/32", "dev", "lo", "table", "local")
        fleet.bed.sysctl(host, "net.ipv4.conf.all.arp_ignore=1")
    lb1_mac = fleet.mac("lb1")
    try:
        # lb1 first: two instances starting together time out nearly at once
        # (their skews differ by 0.4 ms), both become master for a moment,
        # and the router may keep the MAC address of the one that yields.
        for host, priority in (("lb1", 254), ("lb2", 253)):
            track = fleet.keepalived(host, priority, VRRP_RECIPES[recipe])
            fleet.watch(host, "echo 0 > %s" % track, "echo 1 > %s" % track)
            wait_until(lambda: fleet.has_vrrp_vip("lb1"), 10, "lb1 to hold the VRRP address")
        assert fleet.client("burst", VRRP_VIP, "80", "20")["ok"] == 20
        wait_until(lambda: not fleet.has_vrrp_vip("lb2") and fleet.router_mac_for(VRRP_VIP) == lb1_mac, 10,
                   "the router to send the VRRP address to lb1")

        def on_lb2():
            return fleet.has_vrrp_vip("lb2")

        def lb1_master_again():
            return (fleet.has_vrrp_vip("lb1") and not fleet.has_vrrp_vip("lb2")
                    and fleet.router_mac_for(VRRP_VIP) == lb1_mac)

        def lb1_serving(tag):
            return lambda: len(fleet.served("lb1", tag)) >= 30

        def report(what, run, text):
            figure("vrrp/%-8s %s: address on lb2 %s after, %s" % (recipe, what, secs(run.moved), text))

        # link loss: lb1's port on the switch goes down
        tag = "vl" + recipe
        run = measure(fleet, tag, VRRP_VIP, action=lambda: fleet.bed.ip("sw", "link", "set", "lb1", "down"),
                      moved=on_lb2, baseline=lb1_serving(tag))
        report("link loss of lb1", run, run.lost_text())
        run.recovered()
        fleet.bed.ip("sw", "link", "set", "lb1", "up")
        wait_until(lb1_master_again, 10, "lb1 to take the address back")
        # lb1 lost its neighbours with the link: the first requests after
        # it wait for ARP and a retransmission; not part of what follows.
        assert fleet.client("burst", VRRP_VIP, "80", "20")["ok"] == 20

        # graceful stop: /healthz 503 -> the watch -> keepalived moves the address
        lb1 = fleet.lbs["lb1"]
        tag = "vg" + recipe
        run = measure(fleet, tag, VRRP_VIP, action=lambda: lb1.send_signal(signal.SIGTERM), moved=on_lb2,
                      baseline=lb1_serving(tag), until=lambda: lb1.poll() is not None)
        fleet.stop_lb("lb1")
        report("graceful stop of lb1 (SIGTERM)", run, graceful_text(run))
        check_graceful(run)
        assert run.moved < 1.0
        fleet.start_lb("lb1")
        wait_until(lb1_master_again, 10, "lb1 to take the address back")

        if recipe == "fault":
            # The same with a keep-alive client: figures only.
            lb1 = fleet.lbs["lb1"]
            tag = "vka"
            run = measure(fleet, tag, VRRP_VIP, action=lambda: lb1.send_signal(signal.SIGTERM), moved=on_lb2,
                          baseline=lb1_serving(tag), until=lambda: lb1.poll() is not None,
                          keepalive=KEEPALIVE_CONNECTIONS)
            fleet.stop_lb("lb1")
            report("graceful stop of lb1, keep-alive client (%d connections)" % KEEPALIVE_CONNECTIONS,
                   run, graceful_text(run, keepalive=True))
            assert all(r[3] for r in run.records[-50:]), run.failures_text()
            fleet.start_lb("lb1")
            wait_until(lb1_master_again, 10, "lb1 to take the address back")

        # kill
        lb1 = fleet.lbs["lb1"]
        tag = "vk" + recipe
        run = measure(fleet, tag, VRRP_VIP, action=lambda: lb1.kill(), moved=on_lb2, baseline=lb1_serving(tag))
        fleet.stop_lb("lb1", signal.SIGKILL)
        report("kill of lb1 (SIGKILL)", run, run.lost_text())
        run.recovered()
    finally:
        fleet.bed.ip("sw", "link", "set", "lb1", "up", check=False)
        fleet.stop_speakers()
        for host in ("lb1", "lb2"):
            fleet.bed.ip(host, "route", "del", "local", VRRP_VIP + "/32", "dev", "lo", "table", "local",
                         check=False)
            fleet.bed.sysctl(host, "net.ipv4.conf.all.arp_ignore=0")
