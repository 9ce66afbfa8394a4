"""A rolling restart costs nothing (issue 10, SPEC 6): health that never
empties a backend, lb's own shortages never blamed on a server, two lb
instances that agree on every hash key.

The load is wrk, the client the issue measured with. Run pytest with -s to
see the figures each test measures.
"""
import json
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import time
import urllib.request

import pytest

from conftest import Replica, free_port, http_config, limit_descriptors, open_pending_connections, wait_until
from test_health import log_time

WRK = shutil.which("wrk")
needs_wrk = pytest.mark.skipif(WRK is None, reason="wrk is not installed (scripts/deps.sh installs it)")


def default_config(port, servers, admin_port=None, extra_backend="", balance="round_robin"):
    """http_config with the default health settings (it turns checks off)."""
    text = http_config(port, servers, extra_backend=extra_backend, balance=balance)
    text = text.replace("    health_check:\n      type: none\n", "")
    if admin_port:
        text += "admin:\n  bind: 127.0.0.1:%d\n" % admin_port
    return text


def stats(admin_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin_port, timeout=5) as resp:
        return json.loads(resp.read())


def metrics(admin_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=5) as resp:
        return resp.read().decode()


def get(port, path="/", headers=None, timeout=5):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Wrk:
    """wrk in the background for `seconds`; .result() parses its summary."""

    def __init__(self, procs, tmp_path, port, seconds, body_size=0, connections=32):
        cmd = [WRK, "-t2", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "5s"]
        if body_size:
            script = tmp_path / ("post%d.lua" % body_size)
            script.write_text('wrk.method = "POST"\nwrk.body = string.rep("x", %d)\n'
                              'wrk.headers["Content-Type"] = "application/octet-stream"\n' % body_size)
            cmd += ["-s", str(script)]
        self.proc = subprocess.Popen(cmd + ["http://127.0.0.1:%d/" % port], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        procs.append(self.proc)
        self.seconds = seconds

    def result(self):
        out, _ = self.proc.communicate(timeout=self.seconds + 30)
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        failed = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in errors.groups()) if errors else 0)
        return total, failed, out


def rolling_restart(procs, replicas, seconds, down=1.0, every=2.0):
    """Kill one replica with SIGKILL, start it again `down` seconds later;
    the next one `every` seconds after the previous kill, for `seconds`.
    The sleeps are the deploy's own schedule, not waits for an event."""
    start = time.monotonic()
    kills = 0
    while time.monotonic() - start + every <= seconds:
        r = replicas[kills % len(replicas)]
        r.kill()
        kills += 1
        time.sleep(down)
        replicas[(kills - 1) % len(replicas)] = Replica(procs, port=r.port, name=r.name).start()
        time.sleep(max(0.0, start + kills * every - time.monotonic()))
    return kills


@needs_wrk
def test_rolling_restart_with_default_config_fails_no_get(procs, lb, tmp_path):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(3)]
    port, admin = free_port(), free_port()
    inst = lb(default_config(port, [r.addr for r in rs], admin), port)
    load = Wrk(procs, tmp_path, port, seconds=22)
    wait_until(lambda: sum(s["requests"] for s in stats(admin)["backends"][0]["servers"]) > 1000, 10,
               "traffic before the first kill")
    kills = rolling_restart(procs, rs, seconds=20)
    total, failed, out = load.result()
    ejected = len(re.findall(r"consecutive failures", inst.log_text()))
    print("\nrolling restart, default config, %d kills in 20 s: %d GETs, %d failed; %d passive ejections"
          % (kills, total, failed, ejected))
    assert total > 1000, out
    assert failed == 0, out + inst.log_text()[-3000:]
    assert kills >= 9
    # Every replica serves again at the end, and lb knows it.
    wait_until(lambda: all(s["state"] == "up" for s in stats(admin)["backends"][0]["servers"]), 10,
               "every server up after the deploy")


@needs_wrk
@pytest.mark.parametrize("body_size", [1024, 100 * 1024])
def test_rolling_restart_loses_only_posts_in_flight(procs, lb, tmp_path, body_size):
    """POST cannot be repeated: what may fail is only what was in flight on
    the killed replica (at most one per wrk connection per kill)."""
    rs = [Replica(procs, name="r%d" % i).start() for i in range(3)]
    port, admin = free_port(), free_port()
    lb(default_config(port, [r.addr for r in rs], admin), port)
    connections = 32
    load = Wrk(procs, tmp_path, port, seconds=12, body_size=body_size, connections=connections)
    wait_until(lambda: sum(s["requests"] for s in stats(admin)["backends"][0]["servers"]) > 200, 10,
               "traffic before the first kill")
    kills = rolling_restart(procs, rs, seconds=10)
    total, failed, out = load.result()
    print("\nrolling restart, POST %d bytes, %d kills in 10 s: %d requests, %d failed (%.3f%%)"
          % (body_size, kills, total, failed, 100.0 * failed / max(total, 1)))
    assert total > 200, out
    assert failed <= kills * connections, out


