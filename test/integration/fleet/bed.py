"""The fleet test bed (issue 18): network namespaces as hosts.

    client 10.99.1.10 ── brA ── 10.99.1.1 router 10.99.2.1 ── brB ──┬─ lb1 10.99.2.11
                                                                    ├─ lb2 10.99.2.12
                                                                    ├─ r1..r3 10.99.2.21-23
                                                                    └─ dns 10.99.2.5

Both bridges live in a namespace of their own ("sw"); every host is a
namespace with an eth0 (the router an eth0 on A and an eth1 on B), made
there as one end of a veth pair whose other end is made straight in sw. So
nothing is created or configured in the root namespace. Names carry
"lbt<pid>-" so that two runs never meet; the namespaces of a run killed
before its teardown are removed by the next one.

Every process is started through `ip netns exec`, which execs the program
itself (the pid Popen sees is the program's), and is remembered; teardown
stops them by pid, then kills whatever else still runs in the namespaces
(children: keepalived's VRRP process, a script it ran) by the pids `ip netns
pids` lists, then deletes the namespaces.
"""
import os
import re
import shutil
import signal
import subprocess
import time

SUBNET_A = "10.99.1"
SUBNET_B = "10.99.2"
ADDR = {
    "client": SUBNET_A + ".10",
    "router_a": SUBNET_A + ".1",
    "router": SUBNET_B + ".1",
    "dns": SUBNET_B + ".5",
    "lb1": SUBNET_B + ".11",
    "lb2": SUBNET_B + ".12",
    "r1": SUBNET_B + ".21",
    "r2": SUBNET_B + ".22",
    "r3": SUBNET_B + ".23",
}
HOSTS_B = ["lb1", "lb2", "r1", "r2", "r3", "dns"]
BINARIES = ["ip", "sysctl", "bird", "birdc", "keepalived", "dnsmasq", "curl"]


class Unavailable(Exception):
    """The bed cannot be built here (not root, no namespaces, a program
    missing): the tests skip with this reason."""


def missing_binaries():
    return [b for b in BINARIES if shutil.which(b) is None]


def remove_orphans():
    """Namespaces of an earlier run whose process is gone (killed before its
    teardown): their processes killed, the namespaces deleted."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in re.findall(r"^(lbt(\d+)-\S+)", listed, re.M):
        ns, pid = name[0], int(name[1])
        if os.path.exists("/proc/%d" % pid):
            continue  # a run in progress (or the pid is someone else's now): not ours to touch
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Bed:
    def __init__(self, workdir):
        self.dir = workdir
        self.prefix = "lbt%d-" % os.getpid()
        self.namespaces = []
        self.procs = []   # (name, Popen, log file)

    def ns(self, host):
        return self.prefix + host

    # ---- commands ----

    def sh(self, *argv, check=True, timeout=10):
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), done.returncode, done.stderr.strip()))
        return done

    def ip(self, host, *args, check=True):
        return self.sh("ip", "-n", self.ns(host), *args, check=check)

    def run_in(self, host, *argv, check=True, timeout=10):
        return self.sh("ip", "netns", "exec", self.ns(host), *argv, check=check, timeout=timeout)

    def sysctl(self, host, *settings):
        self.run_in(host, "sysctl", "-q", "-w", *settings)

    def spawn(self, host, name, argv, env=None, stdout_pipe=False):
        """Start argv in host's namespace; output to DIR/NAME.log (or a
        pipe for stdout). Returns the Popen."""
        log_path = os.path.join(self.dir, name + ".log")
        log = open(log_path, "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host)] + list(argv),
                                stdout=subprocess.PIPE if stdout_pipe else log,
                                stderr=log, stdin=subprocess.DEVNULL, env=env)
        self.procs.append((name, proc, log))
        return proc

    def log_text(self, name):
        try:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # ---- building ----

    def build(self):
        if os.geteuid() != 0:
            raise Unavailable("the fleet bed needs root (network namespaces)")
        missing = missing_binaries()
        if missing:
            raise Unavailable("missing programs: %s (Debian: iproute2 bird2 keepalived dnsmasq-base curl)"
                              % " ".join(missing))
        remove_orphans()
        first = self.ns("sw")
        done = subprocess.run(["ip", "netns", "add", first], capture_output=True, text=True)
        if done.returncode != 0:
            raise Unavailable("ip netns add failed: " + done.stderr.strip())
        self.namespaces.append(first)
        for host in ["client", "router"] + HOSTS_B:
            self.sh("ip", "netns", "add", self.ns(host))
            self.namespaces.append(self.ns(host))
        for host in ["sw", "client", "router"] + HOSTS_B:
            self.ip(host, "link", "set", "lo", "up")
            # Quiet namespaces: no IPv6 (no DAD, no router solicitations).
            self.sysctl(host, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        for bridge in ("brA", "brB"):
            # No STP (ports forward at once); VRRP's 224.0.0.18 is flooded anyway.
            self.ip("sw", "link", "add", bridge, "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
            self.ip("sw", "link", "set", bridge, "up")
        self.plug("client", "eth0", "client", "brA", ADDR["client"] + "/24")
        self.plug("router", "eth0", "rtA", "brA", ADDR["router_a"] + "/24")
        self.plug("router", "eth1", "rtB", "brB", ADDR["router"] + "/24")
        for host in HOSTS_B:
            self.plug(host, "eth0", host, "brB", ADDR[host] + "/24")
        self.ip("client", "route", "add", "default", "via", ADDR["router_a"])
        for host in ("lb1", "lb2"):
            self.ip(host, "route", "add", "default", "via", ADDR["router"])
        # The router forwards, and hashes flows on addresses and ports (L4),
        # so that new connections from one client spread over the paths.
        self.sysctl("router", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")

    def plug(self, host, ifname, port, bridge, cidr):
        """A veth pair made in host's namespace: ifname there, port in sw on bridge."""
        self.ip(host, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", self.ns("sw"))
        self.ip("sw", "link", "set", port, "master", bridge, "up")
        self.ip(host, "addr", "add", cidr, "dev", ifname)
        self.ip(host, "link", "set", ifname, "up")

    # ---- teardown ----

    def stop(self, proc, sig=signal.SIGTERM, timeout=5.0):
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass

    def teardown(self):
        for name, proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
        for name, proc, log in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout:
                proc.stdout.close()
            log.close()
        # Whatever those started and left (keepalived's VRRP child, a
        # command a watch ran): by pid, namespace by namespace.
        for _ in range(3):
            left = []
            for ns in self.namespaces:
                done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
                left += [int(p) for p in done.stdout.split()]
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces = []
