"""The API's listening socket, made here rather than by uvicorn so its receive buffer is small.

Each connection inherits the listener's SO_RCVBUF (`API_SOCKET_RCVBUF`, default 64 KB). Left
to autotuning on a fast link, one read takes up to 256 KB of an upload at once (uvloop's read
size), uvicorn holds it until the route asks for more, and 50 concurrent 1 MB uploads held
about 0.5 MB each in the API (peak RSS 105 MB, 66 MB at rest). With 64 KB the kernel holds the
rest and slows the sender by TCP flow control instead: peak 88-90 MB, no upload refused
(`python -m bench.service --parts submit`). The price: one upload moves at most about 2 x that
per round trip (128 KB / 50 ms = 2.6 MB/s on a long link); behind a proxy or on a LAN it is no
limit.
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int, rcvbuf: int) -> socket.socket:
    """A bound TCP socket (IPv4 or IPv6, as `host` resolves) with SO_RCVBUF `rcvbuf` (0: left
    to the kernel); uvicorn listens on it."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:  # Linux doubles it; set before listen() so window scaling agrees
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
