"""Searchable PDF of a stored result: the source pages as they were, invisible text over them.

Built with pikepdf (qpdf): a PDF upload is opened as it is and each OCR'd page gets one more
content stream, text in render mode 3 (invisible) over every word, so selecting and searching
hit the right spot; a page read from its own text layer (`text_layer=use`) is left alone. An
image upload becomes one page per image, the image embedded as it came where PDF can carry it
(JPEG as DCT, 8/16-bit grey or RGB non-interlaced PNG as Flate with the PNG predictor; other
images losslessly as Flate), marked PDF/A-2b (XMP identification, sRGB output intent, the one
font embedded). A PDF upload is not marked: its own content decides what it conforms to.

Pages the engine turned to read them (`rotation`) get a /Rotate, so viewers show them upright
with the text over the words; the page's pixels are never rewritten.

A page that could not be read (its `error` set) keeps its place without text, so page N of
the PDF is page N of the result: a PDF page as it is (a blank one of its neighbour's size when
its own boxes cannot be read or its page tree does not hold it), an image frame as it is when
it decodes within the pixel limit, else a blank page of the frame's size (at most 200 inches a
side) or the page before's.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import pikepdf
from pikepdf import Array, Dictionary, Name, Pdf, Stream

from api.archives.glyphless import ADVANCE, ASCENT, DESCENT, NAME, UNITS_PER_EM, glyphless_ttf
from api.archives.layout import page_regions
from shared.page_limits import MAX_IMAGE_PIXELS
from shared.results import DocumentResult, PageResult

DEFAULT_IMAGE_DPI = 300  # an image that says no dpi is taken as a 300 dpi scan
A4_POINTS = (595.276, 841.89)  # a blank page's size when nothing tells another
MAX_PAGE_POINTS = 14_400.0  # 200 inches: the largest page PDF readers are held to show
_FONT_RESOURCE = "OcrqText"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_pdf(document: DocumentResult, source: Path, media_type: str, out: Path) -> None:
    """Write the searchable PDF of `document` (read from `source`) to `out`."""
    if media_type == "application/pdf":
        _pdf_from_pdf(document.pages, source, out)
    else:
        _pdf_from_images(document, source, out)


# -- the text layer -------------------------------------------------------------------------


def _to_unicode_cmap() -> bytes:
    """Codes are UTF-16 code units (Identity-H), each mapped back to itself."""
    ranges = [f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256)]
    chunks = [ranges[i : i + 100] for i in range(0, len(ranges), 100)]
    body = "\n".join(f"{len(c)} beginbfrange\n" + "\n".join(c) + "\nendbfrange" for c in chunks)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        f"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n{body}\n"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode()


def add_text_font(pdf: Pdf) -> pikepdf.Object:
    """The glyphless Type0 font, added once to `pdf`; any Unicode text can be set in it."""
    font_file = Stream(pdf, glyphless_ttf())
    font_file.Length1 = len(glyphless_ttf())
    descriptor = Dictionary(
        Type=Name.FontDescriptor,
        FontName=Name("/" + NAME),
        Flags=5,  # fixed pitch, symbolic
        FontBBox=Array([0, DESCENT, ADVANCE, ASCENT]),
        ItalicAngle=0,
        Ascent=ASCENT,
        Descent=DESCENT,
        CapHeight=ASCENT,
        StemV=80,
        FontFile2=pdf.make_indirect(font_file),
    )
    cid_to_gid = Stream(pdf, zlib.compress(b"\x00\x01" * 65536))
    cid_to_gid.Filter = Name.FlateDecode
    cid_font = Dictionary(
        Type=Name.Font,
        Subtype=Name.CIDFontType2,
        BaseFont=Name("/" + NAME),
        CIDSystemInfo=Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
        FontDescriptor=pdf.make_indirect(descriptor),
        DW=ADVANCE,
        CIDToGIDMap=pdf.make_indirect(cid_to_gid),
    )
    to_unicode = Stream(pdf, zlib.compress(_to_unicode_cmap()))
    to_unicode.Filter = Name.FlateDecode
    return pdf.make_indirect(
        Dictionary(
            Type=Name.Font,
            Subtype=Name.Type0,
            BaseFont=Name("/" + NAME),
            Encoding=Name("/Identity-H"),
            DescendantFonts=Array([pdf.make_indirect(cid_font)]),
            ToUnicode=pdf.make_indirect(to_unicode),
        )
    )


def _display_matrix(rotate: int, box: tuple[float, float, float, float]) -> str:
    """The cm taking the page as shown (origin bottom-left, after /Rotate) to its user space."""
    x0, y0, x1, y1 = box
    return {
        0: f"1 0 0 1 {x0:.3f} {y0:.3f}",
        90: f"0 1 -1 0 {x1:.3f} {y0:.3f}",
        180: f"-1 0 0 -1 {x1:.3f} {y1:.3f}",
        270: f"0 -1 1 0 {x0:.3f} {y1:.3f}",
    }[rotate]


def text_layer(
    page: PageResult, shown_width: float, shown_height: float, matrix: str, font: str
) -> bytes:
    """Content stream setting each word of `page` invisibly over its box.

    `shown_width` x `shown_height` (points) is the page as a viewer shows it, upright; the
    words' pixel boxes are scaled onto it. Each word gets a font size of its box's height and a
    horizontal scale that makes it exactly as wide as its box."""
    sx, sy = shown_width / page.width, shown_height / page.height
    descent = -DESCENT / UNITS_PER_EM
    ops = [f"q {matrix} cm BT 3 Tr"]
    for region in page_regions(page):
        for line in region.lines:
            for word in line.words:
                x0, y0, x1, y1 = word.box
                size = (y1 - y0) * sy
                natural = len(word.text.encode("utf-16-be")) // 2 * size * ADVANCE / UNITS_PER_EM
                if size <= 0 or natural <= 0:
                    continue
                scale = 100 * (x1 - x0) * sx / natural
                baseline = shown_height - y1 * sy + descent * size
                code = word.text.encode("utf-16-be").hex().upper()
                ops.append(
                    f"/{font} {size:.2f} Tf {scale:.2f} Tz "
                    f"1 0 0 1 {x0 * sx:.2f} {baseline:.2f} Tm <{code}> Tj"
                )
    ops.append("ET Q")
    return "\n".join(ops).encode()


def _inherited(page: pikepdf.Page, key: str) -> pikepdf.Object | None:
    node: pikepdf.Object | None = page.obj
    while node is not None:
        if key in node:
            return node[key]
        node = node.get("/Parent")
    return None


def _add_text(pdf: Pdf, page: pikepdf.Page, result: PageResult, font: pikepdf.Object) -> None:
    """Turn the page as the engine turned it, then lay the result's text over it."""
    rotate = (int(_inherited(page, "/Rotate") or 0) - result.rotation) % 360
    if rotate % 90:
        rotate = 0
    page.obj.Rotate = rotate
    box = tuple(float(v) for v in page.cropbox)
    x0, y0, x1, y1 = (
        min(box[0], box[2]),
        min(box[1], box[3]),
        max(box[0], box[2]),
        max(box[1], box[3]),
    )
    width, height = (x1 - x0, y1 - y0) if rotate in (0, 180) else (y1 - y0, x1 - x0)
    resources = _inherited(page, "/Resources")
    if "/Resources" not in page.obj:  # copy inherited resources before adding to them
        # pikepdf's stubs take a Mapping only; a dictionary Object is one at run time
        page.obj.Resources = (
            Dictionary(resources)  # type: ignore[arg-type]
            if resources is not None
            else Dictionary()
        )
    name = page.add_resource(font, Name.Font, prefix=_FONT_RESOURCE)
    content = text_layer(
        result, width, height, _display_matrix(rotate, (x0, y0, x1, y1)), str(name)[1:]
    )
    page.contents_add(Stream(pdf, b"q\n"), prepend=True)
    page.contents_add(Stream(pdf, b"Q\n" + content))


