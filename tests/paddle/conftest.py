"""The real paddleocr/paddlex (CPU paddlepaddle) in .venv-paddle: scripts/ensure-paddle-venv.sh.

Run by `make test-paddle` (`.venv-paddle/bin/python -m pytest tests/paddle`); in .venv, where
paddleocr is not installed, every module here skips. The only stand-ins are the VL server
(testkit.vl_server: it is the GPU) and, for layout-on tests, the layout predictor (its weights
come only from model hubs).

paddlex reads its cache folder when imported, so it is pointed into the project (var/) here,
before any test imports it; `no_downloads` proves nothing went to a hub.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PADDLE_HOME = ROOT / "var" / "paddle-tests"
# Every cache folder paddlex, paddle, huggingface_hub and modelscope would write to.
CACHE_ENV = {
    "PADDLE_PDX_CACHE_HOME": PADDLE_HOME / "paddlex",
    "HF_HOME": PADDLE_HOME / "huggingface",
    "MODELSCOPE_CACHE": PADDLE_HOME / "modelscope",
    "XDG_CACHE_HOME": PADDLE_HOME / "cache",
}
for _name, _path in CACHE_ENV.items():
    os.environ[_name] = str(_path)  # read by paddlex at import; child processes inherit it

# Suffixes of model files: none may appear in the caches (nothing downloaded).
MODEL_FILES = (".pdiparams", ".pdmodel", ".safetensors", ".onnx", ".bin", ".json", ".yml")


def model_files() -> list[Path]:
    return [
        path
        for folder in CACHE_ENV.values()
        if folder.exists()
        for path in folder.rglob("*")
        if path.is_file() and path.suffix in MODEL_FILES
    ]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail a test that opens a connection off loopback or leaves model files in the caches."""
    refused: list[object] = []
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                loopback = ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                refused.append(address)
                raise OSError(f"tests/paddle: connection to {address} refused (loopback only)")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    before = set(model_files())
    yield refused
    assert not refused, f"connections off loopback: {refused}"
    assert set(model_files()) == before, "model files appeared in the caches"


# The env of a worker stack on the real paddleocr-vl engine against the stand-in VL server
# (vllm-server backend, layout off); each module adds its own settings.
def vl_worker_env(server_url: str, **extra: str) -> dict[str, str]:
    return {
        "OCR_ENGINE": "paddleocr-vl",
        "OCR_FALLBACK_ENGINES": "",
        "PADDLEOCR_VL_BACKEND": "vllm-server",
        "PADDLEOCR_VL_SERVER_URL": server_url,
        "PADDLEOCR_VL_DEVICE": "cpu",
        "PADDLEOCR_VL_LAYOUT": "off",
        "BATCH_JOBS": "8",
        **extra,
    }


@pytest.fixture
def vl() -> Iterator[object]:
    """A stand-in VL server serving PaddleOCR-VL-1.6 (modules that need other settings define
    their own `vl`)."""
    from testkit.vl_server import VlServer

    with VlServer(model="PaddleOCR-VL-1.6-0.9B") as server:
        yield server


def page_maker(base_width: int, height: int) -> Callable[[], Any]:
    """`new_page()` for a module: a text page of a size no other page of that module has (the
    stand-in server tells pages apart by size)."""
    from testkit.pages import render_page

    sizes = iter(range(10_000))

    def new_page() -> Any:
        n = next(sizes)
        image = render_page([(f"Page {n}", 24)], base_width + 2 * n)
        return image.resize((base_width + 2 * n, height))

    return new_page


def png_job(image: Any) -> tuple[str, bytes, str]:
    """(file name, bytes, media type): httpx's `files` entry."""
    from testkit.pages import encode

    return f"{image.width}.png", encode(image), "image/png"
