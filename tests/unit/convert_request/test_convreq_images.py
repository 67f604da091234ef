"""Image validation (protocol.md §2.5) for base64 sources and OpenAI data URLs."""

from __future__ import annotations

import base64

import pytest
from convreq_helpers import PNG

from kiro2api.convert.canonical import ImageBlock
from kiro2api.convert.images import (
    MAX_IMAGE_BYTES,
    image_from_base64,
    image_from_data_url,
    sniff_media_type,
)
from kiro2api.errors import RequestError


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


SAMPLES = {
    "image/jpeg": b"\xff\xd8\xff\xe0" + b"\0" * 16,
    "image/png": base64.b64decode(PNG),
    "image/gif": b"GIF89a" + b"\0" * 16,
    "image/webp": b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 8,
}


@pytest.mark.parametrize(("media_type", "raw"), SAMPLES.items())
def test_supported_types_pass(media_type: str, raw: bytes) -> None:
    assert sniff_media_type(raw) == media_type
    block = image_from_base64(media_type, b64(raw), param="p")
    assert block == ImageBlock(media_type, b64(raw))
    assert block.format == media_type.split("/")[1]


def test_line_breaks_are_tolerated_and_removed() -> None:
    wrapped = PNG[:20] + "\r\n" + PNG[20:] + "\n"
    assert image_from_base64("image/png", wrapped, param="p").data == PNG


def test_jpg_alias_and_unknown_magic_accepted_as_declared() -> None:
    assert image_from_base64("image/jpg", b64(SAMPLES["image/jpeg"]), param="p").format == "jpeg"
    assert image_from_base64("image/png", b64(b"unknown bytes here"), param="p").format == "png"


@pytest.mark.parametrize(
    ("media_type", "data", "param", "fragment"),
    [
        ("image/bmp", b64(b"BM" + b"\0" * 20), "p.media_type", "unsupported image type"),
        ("image/png", "", "p.data", "empty"),
        ("image/png", "abc", "p.data", "invalid base64"),
        ("image/png", "ab$c", "p.data", "invalid base64"),
        ("image/png", "aGk=aGk=", "p.data", "invalid base64"),
        ("image/png", PNG[:-1], "p.data", "invalid base64"),
        ("image/jpeg", PNG, "p.data", "image/png but the declared media type is image/jpeg"),
        ("image/png", b64(b"BM" + b"\0" * 20), "p.data", "image/bmp"),
    ],
)
def test_bad_images(media_type: str, data: str, param: str, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        image_from_base64(media_type, data, param="p")
    assert info.value.param == param
    assert fragment in info.value.message


def test_size_limit() -> None:
    too_big = b64(b"\xff\xd8" + b"\0" * MAX_IMAGE_BYTES)
    with pytest.raises(RequestError, match="larger than 20 MiB") as info:
        image_from_base64("image/jpeg", too_big, param="p")
    assert info.value.param == "p.data"


def test_data_urls() -> None:
    url = f"data:image/png;base64,{PNG}"
    assert image_from_data_url(url, param="u") == ImageBlock("image/png", PNG)
    with_params = f"data:image/png;name=a.png;base64,{PNG}"
    assert image_from_data_url(with_params, param="u").data == PNG


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://example.com/cat.png", "remote image URLs are not supported"),
        ("http://example.com/cat.png", "remote image URLs are not supported"),
        ("ftp://x", "expected a data URL"),
        (f"data:image/png,{PNG}", "only base64"),
        ("data:image/png;base64,***", "invalid base64"),
        (f"data:image/tiff;base64,{PNG}", "unsupported image type"),
    ],
)
def test_bad_data_urls_name_the_url_field(url: str, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        image_from_data_url(url, param="messages[0].content[1].image_url.url")
    assert info.value.param == "messages[0].content[1].image_url.url"
    assert fragment in info.value.message
