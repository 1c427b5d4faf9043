"""Every VL request of a PaddleOCRVL pipeline bounded in time, sent once per batch read, and
its reply checked for a loop before paddlex's post-processing hides it.

paddlex 3.7.2 sends each VL request with a fixed `timeout=600` (inference/models/doc_vlm/
predictor.py, `_genai_client_process`), which overrides any timeout of the OpenAI client, and the
client (openai's AsyncOpenAI, `max_retries` default 2) retries a timed-out request twice: one
hung request holds its batch 30 minutes. The per-request timeout has no config route, so
`BoundedRequests` wraps the `create_chat_completion` method of the pipeline's one GenAIClient
instance (nothing else is patched) and puts its own timeout in each request's arguments; on the
same instance it sets the OpenAI client's `max_retries` (paddlex's config route for it,
`genai_config.client_kwargs`, would need the whole pipeline config loaded from paddlex here).

It also remembers, within one batch read (`batch()`), each request answered (same image, prompt
and sampling settings) and each that timed out: when a failed `predict(list)` is read again half
by half (worker/engines/paddleocr_vl.py `_read`), the pages already answered are not sent again,
and a request that hung fails again at once instead of hanging once per half.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from typing import Any

from worker.engines.vl_loops import Loop, find_loop

# What a looping reply becomes on its way to paddlex: survives its post-processing (no `$`,
# no `\\(`; a table's OTSL conversion gives up on it and keeps it as is).
LOOP_MARK = re.compile("\u27e6ocrq-vl-loop (\\d+)\u27e7")


def genai_client(pipeline: Any) -> Any | None:
    """The GenAIClient a PaddleOCRVL pipeline sends its VL requests with (None: not found)."""
    outer = getattr(pipeline, "paddlex_pipeline", None)
    inner = getattr(outer, "_pipeline", outer)
    model = getattr(inner, "vl_rec_model", None)
    client = getattr(model, "genai_client", None)
    return client if callable(getattr(client, "create_chat_completion", None)) else None


class RequestHung(Exception):
    """A request in flight for its whole timeout, canceled by paddlex when a batch-mate's
    timeout failed the call: it would have timed out too."""


def timed_out(exc: BaseException) -> bool:
    """Did this request (or a batch-mate) fail by running out of time?"""
    # openai.APITimeoutError: the openai package is only in the paddle environment
    return isinstance(exc, RequestHung) or type(exc).__name__ == "APITimeoutError"


class _Linked(Future[Any]):
    """The future paddlex gets: canceling it cancels the request under it."""

    def __init__(self, inner: Future[Any]) -> None:
        super().__init__()
        self.inner = inner

    def cancel(self) -> bool:
        self.inner.cancel()
        return super().cancel()


class BoundedRequests:
    """Wraps one GenAIClient: every request gets `timeout` seconds per attempt and
    `retries` retries; a reply that loops (vl_loops.find_loop on the model's raw text) reaches
    paddlex as a marker (`loop_in`) instead of the loop.

    The check has to read the raw reply: paddlex's own post-processing
    (paddleocr_vl/uilts.py `truncate_repetitive_content`) cuts a repeated suffix or line out of
    a block's text and keeps the rest, so a loop would come back as a silently shortened block.
    """

    def __init__(self, client: Any, timeout: float, retries: int) -> None:
        self.timeout = timeout
        # openai's BaseClient reads `max_retries` at each request (with_options copies it)
        client.openai_client.max_retries = retries
        self._create = client.create_chat_completion
        self._lock = threading.Lock()
        self._memo: dict[str, Future[Any]] | None = None
        self._loops: dict[int, Loop] = {}
        self._marks = itertools.count()
        client.create_chat_completion = self._bounded

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within this block a request is sent once: answered or timed out, it is not re-sent."""
        with self._lock:
            self._memo = {}
            self._loops = {}
        try:
            yield
        finally:
            with self._lock:
                self._memo = None
                self._loops = {}

    def loop_in(self, text: str) -> Loop | None:
        """The loop a block's text stands for (its marker), if any (within `batch()`)."""
        found = LOOP_MARK.search(text)
        if found is None:
            return None
        with self._lock:
            return self._loops.get(int(found.group(1))) or Loop(("?",), 0, 0)

    def _bounded(self, messages: Any, *, return_future: bool = False, **kwargs: Any) -> Any:
        kwargs["timeout"] = self.timeout
        key = _key(messages, kwargs)
        with self._lock:
            known = None if self._memo is None else self._memo.get(key)
        if known is not None:
            return known if return_future else known.result()
        started = time.monotonic()
        inner = self._create(messages, return_future=True, **kwargs)
        outer = _Linked(inner)
        inner.add_done_callback(lambda done: self._settle(key, done, outer, started))
        return outer if return_future else outer.result()

    def _settle(self, key: str, done: Future[Any], outer: Future[Any], started: float) -> None:
        """Pass the request's outcome on (a looping reply marked), and remember it for this
        batch read if it was an answer or a timeout."""
        result: Any = None
        if done.cancelled():
            # paddlex cancels the rest of a call when one request fails; one that was in
            # flight its whole timeout would have timed out too
            waited = time.monotonic() - started
            exc: BaseException | None = (
                RequestHung(f"no answer in {waited:.0f} s") if waited >= self.timeout else None
            )
            outer.cancel()
            if exc is None:
                return
        else:
            exc = done.exception()
            if exc is None:
                result = self._marked(done.result())
            with contextlib.suppress(InvalidStateError):  # canceled by paddlex meanwhile
                if exc is None:
                    outer.set_result(result)
                else:
                    outer.set_exception(exc)
        if exc is not None and not timed_out(exc):
            return  # an error status or a dropped connection: worth sending again
        settled: Future[Any] = Future()
        if exc is None:
            settled.set_result(result)
        else:
            settled.set_exception(exc)
        with self._lock:
            if self._memo is not None:
                self._memo[key] = settled

    def _marked(self, response: Any) -> Any:
        """`response`, or a copy whose text is a loop marker when the model looped."""
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            return response
        loop = find_loop(text) if isinstance(text, str) else None
        if loop is None:
            return response
        mark = next(self._marks)
        with self._lock:
            self._loops[mark] = loop
        marked = copy.deepcopy(response)
        marked.choices[0].message.content = f"\u27e6ocrq-vl-loop {mark}\u27e7"
        return marked


def _key(messages: Any, kwargs: dict[str, Any]) -> str:
    blob = json.dumps([messages, kwargs], sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()
