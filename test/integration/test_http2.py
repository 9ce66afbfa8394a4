"""HTTP/2 from clients (issue 16): h2c with prior knowledge on a plain
listener with http2: true, h2 by ALPN on a TLS listener; every stream is
balanced like an HTTP/1.1 request. Real clients: curl, nghttp, h2load, and
Python's h2 for frames made by hand."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import (Replica, ScriptedServer, answering, free_port, http_config, read_head, recv_all, under_sanitizer,
                      wait_until)

h2 = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.errors  # noqa: E402
import h2.settings  # noqa: E402
import h2.events  # noqa: E402

CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
H2LOAD = shutil.which("h2load")


def start(procs, lb, n=3, extra_listener="    http2: true", workers=1, extra_backend=""):
    rs = [Replica(procs, name="r%d" % i).start() for i in range(n)]
    port = free_port()
    inst = lb(http_config(port, [r.addr for r in rs], extra_listener=extra_listener, workers=workers,
                          extra_backend=extra_backend), port)
    return inst, port, rs


class H2Client:
    """A raw HTTP/2 client connection (Python h2) on 127.0.0.1:port."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.responses = {}  # stream id -> {"headers", "data", "ended", "reset", "trailers"}
        self.goaway = None  # lb's GOAWAY: (error code, last stream id)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, end=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "test")]
        self.conn.send_headers(sid, hdrs + list(headers), end_stream=body is None and end)
        self.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None, "trailers": None}
        self.flush()
        if body is not None:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid, body, end=True):
        """As the peer's flow-control window allows (lb opens it as the
        server takes the bytes)."""
        while body:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window == 0:
                self.pump()
                continue
            self.conn.send_data(sid, body[:window])
            body = body[window:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.TrailersReceived):
                r["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                r["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                r["reset"] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = (ev.error_code, ev.last_stream_id)
        self.flush()

    def wait(self, sids, timeout=10):
        wait_until(lambda: all(self.responses[s]["ended"] or self.responses[s]["reset"] is not None
                               for s in sids) or self.pump(), timeout, "the responses")
        return [self.responses[s] for s in sids]

    def close(self):
        self.sock.close()


@pytest.mark.skipif(not CURL, reason="no curl")
def test_h2c_prior_knowledge_with_curl_and_http11_on_the_same_port(procs, lb):
    inst, port, rs = start(procs, lb)
    out = subprocess.run([CURL, "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          "http://127.0.0.1:%d/" % port], capture_output=True, text=True, timeout=10)
    assert out.stdout == "2 200"
    out = subprocess.run([CURL, "-s", "-w", " %{http_version}", "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.split()[-1] == "1.1" and out.stdout.startswith("r")


def test_streams_of_one_connection_are_balanced_each_on_its_own(procs, lb):
    inst, port, rs = start(procs, lb)
    c = H2Client(port)
    sids = [c.request("/") for _ in range(30)]
    got = c.wait(sids)
    assert all(r["headers"][b":status"] == b"200" for r in got)
    names = [r["data"].decode().strip() for r in got]
    assert {n: names.count(n) for n in set(names)} == {"r0": 10, "r1": 10, "r2": 10}
    c.close()


def test_request_body_headers_and_x_forwarded_reach_the_server(procs, lb):
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    body = os.urandom(200000)  # more than the stream window: flow control must move
    sid = c.request("/echo", method="POST", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("x-thing", "v")],
                    body=body)
    (r,) = c.wait([sid], 20)
    h = r["headers"]
    assert h[b":status"] == b"200"
    assert r["data"] == body
    assert h[b"x-echo-cookie"] == b"a=1; b=2"
    assert h[b"x-echo-host"] == b"test"
    assert h[b"x-echo-x-thing"] == b"v"
    assert h[b"x-echo-x-forwarded-for"] == b"127.0.0.1"
    assert h[b"x-echo-transfer-encoding"] == b"chunked"  # no content-length given: chunked to the server
    assert b"x-echo-x-request-id" in h
    assert b"connection" not in h and b"transfer-encoding" not in h
    c.close()


def test_chunked_and_large_responses_lose_their_framing_and_hundred_streams_run_at_once(procs, lb):
    inst, port, rs = start(procs, lb, n=2)
    c = H2Client(port)
    sids = [c.request("/chunked/100000") for _ in range(50)] + [c.request("/bytes/70000") for _ in range(50)]
    got = c.wait(sids, 30)
    expected = bytes(i % 251 for i in range(100000))
    for r in got[:50]:
        assert r["headers"][b":status"] == b"200" and r["data"] == expected
    for r in got[50:]:
        assert r["data"] == expected[:70000]
    c.close()


def test_lbs_own_errors_and_server_failures_reach_the_stream(procs, lb):
    inst, port, rs = start(procs, lb, n=1)
    rs[0].kill()
    c = H2Client(port)
    (r,) = c.wait([c.request("/")])
    assert r["headers"][b":status"] == b"503"
    c.close()


@pytest.mark.skipif(not H2LOAD, reason="no h2load (nghttp2-client)")
def test_h2load_many_streams_all_succeed(procs, lb):
    inst, port, rs = start(procs, lb, workers=2)
    out = subprocess.run([H2LOAD, "-n", "3000", "-c", "4", "-m", "50", "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=60)
    assert "3000 succeeded, 0 failed, 0 errored, 0 timeout" in out.stdout, out.stdout


def replica_requests(r):
    """Requests the replica served before this question (its /stats counts itself)."""
    out = subprocess.run([CURL, "-s", "http://127.0.0.1:%d/stats" % r.port], capture_output=True, text=True, timeout=10)
    import json
    return json.loads(out.stdout)["requests"] - 1


def raw_stream(c, headers, data=None):
    """A stream with headers (and DATA) exactly as given, unchecked."""
    sid = c.conn.get_next_available_stream_id()
    c.conn.config.validate_outbound_headers = False
    c.conn.config.normalize_outbound_headers = False
    c.conn.send_headers(sid, headers, end_stream=data is None)
    if data is not None:
        c.conn.send_data(sid, data, end_stream=True)
    c.flush()
    c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None, "trailers": None}
    return sid


@pytest.mark.skipif(not CURL, reason="no curl")
def test_malformed_requests_are_stream_errors_never_forwarded(procs, lb):
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    base = [(":method", "POST"), (":path", "/echo"), (":scheme", "http"), (":authority", "t")]
    bad = [
        base + [("connection", "keep-alive")],  # connection-specific
        base + [("te", "gzip")],  # TE other than trailers
        base + [("X-Upper", "v")],  # uppercase name
        base + [("x-bad", "a\r\nx-injected: 1")],  # CR LF in a value
        [(":method", "GET"), (":scheme", "http"), (":authority", "t")],  # no :path
        base + [(":path", "/again")],  # a pseudo-header twice
    ]
    for i, headers in enumerate(bad):
        (r,) = c.wait([raw_stream(c, headers)])
        assert r["reset"] is not None and r["headers"] is None, headers
        assert replica_requests(rs[0]) == i, headers  # it did not reach the server (only /stats did)
    # A body longer than its content-length: the head may go (as with
    # HTTP/1.1), the extra bytes never do: no request is smuggled.
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    (r,) = c.wait([raw_stream(c, base + [("content-length", "0")], smuggled)])
    assert r["reset"] is not None or r["headers"] is not None
    (ok,) = c.wait([c.request("/")])
    assert ok["headers"][b":status"] == b"200"
    # /stats 6 times, the content-length 0 head and the good one; never /smuggled
    assert replica_requests(rs[0]) <= len(bad) + 2
    c.close()


@pytest.mark.skipif(not CURL or not shutil.which("openssl"), reason="no curl or openssl")
def test_h2_over_tls_by_alpn_with_curl_and_http11_still_offered(procs, lb, tmp_path):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=a.test",
                    "-addext", "subjectAltName=DNS:a.test"], check=True, capture_output=True, timeout=30)
    tls = "    tls:\n      certificates: [{cert: %s, key: %s}]\n      alpn: [h2, http/1.1]" % (cert, key)
    inst, port, rs = start(procs, lb, extra_listener=tls)
    url = "https://a.test:%d/" % port
    common = [CURL, "-s", "--cacert", cert, "--resolve", "a.test:%d:127.0.0.1" % port, "-w", " %{http_version}"]
    names = set()
    for _ in range(3):
        out = subprocess.run(common + ["--http2", url], capture_output=True, text=True, timeout=10).stdout.split()
        assert out[-1] == "2"
        names.add(out[0])
    assert names == {"r0", "r1", "r2"}
    out = subprocess.run(common + ["--http1.1", url], capture_output=True, text=True, timeout=10).stdout.split()
    assert out[-1] == "1.1" and out[0].startswith("r")


@pytest.mark.skipif(not NGHTTP, reason="no nghttp (nghttp2-client)")
def test_reload_sends_goaway_the_stream_in_flight_finishes_and_new_connections_use_the_new_servers(procs, lb):
    """SPEC 14: GOAWAY on reload (NO_ERROR); the stream in flight finishes
    on the old generation's server; the client's next connection gets the
    new one."""
    inst, port, rs = start(procs, lb, n=1)
    new = Replica(procs, name="new").start()
    client = subprocess.Popen([NGHTTP, "-v", "http://127.0.0.1:%d/delay/600" % port], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    procs.append(client)
    wait_until(lambda: replica_in_flight(rs[0]) == 1, 5, "the stream at its server")
    inst.reload(http_config(port, [new.addr], extra_listener="    http2: true", workers=1))
    out, _ = client.communicate(timeout=10)
    assert client.returncode == 0, out
    assert "recv GOAWAY frame" in out and "error_code=NO_ERROR" in out
    assert out.index("recv GOAWAY frame") < out.index("recv DATA frame")  # the response after it, whole
    assert "\nr0\n" in out  # the old generation's server
    c = H2Client(port)
    got = c.wait([c.request("/") for _ in range(4)])
    assert {x["data"] for x in got} == {b"new\n"}
    c.close()


def test_a_runtime_weight_is_no_reload_and_sends_no_goaway(procs, lb):
    """A weight set through the admin endpoint rebuilds the generation from
    the same configuration: the HTTP/2 connection goes on, no GOAWAY."""
    rs = [Replica(procs, name="r%d" % i).start() for i in range(2)]
    port, admin = free_port(), free_port()
    lb(http_config(port, [r.addr for r in rs], extra_listener="    http2: true", workers=1,
                   extra_top="admin:\n  bind: 127.0.0.1:%d\n" % admin), port)
    c = H2Client(port)
    c.wait([c.request("/")])
    out = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                          "http://127.0.0.1:%d/backends/app/servers/%s/weight/0" % (admin, rs[1].addr)],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == "200"
    got = c.wait([c.request("/") for _ in range(4)])  # same connection, the new weights
    assert {x["data"] for x in got} == {b"r0\n"} and c.goaway is None
    c.close()


@pytest.mark.skipif(not NGHTTP, reason="no nghttp (nghttp2-client)")
def test_sigterm_sends_goaway_and_streams_in_flight_finish(procs, lb):
    inst, port, rs = start(procs, lb, n=1)
    client = subprocess.Popen([NGHTTP, "-v", "http://127.0.0.1:%d/delay/700" % port], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    procs.append(client)
    wait_until(lambda: replica_in_flight(rs[0]) == 1, 5, "the stream at its server")
    inst.proc.send_signal(signal.SIGTERM)
    out, _ = client.communicate(timeout=10)
    assert client.returncode == 0, out
    assert "recv GOAWAY frame" in out and "error_code=NO_ERROR" in out
    # the response came after the GOAWAY, whole
    assert out.index("recv GOAWAY frame") < out.index("recv DATA frame")
    assert "\nr0\n" in out  # the body, printed by nghttp
    assert inst.proc.wait(10) == 0


def replica_in_flight(r):
    out = subprocess.run([CURL, "-s", "http://127.0.0.1:%d/stats" % r.port], capture_output=True, text=True, timeout=10)
    import json
    return json.loads(out.stdout)["in_flight"]


def test_a_client_that_stops_reading_holds_lb_memory_flat(procs, lb):
    """20 MB to a client whose window stays shut: lb takes from the server
    only what the client's window and one buffer allow."""
    from conftest import proc_status_kb
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    before = proc_status_kb(inst.proc.pid, "VmRSS")
    sid = c.request("/bytes/20000000")
    total, unacked, ended = 0, 0, False

    def take(ack):
        nonlocal total, unacked, ended
        data = c.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        for ev in c.conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                total += len(ev.data)
                unacked += ev.flow_controlled_length
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
        if ack and unacked:
            c.conn.acknowledge_received_data(unacked, sid)
            unacked = 0
        c.flush()
    # Read without acknowledging: the stream's window (64 KiB) fills, then nothing.
    c.sock.settimeout(0.5)
    try:
        while True:
            take(ack=False)
    except socket.timeout:
        pass
    grown = proc_status_kb(inst.proc.pid, "VmRSS") - before
    print("\nstalled h2 download: %d bytes reached the client, lb RSS +%d KiB" % (total, grown))
    assert total <= 65536
    assert grown < 16 * 1024  # the 20 MB waits at the server, not in lb
    # Then it reads: everything arrives, whole.
    c.conn.acknowledge_received_data(unacked, sid)
    unacked = 0
    c.flush()
    c.sock.settimeout(5)
    wait_until(lambda: take(ack=True) or ended, 60, "the rest of the 20 MB")
    assert total == 20000000
    c.close()



def start_h2c(lb, servers, extra_backend=""):
    port = free_port()
    lb(http_config(port, servers, extra_listener="    http2: true", workers=1, extra_backend=extra_backend), port)
    return port


def test_trailers_from_the_server_reach_the_client(procs, lb):
    """A server answering chunked with trailers: HTTP/2 gets them as a
    trailing HEADERS frame."""
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc123\r\n\r\n")
    with ScriptedServer(answering(lambda head: answer)) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        (r,) = c.wait([c.request("/")])
        assert r["data"] == b"hello world"
        assert r["trailers"] == {b"x-checksum": b"abc123"}
        c.close()


def test_header_field_counts_follow_max_header_fields_not_a_limit_of_http2s_own(procs, lb):
    """With max_header_fields: 400, 300 request fields reach the server and
    300 response fields and 300 trailer fields reach the client (lb once
    reset any stream past 256); past the limit, the answer is HTTP/1.1's
    431 for the request, not a reset."""
    seen = []

    def answer(head):
        seen.append(head)
        fields = b"".join(b"X-F%d: v%d\r\n" % (i, i) for i in range(300))
        trailers = b"".join(b"x-t%d: t%d\r\n" % (i, i) for i in range(300))
        return (b"HTTP/1.1 200 OK\r\n" + fields + b"Transfer-Encoding: chunked\r\n\r\n"
                b"2\r\nok\r\n0\r\n" + trailers + b"\r\n")

    with ScriptedServer(answering(answer)) as srv:
        port = free_port()
        # max_header_size with room to spare: the count is what is tested
        lb(http_config(port, [srv.addr], extra_listener="    http2: true\n    max_header_size: 64k", workers=1,
                       extra_global="  max_header_fields: 400"), port)
        c = H2Client(port)
        (r,) = c.wait([c.request("/", headers=[("x-r%d" % i, "v") for i in range(300)])])
        assert r["reset"] is None and r["headers"][b":status"] == b"200"
        assert all(b"x-r%d: v\r\n" % i in seen[0] for i in range(300))
        assert all(r["headers"][b"x-f%d" % i] == b"v%d" % i for i in range(300))
        assert r["data"] == b"ok"
        assert len(r["trailers"]) == 300 and r["trailers"][b"x-t299"] == b"t299"
        (r,) = c.wait([c.request("/", headers=[("x-r%d" % i, "v") for i in range(401)])])
        assert r["reset"] is None and r["headers"][b":status"] == b"431"
        assert len(seen) == 1
        c.close()


@pytest.mark.parametrize("part", ["trailers", "head"])
def test_a_header_block_too_large_for_http2_resets_its_stream_and_never_hangs(procs, lb, part):
    """5,300 trailer fields, or a 64 KB response head (92 fields of 700
    bytes): over nghttp2's 64 KiB bound for a header block it sends. The
    stream is reset (it used to stay open until the idle timeout), and the
    connection goes on serving."""
    def answer(head):
        if b"GET /next" in head:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
        if part == "trailers":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" +
                    b"a:\r\n" * 5300 + b"\r\n")
        fields = b"".join(b"X-F%02d: " % i + b"v" * 700 + b"\r\n" for i in range(92))
        return b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok"

    with ScriptedServer(answering(answer)) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        c.conn.decoder.max_header_list_size = 10 ** 8  # the client would take it all
        (r,) = c.wait([c.request("/")], timeout=5)
        assert r["reset"] == h2.errors.ErrorCodes.INTERNAL_ERROR
        (r,) = c.wait([c.request("/next")], timeout=5)
        assert r["ended"] and r["data"] == b"next"
        c.close()


def test_fields_past_the_clients_max_header_list_size_reset_one_stream_not_the_connection(procs, lb):
    """A client that takes 1,000 bytes of fields (SETTINGS_MAX_HEADER_LIST_SIZE;
    Python's h2 closes the connection past it): a 2.6 KB response head, or
    trailers of that size, reset their stream; the next stream is served."""
    big = b"".join(b"X-F%02d: " % i + b"v" * 50 + b"\r\n" for i in range(30))

    def answer(head):
        if b"GET /head" in head:
            return b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 2\r\n\r\nok"
        if b"GET /trailers" in head:
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + big + b"\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"

    with ScriptedServer(answering(answer)) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        c.conn.update_settings({h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1000})
        c.flush()
        for path in ("/head", "/trailers"):
            (r,) = c.wait([c.request(path)], timeout=5)
            assert r["reset"] == h2.errors.ErrorCodes.INTERNAL_ERROR, path
        (r,) = c.wait([c.request("/next")], timeout=5)
        assert r["ended"] and r["data"] == b"next"
        c.close()


@pytest.mark.skipif(not CURL, reason="no curl")
def test_an_upload_answered_by_lb_itself_leaves_the_worker_free(procs, lb, tmp_path):
    """lb's own 503 to a 5 MB upload (its server is down): the stream's
    session lingers and ends; the worker does not spin."""
    from conftest import cpu_seconds
    inst, port, rs = start(procs, lb, n=1)
    rs[0].kill()
    body = tmp_path / "body"
    body.write_bytes(os.urandom(5 * 1024 * 1024))
    out = subprocess.run([CURL, "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                          "--data-binary", "@%s" % body, "http://127.0.0.1:%d/echo" % port],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "503"
    # A second with nothing to do: lb's CPU time over it (a measurement
    # window, not a wait for an event).
    cpu, until = cpu_seconds(inst.proc.pid), time.monotonic() + 1.0
    wait_until(lambda: time.monotonic() >= until, 3, "a second")
    spent = cpu_seconds(inst.proc.pid) - cpu
    assert spent < 0.3, "lb burnt %.2f s of CPU in a second with nothing to do: a spin" % spent


@pytest.mark.skipif(not H2LOAD, reason="no h2load (nghttp2-client)")
def test_a_client_with_a_large_window_gets_every_response_without_stalls(procs, lb):
    """h2load opens a 1 GiB window and never updates it: lb must go on
    writing while the kernel takes the frames, not wait for the client."""
    inst, port, rs = start(procs, lb)
    out = subprocess.run([H2LOAD, "-n", "40", "-c", "1", "-m", "8", "http://127.0.0.1:%d/bytes/300000" % port],
                         capture_output=True, text=True, timeout=30)
    assert "40 succeeded, 0 failed" in out.stdout, out.stdout


def test_a_response_is_not_cut_when_the_request_ends_after_it(procs, lb):
    """The client's END_STREAM comes after the response began: the stream
    still gets every byte (no keep-alive wait, no reset)."""
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    sid = c.request("/bytes/200000", method="POST", headers=[("content-length", "5")], body=b"hello", end=False)
    wait_until(lambda: c.responses[sid]["headers"] is not None or c.pump(), 5, "the response head")
    c.conn.end_stream(sid)
    c.flush()
    (r,) = c.wait([sid], 10)
    assert r["reset"] is None and r["ended"] and len(r["data"]) == 200000
    c.close()


def test_a_body_until_close_ends_its_stream_at_once(procs, lb):
    with ScriptedServer(answering(lambda head: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 200000)) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        began = time.monotonic()
        (r,) = c.wait([c.request("/")], 10)
        assert len(r["data"]) == 200000 and r["ended"]
        assert time.monotonic() - began < 3  # not the 30 s client timeout
        c.close()


def test_a_client_that_leaves_mid_header_block_frees_its_connection(procs, lb):
    """HEADERS without END_HEADERS, then the client goes: lb closes, and
    its connection count is back to 0."""
    import hpack
    port, admin = free_port(), free_port()
    r = Replica(procs, name="r0").start()
    inst = lb(http_config(port, [r.addr], extra_listener="    http2: true", workers=1,
                          extra_top="admin:\n  bind: 127.0.0.1:%d\n" % admin), port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")])
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0" +
              struct.pack("!I", len(block))[1:] + b"\x01\x00" + struct.pack("!I", 1) + block)  # no END_HEADERS
    wait_until(lambda: connections_active(admin) == 1, 5, "lb to see the connection")
    s.settimeout(0.5)
    try:
        while s.recv(65536):  # lb's SETTINGS: read, so that the close is a FIN, not a reset
            pass
    except socket.timeout:
        pass
    s.close()
    wait_until(lambda: connections_active(admin) == 0, 5, "the connection to be gone")


def connections_active(admin):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=5) as f:
        for line in f.read().decode().splitlines():
            if line.startswith("lb_connections_active "):
                return int(float(line.split()[1]))
    return None


def test_servers_failing_mid_response_do_not_get_a_busy_connection_called_a_flood(procs, lb):
    """Stream resets lb sends because a server failed mid-response are not
    the client's glitches: 300 of them on one connection, still open."""
    cut_short = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"  # then it dies
    with ScriptedServer(answering(lambda head: cut_short)) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        for _ in range(6):
            got = c.wait([c.request("/") for _ in range(50)], 20)
            assert all(r["reset"] == 2 for r in got)  # INTERNAL_ERROR: the body was cut
        assert c.conn.state_machine.state != h2.connection.ConnectionState.CLOSED
        c.close()


def test_an_absolute_uri_in_path_is_refused(procs, lb):
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    sid = raw_stream(c, [(":method", "GET"), (":path", "http://evil.example/echo"), (":scheme", "foo"),
                         (":authority", "good.example")])
    (r,) = c.wait([sid])
    assert r["reset"] is not None and r["headers"] is None
    assert replica_requests(rs[0]) == 0
    c.close()


def test_send_proxy_names_the_client_of_an_http2_stream(procs, lb):
    """backends[].send_proxy: a stream's server connection gets the
    client's address and the address it connected to, as an HTTP/1.1
    request's does (not PROXY UNKNOWN)."""
    def echo_proxy_line(head):
        line = head.split(b"\r\n", 1)[0]
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line)
    with ScriptedServer(answering(echo_proxy_line)) as srv:
        port = start_h2c(lb, [srv.addr], extra_backend="    send_proxy: v1")
        c = H2Client(port)
        (r,) = c.wait([c.request("/")])
        words = r["data"].decode().split()
        assert words[:4] == ["PROXY", "TCP4", "127.0.0.1", "127.0.0.1"] and words[5] == str(port), words
        c.close()


@pytest.mark.skipif(not CURL, reason="no curl")
def test_a_large_upload_streams_through_with_memory_flat(procs, lb, tmp_path):
    from conftest import proc_status_kb
    inst, port, rs = start(procs, lb, n=1)
    body = tmp_path / "body"
    body.write_bytes(os.urandom(40 * 1024 * 1024))
    before = proc_status_kb(inst.proc.pid, "VmHWM")
    out = subprocess.run([CURL, "-s", "--http2-prior-knowledge", "--data-binary", "@%s" % body,
                          "http://127.0.0.1:%d/count" % port], capture_output=True, text=True, timeout=60)
    grown = proc_status_kb(inst.proc.pid, "VmHWM") - before
    print("\nh2 upload of 40 MiB: lb peak RSS +%d KiB" % grown)
    assert out.stdout.strip() == str(40 * 1024 * 1024)
    if not under_sanitizer():
        assert grown < 8 * 1024


def test_a_hundred_stalled_downloads_hold_lbs_memory_bounded(procs, lb):
    """100 streams of 2 MB each to a client that opens no window: lb keeps
    at most its stream and connection buffers, and stops reading the
    servers (no 256 KiB per stream gathered)."""
    from conftest import proc_status_kb
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    before = proc_status_kb(inst.proc.pid, "VmRSS")
    for _ in range(100):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", "/bytes/2000000"), (":scheme", "http"),
                                  (":authority", "t")], end_stream=True)
    c.flush()
    c.sock.settimeout(0.2)
    until = time.monotonic() + 1.5
    while time.monotonic() < until:  # read what comes, acknowledge nothing
        try:
            c.conn.receive_data(c.sock.recv(1 << 20))
        except socket.timeout:
            pass
    grown = proc_status_kb(inst.proc.pid, "VmRSS") - before
    print("\n100 stalled h2 downloads: lb RSS +%d KiB" % grown)
    if not under_sanitizer():
        assert grown < 24 * 1024
    c.close()


def test_a_client_reading_its_streams_one_after_another_is_never_stuck(procs, lb):
    """30 x 1 MB asked at once, read in order: only the stream being read
    gets its window opened. The streams held shut must not take all the
    connection's buffer from the one being read."""
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    c.conn.increment_flow_control_window(1 << 30)
    sids = []
    for _ in range(30):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", "/bytes/1000000"), (":scheme", "http"),
                                  (":authority", "t")], end_stream=True)
        c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None, "trailers": None}
        sids.append(sid)
    c.flush()
    got = {s: 0 for s in sids}
    pending = {s: 0 for s in sids}  # received, not acknowledged: the stream's window stays that much shut
    ended = set()
    c.sock.settimeout(0.2)
    for current in sids:
        def step(current=current):
            if pending[current]:  # its turn: whatever it has received is read now
                c.conn.acknowledge_received_data(pending[current], current)
                pending[current] = 0
                c.flush()
            if current in ended:
                return True
            try:
                data = c.sock.recv(1 << 20)
            except socket.timeout:
                return False
            if not data:
                raise ConnectionError("closed")
            for ev in c.conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    got[ev.stream_id] += len(ev.data)
                    pending[ev.stream_id] += ev.flow_controlled_length
                elif isinstance(ev, h2.events.StreamEnded):
                    ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    raise AssertionError("stream %d reset" % ev.stream_id)
            c.flush()
            return current in ended
        wait_until(step, 10, "stream %d, read in its turn" % current)
        assert got[current] == 1000000
    c.close()


