"""TLS (SPEC 12): termination on listeners (HTTP and TCP mode), SNI,
mTLS, tickets, certificates reloaded, bad input, TLS to servers.

Certificates are made at test time with the openssl command: a test CA,
ECDSA and RSA leaves, an expired one, a client certificate. Real clients:
Python's ssl, curl, openssl s_client.
"""
import http.client
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import (LB, admin_stats, can_connect, free_port, http_config, recv_all, tcp_config, wait_until,
                      workers_under_test)

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, timeout=60, **kw)


def make_leaf(d, name, ca, key_type="ec", days=30, sans=None, serial=None, start=None):
    """A key and a certificate for `name`, signed by the CA `ca` (its file
    stem in d). Returns (cert path, key path)."""
    key = os.path.join(d, name + ".key")
    csr = os.path.join(d, name + ".csr")
    cert = os.path.join(d, name + ".pem")
    if key_type == "ec":
        run(OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    else:
        run(OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    cn = (sans or [name])[0].replace("IP:", "")
    run(OPENSSL, "req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(s if s.startswith("IP:") else "DNS:" + s
                                             for s in (sans or [name])) + "\n")
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
    args = [OPENSSL, "x509", "-req", "-in", csr, "-CA", os.path.join(d, ca + ".pem"),
            "-CAkey", os.path.join(d, ca + ".key"), "-out", cert, "-extfile", ext]
    if serial is not None:
        args += ["-set_serial", str(serial)]
    else:
        args += ["-CAcreateserial"]
    if start is not None:  # a past validity window: an expired certificate
        args = [OPENSSL, "ca", "-batch", "-config", os.path.join(d, "ca.cnf"), "-in", csr, "-out", cert,
                "-startdate", start[0], "-enddate", start[1], "-extfile", ext, "-notext"]
    else:
        args += ["-days", str(days)]
    run(*args)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if OPENSSL is None:
        pytest.skip("no openssl command")
    d = str(tmp_path_factory.mktemp("pki"))
    for ca in ("ca", "otherca"):
        run(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", os.path.join(d, ca + ".key"), "-out", os.path.join(d, ca + ".pem"), "-days", "30",
            "-subj", "/CN=lb test " + ca)
    # For `openssl ca`, which alone can back-date an expired certificate.
    os.makedirs(os.path.join(d, "newcerts"))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("""[ca]
default_ca = test
[test]
dir = %s
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[any]
commonName = supplied
""" % d)
    p = {"dir": d, "ca": os.path.join(d, "ca.pem"), "otherca": os.path.join(d, "otherca.pem")}
    p["a"] = make_leaf(d, "a", "ca", sans=["a.test", "*.wild.test"])
    p["b"] = make_leaf(d, "b", "ca", key_type="rsa", sans=["b.test"])
    p["dual_ec"] = make_leaf(d, "dual_ec", "ca", sans=["dual.test"])
    p["dual_rsa"] = make_leaf(d, "dual_rsa", "ca", key_type="rsa", sans=["dual.test"])
    p["client"] = make_leaf(d, "client", "ca", sans=["client.test"])
    p["stranger"] = make_leaf(d, "stranger", "otherca", sans=["stranger.test"])
    p["expired"] = make_leaf(d, "expired", "ca", sans=["old.test"], start=("20200101000000Z", "20200201000000Z"))
    p["self"] = None
    self_key = os.path.join(d, "self.key")
    self_cert = os.path.join(d, "self.pem")
    run(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        self_key, "-out", self_cert, "-days", "30", "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test")
    p["self"] = (self_cert, self_key)
    return p


def tls_block(certs, extra="", indent="    "):
    lines = [indent + "tls:", indent + "  certificates:"]
    for cert, key in certs:
        lines += [indent + "    - cert: " + cert, indent + "      key: " + key]
    for line in extra.splitlines():
        if line.strip():
            lines.append(indent + "  " + line)
    return "\n".join(lines)


def admin_block(port):
    return 'admin:\n  bind: "127.0.0.1:%d"' % port


def https_lb(lb, replicas, pki, certs=None, tls_extra="", extra_global="", workers=2, admin=False, listener=""):
    rs = replicas(1)
    port = free_port()
    admin_port = free_port() if admin else None
    config = http_config(port, [rs[0].addr], workers=workers, extra_global=extra_global,
                         extra_listener=tls_block(certs or [pki["a"], pki["b"]], tls_extra) +
                         ("\n" + listener if listener else ""),
                         extra_top=admin_block(admin_port) if admin else "")
    inst = lb(config, port)
    inst.admin_port = admin_port
    return inst, port


def client_context(pki, ca="ca", cert=None):
    ctx = ssl.create_default_context(cafile=pki[ca])
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def tls_connect(port, ctx, name):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname=name)
    except Exception:
        raw.close()
        raise


