#!/usr/bin/python3
"""The fleet bed's client (run inside the client namespace; stdlib only).
Prints its results as one JSON document on stdout.

  client.py burst HOST PORT COUNT
      COUNT GETs one after the other, each on a new connection (it gives
      up after 10 failures):
      {"ok": N, "failed": [reason...], "names": {replica: n}}
  client.py keys N HOST:PORT...
      GET / with X-Key: key-0..key-(N-1) to every target (one keep-alive
      connection per target): {"HOST:PORT": {"key-i": replica}}
  client.py steady TAG HOST PORT INTERVAL_MS TIMEOUT_MS [--keepalive N]
      A GET every INTERVAL_MS on a new connection each, X-Request-Id and
      X-Key: TAG-<seq>, each given TIMEOUT_MS in all (done once the
      Content-Length is read), until SIGTERM/SIGINT (or 120 s); prints "started" on stderr once the first answer came, and
      at the end [[id, start, end, ok, detail], ...] with start and end
      on CLOCK_MONOTONIC (the same clock in every namespace).
      --keepalive N: N connections instead, each sending its next request
      INTERVAL_MS after the previous answer; a connection that failed, was
      answered with Connection: close or was closed by lb while idle is
      opened again (no request is retried).
"""
import http.client
import json
import select
import signal
import socket
import sys
import threading
import time


def request_bytes(host, path, headers):
    lines = ["GET %s HTTP/1.1" % path, "Host: " + host] + ["%s: %s" % kv for kv in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def complete(raw):
    """True once raw holds a whole response by its Content-Length: what
    comes after it (lb's FIN, or a reset) does not matter to an HTTP client."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False  # no length: read to the end


def parse(raw):
    """(ok, detail) for one whole response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False, "short response (%d bytes)" % len(raw)
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) < 2 or status[1] != b"200":
        return False, "status " + head.split(b"\r\n", 1)[0].decode(errors="replace")
    if b"\r\ncontent-length:" in head.lower() and not complete(raw):
        return False, "truncated response"
    return True, body.decode(errors="replace").strip()


def burst(host, port, count):
    ok, failed, names = 0, [], {}
    for i in range(count):
        if len(failed) >= 10:
            break  # not worth waiting for the rest
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", "/", headers={"X-Key": "burst-%d" % i, "Connection": "close"})
            resp = conn.getresponse()
            body = resp.read().decode().strip()
            if resp.status == 200:
                ok += 1
                names[body] = names.get(body, 0) + 1
            else:
                failed.append("status %d" % resp.status)
        except (OSError, http.client.HTTPException) as e:
            failed.append(repr(e))
        finally:
            conn.close()
    return {"ok": ok, "failed": failed, "names": names}


def keys(n, targets):
    out = {}
    for target in targets:
        host, port = target.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        answers = {}
        for i in range(n):
            key = "key-%d" % i
            for attempt in range(2):  # a connection lb closed while idle: once more on a new one
                try:
                    conn.request("GET", "/", headers={"X-Key": key})
                    resp = conn.getresponse()
                    body = resp.read().decode().strip()
                    answers[key] = body if resp.status == 200 else "status %d" % resp.status
                    if resp.will_close:
                        conn.close()
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    answers[key] = repr(e)
        conn.close()
        out[target] = answers
    return out


def dropped(sock):
    """True when the server closed (or reset) an idle connection: it is
    readable before any request was sent on it."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Steady:
    """Blocking sockets, a thread per request (or per keep-alive
    connection): the request leaves as soon as connect() returns."""

    def __init__(self, tag, host, port, interval, timeout):
        self.tag, self.host, self.port = tag, host, port
        self.interval, self.timeout = interval, timeout
        self.records = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.first_answer = threading.Event()

    def record(self, rid, start, ok, detail):
        with self.lock:
            self.records.append([rid, start, time.monotonic(), ok, detail])
        if ok and not self.first_answer.is_set():
            self.first_answer.set()
            sys.stderr.write("started\n")
            sys.stderr.flush()

    def one(self, seq):
        rid = "%s-%d" % (self.tag, seq)
        start = time.monotonic()
        deadline = start + self.timeout
        sock = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.sendall(request_bytes(self.host, "/", {"X-Request-Id": rid, "X-Key": rid, "Connection": "close"}))
            raw = b""
            while not complete(raw):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    break
                raw += data
            ok, detail = parse(raw)
        except socket.timeout:
            ok, detail = False, "timeout"
        except OSError as e:
            ok, detail = False, type(e).__name__
        finally:
            if sock is not None:
                sock.close()
        self.record(rid, start, ok, detail)

    def run_new_connections(self, limit):
        threads = []
        seq = 0
        next_at = time.monotonic()
        end = next_at + limit
        while not self.stop.is_set() and time.monotonic() < end:
            t = threading.Thread(target=self.one, args=(seq,), daemon=True)
            t.start()
            threads.append(t)
            seq += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # late (a busy machine): keep the rate, no catch-up burst
                next_at = time.monotonic()
                delay = 0
            self.stop.wait(delay)
            threads = [t for t in threads if t.is_alive()]
        for t in threads:
            t.join(self.timeout + 1)

    def keepalive_conn(self, counter, limit):
        sock, buf = None, b""
        end = time.monotonic() + limit
        while not self.stop.is_set() and time.monotonic() < end:
            with self.lock:
                rid = "%s-%d" % (self.tag, counter[0])
                counter[0] += 1
            start = time.monotonic()
            close = True
            try:
                if sock is not None and dropped(sock):
                    sock.close()  # closed while idle: a new one, as HTTP client libraries do
                    sock = None
                if sock is None:
                    sock, buf = socket.create_connection((self.host, self.port), timeout=self.timeout), b""
                sock.settimeout(self.timeout)
                sock.sendall(request_bytes(self.host, "/", {"X-Request-Id": rid, "X-Key": rid}))
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed before the response")
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                        close = True
                while len(buf) < length:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed in the body")
                    buf += data
                ok, detail = parse(head + b"\r\n\r\n" + buf[:length])
                buf = buf[length:]
                if close:
                    detail += " (close)"
            except socket.timeout:
                ok, detail = False, "timeout"
            except (OSError, ValueError) as e:
                ok, detail = False, type(e).__name__
            if close and sock is not None:
                sock.close()
                sock = None
            self.record(rid, start, ok, detail)
            self.stop.wait(self.interval)
        if sock is not None:
            sock.close()

    def main(self, keepalive, limit=120.0):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        if keepalive:
            counter = [0]
            threads = [threading.Thread(target=self.keepalive_conn, args=(counter, limit), daemon=True)
                       for _ in range(keepalive)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                self.stop.wait(0.05)
            for t in threads:
                t.join(self.timeout + 1)
        else:
            self.run_new_connections(limit)
        with self.lock:
            return sorted(self.records, key=lambda r: r[1])


def main(argv):
    if argv[0] == "burst":
        result = burst(argv[1], int(argv[2]), int(argv[3]))
    elif argv[0] == "keys":
        result = keys(int(argv[1]), argv[2:])
    elif argv[0] == "steady":
        keepalive = int(argv[argv.index("--keepalive") + 1]) if "--keepalive" in argv else 0
        steady = Steady(argv[1], argv[2], int(argv[3]), float(argv[4]) / 1000, float(argv[5]) / 1000)
        result = steady.main(keepalive)
    else:
        sys.exit("unknown command " + argv[0])
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
