"""A stand-in for the GPU: an OpenAI-compatible VL model server on loopback, shaped like vLLM.

`GET /v1/models` lists the one model it serves; `POST /v1/chat/completions` takes the request
paddlex's VL client sends (one image and one prompt) and answers OpenAI-shaped JSON with
`reply(image, prompt)` (a reply that raises answers 500). A request for another model answers
404 as vLLM does; with `api_key` set, a missing or wrong bearer key answers 401. `latency` is a
fixed time per chat request and `max_concurrency` how many are served at once (the rest wait),
a crude model of a GPU.
`stop()` drops the listening socket and every open connection (clients see connection refused,
like a crashed server); `start()` again listens on the same port.

Two faults of a real VL model, chosen per page by image size so that one page of a batch
misbehaves while its batch-mates are read normally:
- `loop_size(w, h)`: the model loops, as PaddleOCR-VL does on some pages: the reply is a phrase
  repeated up to the request's token cap (`max_completion_tokens`, or `max_tokens`; a word is a
  token here), `finish_reason: "length"`; with `until_penalty`, a request whose
  `repetition_penalty` reaches it is answered normally (the penalty broke the loop);
- `hang_size(w, h)`: the request is never answered (until `clear_faults()` or `stop()`, which
  drop its connection), like a stuck GPU.
`seen` records each chat request's sampling settings (token cap, repetition penalty,
temperature), so a test can tell what the client asked for.

    with VlServer(model="PaddleOCR-VL-1.6-0.9B", latency=0.3) as srv:
        ...  # point PADDLEOCR_VL_SERVER_URL at srv.url

Also a process: `python -m testkit.vl_server --port 8118 --latency 0.3 --max-concurrency 64`
(`--loop-size 300x200`, `--hang-size 310x200`: the faults above, for a page of that size;
`--start-delay S`: listens only after S seconds, like a server loading its model).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

DEFAULT_MODEL = "PaddleOCR-VL-1.6-0.9B"
# What a looping page repeats (a phrase a VL model could really get stuck on).
LOOP_PHRASE = "Total amount due on receipt."
# A reply's token cap when the request names none (vLLM: the model's context length).
DEFAULT_MAX_TOKENS = 8192
Reply = Callable[["Image", str], str]


def default_reply(image: Image, prompt: str) -> str:
    """A text naming the image sent, so a test can tell which page (or block) a result came from."""
    return page_text(image.width, image.height)


def page_text(width: int, height: int) -> str:
    """What the default reply says for an image of that size."""
    return f"Page of {width}x{height} pixels"


@dataclass(frozen=True)
class Stats:
    """Counters since start or the last reset_stats()."""

    requests: int  # chat completions answered, injected failures included
    failures: int  # of those, answered with an injected error status
    max_in_flight: int  # most chat requests being served at once
    model_lists: int  # GET /v1/models answered


@dataclass(frozen=True)
class Seen:
    """One chat request as the server read it."""

    model: str
    prompt: str
    width: int
    height: int
    max_tokens: int | None = None  # max_completion_tokens (or max_tokens) asked for
    repetition_penalty: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    looped: bool = False  # answered with a loop (loop_size)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # http.server's default backlog of 5 would queue a batch's requests in the kernel and
    # measure that queue instead of `latency` and `max_concurrency`.
    request_queue_size = 1024


class VlServer:
    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        latency: float = 0.0,
        max_concurrency: int = 64,
        reply: Reply | None = None,
        api_key: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.model = model
        self.latency = latency
        self.max_concurrency = max_concurrency
        self.reply = reply or default_reply
        self.api_key = api_key
        self.host = host
        self.port = port
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._stopped = threading.Event()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._fail: list[int] = []  # statuses of the next chat requests to fail
        self._failing_sizes: dict[tuple[int, int], int] = {}  # image size -> status, always
        # image size -> repetition_penalty that breaks the loop (None: nothing does)
        self._looping_sizes: dict[tuple[int, int], float | None] = {}
        self._hanging_sizes: set[tuple[int, int]] = set()
        self._unhang = threading.Event()  # set: every hung request gives up (connection dropped)
        self._hung = 0
        self.reset_stats()

    # --- life cycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> VlServer:
        if self._server is not None:
            return self
        self._stopped.clear()
        server = _HttpServer((self.host, self.port), _handler_for(self))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: clients see the server gone."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopped.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults and counters ----------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next `n` chat requests answer `status` (after `latency`, like a real failure)."""
        with self._lock:
            self._fail.extend([status] * n)

    def fail_size(self, width: int, height: int, status: int = 500) -> None:
        """Every chat request whose image is `width` x `height` answers `status` from now on
        (a page the server keeps failing, whatever else is in flight); `clear_faults` ends it."""
        with self._lock:
            self._failing_sizes[(width, height)] = status

    def loop_size(self, width: int, height: int, until_penalty: float | None = None) -> None:
        """Every chat request whose image is `width` x `height` is answered with LOOP_PHRASE
        repeated up to its token cap, unless it asks for a `repetition_penalty` of at least
        `until_penalty` (None: no penalty breaks the loop); `clear_faults` ends it."""
        with self._lock:
            self._looping_sizes[(width, height)] = until_penalty

    def hang_size(self, width: int, height: int) -> None:
        """Every chat request whose image is `width` x `height` is never answered: it waits
        until `clear_faults()` or `stop()`, then its connection is dropped."""
        with self._lock:
            self._hanging_sizes.add((width, height))
            self._unhang.clear()

    def clear_faults(self) -> None:
        with self._lock:
            self._fail.clear()
            self._failing_sizes.clear()
            self._looping_sizes.clear()
            self._hanging_sizes.clear()
            self._unhang.set()

    @property
    def hanging(self) -> int:
        """Chat requests waiting now in a hang (hang_size)."""
        with self._lock:
            return self._hung

    @property
    def stats(self) -> Stats:
        with self._lock:
            return Stats(self._requests, self._failures, self._max_in_flight, self._model_lists)

    def reset_stats(self) -> None:
        with self._lock:
            self._requests = self._failures = self._max_in_flight = self._model_lists = 0
            self._in_flight = 0
            self.seen = []

    # --- request handling (called from the handler threads) ---------------------------------

    def _authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    def _list_models(self) -> dict[str, Any]:
        with self._lock:
            self._model_lists += 1
        return {
            "object": "list",
            "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm"},
            ],
        }

    def _chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """(status, JSON) for one chat request; None when the server stopped meanwhile."""
        model = str(body.get("model"))
        if model != self.model:
            return HTTPStatus.NOT_FOUND, _error(
                f"The model `{model}` does not exist.", "NotFoundError", 404
            )
        image, prompt = _image_and_prompt(body)
        cap = body.get("max_completion_tokens")
        cap = body.get("max_tokens") if cap is None else cap
        max_tokens = None if cap is None else int(cap)
        seen = Seen(
            model,
            prompt,
            image.width,
            image.height,
            max_tokens=max_tokens,
            repetition_penalty=_number(body.get("repetition_penalty")),
            temperature=_number(body.get("temperature")),
            top_p=_number(body.get("top_p")),
        )
        with self._lock:
            hangs = image.size in self._hanging_sizes
            if hangs:
                self._hung += 1
                self.seen.append(seen)
        if hangs:
            # Never answered: held until the faults are cleared or the server stops (a stuck
            # GPU holds no slot another request could use here, so batch-mates go on).
            try:
                while not self._unhang.wait(0.05):
                    if self._stopped.is_set():
                        break
            finally:
                with self._lock:
                    self._hung -= 1
            return None
        while not self._slots.acquire(timeout=0.05):
            if self._stopped.is_set():
                return None
        try:
            with self._lock:
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
                status = self._failing_sizes.get(image.size)
                if status is None and self._fail:
                    status = self._fail.pop(0)
                looping = image.size in self._looping_sizes
                breaker = self._looping_sizes.get(image.size)
            penalty = seen.repetition_penalty
            if looping and breaker is not None and penalty is not None and penalty >= breaker:
                looping = False
            if self._stopped.wait(self.latency):
                return None
            with self._lock:
                self._requests += 1
                self._failures += status is not None
                self.seen.append(replace(seen, looped=looping))
            if status is not None:
                return status, _error("injected failure", "InternalServerError", status)
            if looping:
                return HTTPStatus.OK, _completion(
                    model, loop_text(max_tokens or DEFAULT_MAX_TOKENS), "length"
                )
            try:
                text = self.reply(image, prompt)
            except Exception as exc:  # noqa: BLE001 (a model that fails on this input)
                return HTTPStatus.INTERNAL_SERVER_ERROR, _error(
                    f"reply failed: {exc}", "InternalServerError", 500
                )
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slots.release()
        return HTTPStatus.OK, _completion(model, text)


