#!/usr/bin/python3
"""idle_conns.py [--tls | --h2c] PORT N [BATCH]: open N HTTP/1.1 keep-alive
connections to 127.0.0.1:PORT, send one GET / on each and read its whole
answer, then hold them all idle. Prints "holding N" once they are, waits
until a line arrives on stdin (or stdin closes), closes them all and prints
"closed".

The requests go BATCH at a time (default 500), each batch answered before
the next is sent; BATCH = N sends them all before reading any, so that a
proxy in front of a slow server holds N server connections at once.

--tls: over TLS (the certificate is not checked), each handshake done
before its request.

--h2c: HTTP/2 with prior knowledge instead, and no request: the client
preface and an empty SETTINGS, then the server's SETTINGS is read and
acknowledged; what an idle HTTP/2 connection costs a proxy.

Used by scripts/bench.sh to measure a proxy's memory per idle keep-alive
client connection (its RSS while holding them, minus before). Needs N
descriptors: raise the open-file limit first.
"""
import selectors
import socket
import ssl
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0"  # + SETTINGS, empty
H2_SETTINGS_ACK = b"\0\0\0\x04\x01\0\0\0\0"


def h2_settings_seen(data):
    """The server's SETTINGS frame (not an ACK) is among the frames read."""
    at = 0
    while len(data) >= at + 9:
        length = int.from_bytes(data[at:at + 3], "big")
        if data[at + 3] == 4 and not data[at + 4] & 1:
            return True
        at += 9 + length
    return False


def answered(data):
    """A complete answer with a Content-Length body has arrived."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= head_end + 4 + length


def main():
    args = sys.argv[1:]
    tls = None
    h2c = bool(args) and args[0] == "--h2c"
    if h2c:
        args = args[1:]
    if args and args[0] == "--tls":
        args = args[1:]
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    port, count = int(args[0]), int(args[1])
    batch = int(args[2]) if len(args) > 2 else 500
    conns = []
    sel = selectors.DefaultSelector()
    for start in range(0, count, batch):
        pending = {}
        for _ in range(min(batch, count - start)):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname="bench.test")
            s.sendall(H2_PREFACE if h2c else REQUEST)
            s.setblocking(False)
            pending[s] = b""
            sel.register(s, selectors.EVENT_READ)
        while pending:
            events = sel.select(timeout=60)
            if not events:
                sys.exit("idle_conns: no answer within 60 s")
            for key, _ in events:
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except ssl.SSLWantReadError:
                    continue  # a TLS record not complete yet
                if not chunk:
                    sys.exit("idle_conns: the proxy closed a connection before answering")
                pending[s] += chunk
                if h2_settings_seen(pending[s]) if h2c else answered(pending[s]):
                    if h2c:
                        s.sendall(H2_SETTINGS_ACK)  # 9 bytes into an empty send buffer
                    sel.unregister(s)
                    conns.append(s)
                    del pending[s]
    print("holding %d" % len(conns), flush=True)
    sys.stdin.readline()
    for s in conns:
        s.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
