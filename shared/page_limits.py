"""The pixel limit of one page, for both processes: the worker refuses to read a bigger page
(image_too_large) and the API refuses to draw one (its page pictures, api/page_images.py)."""

from __future__ import annotations

# Pillow's bomb guard: a few-KB PNG can claim 30000x30000 pixels. 120 MP covers A0 at 300 dpi.
MAX_IMAGE_PIXELS = 120_000_000
