"""Choosing a server (SPEC 5) through real lb and replica processes.

Every answer names the replica that served it (X-Replica header and body
"NAME\\n"), so each test counts or maps names. All traffic goes to 127.0.0.1;
each test sends a fixed, bounded number of requests.
"""
import collections
import http.client
import socket
import threading

import pytest

from conftest import Replica, free_port, http_config, recv_line, run_concurrently, tcp_config


def hash_backend(key, method="maglev"):
    """The backend's hash section, placed after its server list."""
    return "    hash:\n      key: \"%s\"\n      method: %s\n" % (key, method)


def ask(conn, path="/", headers=None):
    """One GET on a keep-alive connection; returns the serving replica's name."""
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, (resp.status, body)
    name = resp.getheader("X-Replica")
    assert name and body == (name + "\n").encode(), (name, body)
    return name


def connect(port, timeout=10):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def key_mapping(port, keys, header="X-User"):
    """Map each key (sent as a header) to the replica that answers it,
    over one keep-alive connection."""
    conn = connect(port)
    try:
        return {k: ask(conn, headers={header: k}) for k in keys}
    finally:
        conn.close()


def concurrent_counts(port, total, nthreads, path="/"):
    """`total` requests shared by `nthreads` keep-alive clients; returns a
    Counter of replica names. Any error fails the test."""
    counts = collections.Counter()
    errors = []
    lock = threading.Lock()
    issued = [0]

    def client():
        conn = connect(port)
        try:
            while True:
                with lock:
                    if issued[0] >= total:
                        return
                    issued[0] += 1
                name = ask(conn, path)
                with lock:
                    counts[name] += 1
        except Exception as e:  # noqa: BLE001 - any failure is a test failure
            errors.append(repr(e))
        finally:
            conn.close()

    run_concurrently(client, nthreads, timeout=30)
    assert errors == []
    assert sum(counts.values()) == total, counts
    return counts


def one_slow_two_fast(procs, delay_ms=200):
    """Replicas 'slow' (every answer delayed by delay_ms) and 'fast0', 'fast1'."""
    slow = Replica(procs, name="slow", args=["-d", str(delay_ms)]).start()
    fast = [Replica(procs, name="fast%d" % i).start() for i in range(2)]
    return slow, fast


