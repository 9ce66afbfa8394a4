"""Integration test harness: real lb and replica processes on 127.0.0.1.

Every process a test starts is registered with the `procs` fixture and
killed by pid when the test ends, whatever happened. Waiting is done by
polling a condition with a deadline, never by a bare sleep.

LB_BUILD names the build directory to test (build, build-asan).
"""
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import textwrap
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("LB_BUILD", "build"))
LB = os.path.join(BUILD, "lb")
REPLICA = os.path.join(BUILD, "replica")


def wait_until(predicate, timeout=5.0, what="condition"):
    """Poll predicate until it is true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def run_concurrently(target, count, timeout=60):
    """Run target() in `count` threads at once and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "clients still running"


class KeepAliveLoad:
    """Client threads sending GETs on keep-alive connections until stopped."""

    def __init__(self, port, threads=4):
        self.port = port
        self.ok = 0
        self.failures = []
        self.seen = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        conn = None
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                with self.lock:
                    if resp.status == 200:
                        self.ok += 1
                        name = body.decode().strip()
                        self.seen[name] = self.seen.get(name, 0) + 1
                    else:
                        self.failures.append(resp.status)
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append(repr(e))
                conn = None

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(40)


def reload_under_load(inst, load, configs, times=5, progress=20):
    """SIGHUP `times` times, cycling through configs, while `load` (an
    object counting successes in .ok) keeps sending; between two reloads and
    after the last, wait for `progress` more successes."""
    for i in range(times):
        wait_until(lambda n=load.ok: load.ok > n + progress, 10, "traffic between reloads")
        inst.reload(configs[(i + 1) % len(configs)])
    wait_until(lambda n=load.ok: load.ok > n + progress, 10, "traffic after the reloads")


def admin_stats(port):
    """GET /stats of an lb's admin endpoint on 127.0.0.1:port, parsed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


_PORTS_GIVEN = set()


def free_port():
    """A free 127.0.0.1 port, never one already given in this run: two
    calls in a row (a listener and its admin port) could get the same one
    back from the kernel once the first socket closed."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Replica:
    def __init__(self, procs, port=None, name=None, mode="http", args=()):
        self.port = port or free_port()
        self.name = name or "replica-%d" % self.port
        self.mode = mode
        self.args = list(args)
        self.procs = procs
        self.proc = None

    def start(self):
        cmd = [REPLICA, "-p", str(self.port), "-n", self.name, "-m", self.mode] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(self.proc)
        line = self.proc.stdout.readline()
        assert "listening" in line, "replica did not start: %r %r" % (line, self.proc.stderr.read())
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


# make tsan: a ThreadSanitizer build, whose memory figures mean nothing.
UNDER_TSAN = os.path.basename(BUILD) == "build-tsan"


def under_sanitizer():
    """An AddressSanitizer or ThreadSanitizer build: its allocator keeps what
    churns (quarantine, shadow), so memory figures mean little there."""
    return any(name in os.path.basename(BUILD) for name in ("asan", "tsan"))


def workers_under_test(n):
    """The workers an lb configured with n runs: LB_TEST_WORKERS=N (make
    tsan) gives N to every lb written with more than one."""
    override = os.environ.get("LB_TEST_WORKERS")
    return int(override) if override and n > 1 else n


def with_test_workers(config):
    """LB_TEST_WORKERS=N runs every multi-worker lb with N workers; tests
    of a single worker's behaviour (workers: 1) stay as they are."""
    workers = os.environ.get("LB_TEST_WORKERS")
    if not workers or re.search(r"^  workers: *1 *$", config, re.M):
        return config
    if re.search(r"^  workers:", config, re.M):
        return re.sub(r"^  workers: *\S+", "  workers: " + workers, config, flags=re.M)
    if re.search(r"^global: *$", config, re.M):
        return re.sub(r"^global: *$", "global:\n  workers: " + workers, config, count=1, flags=re.M)
    if re.search(r"^global:", config, re.M):
        return config  # written inline: left as it is
    return "global:\n  workers: %s\n" % workers + config