def test_an_idle_connection_told_goaway_is_closed_a_timeout_later(procs, lb):
    """Idle for timeouts.client: GOAWAY; still there (a header block that
    never ends) a timeout later: closed."""
    import hpack
    rs = [Replica(procs, name="r0").start()]
    port = free_port()
    lb(http_config(port, [rs[0].addr], extra_listener="    http2: true\n    timeouts:\n      client: 1s", workers=1),
       port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")])
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0" +
              struct.pack("!I", len(block))[1:] + b"\x01\x00" + struct.pack("!I", 1) + block)  # no END_HEADERS
    began = time.monotonic()
    data = recv_all(s, 5)
    took = time.monotonic() - began
    assert b"\x07\x00\x00\x00\x00\x00" in data  # a GOAWAY frame came before the close
    assert 1.5 < took < 4.0, took
    s.close()


def test_a_queued_http2_upload_waits_for_its_turn(procs, lb):
    """max_connections 1: a POST stream waits in the queue while another
    holds the slot; its END_STREAM is not a client leaving."""
    inst, port, rs = start(procs, lb, n=1, extra_backend="    max_connections: 1")
    c = H2Client(port)
    slow = c.request("/delay/700")
    wait_until(lambda: replica_in_flight(rs[0]) == 1, 5, "the slot taken")
    post = c.request("/count", method="POST", body=b"x" * 1000)
    got = c.wait([slow, post], 10)
    assert got[0]["headers"][b":status"] == b"200"
    assert got[1]["reset"] is None and got[1]["headers"][b":status"] == b"200" and got[1]["data"] == b"1000"
    c.close()