# -- from a PDF upload ----------------------------------------------------------------------


def _pdf_from_pdf(pages: list[PageResult], source: Path, out: Path) -> None:
    with Pdf.open(source) as pdf:
        # a page tree whose /Count says more pages than it holds (its extra pages failed):
        # qpdf edits no such tree, so it is told the count it holds
        if int(pdf.Root.Pages.get("/Count", 0)) != len(pdf.pages):
            pdf.Root.Pages.Count = len(pdf.pages)
        font = add_text_font(pdf)
        wanted = {p.index: p for p in pages}
        for number in range(len(pdf.pages), 0, -1):  # keep only the pages the job read
            if number not in wanted:
                del pdf.pages[number - 1]
        ordered = sorted(pages, key=lambda p: p.index)
        for at, result in enumerate(ordered):
            if at >= len(pdf.pages):  # a page its page tree lacks (a /Count that lies)
                _insert_blank(pdf, at, _neighbour_size(pdf, at))
                continue
            page = pdf.pages[at]
            if result.error is not None:  # kept as it is, unless it has no size to show
                if _page_size(page) is None:
                    _insert_blank(pdf, at, _neighbour_size(pdf, at))
                    del pdf.pages[at + 1]
            elif result.source != "text_layer":
                _add_text(pdf, page, result, font)
        pdf.save(out)