def get(sock, path="/", headers=""):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, headers)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    fields = {k.lower(): v for k, v in fields.items()}
    length = int(fields.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), fields, body


def peer_cn(sock):
    cert = sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def serial_of(sock):
    return int(sock.getpeercert()["serialNumber"], 16)


def metrics(admin_port):
    with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        return recv_all(s, 5).decode().partition("\r\n\r\n")[2]


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
    return float(m.group(1)) if m else None


# ---- certificates and SNI ----

def test_sni_picks_the_certificate(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki)
    ctx = client_context(pki)
    for name, cn in (("a.test", "a.test"), ("b.test", "b.test"), ("x.wild.test", "a.test")):
        with tls_connect(port, ctx, name) as s:
            assert peer_cn(s) == cn
            status, fields, _ = get(s, "/echo")
            assert status == 200
            assert fields["x-echo-x-forwarded-proto"] == "https"
    # A name no certificate covers gets the first (default) one.
    loose = ssl.create_default_context(cafile=pki["ca"])
    loose.check_hostname = False
    with tls_connect(port, loose, "nobody.test") as s:
        assert peer_cn(s) == "a.test"
    # Wildcards cover one label only.
    with tls_connect(port, loose, "a.b.wild.test") as s:
        assert peer_cn(s) == "a.test"  # the default, not a wildcard match


def test_strict_sni_refuses_unknown_names(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, tls_extra="strict_sni: true")
    ctx = client_context(pki)
    with tls_connect(port, ctx, "b.test") as s:
        assert peer_cn(s) == "b.test"
    loose = client_context(pki)
    loose.check_hostname = False
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME|unrecognized name"):
        tls_connect(port, loose, "nobody.test")


def test_ecdsa_and_rsa_certificates_for_one_name(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, certs=[pki["a"], pki["dual_ec"], pki["dual_rsa"]])
    for sigalgs, want in (("ECDSA+SHA256", "id-ecPublicKey"), ("RSA-PSS+SHA256:RSA+SHA256", "rsaEncryption")):
        out = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "dual.test",
                              "-sigalgs", sigalgs, "-CAfile", pki["ca"], "-verify_return_error", "-showcerts"],
                             input=b"", capture_output=True, timeout=20)
        text = out.stdout.decode(errors="replace")
        assert "Verify return code: 0 (ok)" in text, text + out.stderr.decode(errors="replace")
        pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S).group(0)
        info = subprocess.run([OPENSSL, "x509", "-noout", "-text"], input=pem.encode(), capture_output=True,
                              timeout=10).stdout.decode()
        assert "CN = dual.test" in info and want in info, info