def test_a_compressed_header_bomb_is_refused_before_it_is_decoded_into_a_request(procs, lb):
    """A few bytes of HPACK naming one 4 KiB table entry again and again
    decode to far more than max_header_size: the stream is reset, nothing
    reaches the server, the connection goes on."""
    import hpack
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    enc = hpack.Encoder()
    base = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")]
    big = ("x-big", "y" * 4000)
    sid = c.conn.get_next_available_stream_id()
    block = enc.encode(base + [big] * 250)  # the entry is indexed after its first use
    c.sock.sendall(struct.pack("!I", len(block))[1:] + b"\x01\x05" + struct.pack("!I", sid) + block)
    c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None, "trailers": None}
    # The raw frame bypassed h2's state machine: read lb's frames raw.
    c.sock.settimeout(5)
    kinds, data = [], b""
    while 3 not in kinds and 1 not in kinds:
        chunk = c.sock.recv(65536)
        assert chunk, "closed"
        data += chunk
        while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
            length, kind, stream = int.from_bytes(data[:3], "big"), data[3], int.from_bytes(data[5:9], "big")
            if stream == sid:
                kinds.append(kind)
            data = data[9 + length:]
    assert kinds[-1] == 3, kinds  # RST_STREAM, not a response (HEADERS: a 431 made from a decoded megabyte)
    assert replica_requests(rs[0]) == 0


