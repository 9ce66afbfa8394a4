"""TCP mode (SPEC 8) and the process lifecycle (SPEC 2, 3) with real processes."""
import collections
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time

from conftest import (LB, ROOT, can_connect, free_port, recv_all, recv_line, reload_under_load, tcp_config,
                      wait_until)


def greeting(port):
    """Connect through lb to a greeting replica and return its name."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return recv_line(s).decode().strip()


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
    names = [greeting(port) for _ in range(60)]
    assert all(n in ("r0", "r1") for n in names), names
    assert len(names) == 60


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


def test_sighup_adding_a_server_gives_it_traffic(replicas, lb):
    rs = replicas(2, mode="tcp", args=["-g"])
    port = free_port()
    inst = lb(tcp_config(port, [rs[0].addr]), port)
    assert {greeting(port) for _ in range(4)} == {"r0"}
    inst.reload(tcp_config(port, [rs[0].addr, rs[1].addr]))
    assert collections.Counter(greeting(port) for _ in range(10)) == {"r0": 5, "r1": 5}


def test_sighup_with_broken_file_keeps_serving_and_logs_errors(replicas, lb):
    rs = replicas(1, mode="tcp", args=["-g"])
    port = free_port()
    inst = lb(tcp_config(port, [rs[0].addr]), port)
    inst.reload("listeners:\n  - name: x\n    bind: nowhere\n    colour: blue\n", expect_ok=False)
    log = inst.log_text()
    assert "lb.yaml:" in log and "colour" in log and "bind" in log
    assert greeting(port) == "r0"


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


def test_sigterm_lets_an_inflight_connection_finish(replicas, lb):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    inst = lb(tcp_config(port, [r.addr]), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"one")
    assert s.recv(3) == b"one"
    inst.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not can_connect(port), 5, "listener closed")
    s.sendall(b"two")
    assert s.recv(3) == b"two"
    s.shutdown(socket.SHUT_WR)
    assert recv_all(s, 5) == b""
    s.close()
    assert inst.proc.wait(timeout=10) == 0


def test_sigterm_closes_connections_left_after_grace(replicas, lb):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    inst = lb(tcp_config(port, [r.addr], extra_global="  grace: 300ms"), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(timeout=10) == 0
    assert recv_all(s, 5) == b""
    s.close()


def test_daemon_writes_a_live_pid_file(replicas, tmp_path, procs):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    conf = tmp_path / "lb.yaml"
    conf.write_text(tcp_config(port, [r.addr]))
    pidfile = tmp_path / "lb.pid"
    rc = subprocess.run([LB, "-c", str(conf), "-d", "-p", str(pidfile)], timeout=10).returncode
    assert rc == 0
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)  # alive
        assert can_connect(port)
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10, "daemon exit")
        assert not pidfile.exists()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_check_flag_accepts_the_reference_config():
    out = subprocess.run([LB, "-t", "-c", os.path.join(ROOT, "conf/lb.yaml")], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0 and out.stdout.strip() == "configuration OK", out.stderr


def test_check_flag_lists_every_error_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("global:\n  grace: 5\n  workers: lots\nlisteners:\n  - name: a\n    bind: \"*:80\"\n"
                   "    backend: nope\nbackends:\n  - name: b\n    servers:\n      - addr: 127.0.0.1:1\n"
                   "        weight: heavy\n")
    out = subprocess.run([LB, "-t", "-c", str(bad)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) >= 4, lines
    for line in lines:
        assert line.startswith(str(bad) + ":"), line
    text = out.stderr
    assert "global.grace" in text and "global.workers" in text
    assert "listeners[0].backend" in text and "backends[0].servers[0].weight" in text
    assert ":12:17: backends[0].servers[0].weight" in text


def test_usage_error_exits_2():
    assert subprocess.run([LB, "-x"], capture_output=True, timeout=10).returncode == 2


def test_bind_failure_exits_3(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        conf = tmp_path / "lb.yaml"
        conf.write_text(tcp_config(port, ["127.0.0.1:1"]))
        out = subprocess.run([LB, "-c", str(conf)], capture_output=True, text=True, timeout=10)
        assert out.returncode == 3
        assert "cannot listen" in out.stderr


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


def test_sigusr1_reopens_the_log_file(replicas, lb, tmp_path):
    r = replicas(1, mode="tcp", args=["-g"])[0]
    port = free_port()
    logfile = tmp_path / "lb-file.log"
    inst = lb(tcp_config(port, [r.addr]).replace("    level: info\n", "    level: info\n    target: %s\n" % logfile),
              port)
    wait_until(lambda: logfile.exists() and "lb running" in logfile.read_text(), 5, "log file")
    rotated = tmp_path / "lb-file.log.1"
    os.rename(logfile, rotated)
    inst.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: logfile.exists() and "log files reopened" in logfile.read_text(), 5, "reopened log")
    assert "log files reopened" not in rotated.read_text()


def test_sigquit_stops_at_once(replicas, lb):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    inst = lb(tcp_config(port, [r.addr]), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    inst.proc.send_signal(signal.SIGQUIT)
    assert inst.proc.wait(timeout=5) == 0
    assert recv_all(s, 5) == b""  # closed with the process, no grace period
    s.close()


def test_user_drops_privileges_after_binding(replicas, lb):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to drop privileges")
    r = replicas(1, mode="tcp", args=["-g"])[0]
    port = free_port()
    inst = lb(tcp_config(port, [r.addr], extra_global="  user: nobody"), port)
    import pwd
    nobody = str(pwd.getpwnam("nobody").pw_uid)

    def uids():
        with open("/proc/%d/status" % inst.proc.pid) as f:
            return [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    # The socket is bound (and accepts) before the drop: wait for the drop.
    wait_until(lambda: uids() == [nobody] * 4, 5, "uid nobody")
    assert greeting(port) == "r0"


def test_daemon_with_relative_paths_reloads_and_writes_its_pid_where_asked(replicas, tmp_path):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    (tmp_path / "lb.yaml").write_text(tcp_config(port, [r.addr]).replace(
        "    level: info\n", "    level: info\n    target: lb.log\n"))
    rc = subprocess.run([LB, "-d", "-c", "lb.yaml", "-p", "lb.pid"], cwd=str(tmp_path), timeout=10).returncode
    assert rc == 0
    pid = int((tmp_path / "lb.pid").read_text())
    try:
        log = tmp_path / "lb.log"
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: log.exists() and "reload: generation 2 running" in log.read_text(), 10, "the reload")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10, "daemon exit")


def test_reload_binds_new_listeners_and_closes_removed_ones(replicas, lb):
    r = replicas(1, mode="tcp", args=["-g"])[0]
    port, extra_port = free_port(), free_port()
    base = tcp_config(port, [r.addr])
    second = base.replace("backends:\n", "  - name: second\n    bind: \"127.0.0.1:%d\"\n    mode: tcp\n"
                          "    backend: app\nbackends:\n" % extra_port)
    inst = lb(base, port)
    assert not can_connect(extra_port)
    inst.reload(second)
    assert greeting(extra_port) == "r0"
    inst.reload(base)
    wait_until(lambda: not can_connect(extra_port), 5, "the removed listener to close")
    assert greeting(port) == "r0"


def test_version_and_help_exit_0():
    out = subprocess.run([LB, "-V"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("lb ")
    out = subprocess.run([LB, "-h"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "usage: lb" in out.stdout


def test_global_pidfile_is_written_and_removed(replicas, lb, tmp_path):
    r = replicas(1, mode="tcp")[0]
    port = free_port()
    pidfile = tmp_path / "from-config.pid"
    inst = lb(tcp_config(port, [r.addr], extra_global="  pidfile: %s" % pidfile), port)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(inst.proc.pid), 5, "pid file")
    assert inst.stop() == 0
    assert not pidfile.exists()


def test_sigusr1_reopens_the_access_log(replicas, lb, tmp_path):
    r = replicas(1, mode="tcp", args=["-g"])[0]
    port = free_port()
    access = tmp_path / "access.log"
    inst = lb(tcp_config(port, [r.addr], extra_global="  access_log: %s" % access), port)
    assert greeting(port) == "r0"
    wait_until(lambda: access.exists() and " 0 3 " in access.read_text(), 5, "the greeting's access line")
    os.rename(access, tmp_path / "access.log.1")
    inst.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: "log files reopened" in inst.log_text(), 5, "reopen")
    assert greeting(port) == "r0"
    wait_until(lambda: access.exists() and "front app" in access.read_text(), 5, "a line in the new file")
