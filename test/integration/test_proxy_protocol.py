"""listeners[].proxy_protocol (SPEC 4, 11): the client address comes from a
PROXY v1/v2 header sent by a front L4 balancer."""
import socket
import struct

from conftest import free_port, http_config, recv_all, tcp_config
from test_http import read_response

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, dst, sport, dport):
    block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block


def start(replicas, lb, mode="http"):
    port = free_port()
    if mode == "http":
        rs = replicas(1)
        config = http_config(port, [rs[0].addr], extra_listener="    proxy_protocol: true")
    else:
        rs = replicas(1, mode="tcp")
        config = tcp_config(port, [rs[0].addr]).replace("    mode: tcp\n", "    mode: tcp\n    proxy_protocol: true\n")
    lb(config, port)
    return port


def echo_forwarded_for(port, header):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(header + b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _, _ = read_response(s)
        assert status == 200
        return headers["x-echo-x-forwarded-for"]


def test_proxy_v1_header_gives_the_client_address(replicas, lb):
    port = start(replicas, lb)
    assert echo_forwarded_for(port, b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n") == "203.0.113.7"
    assert echo_forwarded_for(port, b"PROXY TCP6 2001:db8::7 ::1 5555 80\r\n") == "2001:db8::7"


def test_proxy_v2_header_gives_the_client_address(replicas, lb):
    port = start(replicas, lb)
    assert echo_forwarded_for(port, v2_header("198.51.100.9", "127.0.0.1", 4444, 80)) == "198.51.100.9"


def test_proxy_local_header_keeps_the_real_peer(replicas, lb):
    port = start(replicas, lb)
    assert echo_forwarded_for(port, b"PROXY UNKNOWN\r\n") == "127.0.0.1"


def test_connection_without_proxy_header_is_closed(replicas, lb):
    port = start(replicas, lb)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert recv_all(s, 5) == b""


def test_tcp_mode_takes_the_proxy_header_off_the_stream(replicas, lb):
    port = start(replicas, lb, mode="tcp")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nhello")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s, 5) == b"hello"