# ---- found by a review of h2.c (each fails on the build before) ----

def test_a_reset_stream_with_its_request_whole_aborts_its_server_request(procs, lb):
    """RST_STREAM on a GET (its request ended with its HEADERS), and 100
    such streams on connections that then close: every server request is
    aborted, none runs on until its server answers (they count against no
    connection limit)."""
    inst, port, rs = start(procs, lb, n=1)
    c = H2Client(port)
    sid = c.request("/delay/8000")
    wait_until(lambda: replica_in_flight(rs[0]) == 1, 5, "the request at its server")
    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    wait_until(lambda: replica_in_flight(rs[0]) == 0, 5, "the server request to be aborted")
    for _ in range(2):
        c = H2Client(port)
        sids = [c.request("/delay/8000") for _ in range(100)]
        wait_until(lambda: replica_in_flight(rs[0]) > 0, 5, "requests at their server")
        for s in sids[:50]:
            c.conn.reset_stream(s, h2.errors.ErrorCodes.CANCEL)
        c.flush()
        c.close()  # the other 50 go with the connection
    wait_until(lambda: replica_in_flight(rs[0]) == 0, 5, "every server request to be aborted")


@pytest.mark.parametrize("kind", ["until_close", "chunked"])
def test_an_early_answer_to_an_unfinished_upload_still_ends_with_end_stream(procs, lb, kind):
    """The server answers an upload before the client ended it: the
    response ends with END_STREAM, and only then does lb's RST_STREAM
    NO_ERROR (RFC 9113 8.1) tell the client to stop sending; it used to
    overtake the END_STREAM still queued."""
    def script(conn):
        if not read_head(conn):
            return
        if kind == "until_close":
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nhello")
        else:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.3)  # the end in a read of its own
            conn.sendall(b"0\r\n\r\n")
    with ScriptedServer(script) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        sid = c.request("/upload", method="POST", headers=[("content-length", "100000")], body=b"x" * 10, end=False)
        (r,) = c.wait([sid], 10)
        assert r["headers"][b":status"] == b"403" and r["data"] == b"hello"
        assert r["ended"], "the response ended with RST_STREAM(%s)" % r["reset"]
        c.close()


