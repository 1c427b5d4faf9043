"""A TrueType font with one empty glyph, 500 units wide: what invisible OCR text is set in.

The same idea as Tesseract's and OCRmyPDF's GlyphLessFont: every character code maps to glyph
1, which draws nothing, so the text layer needs no real font, embeds in a few hundred bytes and
carries any script (its meaning comes from the ToUnicode map). Built here from the TrueType
tables (Apple's and Microsoft's spec) rather than shipped as a binary.
"""

from __future__ import annotations

import struct
from functools import cache

UNITS_PER_EM = 1000
ADVANCE = 500  # every glyph's width: the PDF's /DW must say the same
ASCENT, DESCENT = 800, -200
NAME = "OcrqGlyphLess"


def _checksum(data: bytes) -> int:
    data += b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(data) // 4}I", data)) & 0xFFFFFFFF


def _name_table() -> bytes:
    names = {1: NAME, 2: "Regular", 3: f"{NAME}-1.0", 4: NAME, 5: "Version 1.0", 6: NAME}
    records, strings = [], b""
    for name_id, text in names.items():
        raw = text.encode("utf-16-be")
        records.append(struct.pack(">6H", 3, 1, 0x409, name_id, len(raw), len(strings)))
        strings += raw
    header = struct.pack(">3H", 0, len(names), 6 + 12 * len(names))
    return header + b"".join(records) + strings


@cache
def glyphless_ttf() -> bytes:
    """The font file (FontFile2): glyphs 0 (.notdef) and 1, both empty."""
    head = struct.pack(
        ">IIIIHHqqhhhhHHhhh",
        0x00010000,  # version
        0x00010000,  # fontRevision
        0,  # checkSumAdjustment, set below
        0x5F0F3CF5,  # magicNumber
        0b1011,  # flags: baseline at y=0, lsb at x=0, integer ppem
        UNITS_PER_EM,
        0,  # created
        0,  # modified
        0,
        DESCENT,
        ADVANCE,
        ASCENT,  # xMin, yMin, xMax, yMax
        0,  # macStyle
        3,  # lowestRecPPEM
        2,  # fontDirectionHint
        0,  # indexToLocFormat: short offsets
        0,  # glyphDataFormat
    )
    hhea = struct.pack(
        ">IhhhHhhhhhhhhhhhH",
        0x00010000,
        ASCENT,
        DESCENT,
        0,  # lineGap
        ADVANCE,  # advanceWidthMax
        0,
        0,
        0,  # minLeftSideBearing, minRightSideBearing, xMaxExtent
        1,
        0,
        0,  # caretSlopeRise, caretSlopeRun, caretOffset
        0,
        0,
        0,
        0,  # reserved
        0,  # metricDataFormat
        2,  # numberOfHMetrics
    )
    maxp = struct.pack(">IHHHHHHHHHHHHHH", 0x00010000, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    hmtx = struct.pack(">HhHh", ADVANCE, 0, ADVANCE, 0)
    loca = struct.pack(">3H", 0, 0, 0)  # both glyphs empty
    glyf = b"\0\0\0\0"
    # cmap format 4 with only the closing segment: the PDF maps codes to glyphs (CIDToGIDMap)
    cmap = (
        struct.pack(">HHHHI", 0, 1, 3, 1, 12)
        + struct.pack(">HHHHHHHHHHH", 4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1)
        + struct.pack(">H", 0)
    )
    post = struct.pack(">IIhhIIIII", 0x00030000, 0, -100, 50, 1, 0, 0, 0, 0)
    os2 = struct.pack(
        ">HhHHHhhhhhhhhhhh10sIIII4sHHHhhhHH",
        1,  # version
        ADVANCE,  # xAvgCharWidth
        400,  # usWeightClass
        5,  # usWidthClass
        0,  # fsType: installable embedding
        *([0] * 10),  # subscript/superscript/strikeout metrics
        0,  # sFamilyClass
        b"\0" * 10,  # panose
        0,
        0,
        0,
        0,  # ulUnicodeRange1-4
        b"ocrq",  # achVendID
        0x40,  # fsSelection: regular
        0,
        0xFFFF,  # usFirstCharIndex, usLastCharIndex
        ASCENT,
        DESCENT,
        0,  # sTypoAscender, sTypoDescender, sTypoLineGap
        ASCENT,
        -DESCENT,  # usWinAscent, usWinDescent
    ) + struct.pack(">II", 1, 0)  # ulCodePageRange1-2 (Latin 1)
    tables = {
        b"OS/2": os2,
        b"cmap": cmap,
        b"glyf": glyf,
        b"head": head,
        b"hhea": hhea,
        b"hmtx": hmtx,
        b"loca": loca,
        b"maxp": maxp,
        b"name": _name_table(),
        b"post": post,
    }
    count = len(tables)
    power = 1 << (count.bit_length() - 1)
    directory = struct.pack(
        ">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, count * 16 - power * 16
    )
    offset = 12 + 16 * count
    records, body = b"", b""
    for tag in sorted(tables):
        data = tables[tag]
        records += struct.pack(">4sIII", tag, _checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    font = bytearray(directory + records + body)
    adjustment = (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF
    head_at = (
        12
        + 16 * count
        + sum(len(tables[t]) + (-len(tables[t]) % 4) for t in sorted(tables) if t < b"head")
    )
    font[head_at + 8 : head_at + 12] = struct.pack(">I", adjustment)
    return bytes(font)
