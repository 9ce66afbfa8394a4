"""systemd Type=notify (issue 17): READY=1 once lb serves, RELOADING=1 with
MONOTONIC_USEC on SIGHUP and READY=1 again once the new generation serves
(or the reload failed and the old one still does), STOPPING=1 on SIGTERM.
A datagram socket stands in for systemd."""
import os
import signal
import socket

import pytest

from conftest import free_port, http_config


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