def test_a_body_until_close_cut_by_its_server_is_reset_not_ended(procs, lb):
    """A response without a length, whose server then resets the
    connection: the stream is reset (INTERNAL_ERROR), not ended as if the
    body were whole."""
    def script(conn):
        if read_head(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
            time.sleep(0.2)  # the bytes out before the reset
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with ScriptedServer(script) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        (r,) = c.wait([c.request("/")], 10)
        assert r["data"] == b"partial"
        assert r["reset"] == h2.errors.ErrorCodes.INTERNAL_ERROR and not r["ended"]
        c.close()


def test_a_transfer_coding_http2_cannot_carry_resets_the_stream(procs, lb):
    """Transfer-Encoding: gzip, chunked: HTTP/2 has no transfer codings, so
    the gzip bytes cannot pass as the content; the stream is reset (it
    used to deliver them as identity content)."""
    import gzip
    payload = gzip.compress(b"hello world\n" * 10)
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
              b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
    with ScriptedServer(answering(lambda head: answer)) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        (r,) = c.wait([c.request("/")])
        assert r["reset"] == h2.errors.ErrorCodes.INTERNAL_ERROR and r["data"] == b""
        c.close()


def test_window_updates_for_data_lb_sent_are_no_flood(procs, lb):
    """A client that acknowledges every 256 bytes of a 100 MB download
    (a stream and a connection WINDOW_UPDATE each time: 26 bytes read per
    256 sent) is served to the end; lb used to count those frames against
    no payload and end the connection with ENHANCE_YOUR_CALM after ~80 MB
    (after ~1.3 GB for Go's client, which acknowledges every 4 KiB)."""
    import hpack
    inst, port, rs = start(procs, lb, n=1)
    total = 100 * 1000 * 1000

    def frame(kind, flags, stream, payload=b""):
        return struct.pack("!I", len(payload))[1:] + bytes([kind, flags]) + struct.pack("!I", stream) + payload
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/bytes/%d" % total), (":scheme", "http"),
                                    (":authority", "t")])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, struct.pack("!HI", 4, 1 << 20)) +
                  frame(8, 0, 0, struct.pack("!I", (1 << 24))) + frame(1, 0x5, 1, block))
        buf, got, unacked, ended, goaway = bytearray(), 0, 0, False, None
        deadline = time.monotonic() + 60
        while not ended and goaway is None and time.monotonic() < deadline:
            data = s.recv(1 << 20)
            if not data:
                break
            buf += data
            pos, out = 0, []
            while len(buf) - pos >= 9:
                length = int.from_bytes(buf[pos:pos + 3], "big")
                if len(buf) - pos < 9 + length:
                    break
                kind, flags = buf[pos + 3], buf[pos + 4]
                if kind == 0:  # DATA
                    got += length
                    unacked += length
                    while unacked >= 256:
                        out.append(frame(8, 0, 1, struct.pack("!I", 256)) + frame(8, 0, 0, struct.pack("!I", 256)))
                        unacked -= 256
                    ended = bool(flags & 1)
                elif kind == 4 and not flags & 1:  # SETTINGS: ACK it
                    out.append(frame(4, 1, 0))
                elif kind == 7:  # GOAWAY
                    goaway = struct.unpack("!I", bytes(buf[pos + 13:pos + 17]))[0]
                pos += 9 + length
            del buf[:pos]
            if out:
                s.sendall(b"".join(out))
    assert ended and got == total, "cut after %d of %d bytes: GOAWAY %s" % (got, total, goaway)


