"""Page images made easier to read before recognition (issue 26): small text upscaled, phone
photos' tint and uneven light taken out. numpy and Pillow only (no OCR library), so that the
CPU engines share it and the fast tests can run it.

- `text_height`: the typical height in px of the page's text lines, from the ink rows of narrow
  vertical strips (a strip of a skewed page still has its lines apart), after the background
  is divided out.
- `upscale_factor`: how much to enlarge a page whose text is below a minimum height.
- `background`: the paper's brightness around each pixel (a max filter over a downscaled copy,
  which takes the ink out, then a blur), and `flatten`: the page divided by it, on the channel
  with the most contrast, stretched to black-on-white: tint and uneven light gone.
- `looks_like_photo`: a page whose paper is tinted or unevenly lit (what `auto` normalises).
- `despeckle`: a binarized page (a fax) without its specks, black dots standing alone, which
  Tesseract reads as stray marks (`*`, `;`, `°`) between the words and cells.
- `soften`: a binarized page blurred to grey, as a scanner's anti-aliased edges are: the
  recognizers (trained on grey text) read a fax's broken, jagged strokes better so (Russian
  faxes by Tesseract 6.97 % -> 3.49 % CER, BENCHMARKS.md `eval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

from worker.text_fixes import fix_line

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shared.results import Block
    from shared.settings import Settings

# Background estimate: downscale by this, take the max over this many (small) pixels, blur.
_BG_SCALE = 8
_BG_MAX = 5
# A pixel is ink when darker than this share of its background.
_INK_RATIO = 0.7
_STRIP = 48  # px: width of the vertical strips whose ink rows give the line heights
_MIN_RUN, _MIN_RUNS = 3, 8
# `auto`: a page is a photo when its paper is tinted (channels differ by this much, of 255) or
# its background's brightness spreads by this much between the 5th and 95th percentile.
_TINT = 12.0
_UNEVEN = 0.12
MAX_UPSCALE = 3.0
# Smaller enlargements than this are not worth their cost.
MIN_UPSCALE = 1.3
_BILEVEL_SHARE = 0.97
# Despeckle: a page is binarized when at most this share of its pixels is neither black nor
# white (faxes: none; rendered or scanned grey pages: 2 % and more, from anti-aliased edges).
_GREY_SHARE = 0.001
# A black pixel is a speck when its (2 * _SPECK_REACH + 1)^2 neighbourhood holds at most
# _SPECK_PX black pixels, itself included: a fax's specks are 1 x 2 px once its rows are
# doubled, the dot of an i or a full stop at 200 dpi is 3 x 3 and more.
_SPECK_REACH, _SPECK_PX = 2, 3
# OCR_BILEVEL_BLUR_PX is a radius at this dpi (a fax's 204 x 196 once its pixels are square).
BLUR_DPI = 200


def gray_array(image: Image.Image) -> NDArray[np.float32]:
    """The channel with the most contrast (ink against paper), as float 0..255."""
    if image.mode == "L":
        return np.asarray(image, dtype=np.float32)
    sample = np.asarray(image.convert("RGB").reduce(4), dtype=np.float32)
    spreads = np.percentile(sample, 95, axis=(0, 1)) - np.percentile(sample, 5, axis=(0, 1))
    channel = image.convert("RGB").getchannel(int(np.argmax(spreads)))
    return np.asarray(channel, dtype=np.float32)


def background(gray: NDArray[np.float32]) -> NDArray[np.float32]:
    """The paper's brightness around each pixel, same shape as `gray`."""
    height, width = gray.shape
    image = Image.fromarray(gray.astype(np.uint8))
    small = image.resize(
        (max(1, width // _BG_SCALE), max(1, height // _BG_SCALE)), Image.Resampling.BOX
    )
    small = small.filter(ImageFilter.MaxFilter(_BG_MAX)).filter(ImageFilter.GaussianBlur(2))
    return np.maximum(
        np.asarray(small.resize((width, height), Image.Resampling.BILINEAR), np.float32), 1
    )


def flatten(image: Image.Image) -> Image.Image:
    """Black text on white paper: the best channel divided by its background, then stretched so
    that the darkest 0.5 % of pixels are black."""
    gray = gray_array(image)
    ratio = np.clip(gray / background(gray), 0, 1)
    low = float(np.percentile(ratio, 0.5))
    if low >= 0.98:
        return Image.fromarray(np.full(ratio.shape, 255, np.uint8))
    stretched = np.clip((ratio - low) / (1 - low), 0, 1) * 255
    flat = Image.fromarray(stretched.astype(np.uint8))
    flat.info.update(image.info)
    return flat


def looks_like_photo(image: Image.Image) -> bool:
    """Tinted paper or uneven light: the page's background is not an even white."""
    rgb = np.asarray(image.convert("RGB").reduce(4), dtype=np.float32)
    gray = rgb.mean(axis=2)
    paper = gray > np.percentile(gray, 50)  # the brighter half: paper, not ink
    if not paper.any():
        return False
    tint = float(np.ptp(rgb[paper].mean(axis=0)))
    bg = background(gray)
    p5, p95 = np.percentile(bg, [5, 95])
    return tint > _TINT or (p95 - p5) / max(p95, 1) > _UNEVEN


def text_height(image: Image.Image) -> float | None:
    """Median height in px of the runs of ink rows in vertical strips: about a text line's ink
    height (ascender to descender). None when there are too few lines to tell."""
    gray = gray_array(image)
    if _bilevel(gray):  # a fax: speckle would join the gaps between lines
        gray = np.asarray(
            Image.fromarray(gray.astype(np.uint8)).filter(ImageFilter.MedianFilter(3)), np.float32
        )
    ink = gray < _INK_RATIO * background(gray)
    height, width = ink.shape
    runs: list[int] = []
    for left in range(0, width - _STRIP + 1, _STRIP):
        rows = ink[:, left : left + _STRIP].any(axis=1).astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], rows, [0]))))
        lengths = edges[1::2] - edges[0::2]
        runs.extend(int(n) for n in lengths if _MIN_RUN <= n <= height // 8)
    if len(runs) < _MIN_RUNS:
        return None
    return float(np.median(runs))


def _bilevel(gray: NDArray[np.float32]) -> bool:
    """Nearly every pixel black or white (a fax or a binarized scan)."""
    sample = gray[::4, ::4]
    return float(np.mean((sample < 8) | (sample > 247))) > _BILEVEL_SHARE


def is_binarized(image: Image.Image) -> bool:
    """Black and white only, as a fax or a binarized scan is (no grey anti-aliased edges)."""
    sample = np.asarray(image.convert("L"), dtype=np.uint8)[::2, ::2]
    return float(np.mean((sample > 0) & (sample < 255))) <= _GREY_SHARE


def _box_sums(mask: NDArray[np.bool_], reach: int) -> NDArray[np.int32]:
    """For each pixel, how many pixels of `mask` lie in the square of side 2 * reach + 1
    around it (an integral image; pixels beyond the edges count as not set)."""
    side = 2 * reach + 1
    sums = np.pad(mask.astype(np.int32), ((reach + 1, reach), (reach + 1, reach)))
    sums = sums.cumsum(axis=0).cumsum(axis=1)
    return sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]