def test_curl_with_resolve_and_alpn(replicas, lb, pki):
    if CURL is None:
        pytest.skip("no curl")
    _, port = https_lb(lb, replicas, pki)
    out = subprocess.run([CURL, "-sS", "-v", "--http1.1", "--cacert", pki["ca"], "--resolve",
                          "b.test:%d:127.0.0.1" % port, "https://b.test:%d/" % port], capture_output=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"r0"
    assert b"ALPN: server accepted http/1.1" in out.stderr


# ---- client certificates ----

def refused(connect):
    """No request over the connection connect() makes gets an answer."""
    try:
        with connect() as s:
            get(s)
            return False
    except (ssl.SSLError, ConnectionError, IndexError):
        return True  # refused in the handshake, or closed without an answer


def test_mtls_required(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, tls_extra="client_ca: %s\nverify_client: required" % pki["ca"])
    with tls_connect(port, client_context(pki, cert=pki["client"]), "a.test") as s:
        status, fields, _ = get(s, "/echo", "X-Client-Subject: forged\r\n")
        assert status == 200
        assert fields["x-echo-x-client-subject"] == "CN=client.test"
    # No certificate, or one from another CA: no request gets through. (In
    # TLS 1.3 the server's verdict arrives after the client's handshake.)
    for cert in (None, pki["stranger"]):
        assert refused(lambda: tls_connect(port, client_context(pki, cert=cert), "a.test"))


def test_mtls_optional(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, tls_extra="client_ca: %s\nverify_client: optional" % pki["ca"])
    with tls_connect(port, client_context(pki), "a.test") as s:
        status, fields, _ = get(s, "/echo", "X-Client-Subject: forged\r\n")
        assert status == 200
        assert "x-echo-x-client-subject" not in fields  # the client's own is removed
    with tls_connect(port, client_context(pki, cert=pki["client"]), "a.test") as s:
        assert get(s, "/echo")[1]["x-echo-x-client-subject"] == "CN=client.test"


# ---- bad input ----

def test_plain_http_garbage_and_silence_end_cleanly_and_are_counted(replicas, lb, pki):
    inst, port = https_lb(lb, replicas, pki, admin=True,
                          listener="    timeouts:\n      header: 300ms")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = recv_all(s, 5)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b"plain HTTP request was sent to an HTTPS port" in answer
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(os.urandom(3000))
        assert recv_all(s, 5) in (b"",) or True  # an alert at most, then the close
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        assert recv_all(s, 5) == b""  # silence: closed at timeouts.header
    assert time.monotonic() - started < 3
    # A handshake cut in the middle, by a FIN and by a reset.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(bytes.fromhex("16030100c8010000c40303") + os.urandom(20))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(bytes.fromhex("16030100c8010000c40303") + os.urandom(20))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with tls_connect(port, client_context(pki), "a.test") as s:
        assert get(s)[0] == 200
    m = wait_until(lambda: (lambda t: t if metric(t, "lb_tls_handshakes_total", listener="web", result="closed") == 2
                            else None)(metrics(inst.admin_port)), 5, "the cut handshakes counted")
    assert metric(m, "lb_tls_handshakes_total", listener="web", result="ok") == 1
    assert metric(m, "lb_tls_handshakes_total", listener="web", result="failed") == 2  # plain HTTP, garbage
    assert metric(m, "lb_tls_handshakes_total", listener="web", result="timeout") == 1
    assert metric(m, "lb_tls_handshakes_total", listener="web", result="closed") == 2
    expiry = metric(m, "lb_tls_certificate_expiry_seconds", listener="web", cert=pki["a"][0])
    assert 29 * 86400 < expiry <= 30 * 86400
    assert metric(m, "lb_tls_handshake_duration_seconds_count", listener="web") == 1
    assert metric(m, "lb_tls_handshake_duration_seconds_bucket", listener="web", le="+Inf") == 1
    check = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=m, capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_lb_t_reports_certificate_errors_with_their_place(tmp_path, pki):
    def check(certs, extra=""):
        config = http_config(free_port(), ["127.0.0.1:9"], extra_listener=tls_block(certs, extra))
        path = tmp_path / "lb.yaml"
        path.write_text(config)
        out = subprocess.run([LB, "-t", "-c", str(path)], capture_output=True, timeout=20)
        return out.returncode, out.stderr.decode(), config.splitlines()

    rc, err, lines = check([(pki["a"][0], pki["b"][1])])
    assert rc != 0
    m = re.match(r"(\S+):(\d+):(\d+): listeners\[0\]\.tls\.certificates\[0\]\.key: the key .* does not match", err)
    assert m, err
    assert lines[int(m.group(2)) - 1].strip().startswith("key:")
    rc, err, _ = check([("/nonexistent/site.pem", pki["a"][1])])
    assert rc != 0 and re.search(r":\d+:\d+: listeners\[0\]\.tls\.certificates\[0\]\.cert: cannot read", err), err
    rc, err, _ = check([pki["a"]], "ciphers: NOTHING-AT-ALL")
    assert rc != 0 and "listeners[0].tls.ciphers" in err, err
    rc, err, _ = check([pki["expired"]])
    assert rc == 0 and "has expired" in err, err
    # every bad certificate in one run (SPEC 2), not only the first
    two = "listeners:\n"
    for name, cert in (("a", "/nonexistent/a.pem"), ("b", "/nonexistent/b.pem")):
        two += ("  - name: %s\n    bind: \"127.0.0.1:%d\"\n    backend: app\n%s\n"
                % (name, free_port(), tls_block([(cert, pki["a"][1])])))
    two += "backends:\n  - name: app\n    servers:\n      - addr: 127.0.0.1:9\n"
    path = tmp_path / "two.yaml"
    path.write_text(two)
    out = subprocess.run([LB, "-t", "-c", str(path)], capture_output=True, timeout=20)
    err = out.stderr.decode()
    assert out.returncode == 1 and "/nonexistent/a.pem" in err and "/nonexistent/b.pem" in err, err
    # Relative names start at the configuration's directory.
    shutil.copy(pki["a"][0], tmp_path / "rel.pem")
    shutil.copy(pki["a"][1], tmp_path / "rel.key")
    rc, err, _ = check([("rel.pem", "rel.key")])
    assert rc == 0, err


# ---- reloads ----

def test_renewed_certificate_taken_on_reload_open_connections_go_on(replicas, lb, pki, tmp_path):
    cert = str(tmp_path / "site.pem")
    key = str(tmp_path / "site.key")
    shutil.copy(pki["a"][0], cert)
    shutil.copy(pki["a"][1], key)
    inst, port = https_lb(lb, replicas, pki, certs=[(cert, key)])
    ctx = client_context(pki)
    old = tls_connect(port, ctx, "a.test")
    try:
        first = serial_of(old)
        assert get(old)[0] == 200
        renewed = make_leaf(pki["dir"], "renewed", "ca", sans=["a.test"], serial=777)
        shutil.copy(renewed[0], cert)
        shutil.copy(renewed[1], key)
        inst.reload()
        with tls_connect(port, ctx, "a.test") as s:
            assert serial_of(s) == 777 != first
            assert get(s)[0] == 200
        assert get(old)[0] == 200  # the open connection keeps going
        # A broken pair on disk: the reload fails, the renewed one stays.
        shutil.copy(pki["b"][1], key)
        inst.reload(expect_ok=False)
        assert re.search(r"reload failed: \S+:\d+:\d+: listeners\[0\]\.tls\.certificates\[0\]\.key",
                         inst.log_text()), inst.log_text()
        with tls_connect(port, ctx, "a.test") as s:
            assert serial_of(s) == 777
            assert get(s)[0] == 200
    finally:
        old.close()


def resumed_after(port, ctx, session):
    with tls_connect_session(port, ctx, session) as s:
        get(s)
        return s.session_reused


def tls_connect_session(port, ctx, session):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="a.test", session=session)


