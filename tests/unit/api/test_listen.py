"""The API's own listening socket: bound, small receive buffer, inherited by connections."""

from __future__ import annotations

import socket

from api.listen import listening_socket

RCVBUF = 64 * 1024


def test_connections_inherit_the_small_receive_buffer() -> None:
    with listening_socket("127.0.0.1", 0, RCVBUF) as server:
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"hello")
                assert accepted.recv(5) == b"hello"
                size = accepted.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Linux reports twice the value asked for; autotuned sockets start far above it
    assert RCVBUF <= size <= 2 * RCVBUF


def test_a_port_in_use_is_an_error_at_bind() -> None:
    with listening_socket("127.0.0.1", 0, RCVBUF) as first:
        first.listen()
        port = first.getsockname()[1]
        try:
            listening_socket("127.0.0.1", port, RCVBUF).close()
        except OSError:
            return
    raise AssertionError("a second socket bound a port that is in use")


def test_zero_leaves_the_buffer_to_the_kernel() -> None:
    with listening_socket("127.0.0.1", 0, 0) as server:
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 0
