"""The one small interface every OCR engine implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from shared.error_codes import ErrorCode

if TYPE_CHECKING:
    from PIL.Image import Image

    from shared.results import Block


class EngineError(Exception):
    """The engine could not run (missing device, library or model). Carries a stable code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)  # a member, never a bare string (ValueError if unknown)
        self.message = message


class EngineUnavailable(EngineError):
    """The engine's backend (e.g. a VL model server) does not answer; no page was read.

    Not a fault of any job: the worker holds its jobs until the backend is back, and /ready says
    the engine is unavailable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.engine_unavailable, message)


@dataclass
class Recognition:
    """What an engine returns for one page image."""

    blocks: list[Block]
    # Engines with layout analysis give their own page markdown; None: build it from blocks.
    markdown: str | None = None
    # Degrees (counter-clockwise) the engine turned the page to read it; bboxes are upright.
    rotation: int = 0
    # Crops of the page's figures (encoded JPEG/PNG) by plain file name (shared.storage
    # CROP_NAME_PATTERN); `markdown` links each as `src="<name>"` or `](<name>)`.
    images: dict[str, bytes] = field(default_factory=dict)
    # Slope (dy/dx, y down) of the page's text lines as the engine found them, 0 when level or
    # unknown: the reading order reads rows along it (a page scanned a degree or two askew).
    slope: float = 0.0


def mostly_tall(bboxes: list[list[float]]) -> bool:
    """Most boxes ([x0, y0, x1, y1]) over 1.5x as tall as wide: lines of a page lying sideways."""
    tall = sum(1 for x0, y0, x1, y1 in bboxes if y1 - y0 > 1.5 * (x1 - x0))
    return tall > len(bboxes) / 2


@dataclass
class EngineInfo:
    """Logged at boot and published in the worker heartbeat."""

    name: str
    device: str
    versions: dict[str, str] = field(default_factory=dict)


class OcrEngine(Protocol):
    """Built once per worker process, warmed at boot, then called once per page."""

    name: str
    # Scripts the engine reads: "latin", "cyrillic". The router sends pages accordingly.
    scripts: frozenset[str]

    def info(self) -> EngineInfo:
        """Engine name, device and library versions."""
        ...

    def warm(self) -> None:
        """Load models and run one real recognition, so the first job pays nothing extra."""
        ...

    def recognize(self, image: Image) -> Recognition:
        """Recognize one RGB page image; bboxes in that image's pixels."""
        ...


@runtime_checkable
class OrientingEngine(OcrEngine, Protocol):
    """An engine whose recognize() is a read of the page as it lies, then an orientation step
    that may turn the page and read it again; the router may stop between the two."""

    def read_as_given(self, image: Image) -> Recognition:
        """One read of the page as it lies (rotation 0)."""
        ...

    def page_rotation(self, image: Image, first: Recognition) -> int:
        """Degrees (counter-clockwise) to turn `image` upright, judged from its first read."""
        ...

    def turn_upright(self, image: Image, first: Recognition) -> Recognition:
        """`first` if the page is upright, else a read of the page turned upright."""
        ...


@runtime_checkable
class BatchingEngine(OcrEngine, Protocol):
    """An engine that reads many pages in one call far faster than one by one (a GPU, a VL
    server): the worker feeds it pages of one or many jobs together."""

    # Pages per recognize_batch call the engine is built for (BATCH_SIZE may lower it).
    max_batch: int
    # Pages of one call the engine reads at the same time: 1 when it reads them one after
    # another. A call on N pages may take PAGE_TIMEOUT_SECONDS x ceil(N / pages_at_once)
    # before the worker takes it for hung (worker/batcher.py `budget`).
    pages_at_once: int

    def recognize_batch(self, images: Sequence[Image]) -> list[Recognition | EngineError]:
        """One outcome per image, in order; a page that failed gets its EngineError in its slot.

        Raises EngineUnavailable when the backend does not answer at all (no page was read).
        """
        ...

    def check_available(self) -> None:
        """Raise EngineUnavailable (naming what is missing) unless the backend answers and
        serves the model; cheap, called at boot and while an outage is waited out."""
        ...