def first_session(port, ctx):
    with tls_connect(port, ctx, "a.test") as s:
        get(s)  # TLS 1.3 tickets come after the handshake
        assert not s.session_reused
        return s.session


def test_ticket_resumption_survives_a_reload(replicas, lb, pki):
    inst, port = https_lb(lb, replicas, pki, admin=True)
    ctx = client_context(pki)
    session = first_session(port, ctx)
    assert resumed_after(port, ctx, session)
    inst.reload()
    assert resumed_after(port, ctx, session)
    m = metrics(inst.admin_port)
    assert metric(m, "lb_tls_resumed_total", listener="web") == 2


def test_tickets_off_means_full_handshakes(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, tls_extra="session_tickets: false")
    ctx = client_context(pki)
    session = first_session(port, ctx)
    assert not resumed_after(port, ctx, session)


def test_two_instances_sharing_a_ticket_key_file_resume_each_other(replicas, lb, pki, tmp_path):
    keys = tmp_path / "tickets.key"
    keys.write_bytes(os.urandom(80))
    extra = "ticket_key_file: %s" % keys
    _, port1 = https_lb(lb, replicas, pki, tls_extra=extra)
    _, port2 = https_lb(lb, replicas, pki, tls_extra=extra)
    _, port3 = https_lb(lb, replicas, pki)  # random keys of its own
    ctx = client_context(pki)
    session = first_session(port1, ctx)
    assert resumed_after(port2, ctx, session)
    assert not resumed_after(port3, ctx, session)


def test_bad_ticket_key_file_is_a_config_error(tmp_path, pki):
    keys = tmp_path / "short.key"
    keys.write_bytes(os.urandom(50))
    config = http_config(free_port(), ["127.0.0.1:9"], extra_listener=tls_block([pki["a"]],
                                                                               "ticket_key_file: %s" % keys))
    path = tmp_path / "lb.yaml"
    path.write_text(config)
    out = subprocess.run([LB, "-t", "-c", str(path)], capture_output=True, timeout=20)
    assert out.returncode != 0
    assert re.search(rb":\d+:\d+: listeners\[0\]\.tls\.ticket_key_file: .*80 bytes", out.stderr), out.stderr


