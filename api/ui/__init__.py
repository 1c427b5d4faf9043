"""The web page for people at /ui: static HTML, CSS and JavaScript (static/), no build step.

The page talks to the same API as any client (POST /jobs, GET /jobs/{id}/events or polling,
the result, the page pictures); /ui/config.json tells it what this server takes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from shared.options import JobOptions, Language
from shared.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


class UiConfig(BaseModel):
    """What the page needs to know of this server before the first upload."""

    auth_required: bool = Field(description="True when API_KEYS is set: the page asks for one")
    max_upload_mb: float
    max_pages: int
    languages: list[str]
    dpi_min: int
    dpi_max: int
    low_score: float = Field(description="UI_LOW_SCORE: lines scored below it are marked")


def ui_config(settings: Settings) -> UiConfig:
    schema = JobOptions.model_json_schema()["properties"]["dpi"]
    dpi = next(part for part in schema["anyOf"] if part.get("type") == "integer")
    return UiConfig(
        auth_required=bool(settings.api_key_set),
        max_upload_mb=settings.max_upload_mb,
        max_pages=settings.max_pages,
        languages=[lang.value for lang in Language],
        dpi_min=dpi["minimum"],
        dpi_max=dpi["maximum"],
        low_score=settings.ui_low_score,
    )


def install_ui(app: FastAPI, settings: Settings) -> None:
    """Serve the page at /ui/ (and /ui/config.json), before the static mount that holds it."""
    config = ui_config(settings)

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=307)  # relative: right behind a prefix too

    @app.get("/ui/config.json", include_in_schema=False)
    async def ui_settings() -> UiConfig:
        return config

    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
