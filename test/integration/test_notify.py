"""systemd Type=notify (issue 17): READY=1 once lb serves, RELOADING=1 with
MONOTONIC_USEC on SIGHUP and READY=1 again once the new generation serves
(or the reload failed and the old one still does), STOPPING=1 on SIGTERM;
WATCHDOG=1 while every worker's loop turns. A datagram socket stands in for
systemd."""
import ctypes
import os
import signal
import socket
import time

import pytest

from conftest import free_port, http_config, wait_until


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield s
    s.close()


def message(sock):
    """The next message, as a dict of its KEY=VALUE lines."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n") if line)


def test_ready_reloading_stopping_in_order(replicas, lb, notify_socket):
    rs = replicas(1)
    port = free_port()
    config = http_config(port, [rs[0].addr])
    inst = lb(config, port)
    first = message(notify_socket)
    assert first["READY"] == "1"
    assert "serving generation 1" in first["STATUS"]

    inst.proc.send_signal(signal.SIGHUP)
    reloading = message(notify_socket)
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) > 0
    ready = message(notify_socket)
    assert ready["READY"] == "1"
    assert "serving generation 2" in ready["STATUS"]

    inst.write(config.replace("backends:", "backends: [oops"))
    inst.proc.send_signal(signal.SIGHUP)
    assert message(notify_socket)["RELOADING"] == "1"
    failed = message(notify_socket)
    assert failed["READY"] == "1"  # the old generation still serves
    assert "reload failed" in failed["STATUS"] and "still running generation 2" in failed["STATUS"]

    inst.proc.send_signal(signal.SIGTERM)
    stopping = message(notify_socket)
    assert stopping["STOPPING"] == "1"
    # systemd waits for drain_delay (0 here) + grace (10 s) + 5 s
    assert int(stopping["EXTEND_TIMEOUT_USEC"]) == 15_000_000
    assert inst.proc.wait(timeout=15) == 0


def test_no_notify_socket_changes_nothing(replicas, lb, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    rs = replicas(1)
    port = free_port()
    inst = lb(http_config(port, [rs[0].addr]), port)
    inst.reload()
    assert "lb running" in inst.log_text()


def worker_thread(pid, name):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() == name:
                return int(tid)
    raise AssertionError("no thread " + name)


class ThreadStop:
    """Stop one thread of another process, and only that one (ptrace
    PTRACE_SEIZE + PTRACE_INTERRUPT; SIGSTOP would stop them all)."""
    SEIZE, INTERRUPT, DETACH = 0x4206, 0x4207, 17

    def __init__(self, tid):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.tid = tid

    def __enter__(self):
        if self.libc.ptrace(self.SEIZE, self.tid, None, None) != 0:
            pytest.skip("ptrace refused here: errno %d" % ctypes.get_errno())
        assert self.libc.ptrace(self.INTERRUPT, self.tid, None, None) == 0
        os.waitpid(self.tid, os.__dict__.get("__WALL", 0x40000000))
        return self

    def __exit__(self, *exc):
        self.libc.ptrace(self.DETACH, self.tid, None, None)


def watchdog_pings(sock, seconds):
    """How many WATCHDOG=1 arrive within `seconds`."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if message(sock).get("WATCHDOG") == "1":
                count += 1
        except socket.timeout:
            break
    return count


def test_watchdog_pings_while_every_worker_turns_and_stops_when_one_hangs(replicas, lb, notify_socket,
                                                                           monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1s: a ping every 500 ms
    rs = replicas(1)
    port = free_port()
    inst = lb(http_config(port, [rs[0].addr], workers=2), port)
    assert watchdog_pings(notify_socket, 1.6) >= 2
    with ThreadStop(worker_thread(inst.proc.pid, "lb-worker-1")):
        # Within 3 s (the hung limit) the pings stop; none for 2 s after.
        wait_until(lambda: watchdog_pings(notify_socket, 1.2) == 0, 10, "the pings to stop")
        assert "worker 1 has not turned its event loop" in inst.log_text()
    wait_until(lambda: watchdog_pings(notify_socket, 1.2) >= 1, 10, "the pings to come back")
    assert "worker 1 turns again" in inst.log_text()


def test_watchdog_for_another_pid_is_not_ours(replicas, lb, notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    rs = replicas(1)
    port = free_port()
    inst = lb(http_config(port, [rs[0].addr]), port)
    assert message(notify_socket)["READY"] == "1"
    assert watchdog_pings(notify_socket, 0.5) == 0
    assert "systemd watchdog" not in inst.log_text()
