"""How the paddleocr-vl engine bounds a page, where the real library is not needed: which pages
are read again after a loop and with what, when a page fails with vl_output_repetitive, and
how each VL request is bounded (worker/engines/vl_client.py) on a stand-in of paddlex's
GenAIClient. The same on the real paddleocr/paddlex: tests/paddle/test_vl_bounds.py."""

from __future__ import annotations

import sys
import types
from concurrent.futures import Future
from typing import Any, ClassVar

import pytest

from shared.settings import Settings
from worker.engines.base import EngineError, Recognition
from worker.engines.paddleocr_vl import (
    RETRY_BACKOFF_SECONDS,
    VL_REQUEST_RETRIES,
    PaddleOcrVlEngine,
    request_timeout,
)
from worker.engines.vl_client import BoundedRequests, RequestHung, genai_client, timed_out

LOOP = "the total is due " * 80  # a VL reply stuck in a loop
LOOP_BROKEN_BY = 1.1  # the repetition_penalty under which the fake model stops looping


class APITimeoutError(Exception):
    """Named as openai's: what the client raises when a request gets no answer in time."""


class FakeGenAIClient:
    """paddlex's GenAIClient as the engine sees it: `create_chat_completion` gives a future."""

    def __init__(self, answer: Any = None) -> None:
        self.openai_client = types.SimpleNamespace(max_retries=2)
        self.calls: list[dict[str, Any]] = []
        # a reply text, an exception to fail with, or a function of (messages, kwargs) to either
        self.answer = answer
        self.pending: list[Future[Any]] = []  # futures left unanswered (answer is None)

    def create_chat_completion(
        self, messages: Any, *, return_future: bool = False, **kwargs: Any
    ) -> Any:
        self.calls.append(kwargs)
        future: Future[Any] = Future()
        answer = self.answer(messages, kwargs) if callable(self.answer) else self.answer
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        elif answer is not None:
            message = types.SimpleNamespace(content=answer)
            future.set_result(
                types.SimpleNamespace(choices=[types.SimpleNamespace(message=message)])
            )
        else:
            self.pending.append(future)
        return future if return_future else future.result()


class FakeResult:
    """A PaddleOCRVLResult of one page read as one block."""

    def __init__(self, text: str) -> None:
        block = {"block_bbox": [0, 0, 10, 10], "block_label": "ocr", "block_content": text}
        self.json = {"res": {"parsing_res_list": [block]}}
        self.markdown = {"markdown_texts": text}


def model_reply(messages: Any, kwargs: dict[str, Any]) -> str:
    """The VL model: reads a "page" (a string naming it); pages named loop* loop unless asked
    for a repetition_penalty of LOOP_BROKEN_BY; pages named stuck* loop whatever is asked."""
    [page] = messages
    broken = kwargs.get("repetition_penalty") == LOOP_BROKEN_BY
    if page.startswith("stuck") or (page.startswith("loop") and not broken):
        return LOOP
    return f"text of {page}"


class FakePaddleOCRVL:
    """Sends each page to its GenAIClient as paddlex does (server backends), or reads it with
    its "local model" (native), and gives the reply as the page's one block."""

    instances: ClassVar[list[FakePaddleOCRVL]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.client = FakeGenAIClient(model_reply)
        model = types.SimpleNamespace(genai_client=self.client)
        self.paddlex_pipeline = types.SimpleNamespace(
            _pipeline=types.SimpleNamespace(vl_rec_model=model)
        )
        FakePaddleOCRVL.instances.append(self)

    def predict(self, pages: list[str], **kwargs: Any) -> list[FakeResult]:
        self.calls.append((list(pages), kwargs))
        sampling = {k: v for k, v in kwargs.items() if k in ("repetition_penalty", "temperature")}
        if self.kwargs["vl_rec_backend"] == "native":
            return [FakeResult(model_reply([page], sampling)) for page in pages]
        futures = [
            self.client.create_chat_completion([page], return_future=True, timeout=600, **sampling)
            for page in pages
        ]
        return [FakeResult(future.result().choices[0].message.content) for future in futures]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> type[FakePaddleOCRVL]:
    monkeypatch.setattr(FakePaddleOCRVL, "instances", [])
    paddleocr = types.ModuleType("paddleocr")
    paddleocr.PaddleOCRVL = FakePaddleOCRVL  # type: ignore[attr-defined]
    paddle = types.ModuleType("paddle")
    paddle.device = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_compiled_with_cuda=lambda: True, cuda=types.SimpleNamespace(device_count=lambda: 1)
    )
    monkeypatch.setitem(sys.modules, "paddleocr", paddleocr)
    monkeypatch.setitem(sys.modules, "paddle", paddle)
    return FakePaddleOCRVL


