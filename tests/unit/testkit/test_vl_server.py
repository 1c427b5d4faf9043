"""The stand-in VL server answers like vLLM: models, completions, 404/401, faults, outages."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from testkit.stack import free_port
from testkit.vl_server import LOOP_PHRASE, VlServer, loop_text, page_text

ROOT = Path(__file__).resolve().parents[3]
MODEL = "PaddleOCR-VL-1.6-0.9B"


def chat_body(
    width: int = 40, height: int = 30, model: str = MODEL, prompt: str = "OCR:", **sampling
):
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, format="JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        "max_completion_tokens": 4096,
        "temperature": 0,
        **sampling,
    }


def post(srv: VlServer, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"{srv.url}/chat/completions", json=body, timeout=10, **kw)


@pytest.fixture
def srv() -> Iterator[VlServer]:
    with VlServer(model=MODEL) as server:
        yield server


def test_models_lists_the_served_model(srv):
    answer = httpx.get(f"{srv.url}/models", timeout=5)

    assert answer.status_code == 200
    assert [m["id"] for m in answer.json()["data"]] == [MODEL]
    assert srv.stats.model_lists == 1


def test_completion_names_the_image_it_was_sent(srv):
    answer = post(srv, chat_body(123, 45, prompt="Table Recognition:"))

    assert answer.status_code == 200
    reply = answer.json()
    assert reply["object"] == "chat.completion"
    assert reply["model"] == MODEL
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": page_text(123, 45)}
    [seen] = srv.seen
    assert (seen.prompt, seen.width, seen.height) == ("Table Recognition:", 123, 45)
    assert srv.stats.requests == 1


def test_custom_reply_gets_the_image_and_the_prompt():
    with VlServer(reply=lambda image, prompt: f"{prompt} {image.size}") as server:
        answer = post(server, chat_body(20, 10, prompt="Formula Recognition:"))

    assert answer.json()["choices"][0]["message"]["content"] == "Formula Recognition: (20, 10)"


def test_a_reply_that_raises_is_a_500():
    def broken(image, prompt):
        raise ValueError("cannot read this one")

    with VlServer(reply=broken) as server:
        answer = post(server, chat_body())

    assert answer.status_code == 500
    assert "cannot read this one" in answer.json()["error"]["message"]


def test_another_model_is_404_like_vllm(srv):
    answer = post(srv, chat_body(model="PaddleOCR-VL-0.9B"))

    assert answer.status_code == 404
    assert "The model `PaddleOCR-VL-0.9B` does not exist." in answer.json()["error"]["message"]
    assert srv.stats.requests == 0


def test_api_key_is_required_when_set():
    with VlServer(api_key="s3cret") as server:
        assert httpx.get(f"{server.url}/models", timeout=5).status_code == 401
        assert post(server, chat_body()).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert post(server, chat_body(), headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{server.url}/models", headers=right, timeout=5).status_code == 200
        assert post(server, chat_body(), headers=right).status_code == 200


def test_fail_next_answers_the_status_then_recovers(srv):
    srv.fail_next(2, status=503)

    statuses = [post(srv, chat_body()).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert (srv.stats.requests, srv.stats.failures) == (3, 2)


def test_fail_size_fails_only_that_image_size_until_cleared(srv):
    srv.fail_size(41, 31)

    statuses = [post(srv, chat_body(*size)).status_code for size in [(41, 31), (40, 30)] * 2]
    srv.clear_faults()

    assert statuses == [500, 200, 500, 200]
    assert post(srv, chat_body(41, 31)).status_code == 200
    assert (srv.stats.requests, srv.stats.failures) == (5, 2)


def test_stop_refuses_connections_and_start_listens_on_the_same_port(srv):
    port = srv.port
    srv.stop()

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)

    srv.start()
    assert srv.port == port
    assert httpx.get(f"{srv.url}/models", timeout=5).status_code == 200


def test_stop_cuts_requests_in_flight():
    server = VlServer(latency=30).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(server, chat_body())
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while server._in_flight == 0:
        thread.join(0.01)
    server.stop()
    thread.join(5)

    assert not thread.is_alive()
    assert len(errors) == 1
    assert server.stats.requests == 0


def requests_at_once(server: VlServer, n: int) -> None:
    threads = [threading.Thread(target=post, args=(server, chat_body())) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


def test_max_concurrency_caps_requests_in_flight():
    with VlServer(latency=0.2, max_concurrency=2) as server:
        requests_at_once(server, 6)

        assert server.stats.requests == 6
        assert server.stats.max_in_flight == 2


def test_requests_beyond_the_default_backlog_are_served_together():
    # http.server's backlog of 5 would serialize them; 12 at once must all be in flight at once.
    with VlServer(latency=0.5, max_concurrency=64) as server:
        requests_at_once(server, 12)

        assert server.stats.max_in_flight == 12
        server.reset_stats()
        assert server.stats.requests == 0


def test_runs_as_a_process():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "testkit.vl_server", "--port", str(port), "--model", "m1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in line
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
        assert [m["id"] for m in answer.json()["data"]] == ["m1"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_loop_size_repeats_a_phrase_up_to_the_token_cap_of_that_size_only(srv):
    srv.loop_size(60, 30)

    looped = post(srv, chat_body(60, 30, max_completion_tokens=300)).json()
    other = post(srv, chat_body(61, 30)).json()
    legacy = post(srv, chat_body(60, 30, max_tokens=50) | {"max_completion_tokens": None})

    text = looped["choices"][0]["message"]["content"]
    assert len(text.split()) == 300
    assert text.startswith(LOOP_PHRASE) and text == loop_text(300)
    assert looped["choices"][0]["finish_reason"] == "length"
    assert other["choices"][0]["message"]["content"] == page_text(61, 30)
    # `max_tokens` when `max_completion_tokens` is not given (mlx-vlm, llama.cpp clients)
    assert len(legacy.json()["choices"][0]["message"]["content"].split()) == 50
    assert [(s.width, s.max_tokens, s.looped) for s in srv.seen] == [
        (60, 300, True),
        (61, 4096, False),
        (60, 50, True),
    ]


def test_a_loop_with_until_penalty_ends_when_the_request_asks_for_that_penalty(srv):
    srv.loop_size(60, 30, until_penalty=1.1)

    still = post(srv, chat_body(60, 30, repetition_penalty=1.05)).json()
    broken = post(srv, chat_body(60, 30, repetition_penalty=1.1, temperature=0.3)).json()

    assert still["choices"][0]["finish_reason"] == "length"
    assert broken["choices"][0]["message"]["content"] == page_text(60, 30)
    assert [(s.repetition_penalty, s.temperature, s.looped) for s in srv.seen] == [
        (1.05, 0.0, True),
        (1.1, 0.3, False),
    ]
    srv.clear_faults()
    assert post(srv, chat_body(60, 30)).json()["choices"][0]["finish_reason"] == "stop"


def test_hang_size_never_answers_that_size_until_cleared(srv):
    srv.hang_size(70, 30)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(post(srv, chat_body(70, 30)))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while srv.hanging == 0:
        thread.join(0.01)
    # batch-mates are answered meanwhile, and the hung request is still waiting after them
    assert post(srv, chat_body(71, 30)).status_code == 200
    assert thread.is_alive() and srv.hanging == 1
    srv.clear_faults()
    thread.join(5)

    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError)
    assert srv.hanging == 0
    assert [s.width for s in srv.seen] == [70, 71]


def test_a_hung_request_times_out_on_the_client(srv):
    srv.hang_size(70, 30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{srv.url}/chat/completions", json=chat_body(70, 30), timeout=0.3)


def test_the_faults_are_set_from_the_command_line():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testkit.vl_server",
            "--port",
            str(port),
            "--loop-size",
            "60x30",
            "--loop-until-penalty",
            "1.2",
            "--hang-size",
            "70x30",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        proc.stdout.readline()
        looped = httpx.post(url, json=chat_body(60, 30, max_completion_tokens=40), timeout=5)
        assert looped.json()["choices"][0]["message"]["content"] == loop_text(40)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url, json=chat_body(70, 30), timeout=0.3)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_bad_size_on_the_command_line_is_refused():
    run = subprocess.run(
        [sys.executable, "-m", "testkit.vl_server", "--loop-size", "big"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "WIDTHxHEIGHT" in run.stderr