def _page_size(page: pikepdf.Page) -> tuple[float, float] | None:
    """A page's width and height in points; None when its boxes cannot be read."""
    try:
        x0, y0, x1, y1 = (float(v) for v in page.mediabox)
    except (pikepdf.PdfError, TypeError, ValueError, AttributeError, KeyError):
        return None
    width, height = abs(x1 - x0), abs(y1 - y0)
    return (width, height) if width >= 1 and height >= 1 else None


def _neighbour_size(pdf: Pdf, at: int) -> tuple[float, float]:
    """The size of the nearest page that has one, else A4."""
    for other in sorted(range(len(pdf.pages)), key=lambda i: abs(i - at)):
        if other != at and (size := _page_size(pdf.pages[other])) is not None:
            return size
    return A4_POINTS


def _insert_blank(pdf: Pdf, at: int, size: tuple[float, float]) -> None:
    """A blank page of `size` at `at` (the end when `at` is the page count)."""
    blank = Dictionary(
        Type=Name.Page,
        MediaBox=Array([0, 0, size[0], size[1]]),
        Resources=Dictionary(),
        Contents=pdf.make_stream(b""),
    )
    pdf.pages.insert(at, pikepdf.Page(pdf.make_indirect(blank)))


# -- from image uploads ---------------------------------------------------------------------


def _png_passthrough(data: bytes) -> tuple[dict, bytes] | None:
    """The PNG's own compressed pixels and how to read them, if PDF can take them as they are:
    grey or RGB, 8 or 16 bits, not interlaced. None otherwise (palette, alpha, Adam7)."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if color not in (0, 2) or depth not in (8, 16) or interlace:
        return None
    idat, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            idat.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    colors = 3 if color == 2 else 1
    params = Dictionary(Predictor=15, Colors=colors, BitsPerComponent=depth, Columns=width)
    info = {
        "Width": width,
        "Height": height,
        "ColorSpace": Name.DeviceRGB if colors == 3 else Name.DeviceGray,
        "BitsPerComponent": depth,
        "Filter": Name.FlateDecode,
        "DecodeParms": params,
    }
    return info, b"".join(idat)


def _image_xobject(pdf: Pdf, frame, data: bytes | None) -> Stream:
    """`frame` (a PIL image) as an image XObject; `data`: the file's bytes if it is one frame."""
    info: dict
    if data is not None and frame.format == "JPEG" and frame.mode in ("L", "RGB"):
        info = {
            "ColorSpace": Name.DeviceRGB if frame.mode == "RGB" else Name.DeviceGray,
            "BitsPerComponent": 8,
            "Filter": Name.DCTDecode,
        }
        raw = data
    elif data is not None and (png := _png_passthrough(data)) is not None:
        info, raw = png
    else:  # lossless: the decoded pixels, Flate-compressed
        if frame.mode == "1":
            image, space, bits = frame, Name.DeviceGray, 1
        elif frame.mode in ("L", "LA", "I;16", "I"):
            image, space, bits = frame.convert("L"), Name.DeviceGray, 8
        else:
            image, space, bits = frame.convert("RGB"), Name.DeviceRGB, 8
        info = {"ColorSpace": space, "BitsPerComponent": bits, "Filter": Name.FlateDecode}
        raw = zlib.compress(image.tobytes(), 6)
    stream = Stream(pdf, raw)
    stream.Type, stream.Subtype = Name.XObject, Name.Image
    stream.Width, stream.Height = frame.width, frame.height
    for key, value in info.items():
        stream[Name("/" + key)] = value
    return stream