def despeckle(image: Image.Image) -> Image.Image:
    """`image` (black and white) as grey "L" with its specks white: black pixels with at most
    _SPECK_PX black pixels around them (themselves included)."""
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    black = gray < 128
    speck = black & (_box_sums(black, _SPECK_REACH) <= _SPECK_PX)
    clean = Image.fromarray(np.where(speck, np.uint8(255), gray))
    clean.info.update(image.info)
    return clean


def soften(image: Image.Image, radius: float) -> Image.Image:
    """`image` (black and white) as grey "L", blurred by a Gaussian of `radius` px at
    BLUR_DPI: a scanner's blur is of a size on paper, so it scales with the image's dpi (when
    it tells a likely one)."""
    dpi = image.info.get("dpi")
    if dpi and 70 <= dpi[0] <= 1200:
        radius *= dpi[0] / BLUR_DPI
    soft = image.convert("L").filter(ImageFilter.GaussianBlur(radius))
    soft.info.update(image.info)
    return soft


def upscale_factor(image: Image.Image, min_height: int) -> float:
    """1.0, or how much to enlarge `image` so that its text is `min_height` px tall (at most
    MAX_UPSCALE; pages whose text height cannot be told are left alone)."""
    if min_height <= 0:
        return 1.0
    found = text_height(image)
    if found is None or found * MIN_UPSCALE > min_height:
        return 1.0
    return min(MAX_UPSCALE, min_height / found)


