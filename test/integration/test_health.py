"""Health (SPEC 6): active checks, passive ejection, retries, with real processes.

The kill-and-restart test prints the measured removal and return times and
the number of failed client requests (run pytest with -s to see them).
"""
import datetime
import http.client
import json
import re
import signal
import socket
import threading
import time
import urllib.request

import pytest

from conftest import KeepAliveLoad, Replica, ScriptedServer, answering, free_port, http_config, wait_until

FAST_CHECKS = """\
    health_check:
      type: %s
      path: /healthz
      interval: 200ms
      timeout: 150ms
      rise: 2
      fall: 2
"""


def checked_config(port, servers, check="http", extra=""):
    # http_config already sets "health_check: type: none"; replace it.
    text = http_config(port, servers, extra_backend=extra)
    return text.replace("    health_check:\n      type: none\n", FAST_CHECKS % check)


def get(port, path="/", timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict((k.lower(), v) for k, v in resp.getheaders())
    finally:
        conn.close()


def log_time(line):
    stamp = line.split(" ", 1)[0]
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def log_lines(inst, pattern):
    return [l for l in inst.log_text().splitlines() if re.search(pattern, l)]


def test_killed_replica_costs_no_failed_request_and_returns(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(3)]
    port = free_port()
    # The kill also trips passive ejection; its cooldown must not hold the
    # server back once the active checks pass again.
    extra = "    passive:\n      failures: 5\n      cooldown: 200ms\n"
    inst = lb(checked_config(port, [r.addr for r in rs], extra=extra), port)
    with KeepAliveLoad(port) as load:
        wait_until(lambda: load.ok > 200, 10, "steady traffic")
        killed_at = time.time()
        rs[1].proc.send_signal(signal.SIGKILL)
        rs[1].proc.wait(5)
        down = wait_until(lambda: log_lines(inst, r"server app/%s down" % rs[1].addr), 5, "down")
        removal = log_time(down[0]) - killed_at
        seen_before = dict(load.seen)
        wait_until(lambda: load.seen.get("r0", 0) > seen_before.get("r0", 0) + 100, 10, "traffic without r1")
        restarted_at = time.time()
        back = Replica(procs, port=rs[1].port, name="r1").start()
        up = wait_until(lambda: log_lines(inst, r"server app/%s up" % rs[1].addr), 5, "up")
        returned = log_time(up[0]) - restarted_at
        count = load.seen.get("r1", 0)
        wait_until(lambda: load.seen.get("r1", 0) > count + 50, 10, "traffic to the returned replica")
    print("\nkill/restart under load: %d ok, %d failed; removal %.0f ms (fall x interval = 400 ms), "
          "return %.0f ms (rise x interval = 400 ms)" % (load.ok, len(load.failures), removal * 1000,
                                                          returned * 1000))
    assert load.failures == []
    assert removal < 0.4 + 1.0
    assert returned < 0.4 + 1.0
    assert back.proc.poll() is None
    assert "2 passed checks" in up[0]


def test_http_check_answering_500_takes_server_out(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(2)]
    port = free_port()
    inst = lb(checked_config(port, [r.addr for r in rs]), port)
    assert get(rs[1].port, "/control/health/fail")[0] == 200
    wait_until(lambda: log_lines(inst, r"server app/%s down \(2 failed checks: status 500\)" % rs[1].addr), 5,
               "down on status 500")
    assert {get(port)[1] for _ in range(10)} == {b"r0\n"}
    assert get(rs[1].port, "/control/health/ok")[0] == 200
    wait_until(lambda: log_lines(inst, r"server app/%s up" % rs[1].addr), 5, "back up")
    assert {get(port)[1] for _ in range(10)} == {b"r0\n", b"r1\n"}


def test_replica_that_never_answers_is_taken_out_by_check_timeout(procs, lb):
    good = Replica(procs, name="good").start()
    # A server that accepts connections but never answers anything.
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)
    mute_addr = "127.0.0.1:%d" % mute.getsockname()[1]
    try:
        port = free_port()
        extra = "    timeouts:\n      response: 500ms\n"
        inst = lb(checked_config(port, [good.addr, mute_addr], extra=extra), port)
        # Until the checks notice, a request sent there is answered 504.
        statuses = [get(port)[0] for _ in range(2)]
        assert set(statuses) <= {200, 504}
        wait_until(lambda: log_lines(inst, r"server app/%s down \(2 failed checks: timeout\)" % mute_addr), 5,
                   "down on check timeout")
        assert [get(port)[0] for _ in range(6)] == [200] * 6
    finally:
        mute.close()


def test_all_replicas_down_gives_503_with_retry_after(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(2)]
    port = free_port()
    inst = lb(checked_config(port, [r.addr for r in rs], check="tcp"), port)
    for r in rs:
        r.kill()
    wait_until(lambda: len(log_lines(inst, r"server app/.* down")) == 2, 5, "both down")
    status, _, headers = get(port)
    assert status == 503 and headers["retry-after"] == "1"


