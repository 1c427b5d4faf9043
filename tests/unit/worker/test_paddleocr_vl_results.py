"""PaddleOCR-VL's output mapped to this service's blocks and markdown: the pure parts (labels,
formulas, image links and crops). The mapping of a real PaddleOCRVLResult is tests/paddle."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.storage import is_crop_name
from worker.engines.base import EngineError
from worker.engines.paddleocr_vl_results import (
    carry_images,
    crop_name,
    encode_image,
    recognition_from_result,
    tidy_markdown,
)
from worker.results import page_text

DIV = '<div style="text-align: center;"><img src="{}" alt="Image" width="50%" /></div>'


def crop(colour: str = "red") -> Image.Image:
    return Image.new("RGB", (12, 8), colour)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("imgs/img_in_image_box_210_130_390_290.jpg", "img_in_image_box_210_130_390_290.jpg"),
        ("imgs/chart.PNG", "chart.png"),
        ("imgs/odd name (1).jpeg", "odd_name_1_.jpg"),
        ("imgs/..hidden.jpg", "hidden.jpg"),
        ("imgs/no-extension", "no-extension.png"),
        ("imgs/.jpg", "image.jpg"),
    ],
)
def test_crop_names_are_plain_file_names(path: str, name: str) -> None:
    assert crop_name(path, {}) == name
    assert is_crop_name(name)


def test_crop_names_do_not_collide() -> None:
    taken = {"a.jpg": b"", "a-2.jpg": b""}
    assert crop_name("imgs/a.jpg", taken) == "a-3.jpg"


def test_crops_are_encoded_as_their_name_says() -> None:
    assert Image.open(io.BytesIO(encode_image(crop(), "a.jpg"))).format == "JPEG"
    png = Image.open(io.BytesIO(encode_image(crop().convert("RGBA"), "a.png")))
    assert (png.format, png.size) == ("PNG", (12, 8))


def test_linked_crops_are_carried_under_their_new_names() -> None:
    markdown = "Intro\n\n" + DIV.format("imgs/fig 1.jpg") + "\n\nEnd"
    images = {"imgs/fig 1.jpg": crop(), "imgs/unlinked.jpg": crop("blue")}

    linked, carried = carry_images(markdown, images)

    assert list(carried) == ["fig_1.jpg"]
    assert 'src="fig_1.jpg"' in linked and "imgs/" not in linked
    assert Image.open(io.BytesIO(carried["fig_1.jpg"])).size == (12, 8)


def test_a_link_to_a_missing_crop_is_left_out_and_outside_links_stay() -> None:
    markdown = DIV.format("imgs/gone.jpg") + '\n<img src="https://example.org/logo.png">'
    linked, carried = carry_images(markdown, {})
    assert carried == {}
    assert linked == '\n<img src="https://example.org/logo.png">'


def test_a_crop_that_cannot_be_encoded_only_loses_its_link() -> None:
    linked, carried = carry_images(DIV.format("imgs/a.jpg"), {"imgs/a.jpg": "not an image"})
    assert (linked, carried) == ("", {})


def test_page_markdown_gets_tidy_formulas_and_no_blank_runs() -> None:
    raw = " $$ E = mc^2 $$ "
    markdown = f"\n\n# Title\n\n\n\nText\n\n{raw}\n\n\n"
    assert tidy_markdown(markdown, [raw]) == "# Title\n\nText\n\n$$E = mc^2$$"


def test_the_pipelines_error_reply_is_a_recognition_failure() -> None:
    with pytest.raises(EngineError, match="PaddleOCRVL: bad settings") as info:
        recognition_from_result({"error": "bad settings"})
    assert info.value.code == "recognition_failed"


class FakeResult(dict):
    """The two attributes of a PaddleOCRVLResult the mapping reads."""

    def __init__(self, items: list[dict], markdown: str) -> None:
        super().__init__()
        self.json = {"res": {"parsing_res_list": items}}
        self.markdown = {"markdown_texts": markdown, "markdown_images": {}}


def test_layout_blocks_keep_the_models_order_and_number_it() -> None:
    items = [
        {"block_label": "doc_title", "block_content": "Report", "block_bbox": [10, 10, 300, 40]},
        {"block_label": "text", "block_content": "Right column", "block_bbox": [320, 60, 600, 90]},
        {
            "block_label": "text",
            "block_content": "Left one\nof two lines",
            "block_bbox": [10, 60, 300, 120],
        },
    ]

    recognition = recognition_from_result(FakeResult(items, "# Report\n\nRight column"))

    assert [b.text for b in recognition.blocks] == [
        "Report",
        "Right column",
        "Left one\nof two lines",
    ]
    assert [(b.block, b.paragraph, b.line) for b in recognition.blocks] == [
        (0, 0, 0),
        (1, 1, 1),
        (2, 2, 2),
    ]
    assert page_text(recognition.blocks) == "Report\nRight column\nLeft one\nof two lines"
    assert recognition.markdown == "# Report\n\nRight column"  # the model's own, untouched