def enlarge(image: Image.Image, factor: float) -> Image.Image:
    if factor <= 1.0:
        return image
    size = (round(image.width * factor), round(image.height * factor))
    bigger = image.resize(size, Image.Resampling.LANCZOS)
    bigger.info.update(image.info)
    return bigger


def prepare(
    image: Image.Image,
    min_text_height: int,
    normalise: str,
    clean_specks: bool = False,
    photo_min_text_height: int = 0,
    bilevel_blur: float = 0.0,
) -> tuple[Image.Image, float]:
    """The image to recognize and how much larger than `image` it is (boxes read on it are
    divided by that). `normalise`: PHOTO_NORMALISE (auto, on, off); `clean_specks`: despeckle
    binarized pages (OCR_DESPECKLE); `photo_min_text_height`: the minimum text height of a
    page flattened as a photo, when higher than `min_text_height` (a soft photo's letters need
    more pixels); `bilevel_blur`: blur radius of binarized pages (OCR_BILEVEL_BLUR_PX)."""
    binarized = (clean_specks or bilevel_blur > 0) and is_binarized(image)
    if binarized:
        if clean_specks:
            image = despeckle(image)
    elif normalise == "on" or (normalise == "auto" and looks_like_photo(image)):
        image = flatten(image)
        min_text_height = max(min_text_height, photo_min_text_height)
    factor = upscale_factor(image, min_text_height)  # a fax measured before it is blurred
    if binarized and bilevel_blur > 0:
        image = soften(image, bilevel_blur)
    return enlarge(image, factor), factor


@dataclass(frozen=True)
class PagePrep:
    """What a CPU engine does to a page before and after reading it (PagePrepSettings)."""

    min_text_height: int = 0
    normalise: str = "off"
    word_fixes: bool = False
    despeckle: bool = False
    photo_min_text_height: int = 0
    bilevel_blur: float = 0.0

    @classmethod
    def of(cls, settings: Settings, photo_min_text_height: int = 0) -> PagePrep:
        return cls(
            settings.ocr_min_text_height_px,
            settings.photo_normalise,
            settings.ocr_word_fixes == "on",
            settings.ocr_despeckle == "auto",
            photo_min_text_height,
            settings.ocr_bilevel_blur_px,
        )

    def prepare(self, image: Image.Image) -> tuple[Image.Image, float]:
        return prepare(
            image,
            self.min_text_height,
            self.normalise,
            self.despeckle,
            self.photo_min_text_height,
            self.bilevel_blur,
        )

    def fix_text(self, text: str) -> str:
        return fix_line(text) if self.word_fixes else text

    @staticmethod
    def box_back(box: tuple[int, ...], factor: float) -> tuple[int, ...]:
        return box if factor == 1.0 else tuple(round(v / factor) for v in box)

    def restore(self, blocks: list[Block], factor: float) -> list[Block]:
        """Blocks read on the prepared image, with boxes on the page as it came, text fixed."""
        return [
            block.model_copy(
                update={
                    "text": self.fix_text(block.text),
                    "bbox": [v / factor for v in block.bbox],
                }
            )
            for block in blocks
        ]
