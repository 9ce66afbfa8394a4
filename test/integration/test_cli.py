"""The process's life (SPEC 2, 3): command line, exit codes, daemon and pid
file, privileges, and every signal, with real processes (TCP mode, the
simplest listener)."""
import collections
import os
import signal
import socket
import subprocess

from conftest import LB, ROOT, can_connect, free_port, greeting, recv_all, tcp_config, wait_until


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


def test_a_configuration_file_that_cannot_be_opened_is_could_not_start(tmp_path):
    """SPEC 2: 3 could not start (a file could not be opened); with -t the
    errors are 1 (an invalid configuration)."""
    missing = str(tmp_path / "missing.yaml")
    out = subprocess.run([LB, "-c", missing], capture_output=True, text=True, timeout=10)
    assert out.returncode == 3 and "missing.yaml: cannot read" in out.stderr
    out = subprocess.run([LB, "-t", "-c", missing], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1 and "missing.yaml: cannot read" in out.stderr
