"""Overload control (SPEC 13, issue 15): per-server max_connections never
exceeded across workers, the backend's FIFO queue (timeout, full, a client
that leaves), hash waiting for its key's server, TCP mode, slow start, the
retry budget, and max_connections: auto finding a replica's knee."""
import http.client
import json
import socket
import threading
import time

from conftest import free_port, http_config, recv_all, run_concurrently, tcp_config, wait_until


def get(port, path="/", headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip(), dict(resp.getheaders())
    finally:
        conn.close()


def call(port, path):
    return json.loads(get(port, path)[1])


def admin_top(port):
    return "admin:\n  bind: 127.0.0.1:%d\n" % port


def backend_stats(admin, name="app"):
    return next(b for b in call(admin, "/stats")["backends"] if b["name"] == name)


def replica_stats(r):
    return call(r.port, "/stats")


def start(replicas, lb, n=2, backend="", args=(), workers=2, balance="round_robin"):
    rs = replicas(n, args=args)
    port, admin = free_port(), free_port()
    inst = lb(http_config(port, [r.addr for r in rs], extra_backend=backend, extra_top=admin_top(admin),
                          workers=workers, balance=balance), port)
    return inst, port, admin, rs


def in_background(fn, *args):
    """Run fn(*args) in a thread; .result once joined."""
    box = {}

    def run():
        try:
            box["result"] = fn(*args)
        except Exception as e:  # noqa: BLE001 (reported by the caller)
            box["result"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.box = box
    return t


def test_max_connections_is_never_exceeded_across_workers(replicas, lb):
    inst, port, admin, rs = start(replicas, lb, backend="    max_connections: 3\n    timeouts: {queue: 20s}\n",
                                  args=("-d", "60"), workers=4)
    errors = []

    def client():
        for _ in range(4):
            status, _, _ = get(port)
            if status != 200:
                errors.append(status)
    run_concurrently(client, 24, timeout=120)
    assert errors == []
    peaks = [replica_stats(r)["peak_in_flight"] for r in rs]
    assert max(peaks) <= 3, peaks
    assert peaks == [3, 3], peaks  # the limit was reached, not merely respected
    b = backend_stats(admin)
    assert b["queue"]["length"] == 0 and b["queue"]["rejected"] == {"full": 0, "timeout": 0}
    assert all(s["limit"] == 3 and s["active"] == 0 for s in b["servers"])
    metrics = get(admin, "/metrics")[1]
    assert 'lb_server_limit{backend="app",server="%s"} 3' % rs[0].addr in metrics
    count = [line for line in metrics.splitlines() if line.startswith('lb_queue_time_seconds_count{backend="app"}')]
    assert count and int(count[0].split()[1]) > 0  # requests did wait


def hold_slot(port, ms, path_prefix="/delay/"):
    """A request that holds a slot for ms, in the background."""
    return in_background(get, port, "%s%d" % (path_prefix, ms))


def take_the_slot(port, ms, rs):
    """Hold the only slot (max_connections 1, one replica) for ms; returns
    once the request is in service."""
    holder = hold_slot(port, ms)
    wait_until(lambda: sum(replica_stats(r)["in_flight"] for r in rs) == 1, 5, "the slot taken")
    return holder


def wait_queue_length(admin, n):
    wait_until(lambda: backend_stats(admin)["queue"]["length"] == n, 10, "queue length %d" % n)


def test_waiting_requests_go_first_in_first_out(replicas, lb):
    inst, port, admin, rs = start(replicas, lb, n=1, backend="    max_connections: 1\n    timeouts: {queue: 20s}\n")
    holder = take_the_slot(port, 300, rs)
    done = []
    lock = threading.Lock()

    def request(tag):
        status, _, _ = get(port, "/delay/50")
        with lock:
            done.append((tag, status))
    threads = []
    for i in range(5):
        threads.append(in_background(request, i))
        wait_queue_length(admin, i + 1)  # each joins behind the previous
    for t in threads + [holder]:
        t.join(30)
    assert done == [(i, 200) for i in range(5)], done


def test_queue_timeout_answers_503_with_retry_after(replicas, lb):
    inst, port, admin, rs = start(replicas, lb, n=1, backend="    max_connections: 1\n    timeouts: {queue: 300ms}\n")
    holder = take_the_slot(port, 3000, rs)
    began = time.monotonic()
    status, _, headers = get(port)
    waited = time.monotonic() - began
    assert status == 503 and headers.get("Retry-After") == "1"
    print("queue timeout 300 ms: 503 after %.3f s" % waited)
    assert 0.3 <= waited < 0.3 + 0.1, waited
    assert backend_stats(admin)["queue"]["rejected"]["timeout"] == 1
    holder.join(10)
    assert holder.box["result"][0] == 200


def test_full_queue_answers_503_at_once_and_a_client_that_leaves_frees_its_place(replicas, lb):
    inst, port, admin, rs = start(replicas, lb, n=1,
                                  backend="    max_connections: 1\n    queue: {max: 1}\n    timeouts: {queue: 20s}\n")
    holder = take_the_slot(port, 2000, rs)
    leaver = socket.create_connection(("127.0.0.1", port), timeout=5)
    leaver.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_queue_length(admin, 1)
    began = time.monotonic()
    status, _, headers = get(port)
    assert status == 503 and headers.get("Retry-After") == "1"
    assert time.monotonic() - began < 0.25  # at once, not at the queue timeout
    assert backend_stats(admin)["queue"]["rejected"]["full"] == 1
    metrics = get(admin, "/metrics")[1]
    assert 'lb_backend_queue_length{backend="app"} 1\n' in metrics
    assert 'lb_queue_rejected_total{backend="app",reason="full"} 1\n' in metrics
    assert 'lb_queue_rejected_total{backend="app",reason="timeout"} 0\n' in metrics
    leaver.close()
    wait_queue_length(admin, 0)  # its place is free at once...
    follower = in_background(get, port)  # ...for the next one, served once the slot frees
    holder.join(10)
    follower.join(10)
    assert follower.box["result"][0] == 200


def test_queue_max_0_means_no_queue(replicas, lb):
    inst, port, admin, rs = start(replicas, lb, n=1, backend="    max_connections: 1\n    queue: {max: 0}\n")
    holder = take_the_slot(port, 1000, rs)
    assert get(port)[0] == 503
    holder.join(10)


def test_hash_waits_for_its_keys_server_and_never_moves(replicas, lb):
    backend = "    hash: {key: \"header:X-Key\"}\n    max_connections: 1\n    timeouts: {queue: 20s}\n"
    inst, port, admin, rs = start(replicas, lb, n=2, backend=backend, balance="hash")
    owner = get(port, "/", {"X-Key": "k1"})[1]
    other = next(k for k in ("k%d" % i for i in range(2, 50)) if get(port, "/", {"X-Key": k})[1] != owner)
    holder = in_background(get, port, "/delay/500", {"X-Key": "k1"})
    wait_until(lambda: sum(replica_stats(r)["in_flight"] for r in rs) == 1, 5, "the slot taken")
    waiter = in_background(get, port, "/", {"X-Key": "k1"})
    wait_queue_length(admin, 1)
    # Another key's server is free: its requests do not wait.
    assert get(port, "/", {"X-Key": other})[0] == 200
    holder.join(10)
    waiter.join(10)
    assert waiter.box["result"][:2] == (200, owner)


def test_tcp_connections_wait_for_a_slot(replicas, lb):
    rs = replicas(1, mode="tcp")
    port, admin = free_port(), free_port()
    cfg = tcp_config(port, [rs[0].addr], extra_backend="    max_connections: 1\n    timeouts: {queue: 20s}\n")
    lb(cfg + admin_top(admin), port)
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    first.sendall(b"one")
    assert first.recv(3) == b"one"
    second = socket.create_connection(("127.0.0.1", port), timeout=5)
    second.sendall(b"two")
    wait_queue_length(admin, 1)
    first.close()  # its slot goes to the waiting connection
    assert second.recv(3) == b"two"
    second.shutdown(socket.SHUT_WR)
    assert recv_all(second) == b""
    second.close()


def test_slow_start_ramps_a_server_added_by_a_reload(replicas, lb):
    rs = replicas(2)
    port, admin = free_port(), free_port()
    backend = "    slow_start: 3s\n"
    inst = lb(http_config(port, [rs[0].addr], extra_backend=backend, extra_top=admin_top(admin), workers=1),
              port)
    inst.reload(http_config(port, [r.addr for r in rs], extra_backend=backend, extra_top=admin_top(admin),
                            workers=1))
    ramping = {s["addr"]: s["slow_start"] for s in backend_stats(admin)["servers"]}
    assert ramping[rs[0].addr] == 1.0 and ramping[rs[1].addr] < 0.5, ramping
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    early = []
    for _ in range(100):
        conn.request("GET", "/")
        early.append(conn.getresponse().read().decode().strip())
    conn.close()
    assert early.count("r1") < 40, early.count("r1")  # far below its half
    wait_until(lambda: backend_stats(admin)["servers"][1]["slow_start"] == 1.0, 10, "the ramp to end")
    late = [get(port)[1] for _ in range(40)]
    assert late.count("r1") == 20  # full share: round-robin exact


def black_hole():
    """A listening socket whose accept queue is full and never drained: a
    connect to it gets no answer (SYNs dropped), so lb's connect times out."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(s.getsockname())
        fillers.append(f)
    return s, fillers


def test_retry_budget_holds_retries_to_a_share_of_requests(replicas, lb):
    holes = [black_hole() for _ in range(3)]
    try:
        port, admin = free_port(), free_port()
        servers = ["127.0.0.1:%d" % h[0].getsockname()[1] for h in holes]
        backend = ("    retries: 2\n    retry_budget: 0%\n    passive: {failures: 0}\n"
                   "    timeouts: {connect: 400ms}\n")
        lb(http_config(port, servers, extra_backend=backend, extra_top=admin_top(admin)), port)
        statuses = []
        run_concurrently(lambda: statuses.append(get(port)[0]), 12, timeout=60)
        assert set(statuses) <= {502, 503}, statuses
        b = backend_stats(admin)
        # 12 first tries at once: at most 3 retries may run beside them.
        assert b["retries_refused"] >= 12 - 3, b
    finally:
        for s, fillers in holes:
            for f in fillers:
                f.close()
            s.close()


def test_auto_finds_the_knee_of_an_overloaded_replica(replicas, lb):
    # The replica serves 4 at once in 20 ms; beyond, each request takes
    # 20 ms * (c/4)^2. 32 clients through lb with auto must end with a
    # limit near 4 (within 2x), never above the cap.
    inst, port, admin, rs = start(replicas, lb, n=1, args=("-o", "4", "-d", "20"),
                                  backend="    max_connections: auto\n    max_connections_cap: 64\n"
                                          "    timeouts: {queue: 30s}\n")
    stop = time.monotonic() + 12
    limits = []

    def client():
        while time.monotonic() < stop:
            assert get(port)[0] == 200

    def watch():
        while time.monotonic() < stop:
            limits.append(backend_stats(admin)["servers"][0]["limit"])
            time.sleep(0.2)  # a sampling period, not a wait for an event
    watcher = in_background(watch)
    run_concurrently(client, 32, timeout=60)
    watcher.join(10)
    assert max(limits) <= 64
    settled = limits[len(limits) // 2:]
    assert all(2 <= limit <= 8 for limit in settled), limits


def test_full_healthy_servers_make_requests_wait_not_go_to_a_down_one(replicas, lb):
    rs = replicas(3)
    port, admin = free_port(), free_port()
    backend = ("    max_connections: 1\n    timeouts: {queue: 20s}\n"
               "    health_check: {type: http, path: /healthz, interval: 100ms, rise: 1, fall: 1}\n")
    cfg = http_config(port, [r.addr for r in rs], extra_top=admin_top(admin)).replace(
        "    health_check:\n      type: none\n", backend)
    lb(cfg, port)
    get(rs[2].port, "/control/health/fail")
    wait_until(lambda: backend_stats(admin)["servers"][2]["state"] == "down", 10, "r2 down")
    holders = [hold_slot(port, 600) for _ in range(2)]
    wait_until(lambda: sum(replica_stats(r)["in_flight"] for r in rs[:2]) == 2, 5, "both healthy slots taken")
    waiter = in_background(get, port)
    wait_queue_length(admin, 1)  # it waits rather than going to r2
    for t in holders + [waiter]:
        t.join(10)
    assert [t.box["result"][:2] in ((200, "r0"), (200, "r1")) for t in holders + [waiter]] == [True] * 3


def test_a_full_queue_still_serves_a_request_whose_server_is_free(replicas, lb):
    backend = ("    hash: {key: \"header:X-Key\"}\n    max_connections: 1\n    queue: {max: 1}\n"
               "    timeouts: {queue: 20s}\n")
    inst, port, admin, rs = start(replicas, lb, n=2, backend=backend, balance="hash")
    owner = get(port, "/", {"X-Key": "k1"})[1]
    other = next(k for k in ("k%d" % i for i in range(2, 50)) if get(port, "/", {"X-Key": k})[1] != owner)
    holder = in_background(get, port, "/delay/800", {"X-Key": "k1"})
    wait_until(lambda: sum(replica_stats(r)["in_flight"] for r in rs) == 1, 5, "the slot taken")
    waiter = in_background(get, port, "/", {"X-Key": "k1"})
    wait_queue_length(admin, 1)  # the queue is full now
    assert get(port, "/", {"X-Key": other})[0] == 200  # its server is idle: no 503 "full"
    assert get(port, "/", {"X-Key": "k1"})[0] == 503  # its server is taken and the queue full
    holder.join(10)
    waiter.join(10)
    assert waiter.box["result"][0] == 200


def test_a_client_that_half_closes_after_its_request_still_gets_its_answer(replicas, lb):
    inst, port, admin, rs = start(replicas, lb, n=1, backend="    max_connections: 1\n    timeouts: {queue: 20s}\n")
    holder = take_the_slot(port, 500, rs)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    holder.join(10)


def test_a_reload_that_lowers_auto_s_cap_holds_the_limit_under_it(replicas, lb):
    backend = "    max_connections: auto\n    max_connections_cap: 64\n"
    rs = replicas(1)
    port, admin = free_port(), free_port()
    config = http_config(port, [rs[0].addr], extra_backend=backend, extra_top=admin_top(admin))
    inst = lb(config, port)
    wait_until(lambda: backend_stats(admin)["servers"][0]["limit"] == 20, 5, "auto's first limit")
    inst.reload(config.replace("max_connections_cap: 64", "max_connections_cap: 5"))
    wait_until(lambda: backend_stats(admin)["servers"][0]["limit"] == 5, 5, "the limit under the new cap")
    assert get(port)[0] == 200