def test_queued_uploads_do_not_starve_the_upload_that_holds_the_slot(procs, lb):
    """max_connections: 1. Stream A uploads 1 MB and holds the server's
    only slot; 20 uploads of 300 KB on the same connection wait in the
    queue, each holding the 64 KiB its window let in. A's body still
    flows: the connection's window comes back as DATA arrives (16 queued
    streams used to close it for everyone until timeouts.queue)."""
    rs = [Replica(procs, name="r0").start()]
    port = free_port()
    lb(http_config(port, [rs[0].addr], extra_listener="    http2: true", workers=1,
                   extra_backend="    max_connections: 1\n    timeouts:\n      queue: 10s"), port)
    c = H2Client(port)
    hdrs = [(":method", "POST"), (":path", "/count"), (":scheme", "http"), (":authority", "t")]

    def upload(size):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, hdrs)
        c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None, "trailers": None}
        left[sid] = size
        return sid
    left = {}
    a = upload(1000000)
    c.flush()
    wait_until(lambda: replica_in_flight(rs[0]) == 1, 5, "A at its server")
    for _ in range(20):
        upload(300000)
    c.flush()
    c.sock.settimeout(0.05)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not c.responses[a]["ended"]:
        for sid in list(left):  # A first: the oldest
            n = min(left[sid], c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            if n > 0:
                c.conn.send_data(sid, b"x" * n, end_stream=n == left[sid])
                left[sid] -= n
                if left[sid] == 0:
                    del left[sid]
        c.flush()
        try:
            c.pump()
        except socket.timeout:
            pass
    r = c.responses[a]
    assert r["ended"] and r["data"] == b"1000000", "A stuck: %d of its bytes unsent" % left.get(a, 0)
    c.close()


def test_a_response_cut_in_the_pass_that_forwarded_its_head_is_not_called_refused(procs, lb):
    """The server answers a POST with a head and an invalid chunk in one
    write: lb cuts the response in the pass that wrote its head, before the
    stream took it. The stream is reset INTERNAL_ERROR: REFUSED_STREAM
    would tell the client that nothing was processed (RFC 9113 8.7), and
    curl then sent the POST again, six times."""
    def script(conn):
        if read_head(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")
    with ScriptedServer(script) as srv:
        c = H2Client(start_h2c(lb, [srv.addr]))
        (r,) = c.wait([c.request("/order", method="POST", body=b"buy=1")], 5)
        assert r["reset"] == h2.errors.ErrorCodes.INTERNAL_ERROR
        c.close()
