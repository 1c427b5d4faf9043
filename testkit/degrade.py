"""Degrade a rendered page the way phone photos and faxes do (seeded, deterministic).

- `phone`: warm paper tint and grey ink, light falling off from a random point (up to ~40 %
  darker), a skew of up to 2 degrees, scaled to 700 px wide, a soft blur, sensor noise, JPEG 60;
- `fax`: grey, skewed up to 1 degree, sampled at 204 x 98 dpi (fax "standard"), binarized at a
  threshold with noise, speckle and drop-outs; kept as a fax server hands it on: a bilevel TIFF
  (Group 4) whose x and y resolutions differ (204 x 98 dpi), so its pixels are twice as tall as
  wide until the page loader (worker/pages.py) squares them.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageFilter

PHONE_WIDTH = 700
JPEG_QUALITY = 60
FAX_DPI = (204, 98)


def degrade(
    image: Image.Image, dpi: int, how: str, seed: str
) -> tuple[Image.Image, int | tuple[int, int] | None, str]:
    """(image, dpi it claims (x and y when they differ) or None, storage format) of `image`
    degraded `how`."""
    if how == "clean":
        return image, dpi, "PNG"
    rng = random.Random(seed)
    if how == "phone":
        return phone(image, rng), None, "JPEG"
    if how == "fax":
        return fax(image, dpi, rng), FAX_DPI, "TIFF"
    raise ValueError(f"unknown degradation {how!r}")


def phone(image: Image.Image, rng: random.Random) -> Image.Image:
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    height, width = gray.shape
    paper = np.array([rng.uniform(225, 240), rng.uniform(212, 228), rng.uniform(170, 200)])
    ink = np.array([rng.uniform(50, 80), rng.uniform(45, 70), rng.uniform(55, 85)])
    rgb = gray[..., None] * paper + (1 - gray[..., None]) * ink
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    distance = np.hypot(xs - cx, ys - cy) / np.hypot(width, height)
    light = 1.0 - rng.uniform(0.3, 0.45) * distance
    tilt = 1.0 - rng.uniform(0.0, 0.15) * (xs / width)
    rgb = rgb * (light * tilt)[..., None]
    photo = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    angle = rng.uniform(-2.0, 2.0)
    fill = tuple(int(c * 0.55) for c in paper)
    photo = photo.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=fill)
    photo = photo.resize(
        (PHONE_WIDTH, round(height * PHONE_WIDTH / width)), Image.Resampling.LANCZOS
    )
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 0.9)))
    noisy = np.asarray(photo, dtype=np.float32)
    noisy = noisy + np.random.default_rng(rng.randrange(2**32)).normal(0, 4, noisy.shape)
    photo = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def fax(image: Image.Image, dpi: int, rng: random.Random) -> Image.Image:
    gray = image.convert("L").rotate(
        rng.uniform(-1.0, 1.0), resample=Image.Resampling.BILINEAR, fillcolor=255
    )
    width, height = gray.size
    sampled = gray.resize(
        (round(width * FAX_DPI[0] / dpi), round(height * FAX_DPI[1] / dpi)), Image.Resampling.BOX
    )
    pixels = np.asarray(sampled, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32))
    threshold = 150 + noise.normal(0, 18, pixels.shape)
    black = pixels < threshold
    black |= noise.random(pixels.shape) < 0.002  # speckle
    black &= noise.random(pixels.shape) > 0.01  # drop-outs in strokes
    return Image.fromarray(np.where(black, 0, 255).astype(np.uint8)).convert("1")