def test_all_replicas_dead_gives_503_at_once_then_serves_within_a_second_of_one_returning(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(3)]
    port, admin = free_port(), free_port()
    lb(default_config(port, [r.addr for r in rs], admin), port)
    assert get(port)[0] == 200
    for r in rs:
        r.kill()
    # Enough requests for passive ejection (5 failures) to have its say.
    for _ in range(10):
        began = time.monotonic()
        status, _ = get(port)
        assert status == 503 and time.monotonic() - began < 1.0
    # The hardest one to bring back is the one passive health ejected.
    servers = stats(admin)["backends"][0]["servers"]
    ejected = [s["addr"] for s in servers if s["ejected_until"] is not None]
    assert ejected, "no server was ejected: the test would not test the cooldown"
    back = next(r for r in rs if r.addr == ejected[0])
    Replica(procs, port=back.port, name=back.name).start()
    returned = time.monotonic()
    wait_until(lambda: get(port)[0] == 200, 1.0, "a 200 within 1 s of the first replica returning")
    print("\nall dead: 503 at once; served %.0f ms after the ejected replica returned"
          % ((time.monotonic() - returned) * 1000))


def hash_config(port, servers, admin_port):
    return default_config(port, servers, admin_port, balance="hash",
                          extra_backend="    hash:\n      key: header:X-Key\n")


def key_map(port, keys):
    return {k: get(port, headers={"X-Key": k})[1] for k in keys}


def test_two_instances_agree_on_every_hash_key_after_a_replica_restarts(procs, lb):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(3)]
    (port_a, admin_a), (port_b, admin_b) = (free_port(), free_port()), (free_port(), free_port())
    a = lb(hash_config(port_a, [r.addr for r in rs], admin_a), port_a)
    b = lb(hash_config(port_b, [r.addr for r in reversed(rs)], admin_b), port_b)
    keys = ["key-%d" % i for i in range(60)]
    assert key_map(port_a, keys) == key_map(port_b, keys)
    # A replica restarts; only instance a has traffic for it meanwhile, so
    # only a ejects it passively.
    victim = rs[1]
    victim.kill()
    killed = time.monotonic()
    # Every key once per look: whichever ports the replicas got, some keys
    # are the victim's, so a's passive health sees it fail before its
    # active checks would call it down.
    wait_until(lambda: [get(port_a, headers={"X-Key": k}) for k in keys] and
               any(s["ejected_until"] for s in stats(admin_a)["backends"][0]["servers"]), 15, "a ejects it")
    time.sleep(max(0.0, killed + 1.0 - time.monotonic()))  # down for a second, as in a deploy
    restarted = time.monotonic()
    Replica(procs, port=victim.port, name=victim.name).start()
    # rise x interval + 1 s, with the defaults: 2 x 2 s + 1 s.
    wait_until(lambda: key_map(port_a, keys) == key_map(port_b, keys), 5.0, "both instances agree again")
    agreed = time.monotonic() - restarted
    print("\ntwo instances agree %.1f s after the restart (bound: rise x interval + 1 s = 5 s)" % agreed)
    assert b"r1\n" in key_map(port_a, keys).values()
    assert "consecutive failures" in a.log_text() and "consecutive failures" not in b.log_text()




def test_descriptor_exhaustion_marks_no_server_down_and_lb_recovers(procs, lb, tmp_path):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(3)]
    port, admin = free_port(), free_port()
    fast_checks = ("    health_check:\n      type: tcp\n      interval: 100ms\n      timeout: 100ms\n"
                   "      fall: 2\n")
    text = default_config(port, [r.addr for r in rs], admin, extra_backend=fast_checks)
    inst = lb(text, port, preexec_fn=limit_descriptors(256))
    assert re.search(r"open-file limit is 256, but max_connections 10000 .* may need \d+ descriptors",
                     inst.log_text())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    clients = open_pending_connections(port, 1000)
    try:
        for s in clients:
            try:
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # then held open: keep-alive
            except OSError:
                pass
        # lb runs out of descriptors: its checks cannot run, for much
        # longer than fall x interval (200 ms) would need to take a server down.
        def checks_not_run_for():
            stamps = [log_time(line) for line in inst.log_text().splitlines()
                      if "health check: Too many open files" in line]
            return stamps and stamps[-1] - stamps[0] >= 1.0
        wait_until(checks_not_run_for, 15, "a second of health checks lb could not make")
    finally:
        for s in clients:  # with a reset, so that lb has nothing left to answer
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    # Once the clients are gone, lb serves again, with every server up.
    wait_until(lambda: get(port)[0] == 200, 10, "lb serving again")
    assert all(s["state"] == "up" for s in stats(admin)["backends"][0]["servers"])
    assert not re.search(r"server app/\S+ down", inst.log_text()), inst.log_text()[-3000:]




def test_config_check_warns_when_the_descriptor_limit_cannot_serve_max_connections(tmp_path):
    from conftest import LB, ROOT
    config = os.path.join(ROOT, "conf/lb.yaml")
    low = subprocess.run([LB, "-t", "-c", config], capture_output=True, text=True, timeout=10,
                         preexec_fn=limit_descriptors(256))
    assert low.returncode == 0 and low.stdout == "configuration OK\n"
    assert re.search(r"warning: the open-file limit is 256, but max_connections 10000", low.stderr), low.stderr
    small = tmp_path / "small.yaml"  # 2 x 50 connections, pools of 2: about 170 descriptors
    small.write_text(http_config(free_port(), ["127.0.0.1:9"], workers=1,
                                 extra_global="  max_connections: 50",
                                 extra_backend="    keepalive: 2"))
    enough = subprocess.run([LB, "-t", "-c", str(small)], capture_output=True, text=True, timeout=10,
                            preexec_fn=limit_descriptors(256))
    assert enough.returncode == 0 and enough.stderr == "", enough.stderr
