"""The API's listening socket, made here rather than by uvicorn so its receive buffer is small.

Each connection inherits the listener's SO_RCVBUF. Left to autotuning on a fast link, one read
takes up to 256 KB of an upload at once (uvloop's read size), uvicorn holds it until the route
asks for more, and 50 concurrent 1 MB uploads held about 0.5 MB each in the API (peak RSS
105 MB, 66 MB at rest). With 64 KB the kernel holds the rest and slows the sender by TCP flow
control instead: peak 91-97 MB, no upload refused (`python -m bench.service --parts submit`).
"""

from __future__ import annotations

import socket

# Linux doubles it for its own bookkeeping; set before listen() so window scaling agrees.
RECEIVE_BUFFER_BYTES = 64 * 1024


def listening_socket(host: str, port: int, rcvbuf: int = RECEIVE_BUFFER_BYTES) -> socket.socket:
    """A bound TCP socket (IPv4 or IPv6, as `host` resolves) with SO_RCVBUF set; uvicorn
    listens on it."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