def engine(backend: str = "vllm-server", **overrides: Any) -> PaddleOcrVlEngine:
    values: dict[str, Any] = {
        "ocr_engine": "paddleocr-vl",
        "paddleocr_vl_backend": backend,
        "paddleocr_vl_server_url": "http://127.0.0.1:8118/v1",
        "paddleocr_vl_device": "cpu" if backend != "native" else "gpu:0",
        "batch_in_flight": 1,
    }
    return PaddleOcrVlEngine(Settings(**(values | overrides)))


def read(vl: PaddleOcrVlEngine, pages: list[str]) -> list[object]:
    [pipeline] = vl.pipelines
    outcomes = vl._read_bounded(pipeline, pages, vl._bounds.get(id(pipeline)))
    return [
        o.code if isinstance(o, EngineError) else [b.text for b in o.blocks]
        for o in outcomes
        if isinstance(o, (EngineError, Recognition))
    ]


# --- the retry decision ------------------------------------------------------------------------


def test_pages_that_do_not_loop_are_read_once_with_the_token_cap(fakes):
    vl = engine(paddleocr_vl_max_new_tokens=1000)

    assert read(vl, ["a", "b"]) == [["text of a"], ["text of b"]]
    [pipeline] = fakes.instances
    assert pipeline.calls == [(["a", "b"], {"use_queues": False, "max_new_tokens": 1000})]


def test_only_the_looping_page_is_read_again_with_the_loop_settings(fakes):
    vl = engine()

    assert read(vl, ["a", "loop1", "b"]) == [["text of a"], ["text of loop1"], ["text of b"]]
    [pipeline] = fakes.instances
    assert [call.get("repetition_penalty") for call in pipeline.client.calls] == [
        None,
        None,
        None,
        1.1,
    ]
    assert pipeline.calls[1] == (
        ["loop1"],
        {
            "use_queues": False,
            "max_new_tokens": 4096,
            "repetition_penalty": 1.1,
            "temperature": 0.3,
        },
    )
    assert len(pipeline.calls) == 2


def test_a_page_that_loops_again_fails_alone_with_its_code(fakes):
    vl = engine(paddleocr_vl_loop_retry_temperature=0.7)
    [pipeline] = vl.pipelines

    outcomes = vl._read_bounded(pipeline, ["a", "stuck", "loop2"], vl._bounds[id(pipeline)])

    assert isinstance(outcomes[0], Recognition) and isinstance(outcomes[2], Recognition)
    failed = outcomes[1]
    assert isinstance(failed, EngineError) and failed.code == "vl_output_repetitive"
    assert '"the total is due" repeated 80 times in a row' in failed.message
    assert "repetition_penalty=1.1, temperature=0.7" in failed.message
    # both looping pages went to the second read together
    assert [pages for pages, _ in fakes.instances[0].calls] == [
        ["a", "stuck", "loop2"],
        ["stuck", "loop2"],
    ]


def test_native_fails_a_looping_page_at_once(fakes):
    # the local model ignores repetition_penalty and temperature (paddlex warns): a second
    # read would loop the same way
    vl = engine("native")

    assert read(vl, ["a", "loop1"]) == [["text of a"], "vl_output_repetitive"]
    assert len(fakes.instances[0].calls) == 1


# --- each request bounded ------------------------------------------------------------------------


def bounded(answer: Any = None, timeout: float = 4.0) -> tuple[FakeGenAIClient, BoundedRequests]:
    client = FakeGenAIClient(answer)
    return client, BoundedRequests(client, timeout, retries=1)