def test_health_state_survives_a_reload(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(2)]
    port = free_port()
    config = checked_config(port, [r.addr for r in rs])
    inst = lb(config, port)
    get(rs[1].port, "/control/health/fail")
    wait_until(lambda: log_lines(inst, r"server app/%s down" % rs[1].addr), 5, "down")
    inst.reload(config.replace("level: info", "level: info\n  grace: 2s"))
    # Straight after the reload the server is still down: no request reaches it.
    assert {get(port)[1] for _ in range(10)} == {b"r0\n"}


def test_server_added_by_reload_is_checked_at_once(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(2)]
    port = free_port()
    # One failed check takes a server down; checks run only every 5 s.
    slow = (FAST_CHECKS % "http").replace("interval: 200ms", "interval: 5s").replace("fall: 2", "fall: 1")

    def config(servers):
        return http_config(port, servers).replace("    health_check:\n      type: none\n", slow)
    inst = lb(config([rs[0].addr]), port)
    get(rs[1].port, "/control/health/fail")
    inst.reload(config([rs[0].addr, rs[1].addr]))
    reloaded = time.monotonic()
    # Only a probe at once can notice before the first interval is over.
    wait_until(lambda: log_lines(inst, r"server app/%s down \(1 failed checks: status 500\)" % rs[1].addr), 10,
               "the new server's first check")
    assert time.monotonic() - reloaded < 2.5  # the first interval (5 s) was not waited for


def test_passive_failures_take_a_server_down_at_once(procs, lb):
    r = Replica(procs, name="r0").start()
    dead = "127.0.0.1:%d" % free_port()
    port = free_port()
    extra = "    passive:\n      failures: 1\n      cooldown: 30s\n"
    inst = lb(http_config(port, [dead, r.addr], extra_backend=extra), port)
    assert get(port)[0] == 200  # the retry hides the dead one
    wait_until(lambda: log_lines(inst, r"server app/%s down \(1 consecutive failures" % dead), 5, "passive down")
    for _ in range(6):
        assert get(port)[0] == 200
    # Down: it takes no more attempts, so its failure count stays at one.
    assert len(log_lines(inst, r"server app/%s down" % dead)) == 1


def admin_json(admin_port, path="/stats"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (admin_port, path), timeout=5) as resp:
        body = resp.read().decode()
    return json.loads(body) if path == "/stats" else body


@pytest.mark.parametrize("threshold", ["50%", "0"])
def test_panic_balances_across_all_servers_when_too_few_are_up(procs, lb, threshold):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(4)]
    port, admin = free_port(), free_port()
    extra = "    panic_threshold: %s\nadmin:\n  bind: 127.0.0.1:%d\n" % (threshold, admin)
    inst = lb(checked_config(port, [r.addr for r in rs], extra=extra), port)
    for r in rs[1:]:  # their checks fail, but they still serve
        get(r.port, "/control/health/fail")
    wait_until(lambda: len(log_lines(inst, r"server app/.* down \(2 failed checks")) == 3, 5, "three down")
    if threshold == "0":
        assert {get(port)[1] for _ in range(12)} == {b"r0\n"}
        assert "panic" not in inst.log_text()
        return
    # 1 of 4 up is below 50%: every server takes requests again.
    wait_until(lambda: log_lines(inst, r"backend app: panic: 1 of 4 servers healthy"), 2, "panic")
    assert admin_json(admin)["backends"][0]["panic"] is True
    assert 'lb_backend_panic{backend="app"} 1' in admin_json(admin, "/metrics")
    assert {get(port)[1] for _ in range(12)} == {b"r0\n", b"r1\n", b"r2\n", b"r3\n"}
    for r in rs[1:]:
        get(r.port, "/control/health/ok")
    wait_until(lambda: log_lines(inst, r"backend app: panic over: [234] of 4 servers healthy"), 5, "panic over")
    assert admin_json(admin)["backends"][0]["panic"] is False


def test_passive_ejection_never_takes_out_more_than_max_ejected(procs, lb):
    live = Replica(procs, name="live").start()
    dead = ["127.0.0.1:%d" % free_port() for _ in range(3)]
    port, admin = free_port(), free_port()
    extra = ("    retries: 3\n    passive:\n      failures: 1\n      cooldown: 30s\n      max_ejected: 50%%\n"
             "admin:\n  bind: 127.0.0.1:%d\n" % admin)
    inst = lb(http_config(port, dead + [live.addr], extra_backend=extra), port)
    assert [get(port)[0] for _ in range(20)] == [200] * 20
    servers = admin_json(admin)["backends"][0]["servers"]
    ejected = [s["addr"] for s in servers if s["ejected_until"] is not None]
    assert len(ejected) == 2 and live.addr not in ejected, servers
    assert all(s["state"] == "down" for s in servers if s["addr"] in ejected)
    assert all(s["ejected_until"] > time.time() + 20 for s in servers if s["addr"] in ejected)
    assert log_lines(inst, r"not ejected after 1 consecutive failures .*: 2 of 4 servers are out already")
    metrics = admin_json(admin, "/metrics")
    assert 'lb_server_ejected{backend="app",server="%s"} 1' % ejected[0] in metrics
    assert 'lb_server_ejections_total{backend="app",server="%s"} 1' % ejected[0] in metrics
    assert 'lb_server_ejected{backend="app",server="%s"} 0' % live.addr in metrics
    assert "\nlb_own_failures_total 0\n" in metrics  # refused connects are the servers' failures


