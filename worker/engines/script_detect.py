"""Which script a page is written in, to route `language=auto` pages: Cyrillic or Latin.

How it decides: Tesseract finds the page's text lines (layout analysis on a copy scaled down to
1200 px), reads six of them spread evenly through the reading order, each on its own with the
`rus+eng` models, and counts the letters it read. A page is `cyrillic` when at least 15 % of
those letters are Cyrillic, and also when no letter was read at all (Tesseract reads both
scripts, so doubt costs speed, never text); otherwise it is `latin`.

Why so: Tesseract's own script detection (OSD, `--psm 0`) is cheaper (0.28 s a page) but
answers nothing for one or two lines, calls short Russian texts Latin (most lowercase Cyrillic
letters look Latin to a shape classifier) and needs a majority of Cyrillic to say Cyrillic. Read
letters do not have those faults: on the 16 Russian pages of the eval set 44-91 % of the read
letters are Cyrillic (the rest is commands, URLs, English names), on rendered English pages 0-2 %
(24/24 right, `python -m bench.eval_ru`). Cost: 0.3-0.6 s of one core for a full A4 page at
200 dpi (mean 0.46 s; a page of text costs the tesseract engine about 2.4 s), tens of ms for a
small image.
A page that is mostly English with a few Russian lines can sample none of them and go `latin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from worker.engines.tesseract_engine import LineSampler

if TYPE_CHECKING:
    from PIL.Image import Image

    from shared.settings import Settings

Script = Literal["cyrillic", "latin"]

# Share of Cyrillic among the letters read at or above which a page is Cyrillic. Far from both
# sides: Russian technical pages read 44-91 %, English pages 0-2 % (English words misread with
# Cyrillic lookalike letters).
CYRILLIC_SHARE = 0.15


def count_letters(text: str) -> tuple[int, int]:
    """(Cyrillic letters, Latin letters) in `text`; digits, signs and other scripts not counted."""
    cyrillic = latin = 0
    for char in text:
        if "\u0400" <= char <= "\u052f":
            cyrillic += 1
        elif char.isalpha() and (char.isascii() or "\u00c0" <= char <= "\u024f"):
            latin += 1
    return cyrillic, latin


def script_of_text(text: str) -> Script:
    """The decision rule on text already read (see the module docstring)."""
    cyrillic, latin = count_letters(text)
    if cyrillic + latin == 0 or cyrillic >= CYRILLIC_SHARE * (cyrillic + latin):
        return "cyrillic"
    return "latin"


class ScriptDetector:
    """Built once per worker (loads Tesseract's rus+eng models, ~10 MB), then one call per page."""

    def __init__(self, settings: Settings, max_lines: int = 6) -> None:
        self._sampler = LineSampler(settings, lang="rus+eng", max_lines=max_lines)

    def warm(self) -> None:
        from PIL import Image

        self.detect_script(Image.new("RGB", (64, 64), "white"))

    def detect_script(self, image: Image) -> Script:
        """`cyrillic` or `latin` for one page image; see the module docstring for how."""
        return script_of_text("\n".join(self._sampler.sample(image)))

    __call__ = detect_script  # so the detector itself is the router's `image -> script` hook
