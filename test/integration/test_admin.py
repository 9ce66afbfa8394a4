"""Admin endpoint (SPEC 9): stats, Prometheus metrics, drain and enable, token,
bad input; and scripts/lbctl on top of it."""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import (LB, ROOT, cpu_seconds, free_port, http_config, limit_descriptors, open_pending_connections,
                      recv_all, run_concurrently, wait_until)

LBCTL = os.path.join(ROOT, "scripts", "lbctl")


def admin_section(port, token=""):
    text = "admin:\n  bind: 127.0.0.1:%d\n" % port
    if token:
        text += "  token: %s\n" % token
    return text


def call(port, method, path, token=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": "Bearer " + token} if token else {}
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_through(port, n, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    bodies = []
    for _ in range(n):
        conn.request("GET", path)
        resp = conn.getresponse()
        bodies.append((resp.status, resp.read().decode().strip()))
    conn.close()
    return bodies


@pytest.fixture
def setup(replicas, lb):
    def make(token="", n=3, extra_backend=""):
        rs = replicas(n)
        port, admin = free_port(), free_port()
        config = http_config(port, [r.addr for r in rs], extra_top=admin_section(admin, token),
                             extra_backend=extra_backend)
        inst = lb(config, port)
        wait_until(lambda: call_ok(admin, token), 5, "admin endpoint")
        return inst, port, admin, rs, config
    return make


def call_ok(port, token):
    try:
        return call(port, "GET", "/healthz", token or None)[0] == 200
    except OSError:
        return False


def parse_metrics(text):
    """A small exposition-format parser: {(name, frozenset(labels)): value}."""
    samples = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert line == "" or re.match(r"^# (HELP|TYPE) \S+ ", line), line
            continue
        m = line_re.match(line)
        assert m, "not an exposition line: %r" % line
        labels = frozenset(label_re.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def test_healthz_answers_ok(setup):
    _, _, admin, _, _ = setup()
    assert call(admin, "GET", "/healthz") == (200, b"ok\n")


def test_stats_json_counts_what_was_sent(setup):
    _, port, admin, rs, _ = setup()
    get_through(port, 30)
    get_through(port, 3, "/status/503")
    status, body = call(admin, "GET", "/stats")
    assert status == 200
    s = json.loads(body)
    for key in ("version", "uptime_s", "reloads", "connections", "backends"):
        assert key in s
    (backend,) = s["backends"]
    assert backend["name"] == "app" and backend["balance"] == "round_robin"
    servers = {v["addr"]: v for v in backend["servers"]}
    assert set(servers) == {r.addr for r in rs}
    for v in servers.values():
        assert v["state"] == "up" and v["weight"] == 1 and v["active"] == 0
        assert v["requests"] == 11  # 10 + one of the three 503s
        assert v["failures"] == 1  # that 5xx
        for key in ("last_check",):
            assert key in v


def test_metrics_parse_as_prometheus_and_match_requests(setup, tmp_path):
    _, port, admin, rs, _ = setup()
    get_through(port, 30)
    get_through(port, 3, "/status/404")
    status, body = call(admin, "GET", "/metrics")
    assert status == 200
    text = body.decode()
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by scripts/deps.sh"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    m = parse_metrics(text)
    for r in rs:
        labels = {("backend", "app"), ("server", r.addr)}
        assert m[("lb_server_requests_total", frozenset(labels | {("code", "2xx")}))] == 10
        assert m[("lb_server_requests_total", frozenset(labels | {("code", "4xx")}))] == 1
        assert m[("lb_server_up", frozenset(labels))] == 1
        assert m[("lb_server_active", frozenset(labels))] == 0
        assert m[("lb_server_failures_total", frozenset(labels))] == 0
    count = m[("lb_request_duration_seconds_count", frozenset({("backend", "app")}))]
    assert count == 33
    assert m[("lb_request_duration_seconds_bucket", frozenset({("backend", "app"), ("le", "+Inf")}))] == 33
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == "lb_request_duration_seconds_bucket")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert m[("lb_reloads_total", frozenset({("result", "ok")}))] == 0
    assert ("lb_connections_active", frozenset()) in m


def test_drain_and_enable_change_where_requests_go(setup):
    inst, port, admin, rs, config = setup()
    drained = rs[1]
    status, _ = call(admin, "POST", "/backends/app/servers/%s/drain" % drained.addr.replace(":", "%3A"))
    assert status == 200
    assert {b for _, b in get_through(port, 12)} == {"r0", "r2"}
    s = json.loads(call(admin, "GET", "/stats")[1])
    assert {v["addr"]: v["state"] for v in s["backends"][0]["servers"]}[drained.addr] == "drain"
    # The drain survives a reload that keeps the server.
    inst.reload(config.replace("level: info", "level: info\n  grace: 5s"))
    assert {b for _, b in get_through(port, 12)} == {"r0", "r2"}
    assert call(admin, "POST", "/backends/app/servers/%s/enable" % drained.addr)[0] == 200
    assert {b for _, b in get_through(port, 12)} == {"r0", "r1", "r2"}


def test_drained_server_finishes_its_inflight_request(setup):
    _, port, admin, rs, _ = setup(n=1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/delay/500")
    wait_until(lambda: json.loads(call(admin, "GET", "/stats")[1])["backends"][0]["servers"][0]["active"] == 1,
               5, "the request in flight")
    assert call(admin, "POST", "/backends/app/servers/%s/drain" % rs[0].addr)[0] == 200
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"r0\n"
    assert get_through(port, 1)[0][0] == 503  # nothing else to go to


def test_token_is_required_when_set(setup):
    _, _, admin, _, _ = setup(token="s3cret")
    assert call(admin, "GET", "/stats")[0] == 401
    assert call(admin, "GET", "/stats", token="wrong")[0] == 401
    assert call(admin, "GET", "/stats", token="s3cret")[0] == 200
    # the scheme's name is case-insensitive (RFC 9110 11.1), the token is not
    for scheme, token, status in (("bearer", "s3cret", 200), ("BEARER", "s3cret", 200), ("Bearer", "S3CRET", 401)):
        conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
        conn.request("GET", "/stats", headers={"Authorization": "%s %s" % (scheme, token)})
        assert conn.getresponse().status == status, scheme
        conn.close()


def test_unknown_path_is_404_and_wrong_method_is_405(setup):
    _, _, admin, rs, _ = setup()
    assert call(admin, "GET", "/nope")[0] == 404
    assert call(admin, "POST", "/stats")[0] == 405
    assert call(admin, "GET", "/backends/app/servers/%s/drain" % rs[0].addr)[0] == 405
    assert call(admin, "POST", "/backends/nope/servers/1.2.3.4:5/drain")[0] == 404
    # Short paths: libevent decodes them into memory of its own small
    # allocator (lb/event/evmem.h), which free() would abort on.
    for path in ("/backends/", "/backends/a", "/backends/app", "/backends/%41pp/x"):
        assert call(admin, "POST", path)[0] == 404, path
    assert call(admin, "GET", "/healthz")[0] == 200


def test_admin_survives_garbage_huge_heads_and_slow_clients(setup):
    _, port, admin, _, _ = setup()
    for junk in (b"\x00\xff\xfe garbage\r\n\r\n", os.urandom(3000), b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
                 b"GET /stats HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n"):
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                answer = recv_all(s, 10)
            except OSError:  # the endpoint may close before we are done sending
                answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
    slow = socket.create_connection(("127.0.0.1", admin), timeout=5)
    slow.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n")  # and then nothing
    try:
        assert call(admin, "GET", "/healthz")[0] == 200
        assert all(status == 200 for status, _ in get_through(port, 5))
    finally:
        slow.close()


def test_lbctl_stats_drain_enable_and_reload(setup, tmp_path):
    inst, port, admin, rs, _ = setup()
    env = dict(os.environ, LB_ADMIN="127.0.0.1:%d" % admin)
    out = subprocess.run([LBCTL, "stats"], capture_output=True, text=True, env=env, timeout=20)
    assert out.returncode == 0, out.stderr
    assert "BACKEND" in out.stdout and rs[0].addr in out.stdout and " up " in out.stdout
    assert subprocess.run([LBCTL, "drain", "app", rs[0].addr], env=env, capture_output=True, timeout=20).returncode == 0
    assert "drain" in subprocess.run([LBCTL, "stats"], capture_output=True, text=True, env=env, timeout=20).stdout
    assert subprocess.run([LBCTL, "enable", "app", rs[0].addr], env=env, capture_output=True,
                          timeout=20).returncode == 0
    pidfile = tmp_path / "lb.pid"
    pidfile.write_text("%d\n" % inst.proc.pid)
    ok = subprocess.run([LBCTL, "-p", str(pidfile), "reload"], capture_output=True, text=True, env=env, timeout=30)
    assert ok.returncode == 0 and "reload ok" in ok.stdout, ok.stderr
    with open(inst.path, "a") as f:
        f.write("bogus: key\n")
    bad = subprocess.run([LBCTL, "-p", str(pidfile), "reload"], capture_output=True, text=True, env=env, timeout=30)
    assert bad.returncode == 1 and "reload failed" in bad.stderr, bad.stderr
    # lb's own error line, FILE:LINE:COL and the key
    assert re.search(r"lb\.yaml:\d+:\d+: unknown key \"bogus\"", bad.stderr), bad.stderr


def test_counters_are_exact_under_concurrency(setup):
    _, port, admin, rs, _ = setup()
    errors = []

    def client():
        try:
            for status, _ in get_through(port, 50):
                if status != 200:
                    errors.append(status)
        except OSError as e:
            errors.append(repr(e))
    run_concurrently(client, 8)
    assert errors == []
    s = json.loads(call(admin, "GET", "/stats")[1])
    servers = s["backends"][0]["servers"]
    assert sum(v["requests"] for v in servers) == 400
    assert all(v["active"] == 0 for v in servers)
    m = parse_metrics(call(admin, "GET", "/metrics")[1].decode())
    assert sum(v for k, v in m.items() if k[0] == "lb_server_requests_total") == 400
    assert m[("lb_request_duration_seconds_count", frozenset({("backend", "app")}))] == 400


def read_answer(sock, timeout=5):
    """The status of the answer on sock, and whether the server then closed."""
    data = recv_all(sock, timeout)
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def test_admin_answers_garbage_with_400_at_once(setup):
    _, _, admin, _, _ = setup()
    with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
        began = time.monotonic()
        s.sendall(os.urandom(4096).replace(b"\n", b"?").replace(b"\r", b"?"))
        status = read_answer(s)
        took = time.monotonic() - began
    assert status == 400 and took < 0.1, (status, took)


def test_admin_connections_beyond_the_cap_are_refused_with_503(replicas, lb):
    rs = replicas(1)
    port, admin = free_port(), free_port()
    top = admin_section(admin) + "  max_connections: 4\n"
    lb(http_config(port, [rs[0].addr], extra_top=top), port)
    wait_until(lambda: call_ok(admin, ""), 5, "admin endpoint")
    held = [socket.create_connection(("127.0.0.1", admin), timeout=5) for _ in range(4)]
    try:
        for s in held:  # the server has them: a byte each, so they are accepted and counted
            s.sendall(b"G")
        wait_until(lambda: refused_now(admin), 5, "the fifth connection refused")
    finally:
        for s in held:
            s.close()
    # Once they are gone, the endpoint answers again.
    wait_until(lambda: call_ok(admin, ""), 5, "admin endpoint after the held connections left")


def refused_now(admin):
    with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        return read_answer(s) == 503


def test_admin_head_must_arrive_whole_within_its_timeout(setup):
    """A client sending one header line every half second gets 408 at the
    head timeout (5 s), however steadily it sends."""
    _, _, admin, _, _ = setup()
    with socket.create_connection(("127.0.0.1", admin), timeout=10) as s:
        began = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        s.settimeout(0.5)
        data = b""
        for i in range(20):
            try:
                s.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                break
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            break
        took = time.monotonic() - began
    assert data.startswith(b"HTTP/1.1 408"), data
    assert 4.5 < took < 6.5




def test_admin_out_of_descriptors_pauses_instead_of_spinning(replicas, lb):
    rs = replicas(1)
    port, admin = free_port(), free_port()
    top = admin_section(admin) + "  max_connections: 500\n"
    inst = lb(http_config(port, [rs[0].addr], extra_top=top, workers=1), port,
              preexec_fn=limit_descriptors(64))
    wait_until(lambda: call_ok(admin, ""), 5, "admin endpoint")
    held = open_pending_connections(admin, 100)
    try:
        wait_until(lambda: "admin endpoint: accept: Too many open files" in inst.log_text(), 5, "accept failing")
        before, began = cpu_seconds(inst.proc.pid), time.monotonic()
        wait_until(lambda: time.monotonic() - began > 1.0, 2, "a second")
        used = cpu_seconds(inst.proc.pid) - before
    finally:
        for s in held:
            s.close()
    print("\nadmin endpoint out of descriptors: %.2f s of CPU in 1 s" % used)
    assert used < 0.2
    assert inst.log_text().count("admin endpoint: accept") <= 5
    wait_until(lambda: call_ok(admin, ""), 5, "admin endpoint after the connections left")


def test_http_mode_counts_server_bytes_both_ways(setup):
    _, port, admin, rs, _ = setup(n=1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/count", body=b"u" * 100000)  # above what lb keeps for a retry: streamed
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read().strip() == b"100000"
    conn.request("GET", "/bytes/50000")
    resp = conn.getresponse()
    assert resp.status == 200 and len(resp.read()) == 50000
    conn.close()
    server = json.loads(call(admin, "GET", "/stats")[1])["backends"][0]["servers"][0]
    # Bodies plus two heads each way (a head is well under 500 bytes).
    assert 100000 < server["bytes_out"] < 100000 + 1000, server
    assert 50000 < server["bytes_in"] < 50000 + 1000, server
    metrics = call(admin, "GET", "/metrics")[1].decode()
    assert 'lb_server_sent_bytes_total{backend="app",server="%s"} %d' % (rs[0].addr, server["bytes_out"]) in metrics
    assert ('lb_server_received_bytes_total{backend="app",server="%s"} %d' % (rs[0].addr, server["bytes_in"])
            in metrics)



def shares(port, n):
    """Which replica answered each of n requests on one new connection
    (one worker, so smooth round-robin is exact per period)."""
    counts = {}
    for _, body in get_through(port, n):
        counts[body] = counts.get(body, 0) + 1
    return counts


def stats_weights(admin):
    s = json.loads(call(admin, "GET", "/stats")[1])
    return {v["addr"]: v["weight"] for v in s["backends"][0]["servers"]}


def test_runtime_weight_shifts_the_shares_and_outlives_a_reload_until_the_file_changes(setup):
    inst, port, admin, rs, config = setup()
    assert shares(port, 30) == {"r0": 10, "r1": 10, "r2": 10}
    env = dict(os.environ, LB_ADMIN="127.0.0.1:%d" % admin)
    out = subprocess.run([LBCTL, "weight", "app", rs[0].addr, "3"], capture_output=True, text=True, env=env,
                         timeout=20)
    assert out.returncode == 0 and "weight 3" in out.stdout, out.stderr
    assert stats_weights(admin)[rs[0].addr] == 3
    assert shares(port, 50) == {"r0": 30, "r1": 10, "r2": 10}

    inst.reload()  # the same file: the runtime weight stays
    assert stats_weights(admin)[rs[0].addr] == 3
    assert shares(port, 50) == {"r0": 30, "r1": 10, "r2": 10}

    # A file that gives r2 a weight of its own leaves r0's runtime weight;
    # one that changes r0's weight wins over it.
    inst.reload(config.replace("- addr: %s\n" % rs[2].addr, "- addr: %s\n        weight: 2\n" % rs[2].addr))
    assert stats_weights(admin) == {rs[0].addr: 3, rs[1].addr: 1, rs[2].addr: 2}
    inst.reload(config.replace("- addr: %s\n" % rs[0].addr, "- addr: %s\n        weight: 4\n" % rs[0].addr))
    assert stats_weights(admin)[rs[0].addr] == 4
    inst.reload(config)
    assert stats_weights(admin)[rs[0].addr] == 1

    # Weight 0: no new requests.
    assert call(admin, "POST", "/backends/app/servers/%s/weight/0" % rs[1].addr)[0] == 200
    assert shares(port, 20) == {"r0": 10, "r2": 10}


def test_runtime_weight_refuses_bad_values(setup):
    _, port, admin, rs, _ = setup()
    base = "/backends/app/servers/%s/weight/" % rs[0].addr
    for bad in ("257", "-1", "abc", "1.5", "", "99999999999999999999"):
        assert call(admin, "POST", base + bad)[0] in (400, 404), bad
    assert call(admin, "POST", base + "257")[0] == 400
    assert call(admin, "GET", base + "2")[0] == 405
    assert call(admin, "POST", "/backends/app/servers/127.0.0.1:1/weight/2")[0] == 404
    assert call(admin, "POST", "/backends/nope/servers/%s/weight/2" % rs[0].addr)[0] == 404
    assert stats_weights(admin)[rs[0].addr] == 1
    assert len(shares(port, 30)) == 3


def test_lbctl_servers_check_and_exit_codes(setup, tmp_path):
    two = """
  - name: other
    balance: round_robin
    health_check:
      type: none
    servers:
      - addr: 127.0.0.1:1
"""
    inst, port, admin, rs, config = setup(extra_backend=two)
    env = dict(os.environ, LB_ADMIN="127.0.0.1:%d" % admin, LB_BIN=LB)

    def lbctl(*args, **kw):
        return subprocess.run([LBCTL] + list(args), capture_output=True, text=True, env=kw.get("env", env),
                              timeout=30)
    out = lbctl("servers", "app")
    assert out.returncode == 0, out.stderr
    assert all(r.addr in out.stdout for r in rs) and "127.0.0.1:1 " not in out.stdout
    assert "127.0.0.1:1 " in lbctl("servers", "other").stdout
    missing = lbctl("servers", "nope")
    assert missing.returncode == 1 and "no backend named nope" in missing.stderr

    good = lbctl("-c", inst.path, "check")
    assert good.returncode == 0 and "configuration OK" in good.stdout, good.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(config.replace("balance: round_robin", "balance: fastest", 1))
    bad = lbctl("-c", str(broken), "check")
    assert bad.returncode == 1 and re.search(r"broken\.yaml:\d+:\d+: backends\[0\]\.balance", bad.stderr), bad.stderr

    assert lbctl("drain", "app", "127.0.0.1:1").returncode == 1  # no such server
    assert lbctl("weight", "app", rs[0].addr).returncode == 2  # usage
    assert lbctl("frobnicate").returncode == 2
    assert lbctl().returncode == 2
    away = dict(env, LB_ADMIN="127.0.0.1:%d" % free_port())
    unreachable = lbctl("stats", env=away)
    assert unreachable.returncode == 1 and "no answer" in unreachable.stderr


def test_lbctl_finds_the_endpoint_and_token_in_the_config(setup, tmp_path):
    inst, port, admin, rs, config = setup(token="s3cret")
    env = {k: v for k, v in os.environ.items() if k not in ("LB_ADMIN", "LB_TOKEN")}
    out = subprocess.run([LBCTL, "-c", inst.path, "servers", "app"], capture_output=True, text=True, env=env,
                         timeout=20)
    assert out.returncode == 0 and rs[0].addr in out.stdout, out.stderr
    wrong = subprocess.run([LBCTL, "-c", inst.path, "-t", "nope", "stats"], capture_output=True, text=True,
                           env=env, timeout=20)
    assert wrong.returncode == 1 and "401" in wrong.stderr

    # Without an admin section, reload can only signal.
    bare = tmp_path / "bare.yaml"
    bare.write_text(config.split("admin:")[0])
    pidfile = tmp_path / "lb.pid"
    pidfile.write_text("%d\n" % inst.proc.pid)
    before = inst.log_text().count("reload: generation")
    out = subprocess.run([LBCTL, "-c", str(bare), "-p", str(pidfile), "reload"], capture_output=True, text=True,
                         env=env, timeout=20)
    assert out.returncode == 0 and "reload signalled" in out.stdout, out.stderr
    wait_until(lambda: inst.log_text().count("reload: generation") > before, 10, "the reload")


def test_weight_from_an_endpoint_that_must_move_answers_and_survives(replicas, lb):
    """A reload whose admin.bind could not bind leaves the endpoint where it
    was; a weight set through it later rebuilds the generation without
    moving (and freeing) the endpoint that is answering."""
    rs = replicas(2)
    port, admin, wanted = free_port(), free_port(), free_port()
    config = http_config(port, [r.addr for r in rs], extra_top=admin_section(admin))
    inst = lb(config, port)
    wait_until(lambda: call_ok(admin, ""), 5, "admin endpoint")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", wanted))
    blocker.listen(1)
    inst.reload(config.replace("127.0.0.1:%d" % admin, "127.0.0.1:%d" % wanted))
    assert "the admin endpoint stays where it was" in inst.log_text()
    blocker.close()
    assert call(admin, "POST", "/backends/app/servers/%s/weight/3" % rs[0].addr)[0] == 200
    assert stats_weights(admin)[rs[0].addr] == 3
    assert inst.proc.poll() is None


def test_lbctl_reload_follows_a_new_token_and_prints_backslashes(setup, tmp_path):
    inst, port, admin, rs, config = setup(token="old")
    env = {k: v for k, v in os.environ.items() if k not in ("LB_ADMIN", "LB_TOKEN")}
    pidfile = tmp_path / "lb.pid"
    pidfile.write_text("%d\n" % inst.proc.pid)

    def reload():
        return subprocess.run([LBCTL, "-c", inst.path, "-p", str(pidfile), "reload"], capture_output=True,
                              text=True, env=env, timeout=30)
    inst.write(config.replace("token: old", "token: new"))
    out = reload()
    assert out.returncode == 0 and "reload ok" in out.stdout, out.stdout + out.stderr
    with open(inst.path, "a") as f:
        f.write('"bad\\\\key": 1\n')
    out = reload()
    # lb's line as lb wrote it (it shows the key's backslash escaped)
    assert out.returncode == 1 and 'unknown key "bad\\\\key"' in out.stderr, out.stderr
    inst.write(config.replace("token: old", "token: new"))
    out = reload()
    assert out.returncode == 0 and "reload ok" in out.stdout, out.stdout + out.stderr


def test_a_failed_reload_keeps_the_runtime_weight(setup):
    inst, port, admin, rs, config = setup()
    assert call(admin, "POST", "/backends/app/servers/%s/weight/5" % rs[0].addr)[0] == 200
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        failing = config.replace("- addr: %s\n" % rs[0].addr, "- addr: %s\n        weight: 2\n" % rs[0].addr)
        failing = failing.replace("backends:", "  - name: taken\n    bind: \"127.0.0.1:%d\"\n    backend: app\n"
                                  "backends:" % busy.getsockname()[1], 1)
        inst.reload(failing, expect_ok=False)
    finally:
        busy.close()
    assert call(admin, "POST", "/backends/app/servers/%s/weight/2" % rs[1].addr)[0] == 200
    assert stats_weights(admin) == {rs[0].addr: 5, rs[1].addr: 2, rs[2].addr: 1}