def test_repeated_ejections_back_off_and_each_ends_after_its_cooldown(procs, lb):
    live = Replica(procs, name="live").start()
    dead = "127.0.0.1:%d" % free_port()
    port = free_port()
    extra = "    passive:\n      failures: 1\n      cooldown: 200ms\n"
    inst = lb(http_config(port, [dead, live.addr], extra_backend=extra), port)

    def ejections():
        get(port)  # traffic finds the dead server each time it is back
        return len(log_lines(inst, r"server app/%s down" % dead)) >= 3
    wait_until(ejections, 10, "three ejections")
    downs = log_lines(inst, r"server app/%s down" % dead)[:3]
    ups = log_lines(inst, r"server app/%s up \(passive cooldown over\)" % dead)[:2]
    cooldowns = [int(re.search(r"ejected for at least (\d+)ms", line).group(1)) for line in downs]
    assert cooldowns == [200, 400, 600]
    for down, up, cooldown in zip(downs, ups, cooldowns):
        assert log_time(up) - log_time(down) >= cooldown / 1000.0 - 0.01  # the coarse clock: a tick


def test_reload_turning_checks_off_brings_a_down_server_back_for_good(procs, lb):
    good = Replica(procs, name="good").start()
    mute = socket.socket()  # accepts, never answers: every check times out
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)
    mute_addr = "127.0.0.1:%d" % mute.getsockname()[1]
    try:
        port, admin = free_port(), free_port()
        # A probe is in flight nearly all the time: 500 ms each, 10 ms apart.
        slow = ("    health_check:\n      type: http\n      interval: 10ms\n      timeout: 500ms\n      fall: 1\n"
                "admin:\n  bind: 127.0.0.1:%d\n" % admin)
        base = http_config(port, [good.addr, mute_addr])  # health_check: type: none
        config = base.replace("    health_check:\n      type: none\n", "")
        unchecked = base.replace("      type: none\n", "      type: none\n      fall: 1\n")
        inst = lb(config.rstrip("\n") + "\n" + slow, port)
        wait_until(lambda: log_lines(inst, r"server app/%s down" % mute_addr), 5, "down by its checks")
        inst.reload(unchecked.rstrip("\n") + "\nadmin:\n  bind: 127.0.0.1:%d\n" % admin)  # checks off
        wait_until(lambda: log_lines(inst, r"server app/%s up \(health checks turned off\)" % mute_addr), 5, "up")
        # The probe that was in flight must not take it down again: watch
        # for twice its timeout.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            servers = admin_json(admin)["backends"][0]["servers"]
            assert all(s["state"] == "up" for s in servers), servers
        assert len(log_lines(inst, r"server app/%s down" % mute_addr)) == 1
    finally:
        mute.close()


@pytest.mark.parametrize("status_line", [b"HTTP/1.1  200 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 20 OK",
                                         b"HTTP/1.1 200OK", b"HTTP/1.2 200 OK", b"HTTP/1.1 200 OK\n"])
def test_http_check_counts_a_malformed_status_line_as_failing(procs, lb, status_line):
    good = Replica(procs, name="good").start()
    bad = ScriptedServer(answering(lambda head: status_line + b"\r\nContent-Length: 0\r\n\r\n"))
    try:
        port = free_port()
        inst = lb(checked_config(port, [good.addr, bad.addr]), port)
        wait_until(lambda: log_lines(inst, r"server app/%s down \(2 failed checks: invalid response\)" % bad.addr), 5,
                   "the malformed server down")
    finally:
        bad.close()


def test_a_refused_check_is_logged_as_the_spec_writes_it(procs, lb):
    """SPEC 6: `server app/127.0.0.1:9001 down (3 failed checks: connection
    refused)`: strerror's text as a phrase, in lower case."""
    rs = [Replica(procs, name="r0").start()]
    gone = "127.0.0.1:%d" % free_port()  # nothing listens there
    port = free_port()
    inst = lb(checked_config(port, [rs[0].addr, gone]), port)
    wait_until(lambda: log_lines(inst, r"server app/%s down \(2 failed checks: connection refused\)" % gone), 5,
               "down, connection refused")