class Lb:
    """One lb process with its config file and log."""

    def __init__(self, procs, tmp_path, config, port=None):
        self.procs = procs
        self.dir = tmp_path
        self.path = os.path.join(str(tmp_path), "lb.yaml")
        self.log_path = os.path.join(str(tmp_path), "lb.log")
        self.proc = None
        self.port = port
        self.write(config)

    def write(self, config):
        with open(self.path, "w") as f:
            f.write(with_test_workers(textwrap.dedent(config)))

    def start(self, wait_port=None, args=(), preexec_fn=None):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8")
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([LB, "-c", self.path] + list(args), stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn)
        self.procs.append(self.proc)
        port = wait_port or self.port
        if port is None:
            return self
        with open(self.path) as f:
            logs_here = "target:" not in f.read()
        if logs_here:
            # Ready once it says so: listeners bound, admin bound, workers
            # accepting. (A probe connection would be balanced like any
            # other and shift what a test counts.)
            wait_until(lambda: "lb running" in self.log_text() or self.proc.poll() is not None, 10, "lb to start")
        else:
            wait_until(lambda: can_connect(port) or self.proc.poll() is not None, 10, "lb to listen")
        assert self.proc.poll() is None, "lb exited: " + self.log_text()
        return self

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def reload(self, config=None, expect_ok=True):
        """SIGHUP and wait for lb to say how the reload went."""
        if config is not None:
            self.write(config)
        before_ok = self.log_text().count("reload: generation")
        before_failed = self.log_text().count("reload failed")
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_text().count("reload: generation") > before_ok
                   or self.log_text().count("reload failed") > before_failed, 10, "reload result")
        ok = self.log_text().count("reload: generation") > before_ok
        assert ok == expect_ok, self.log_text()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()


@pytest.fixture
def replicas(procs):
    """replicas(n, mode=..., args=...) -> list of started Replica."""
    def make(n, mode="http", args=()):
        return [Replica(procs, mode=mode, name="r%d" % i, args=args).start() for i in range(n)]
    return make


@pytest.fixture
def lb(procs, tmp_path):
    """lb(config_text, port, start=True) -> Lb, started unless start=False.
    preexec_fn runs in the child before lb starts (limits, say)."""
    instances = []

    def make(config, port=None, start=True, args=(), preexec_fn=None):
        directory = tmp_path / ("lb%d" % len(instances))
        directory.mkdir()
        inst = Lb(procs, directory, config, port)
        instances.append(inst)
        return inst.start(args=args, preexec_fn=preexec_fn) if start else inst
    yield make
    # Every lb still running is stopped gracefully: a clean exit status and
    # no sanitizer report prove it neither leaked nor misbehaved.
    problems = []
    for inst in instances:
        if inst.proc and inst.proc.poll() is None:
            inst.proc.send_signal(signal.SIGTERM)
            try:
                rc = inst.proc.wait(timeout=15)
                if rc != 0:
                    problems.append("lb exited with %d" % rc)
            except subprocess.TimeoutExpired:
                inst.proc.kill()
                inst.proc.wait(timeout=5)
                problems.append("lb did not stop on SIGTERM")
        if getattr(inst, "log", None):
            inst.log.close()
            text = inst.log_text()
            for marker in ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:"):
                if marker in text:
                    problems.append(marker + " report:\n" + text[-4000:])
    assert not problems, "\n".join(problems)


def tcp_config(port, servers, extra_backend="", extra_global="", workers=2, balance="round_robin"):
    lines = "\n".join("      - addr: %s" % s if isinstance(s, str) else
                      "      - addr: %s\n        weight: %d" % s for s in servers)
    return """\
global:
  workers: %d
  log:
    level: info
%s
listeners:
  - name: front
    bind: "127.0.0.1:%d"
    mode: tcp
    backend: app
backends:
  - name: app
    balance: %s
    health_check:
      type: none
    servers:
%s
%s
""" % (workers, extra_global, port, balance, lines, extra_backend)


def http_config(port, servers, extra_backend="", extra_listener="", extra_global="", workers=2,
                balance="round_robin", extra_top=""):
    lines = "\n".join("      - addr: %s" % s if isinstance(s, str) else
                      "      - addr: %s\n        weight: %d" % s for s in servers)
    return """\
global:
  workers: %d
  log:
    level: info
%s
listeners:
  - name: web
    bind: "127.0.0.1:%d"
    mode: http
    backend: app
%s
backends:
  - name: app
    balance: %s
    health_check:
      type: none
    servers:
%s
%s
%s
""" % (workers, extra_global, port, extra_listener, balance, lines, extra_backend, extra_top)


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, field):
    """A "kB" line of /proc/PID/status (VmRSS, VmHWM...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no " + field)


def limit_descriptors(n):
    """A preexec_fn: the child may open n descriptors at most."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def open_pending_connections(port, n):
    """n non-blocking connects to port, nothing sent: lb must queue them."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


class ScriptedServer:
    """A server on 127.0.0.1 whose answer to each connection is `script`
    (conn -> None), for the server behaviours the replica does not have.
    One thread per connection. A context manager, or close() it."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.connections = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                self.script(conn)
            except OSError:
                pass

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_head(conn):
    """Read one request head from conn; b"" when the peer closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(4096)
        if not data:
            return b""
        buf += data
    return buf


def answering(answer):
    """A ScriptedServer script: read a request head, write answer(head) and
    close."""
    def script(conn):
        head = read_head(conn)
        if head:
            conn.sendall(answer(head))
    return script


def recv_all(sock, timeout=10.0):
    """Read until EOF."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def greeting(port):
    """Connect through lb to a greeting replica (-g) and return its name."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return recv_line(s).decode().strip()


def recv_line(sock, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data
