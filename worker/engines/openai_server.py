"""An OpenAI-compatible model server (vLLM, SGLang, FastDeploy...): up, and serving our model?"""

from __future__ import annotations

import httpx

from worker.engines.base import EngineUnavailable

# The check is cheap and runs at boot and while an outage is waited out: answer fast.
CHECK_TIMEOUT_SECONDS = 5.0


def check_serves(base_url: str, model: str, api_key: str | None) -> None:
    """Raise EngineUnavailable, naming the URL and the model, unless `GET {base_url}/models`
    answers and lists `model`."""
    url = f"{base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        answer = httpx.get(url, headers=headers, timeout=CHECK_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise EngineUnavailable(
            f"VL server {base_url} does not answer (GET {url}: {type(exc).__name__}: {exc}); "
            f"the worker wants model {model}"
        ) from exc
    if answer.status_code in (401, 403):
        raise EngineUnavailable(
            f"VL server {base_url} refused the key (GET {url}: HTTP {answer.status_code}); "
            "set PADDLEOCR_VL_API_KEY to the server's --api-key"
        )
    try:
        answer.raise_for_status()
        served = [str(item.get("id")) for item in answer.json().get("data") or []]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise EngineUnavailable(
            f"VL server {base_url} gave no model list (GET {url}: {exc}); "
            f"the worker wants model {model}"
        ) from exc
    if model not in served:
        raise EngineUnavailable(
            f"VL server {base_url} serves {served}, not {model}: set PADDLEOCR_VL_MODEL to the "
            f"served name, or start the server with --served-model-name {model}"
        )