def test_the_request_timeout_and_retries_replace_paddlexs(fakes):
    client, _ = bounded("hello")

    client.create_chat_completion([{"role": "user"}], return_future=True, timeout=600)

    assert client.calls == [{"timeout": 4.0}]
    assert client.openai_client.max_retries == 1


def test_within_a_batch_read_an_answered_request_is_not_sent_again(fakes):
    client, bounds = bounded("hello")
    ask = client.create_chat_completion

    with bounds.batch():
        first = ask(["page 1"], return_future=True, timeout=600).result()
        again = ask(["page 1"], return_future=True, timeout=600).result()
        other = ask(["page 1"], return_future=True, timeout=600, repetition_penalty=1.1)
    ask(["page 1"], return_future=True, timeout=600).result()

    assert first is again and other.result().choices[0].message.content == "hello"
    # page 1 twice in the batch read (the second with other settings), once after it
    assert len(client.calls) == 3


def test_a_timed_out_request_fails_again_at_once_an_error_is_sent_again(fakes):
    timeout = APITimeoutError("Request timed out.")
    client, bounds = bounded(timeout)
    with bounds.batch():
        for _ in range(2):
            with pytest.raises(APITimeoutError):
                client.create_chat_completion(["hung"], timeout=600)
    assert len(client.calls) == 1

    client, bounds = bounded(RuntimeError("HTTP 500"))
    with bounds.batch():
        for _ in range(2):
            with pytest.raises(RuntimeError):
                client.create_chat_completion(["failing"], timeout=600)
    assert len(client.calls) == 2
    assert timed_out(timeout) and timed_out(RequestHung("x"))
    assert not timed_out(RuntimeError("HTTP 500"))


def test_a_request_canceled_after_its_whole_timeout_counts_as_hung(fakes):
    client, bounds = bounded(None, timeout=0.0)  # unanswered; "in flight" its whole timeout
    with bounds.batch():
        future = client.create_chat_completion(["hung"], return_future=True, timeout=600)
        assert future.cancel()  # paddlex cancels the rest of a failed call
        assert client.pending[0].cancelled()  # the request under it too
        with pytest.raises(RequestHung):
            client.create_chat_completion(["hung"], timeout=600)
    assert len(client.calls) == 1


def test_a_looping_reply_reaches_paddlex_as_a_marker_of_its_loop(fakes):
    client, bounds = bounded(LOOP)
    with bounds.batch():
        reply = client.create_chat_completion(["page"], timeout=600)
        text = reply.choices[0].message.content
        loop = bounds.loop_in(f"<td>{text}</td>")
        assert loop is not None and loop.unit == ("the", "total", "is", "due")
    assert "total" not in text
    assert bounds.loop_in("text of a page") is None


def test_a_reply_that_does_not_loop_passes_untouched(fakes):
    client, bounds = bounded("Page of 200x100 pixels")
    with bounds.batch():
        reply = client.create_chat_completion(["page"], timeout=600)
    assert reply.choices[0].message.content == "Page of 200x100 pixels"


def test_no_vl_client_to_bound_refuses_to_build(fakes, monkeypatch):
    monkeypatch.setattr(FakePaddleOCRVL, "paddlex_pipeline", None, raising=False)

    def without_client(self: FakePaddleOCRVL, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.paddlex_pipeline = types.SimpleNamespace()

    monkeypatch.setattr(FakePaddleOCRVL, "__init__", without_client)
    with pytest.raises(EngineError) as caught:
        engine()
    assert caught.value.code == "engine_init_failed"
    assert "paddlex_pipeline._pipeline.vl_rec_model.genai_client" in caught.value.message
    assert genai_client(types.SimpleNamespace()) is None


@pytest.mark.parametrize("page_timeout", [3, 4, 10, 60, 600, 3600])
def test_a_requests_attempts_and_backoff_end_by_nine_tenths_of_the_page_limit(page_timeout):
    per_attempt = request_timeout(page_timeout)

    total = (VL_REQUEST_RETRIES + 1) * per_attempt + VL_REQUEST_RETRIES * RETRY_BACKOFF_SECONDS
    assert total == pytest.approx(0.9 * page_timeout)
    assert request_timeout(600) == 269.75
    assert request_timeout(1) == 0.5  # a floor: a 1 s page limit leaves no room for a retry
