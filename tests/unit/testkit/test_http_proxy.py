"""The counting proxy over real sockets, in front of a tiny event-stream server: it counts,
cuts a stream inside a message (the client resumes), and hides the route (the client polls)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ocrq_client.client import Job, OcrqClient
from testkit.http_proxy import CountingProxy

JOB_ID = "b" * 32
STATES = [("1-0", "queued", 0), ("2-0", "running", 0), ("3-0", "running", 1)]
STATES += [("4-0", "running", 2), ("5-0", "succeeded", 2)]


def job(status: str, pages_done: int) -> dict:
    return {
        "job_id": JOB_ID,
        "status": status,
        "created_at": "2026-01-01T00:00:00Z",
        "progress": {"pages_done": pages_done, "pages_total": 2},
    }


class JobEvents(BaseHTTPRequestHandler):
    """GET /jobs/{id}/events replays the states after Last-Event-ID; GET /jobs/{id} the last."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.endswith("/events"):
            after = self.headers.get("Last-Event-ID")
            ids = [state[0] for state in STATES]
            start = ids.index(after) + 1 if after in ids else 0
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"retry: 10\n\n")
            for event_id, status, pages in STATES[start:]:
                data = json.dumps(job(status, pages))
                self.wfile.write(f"id: {event_id}\nevent: {status}\ndata: {data}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True
            return
        body = json.dumps(job("succeeded", 2)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), JobEvents)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_stream_cut_inside_its_third_message_is_resumed_after_the_second(server) -> None:
    seen: list[Job] = []
    proxy = CountingProxy(server.server_address[1], cut_events=1, cut_in_message=3)
    with proxy, OcrqClient(proxy.url) as client:
        final = client.wait(JOB_ID, on_update=seen.append)

    assert final.status == "succeeded"
    assert [(j.status, j.progress.pages_done) for j in seen] == [
        ("queued", 0),
        ("running", 0),
        ("running", 1),
        ("running", 2),
        ("succeeded", 2),
    ]  # fmt: skip: nothing missed, nothing twice
    events = [r for r in proxy.requests if r.kind == "GET /jobs/{id}/events"]
    assert [r.headers.get("last-event-id") for r in events] == [None, "2-0"]
    assert proxy.counts() == {"GET /jobs/{id}/events": 2}


def test_a_hidden_route_makes_the_client_poll(server) -> None:
    proxy = CountingProxy(server.server_address[1], hide_events=True)
    with proxy, OcrqClient(proxy.url) as client:
        assert client.wait(JOB_ID).status == "succeeded"
        assert client.wait(JOB_ID).status == "succeeded"

    assert proxy.counts() == {"GET /jobs/{id}/events": 1, "GET /jobs/{id}": 2}