# ---- TCP mode ----

@pytest.mark.parametrize("ktls", [False, True])
def test_tcp_mode_terminates_tls_and_relays_plaintext(replicas, lb, pki, ktls):
    rs = replicas(1, mode="tcp")
    port = free_port()
    config = tcp_config(port, [rs[0].addr]).replace(
        "    mode: tcp\n", "    mode: tcp\n" + tls_block([pki["a"]], "ktls: true" if ktls else "") + "\n")
    lb(config, port)
    with tls_connect(port, client_context(pki), "a.test") as s:
        payload = os.urandom(200000)
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk, "closed early"
            got += chunk
        assert got == payload


# ---- TLS to the servers ----

def inner_and_outer(lb, replicas, pki, backend_tls, inner_certs=None):
    """An lb terminating TLS (the 'server') behind an lb speaking TLS to it."""
    rs = replicas(1)
    inner_port = free_port()
    inner_admin = free_port()
    lb(http_config(inner_port, [rs[0].addr], extra_listener=tls_block(inner_certs or [pki["a"]]),
                   extra_top=admin_block(inner_admin)), inner_port)
    outer_port = free_port()
    lb(http_config(outer_port, ["127.0.0.1:%d" % inner_port],
                   extra_backend="    retries: 0\n    keepalive: 0\n" + backend_tls), outer_port)
    return outer_port, inner_admin