def _output_intent(pdf: Pdf) -> Dictionary:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    profile = Stream(pdf, zlib.compress(icc))
    profile.Filter, profile.N = Name.FlateDecode, 3
    return Dictionary(
        Type=Name.OutputIntent,
        S=Name.GTS_PDFA1,
        OutputConditionIdentifier="sRGB IEC61966-2.1",
        Info="sRGB IEC61966-2.1",
        DestOutputProfile=pdf.make_indirect(profile),
    )


def _image_dpi(frame, reported: int | None) -> tuple[float, float]:
    """The image's own resolution, unrounded (a PNG's pHYs says 199.9995 for 200 dpi), so the
    page has the scan's size; else the one the result reports; else DEFAULT_IMAGE_DPI."""
    try:
        xdpi, ydpi = (float(v) for v in frame.info["dpi"])
    except (KeyError, TypeError, ValueError):
        xdpi = ydpi = 0.0
    if xdpi >= 1 and ydpi >= 1:
        return xdpi, ydpi
    return (float(reported), float(reported)) if reported else (DEFAULT_IMAGE_DPI,) * 2


def _image_frames(source: Path, numbers: Iterable[int]):
    """(number, frame or None, bytes-if-single-frame) for each wanted frame, one at a time;
    None for a frame that cannot be reached (a broken one: its page failed)."""
    from PIL import Image

    with Image.open(source) as image:
        single = getattr(image, "n_frames", 1) == 1
        data = source.read_bytes() if single else None
        for number in sorted(set(numbers)):
            try:
                image.seek(number - 1)
            except (EOFError, OSError, ValueError):
                yield number, None, data
                continue
            yield number, image, data


def _failed_frame_page(
    pdf: Pdf, frame, data: bytes | None, result: PageResult, last: tuple[float, float] | None
) -> tuple[float, float]:
    """A page for an image page that could not be read: the frame itself when it decodes
    within the pixel limit, else a blank page (the frame's size when known, else the page
    before it, else A4); no text. Its size in points."""
    if frame is not None and frame.width * frame.height <= MAX_IMAGE_PIXELS:
        try:
            xobject = pdf.make_indirect(_image_xobject(pdf, frame, data))
        except (OSError, ValueError, SyntaxError, MemoryError):
            pass
        else:
            size = _frame_points(frame, result.dpi)
            _image_page(pdf, xobject, size)
            return size
    if frame is not None and frame.width > 0 and frame.height > 0:
        size = _frame_points(frame, result.dpi)
        scale = min(1.0, MAX_PAGE_POINTS / max(size))
        size = (max(size[0] * scale, 1.0), max(size[1] * scale, 1.0))
    else:
        size = last or A4_POINTS
    pdf.add_blank_page(page_size=size)
    return size


def _frame_points(frame, reported_dpi: int | None) -> tuple[float, float]:
    xdpi, ydpi = _image_dpi(frame, reported_dpi)
    return frame.width * 72 / xdpi, frame.height * 72 / ydpi


def _image_page(pdf: Pdf, xobject: pikepdf.Object, size: tuple[float, float]) -> pikepdf.Page:
    width, height = size
    page = pdf.add_blank_page(page_size=(width, height))
    name = page.add_resource(xobject, Name.XObject, prefix="OcrqPage")
    page.contents_add(Stream(pdf, f"q {width:.3f} 0 0 {height:.3f} 0 0 cm {name} Do Q".encode()))
    return page


def _pdf_from_images(document: DocumentResult, source: Path, out: Path) -> None:
    results = {p.index: p for p in document.pages}
    with Pdf.new() as pdf:
        font = add_text_font(pdf)
        last: tuple[float, float] | None = None
        for number, frame, data in _image_frames(source, results):
            result = results[number]
            if result.error is not None or frame is None:
                last = _failed_frame_page(pdf, frame, data, result, last)
                continue
            xobject = pdf.make_indirect(_image_xobject(pdf, frame, data))
            last = _frame_points(frame, result.dpi)
            page = _image_page(pdf, xobject, last)
            _add_text(pdf, page, result, font)
        pdf.Root.OutputIntents = Array([_output_intent(pdf)])
        with pdf.open_metadata() as meta:
            meta["dc:title"] = f"ocrq job {document.job_id}"
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
        pdf.save(out, min_version="1.7")


def page_count(data: bytes) -> int:
    """Pages of a PDF given as bytes (for tests and the benchmark)."""
    with Pdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)