def greeting_from(port, source):
    """Connect from source address `source` through lb to a greeting tcp
    replica; return its name."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        return recv_line(s).decode().strip()


# --- round_robin -------------------------------------------------------------

def test_round_robin_gives_exact_equal_shares_over_keepalive_connections(replicas, lb):
    rs = replicas(3)
    port = free_port()
    lb(http_config(port, [r.addr for r in rs], workers=4), port)
    # Four keep-alive connections used in turn (likely on different worker
    # threads): the balancer state is shared, so the shares stay exact.
    conns = [connect(port) for _ in range(4)]
    counts = collections.Counter(ask(conns[i % 4]) for i in range(300))
    for c in conns:
        c.close()
    assert counts == {"r0": 100, "r1": 100, "r2": 100}


def test_round_robin_weights_5_1_1_give_exact_500_100_100_in_every_window(replicas, lb):
    rs = replicas(3)
    port = free_port()
    lb(http_config(port, [(rs[0].addr, 5), (rs[1].addr, 1), (rs[2].addr, 1)], workers=4), port)
    conn = connect(port)
    names = [ask(conn) for _ in range(700)]
    conn.close()
    assert collections.Counter(names) == {"r0": 500, "r1": 100, "r2": 100}
    # Smooth weighted round-robin is periodic over sum(weights) = 7 picks,
    # so every run of 7 consecutive picks holds exactly 5, 1 and 1.
    for i in range(len(names) - 6):
        window = collections.Counter(names[i:i + 7])
        assert window == {"r0": 5, "r1": 1, "r2": 1}, (i, names[i:i + 7])


# --- least_conn and random ---------------------------------------------------

def test_least_conn_sends_a_slow_server_far_fewer_requests(procs, lb):
    slow, fast = one_slow_two_fast(procs)
    port = free_port()
    lb(http_config(port, [slow.addr, fast[0].addr, fast[1].addr], balance="least_conn"), port)
    counts = concurrent_counts(port, total=240, nthreads=8)
    # round_robin would give it exactly 80 (a third); least_conn sees its
    # requests pile up and sends the next ones to the fast servers.
    assert 0 < counts["slow"] < 0.15 * 240, counts
    assert counts["fast0"] > 0 and counts["fast1"] > 0, counts


def test_least_conn_with_idle_servers_rotates_over_all(replicas, lb):
    rs = replicas(3)
    port = free_port()
    lb(http_config(port, [r.addr for r in rs], balance="least_conn"), port)
    conn = connect(port)
    counts = collections.Counter(ask(conn) for _ in range(90))
    conn.close()
    # Sequential requests: every server is idle at each pick, and ties go
    # round-robin.
    assert counts == {"r0": 30, "r1": 30, "r2": 30}


def test_random_spreads_requests_over_all_servers(replicas, lb):
    rs = replicas(3)
    port = free_port()
    lb(http_config(port, [r.addr for r in rs], balance="random"), port)
    conn = connect(port)
    names = [ask(conn) for _ in range(300)]
    conn.close()
    counts = collections.Counter(names)
    assert set(counts) == {"r0", "r1", "r2"}, counts
    # 100 expected each, standard deviation about 8: 50 is far out.
    assert all(c >= 50 for c in counts.values()), counts
    # Random, not a disguised rotation.
    assert names != [names[i % 3] for i in range(300)]


def test_random_two_choices_send_a_slow_server_fewer_than_a_third(procs, lb):
    slow, fast = one_slow_two_fast(procs)
    port = free_port()
    lb(http_config(port, [slow.addr, fast[0].addr, fast[1].addr], balance="random"), port)
    counts = concurrent_counts(port, total=240, nthreads=8)
    assert set(counts) == {"slow", "fast0", "fast1"}, counts
    assert counts["slow"] < 240 / 3, counts


# --- hash ----------------------------------------------------------------------

STICKY_CASES = {
    # name: (hash key, function(user, pass) -> (path, headers))
    "header": ("header:X-User",
               lambda user, i: ("/", {"X-User": user, "X-Noise": str(i)})),
    "uri": ("uri",
            lambda user, i: ("/item/" + user, {"X-Noise": str(i)})),
    "cookie": ("cookie:session",
               lambda user, i: ("/", {"Cookie": "theme=t%d; session=%s; lang=l%d" % (i, user, i)})),
}


@pytest.mark.parametrize("case", sorted(STICKY_CASES))
def test_hash_key_sticks_each_client_to_one_server_and_spreads_clients(case, replicas, lb):
    key, make_request = STICKY_CASES[case]
    rs = replicas(3)
    port = free_port()
    lb(http_config(port, [r.addr for r in rs], balance="hash", extra_backend=hash_backend(key)), port)
    users = ["user-%d" % u for u in range(50)]
    seen = collections.defaultdict(list)
    # Four passes over all users, each on a fresh connection, so neither the
    # request order nor the client connection can explain the stickiness;
    # everything but the key (X-Noise, the other cookies) varies per pass.
    for i in range(4):
        conn = connect(port)
        for user in users:
            path, headers = make_request(user, i)
            seen[user].append(ask(conn, path, headers))
        conn.close()
    moved = {u: names for u, names in seen.items() if len(set(names)) != 1}
    assert moved == {}, "users whose requests reached several servers: %r" % moved
    spread = collections.Counter(names[0] for names in seen.values())
    assert set(spread) == {"r0", "r1", "r2"}, spread


@pytest.mark.parametrize("method", ["maglev", "ring"])
def test_two_lb_instances_with_servers_in_different_orders_agree_on_1000_keys(method, replicas, lb):
    rs = replicas(4)
    weights = {rs[0].addr: 1, rs[1].addr: 2, rs[2].addr: 1, rs[3].addr: 1}
    order_a = [rs[0], rs[1], rs[2], rs[3]]
    order_b = [rs[2], rs[0], rs[3], rs[1]]
    ports = []
    for order in (order_a, order_b):
        port = free_port()
        lb(http_config(port, [(r.addr, weights[r.addr]) for r in order], balance="hash",
                       extra_backend=hash_backend("header:X-User", method)), port)
        ports.append(port)
    keys = ["key-%d" % k for k in range(1000)]
    first = key_mapping(ports[0], keys)
    second = key_mapping(ports[1], keys)
    differ = {k: (first[k], second[k]) for k in keys if first[k] != second[k]}
    assert differ == {}, "%d of 1000 keys differ, e.g. %r" % (len(differ), list(differ.items())[:5])
    counts = collections.Counter(first.values())
    assert set(counts) == {"r0", "r1", "r2", "r3"}, counts


@pytest.mark.parametrize("method", ["maglev", "ring"])
def test_sighup_removing_a_server_moves_its_keys_and_hardly_any_other(method, replicas, lb):
    rs = replicas(4)
    port = free_port()
    extra = hash_backend("header:X-User", method)
    inst = lb(http_config(port, [r.addr for r in rs], balance="hash", extra_backend=extra), port)
    keys = ["key-%d" % k for k in range(1000)]
    before = key_mapping(port, keys)
    counts = collections.Counter(before.values())
    assert set(counts) == {"r0", "r1", "r2", "r3"}, counts

    inst.reload(http_config(port, [r.addr for r in rs[:3]], balance="hash", extra_backend=extra))
    after = key_mapping(port, keys)

    orphans = [k for k in keys if before[k] == "r3"]
    landed = collections.Counter(after[k] for k in orphans)
    assert "r3" not in landed and sum(landed.values()) == len(orphans), landed
    # The removed server's keys are shared out, not all dumped on one server.
    assert len(landed) >= 2, landed
    moved = {k: (before[k], after[k]) for k in keys if before[k] != "r3" and after[k] != before[k]}
    if method == "ring":
        # A ring loses the removed server's points and nothing else moves.
        assert moved == {}, "%d keys of the remaining servers moved, e.g. %r" % (
            len(moved), sorted(moved.items())[:5])
    else:
        # A Maglev table is rebuilt from the new server set, and Maglev's
        # disruption is small but not zero (about 0.1% of keys measured):
        # SPEC 5 bounds all changes by 1/N + 2% of keys, i.e. other keys
        # moving are at most 2%.
        assert len(moved) <= 0.02 * len(keys), "%d keys of the remaining servers moved, e.g. %r" % (
            len(moved), sorted(moved.items())[:5])


@pytest.mark.parametrize("method", ["maglev", "ring"])
def test_a_server_going_down_moves_only_its_keys(method, replicas, lb):
    rs = replicas(4)
    port = free_port()
    # The first connect failure takes a server down (passive check) for
    # longer than the test; the failed request is retried elsewhere.
    extra = hash_backend("header:X-User", method) + "    passive:\n      failures: 1\n      cooldown: 1h\n"
    lb(http_config(port, [r.addr for r in rs], balance="hash", extra_backend=extra), port)
    keys = ["key-%d" % k for k in range(1000)]
    before = key_mapping(port, keys)
    assert set(before.values()) == {"r0", "r1", "r2", "r3"}, collections.Counter(before.values())

    rs[3].kill()
    after = key_mapping(port, keys)
    again = key_mapping(port, keys)

    # Health never rebuilds the table: a down server's keys walk on to the
    # next candidate, and no other key moves, with either method.
    moved = {k: (before[k], after[k]) for k in keys if before[k] != "r3" and after[k] != before[k]}
    assert moved == {}, "%d keys of the remaining servers moved, e.g. %r" % (
        len(moved), sorted(moved.items())[:5])
    orphans = [k for k in keys if before[k] == "r3"]
    landed = collections.Counter(after[k] for k in orphans)
    assert "r3" not in landed and len(landed) >= 2, landed
    assert again == after


def test_tcp_hash_by_source_ip_sticks_each_address_to_one_server(replicas, lb):
    rs = replicas(3, mode="tcp", args=["-g"])
    port = free_port()
    lb(tcp_config(port, [r.addr for r in rs], balance="hash",
                  extra_backend=hash_backend("source_ip")), port)
    # Connections from 127.0.0.1 always reach the same replica ...
    names = [greeting_from(port, "127.0.0.1") for _ in range(30)]
    assert len(set(names)) == 1, collections.Counter(names)
    # ... and so do those from each other loopback source address, while
    # the addresses together spread over the servers.
    by_source = {}
    for host in range(2, 22):
        source = "127.0.0.%d" % host
        got = {greeting_from(port, source) for _ in range(3)}
        assert len(got) == 1, (source, got)
        by_source[source] = got.pop()
    assert set(by_source.values()) | set(names) == {"r0", "r1", "r2"}, by_source


def test_bounded_load_spreads_one_hot_key_over_several_servers(replicas, lb):
    """All requests carry the same key; with bounded_load 1.25 the busy server
    is capped and concurrent requests spill to the next candidates, while
    plain hashing sends every one of them to the same server."""
    rs = replicas(3)

    def spread(extra):
        port = free_port()
        lb(http_config(port, [r.addr for r in rs], balance="hash",
                       extra_backend="    hash:\n      key: header:X-User\n" + extra), port)
        seen, lock = [], threading.Lock()

        def one():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/delay/300", headers={"X-User": "hot"})
            resp = c.getresponse()
            with lock:
                seen.append(resp.getheader("X-Replica"))
            resp.read()
            c.close()
        run_concurrently(one, 6, timeout=20)
        assert len(seen) == 6
        return set(seen)
    assert len(spread("")) == 1
    assert len(spread("      bounded_load: 1.25\n")) >= 2