def loop_text(max_tokens: int) -> str:
    """LOOP_PHRASE repeated to exactly `max_tokens` words (the last copy cut, as a cap cuts)."""
    words = LOOP_PHRASE.split()
    return " ".join(words[i % len(words)] for i in range(max_tokens))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _completion(model: str, text: str, finish_reason: str = "stop") -> dict[str, Any]:
    tokens = max(1, len(text.split()))
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
    }


def _image_and_prompt(body: dict[str, Any]) -> tuple[Image, str]:
    """The (last) image and the text of the request's user message(s)."""
    from PIL import Image

    image, texts = None, []
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            elif part.get("type") == "image_url":
                url = part["image_url"]
                url = url["url"] if isinstance(url, dict) else url
                data = base64.b64decode(url.partition(",")[2])
                image = Image.open(io.BytesIO(data))
                image.load()
    if image is None:
        raise ValueError("no image in the request")
    return image, "".join(texts)


def _handler_for(vl: VlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so stop() leaves no served keep-alive behind.
        protocol_version = "HTTP/1.0"

        def setup(self) -> None:
            super().setup()
            with vl._lock:
                vl._connections.add(self.connection)

        def finish(self) -> None:
            with vl._lock:
                vl._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def handle(self) -> None:
            with contextlib.suppress(OSError):  # connection cut by stop()
                super().handle()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _path(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/")

        def do_GET(self) -> None:
            path = self._path()
            if path == "/health":
                self._send(HTTPStatus.OK, {})
            elif not vl._authorized(self.headers.get("Authorization")):
                self._send(HTTPStatus.UNAUTHORIZED, {"error": "Unauthorized"})
            elif path == "/v1/models":
                self._send(HTTPStatus.OK, vl._list_models())
            else:
                self._send(HTTPStatus.NOT_FOUND, _error("not found", "NotFoundError", 404))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self._path() != "/v1/chat/completions":
                self._send(HTTPStatus.NOT_FOUND, _error("not found", "NotFoundError", 404))
                return
            if not vl._authorized(self.headers.get("Authorization")):
                self._send(HTTPStatus.UNAUTHORIZED, {"error": "Unauthorized"})
                return
            try:
                body = json.loads(raw)
                answer = vl._chat(body)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                self._send(HTTPStatus.BAD_REQUEST, _error(str(exc), "BadRequestError", 400))
                return
            if answer is None:
                self.close_connection = True  # stopped meanwhile: drop without an answer
                return
            self._send(*answer)

    return Handler


def _size(text: str) -> tuple[int, int]:
    """`300x200` -> (300, 200)."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT in pixels, e.g. 300x200")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m testkit.vl_server",
        description="A stand-in OpenAI-compatible VL server (vLLM-shaped) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8118)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--max-concurrency", type=int, default=64, help="requests served at once")
    parser.add_argument("--api-key", default=None, help="bearer key the server requires")
    parser.add_argument(
        "--loop-size",
        action="append",
        default=[],
        type=_size,
        metavar="WxH",
        help="answer every image of this size with a phrase repeated up to the request's "
        "token cap (the model looping); repeatable",
    )
    parser.add_argument(
        "--loop-until-penalty",
        type=float,
        default=None,
        metavar="P",
        help="a looping request asking for repetition_penalty >= P is answered normally",
    )
    parser.add_argument(
        "--hang-size",
        action="append",
        default=[],
        type=_size,
        metavar="WxH",
        help="never answer a request whose image has this size (a stuck GPU); repeatable",
    )
    parser.add_argument(
        "--start-delay",
        type=float,
        default=0.0,
        help="seconds to wait before listening, as a real server loads its model",
    )
    args = parser.parse_args(argv)
    if args.start_delay:
        print(f"VL server: loading (listening in {args.start_delay:g} s)", flush=True)
        time.sleep(args.start_delay)
    server = VlServer(
        model=args.model,
        latency=args.latency,
        max_concurrency=args.max_concurrency,
        api_key=args.api_key,
        port=args.port,
        host=args.host,
    ).start()
    for width, height in args.loop_size:
        server.loop_size(width, height, until_penalty=args.loop_until_penalty)
    for width, height in args.hang_size:
        server.hang_size(width, height)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"VL server serving {server.model} at {server.url}", flush=True)
    done.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