def plain_get(port, path="/"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return get(s, path)


def test_backend_tls_verified_and_sessions_resumed(replicas, lb, pki):
    outer, inner_admin = inner_and_outer(lb, replicas, pki,
                                         "    tls:\n      ca: %s\n      sni: a.test" % pki["ca"])
    for _ in range(12):
        status, fields, body = plain_get(outer, "/echo")
        assert status == 200
        assert fields["x-echo-x-forwarded-proto"] == "https"  # the inner lb saw TLS
    m = metrics(inner_admin)
    assert metric(m, "lb_tls_handshakes_total", listener="web", result="ok") == 12
    # keepalive: 0 makes a connection per request; all but the first of
    # each of the outer lb's workers resume the session it kept.
    assert metric(m, "lb_tls_resumed_total", listener="web") >= 12 - workers_under_test(2)


def test_backend_tls_verify_fails_closed(replicas, lb, pki):
    # The inner certificate is self-signed: not from the CA lb trusts.
    outer, _ = inner_and_outer(lb, replicas, pki, "    tls:\n      ca: %s\n      sni: a.test" % pki["ca"],
                               inner_certs=[pki["self"]])
    assert plain_get(outer)[0] == 502
    # The wrong name fails too.
    outer, _ = inner_and_outer(lb, replicas, pki, "    tls:\n      ca: %s\n      sni: wrong.test" % pki["ca"])
    assert plain_get(outer)[0] == 502


def test_backend_tls_without_verify(replicas, lb, pki):
    outer, _ = inner_and_outer(lb, replicas, pki, "    tls:\n      verify: false",
                               inner_certs=[pki["self"]])
    assert plain_get(outer)[0] == 200


def test_backend_tls_client_certificate(replicas, lb, pki):
    rs = replicas(1)
    inner_port = free_port()
    lb(http_config(inner_port, [rs[0].addr], extra_listener=tls_block(
        [pki["a"]], "client_ca: %s\nverify_client: required" % pki["ca"])), inner_port)
    outer_port = free_port()
    lb(http_config(outer_port, ["127.0.0.1:%d" % inner_port], extra_backend=(
        "    retries: 0\n    tls:\n      ca: %s\n      sni: a.test\n      client_cert: %s\n      client_key: %s"
        % (pki["ca"], pki["client"][0], pki["client"][1]))), outer_port)
    status, fields, _ = plain_get(outer_port, "/echo")
    assert status == 200
    assert fields["x-echo-x-client-subject"] == "CN=client.test"


def test_health_checks_speak_tls_and_verify(replicas, lb, pki):
    rs = replicas(1)
    ports = {}
    for name, certs in (("good", [pki["a"]]), ("self", [pki["self"]])):
        ports[name] = free_port()
        lb(http_config(ports[name], [rs[0].addr], extra_listener=tls_block(certs)), ports[name])
    outer_port = free_port()
    backend = ("    tls:\n      ca: %s\n      sni: a.test\n" % pki["ca"])
    config = http_config(outer_port, ["127.0.0.1:%d" % ports["good"], "127.0.0.1:%d" % ports["self"]],
                         extra_backend=backend)
    config = config.replace("      type: none\n", "      type: http\n      path: /healthz\n"
                            "      interval: 100ms\n      rise: 1\n      fall: 1\n")
    outer = lb(config, outer_port)
    wait_until(lambda: "down (1 failed checks: TLS:" in outer.log_text(), 10, "the self-signed server down")
    text = outer.log_text()
    assert "127.0.0.1:%d down" % ports["self"] in text, text
    assert "127.0.0.1:%d down" % ports["good"] not in text, text
    for _ in range(4):
        assert plain_get(outer_port)[0] == 200  # only the good one gets requests


# ---- what a review found ----

def handshake_after(sock, ctx, name, prefix):
    """A TLS client over sock whose first flight goes out in one send with
    `prefix` (a PROXY header) in front. Returns (ssl object, in BIO, out BIO)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    first = True
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = outgoing.read()
            if data:
                sock.sendall(prefix + data if first else data)
                first = False
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            incoming.write(chunk)
    return obj, incoming, outgoing


def bio_exchange(sock, obj, incoming, outgoing, payload, want):
    """Send payload over the TLS object; read until `want` bytes came back."""
    obj.write(payload)
    sock.sendall(outgoing.read())
    got = b""
    while len(got) < want:
        try:
            got += obj.read(65536)
            continue
        except ssl.SSLWantReadError:
            pass
        chunk = sock.recv(65536)
        if not chunk:
            break
        incoming.write(chunk)
    sock.sendall(outgoing.read())
    return got


@pytest.mark.parametrize("mode,ktls", [("http", False), ("tcp", False), ("http", True)])
def test_proxy_header_and_client_hello_in_one_segment(replicas, lb, pki, mode, ktls):
    rs = replicas(1, mode="tcp" if mode == "tcp" else "http")
    port = free_port()
    tls = tls_block([pki["a"]], "ktls: true" if ktls else "")  # ktls: lb's BIO all the same
    if mode == "http":
        config = http_config(port, [rs[0].addr], workers=1, extra_listener="    proxy_protocol: true\n" + tls)
    else:
        config = tcp_config(port, [rs[0].addr], workers=1).replace(
            "    mode: tcp\n", "    mode: tcp\n    proxy_protocol: true\n" + tls + "\n")
    lb(config, port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        obj, incoming, outgoing = handshake_after(sock, client_context(pki), "a.test",
                                                  b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\n")
        if mode == "http":
            answer = bio_exchange(sock, obj, incoming, outgoing, b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", 1)
            while b"\r\n\r\n" not in answer:
                answer += bio_exchange(sock, obj, incoming, outgoing, b"", 1)
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert b"X-Echo-X-Forwarded-For: 203.0.113.9" in answer
        else:
            assert bio_exchange(sock, obj, incoming, outgoing, b"ping\n", 5) == b"ping\n"


def test_a_ticket_from_one_listener_does_not_skip_another_s_client_check(replicas, lb, pki):
    rs = replicas(1)
    open_port, mtls_port = free_port(), free_port()
    config = """\
global:
  workers: 1
listeners:
  - name: open
    bind: "127.0.0.1:%d"
    backend: app
%s
  - name: mtls
    bind: "127.0.0.1:%d"
    backend: app
%s
backends:
  - name: app
    health_check:
      type: none
    servers:
      - addr: %s
""" % (open_port, tls_block([pki["a"]]), mtls_port,
       tls_block([pki["a"]], "client_ca: %s\nverify_client: required" % pki["ca"]), rs[0].addr)
    lb(config, open_port)
    ctx = client_context(pki)
    session = first_session(open_port, ctx)
    assert resumed_after(open_port, ctx, session)  # tickets work on their own listener
    assert refused(lambda: tls_connect_session(mtls_port, ctx, session))


def test_reload_that_turns_server_verification_on_applies_to_pooled_connections(replicas, lb, pki):
    rs = replicas(1)
    inner_port = free_port()
    lb(http_config(inner_port, [rs[0].addr], extra_listener=tls_block([pki["self"]])), inner_port)
    outer_port = free_port()
    unverified = http_config(outer_port, ["127.0.0.1:%d" % inner_port], workers=1,
                             extra_backend="    retries: 0\n    tls:\n      verify: false")
    outer = lb(unverified, outer_port)
    with socket.create_connection(("127.0.0.1", outer_port), timeout=5) as s:
        for _ in range(3):
            assert get(s)[0] == 200  # a pooled connection and a kept session now
    outer.reload(unverified.replace("      verify: false", "      ca: %s\n      sni: a.test" % pki["ca"]))
    assert plain_get(outer_port)[0] == 502  # the self-signed server fails the new check


def kernel_lists_tls():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def test_ktls_option_serves_and_says_whether_the_kernel_took_over(replicas, lb, pki):
    inst, port = https_lb(lb, replicas, pki, tls_extra="ktls: true", admin=True, workers=1)
    ctx = client_context(pki)
    body = os.urandom(3 * 1024 * 1024)
    with tls_connect(port, ctx, "a.test") as s:
        for _ in range(3):
            assert get(s)[0] == 200
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, got = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        while len(got) < len(body):
            chunk = s.recv(262144)
            assert chunk, "closed early"
            got += chunk
        assert got == body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert recv_all(s, 5).startswith(b"HTTP/1.1 400 ")
    m = metrics(inst.admin_port)
    assert metric(m, "lb_tls_handshakes_total", listener="web", result="ok") == 1
    took_over = metric(m, "lb_tls_ktls_total", listener="web", direction="send")
    if kernel_lists_tls():
        assert took_over == 1
    else:
        assert took_over == 0
        assert "ktls: the kernel lists no tls module" in inst.log_text()


def record_lengths(sock, obj, incoming):
    """Read raw TLS records from sock, decrypting them through obj, until one
    whole response with a Content-Length has come; the records' lengths."""
    lengths, raw, plain = [], b"", b""

    def complete():
        head, sep, body = plain.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        return len(body) >= int(length.group(1))

    while not complete():
        chunk = sock.recv(65536)
        assert chunk, "closed early"
        raw += chunk
        while len(raw) >= 5 and len(raw) >= 5 + int.from_bytes(raw[3:5], "big"):
            size = int.from_bytes(raw[3:5], "big")
            lengths.append(size)
            incoming.write(raw[:5 + size])
            raw = raw[5 + size:]
            try:
                while True:
                    plain += obj.read(65536)
            except ssl.SSLWantReadError:
                pass
    assert raw == b""
    return lengths


def test_the_first_record_of_a_response_fits_one_segment(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, tls_extra="session_tickets: false")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        obj, incoming, outgoing = handshake_after(sock, client_context(pki), "a.test", b"")
        sock.sendall(outgoing.read())  # the client's Finished
        for _ in range(2):  # and again after the connection was idle
            obj.write(b"GET /bytes/200000 HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.sendall(outgoing.read())
            lengths = record_lengths(sock, obj, incoming)
            assert lengths[0] <= 1360 + 22, lengths[:4]
            assert max(lengths) > 16384, lengths[:4]  # full records after it


@pytest.mark.parametrize("ktls", [False, True])
def test_a_handshake_flight_the_kernel_cannot_take_at_once_still_goes_out(replicas, lb, pki, ktls):
    # A certificate of ~100 KB (thousands of names): the server's first
    # flight is larger than the socket takes while the client reads nothing.
    d = pki["dir"]
    names = ["a.test"] + ["n%d.big.test" % i for i in range(6000)]
    big = make_leaf(d, "big%d" % ktls, "ca", sans=names)
    _, port = https_lb(lb, replicas, pki, certs=[big], tls_extra="ktls: true" if ktls else "", workers=1)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    raw.settimeout(5)
    raw.connect(("127.0.0.1", port))
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_context(pki).wrap_bio(incoming, outgoing, server_hostname="a.test")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        raw.sendall(outgoing.read())
        # The client's own pace: it reads nothing for a while, so lb's
        # socket fills with the flight and refuses the rest.
        time.sleep(1)
        while True:
            chunk = raw.recv(65536)
            assert chunk, "closed during the handshake"
            incoming.write(chunk)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
        raw.sendall(outgoing.read())
        assert bio_exchange(raw, obj, incoming, outgoing, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 1)
    finally:
        raw.close()


def test_backend_tls_checks_the_server_address_when_no_sni_is_given(replicas, lb, pki):
    # sni "" (the default): the server is 127.0.0.1, so the certificate must
    # name that address, and no SNI is sent.
    by_ip = make_leaf(pki["dir"], "by_ip", "ca", sans=["IP:127.0.0.1"])
    outer, _ = inner_and_outer(lb, replicas, pki, "    tls:\n      ca: %s" % pki["ca"], inner_certs=[by_ip])
    assert plain_get(outer)[0] == 200
    outer, _ = inner_and_outer(lb, replicas, pki, "    tls:\n      ca: %s" % pki["ca"], inner_certs=[pki["a"]])
    assert plain_get(outer)[0] == 502  # a.test is not 127.0.0.1


def test_send_proxy_goes_in_the_clear_before_the_handshake(replicas, lb, pki):
    """backends[].send_proxy with backends[].tls: the PROXY header first,
    then TLS; requests and the health checks pass through a listener that
    wants both (proxy_protocol and tls)."""
    rs = replicas(1)
    back = free_port()
    lb(http_config(back, [rs[0].addr], extra_listener=tls_block([pki["a"]]) + "\n    proxy_protocol: true"), back)
    front, front_admin = free_port(), free_port()
    backend = ("    send_proxy: v2\n    tls:\n      ca: %s\n      sni: a.test\n" % pki["ca"])
    config = http_config(front, ["127.0.0.1:%d" % back], extra_backend=backend,
                         extra_top=admin_block(front_admin)).replace(
        "    health_check:\n      type: none\n",
        "    health_check: {type: http, path: /healthz, interval: 100ms, rise: 1, fall: 1}\n")
    lb(config, front)

    wait_until(lambda: admin_stats(front_admin)["backends"][0]["servers"][0]["last_check"] == "ok", 10,
               "a passed check through PROXY + TLS")
    conn = http.client.HTTPConnection("127.0.0.1", front, timeout=10, source_address=("127.0.0.9", 0))
    conn.request("GET", "/echo")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200
    # the back tier saw the client itself, through the header
    assert resp.getheader("X-Echo-X-Forwarded-For").split(",")[-1].strip() == "127.0.0.9"


def test_a_drain_lets_a_handshake_under_way_finish_and_answers_its_first_request(lb, replicas, pki):
    """POST /drain closes idle keep-alive connections, not one whose
    client is still in its TLS handshake: that one gets its request
    answered (with Connection: close)."""
    from test_drain import call
    inst, port = https_lb(lb, replicas, pki, admin=True, workers=1)
    admin = inst.admin_port
    wait_until(lambda: can_connect(admin), 5, "admin endpoint")
    ctx = client_context(pki)
    # A keep-alive connection that served a request: the drain closes it.
    idle = tls_connect(port, ctx, "a.test")
    idle.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    # A handshake half done: ClientHello sent, the server's flight read.
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inb, outb, server_hostname="a.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    raw.sendall(outb.read())
    inb.write(raw.recv(65536))
    assert call(admin, "POST", "/drain")[0] == 200
    # Once the idle one is closed, the worker has acted on the drain.
    wait_until(lambda: idle.recv(4096) == b"", 5, "the idle connection to be closed")
    tls.do_handshake()
    raw.sendall(outb.read())
    tls.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    raw.sendall(outb.read())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = raw.recv(65536)
        assert chunk, "closed during the handshake or before the answer"
        inb.write(chunk)
        try:
            answer += tls.read(65536)
        except ssl.SSLWantReadError:
            pass
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    idle.close()
    raw.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_mtls_subject_reaches_the_server_for_http2_streams_too(replicas, lb, pki):
    _, port = https_lb(lb, replicas, pki, tls_extra="client_ca: %s\nverify_client: required\nalpn: [h2, http/1.1]"
                       % pki["ca"])
    cert, key = pki["client"]
    out = subprocess.run(["curl", "-s", "--http2", "--cacert", pki["ca"], "--cert", cert, "--key", key,
                          "--resolve", "a.test:%d:127.0.0.1" % port, "-D", "-", "-o", "/dev/null",
                          "-H", "X-Client-Subject: forged", "https://a.test:%d/echo" % port],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.startswith("HTTP/2 200"), out.stdout + out.stderr
    assert "x-echo-x-client-subject: CN=client.test" in out.stdout, out.stdout
