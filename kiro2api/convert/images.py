"""Validation of inline images (protocol.md §2.5).

Images are checked before anything is sent upstream, so a bad image is a clear 400 naming the
field instead of an opaque upstream failure on this and every later turn of the conversation
(an oversized or corrupt image in history fails each following request, peers.md §3).

Rules:

* only base64 sources; URLs are refused because the proxy never fetches anything on a client's
  behalf (no SSRF, no surprise latency);
* media types ``image/jpeg``, ``image/png``, ``image/gif``, ``image/webp``;
* standard base64 with padding; line breaks are tolerated and removed (as Go's decoder does);
* at most 20 MiB decoded;
* the magic bytes, when recognisable, must agree with the declared media type (a PNG declared as
  JPEG is rejected upstream with an unhelpful error).
"""

from __future__ import annotations

import binascii
import re

from kiro2api.convert.canonical import ImageBlock
from kiro2api.errors import RequestError

__all__ = [
    "MAX_IMAGE_BYTES",
    "SUPPORTED_MEDIA_TYPES",
    "image_from_base64",
    "image_from_data_url",
    "sniff_media_type",
]

#: Decoded size limit (``utils/image.go:23``).
MAX_IMAGE_BYTES = 20 * 1024 * 1024

SUPPORTED_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

# Base64 length bound checked before decoding, so a huge string is refused without the work.
_MAX_B64_CHARS = (MAX_IMAGE_BYTES + 2) // 3 * 4

# `data:<media type>[;param=...];base64,<data>`; anything after the comma is the payload.
_DATA_URL = re.compile(r"data:([^;,]+)((?:;[^;,]*)*),(.*)", re.DOTALL)


def sniff_media_type(data: bytes) -> str | None:
    """The media type recognised from the leading bytes, or ``None`` if unknown.

    BMP is recognised (and thus reported as a mismatch) although it is not supported.
    """
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM"):
        return "image/bmp"
    return None


def _normalise_media_type(media_type: str) -> str:
    media_type = media_type.strip().lower()
    # `image/jpg` is a common misspelling that every consumer understands.
    return "image/jpeg" if media_type == "image/jpg" else media_type


def image_from_base64(media_type: str, data: str, *, param: str) -> ImageBlock:
    """Validate a base64 image and return it as an :class:`ImageBlock`.

    Args:
        media_type: The declared media type.
        data: The base64 payload (no ``data:`` prefix).
        param: JSON path of the image's ``source`` object, for errors
            (``messages[0].content[1].source``).

    Raises:
        RequestError: Unsupported media type, empty or invalid base64, too large, or content
            that is recognisably a different format than declared.
    """
    media_type = _normalise_media_type(media_type)
    if media_type not in SUPPORTED_MEDIA_TYPES:
        raise RequestError(
            f"{param}.media_type: unsupported image type {media_type!r}; "
            f"supported: {', '.join(SUPPORTED_MEDIA_TYPES)}",
            param=f"{param}.media_type",
        )
    data_param = f"{param}.data"
    cleaned = data.replace("\r", "").replace("\n", "")
    if not cleaned:
        raise RequestError(f"{data_param}: image data is empty", param=data_param)
    if len(cleaned) > _MAX_B64_CHARS + 4:
        raise RequestError(
            f"{data_param}: image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB",
            param=data_param,
        )
    try:
        raw = binascii.a2b_base64(cleaned, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(
            f"{data_param}: invalid base64 image data ({exc})", param=data_param
        ) from exc
    if len(raw) > MAX_IMAGE_BYTES:
        raise RequestError(
            f"{data_param}: image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB",
            param=data_param,
        )
    sniffed = sniff_media_type(raw)
    if sniffed is not None and sniffed != media_type:
        raise RequestError(
            f"{data_param}: image data is {sniffed} but the declared media type is {media_type}",
            param=data_param,
        )
    return ImageBlock(media_type=media_type, data=cleaned)


def image_from_data_url(url: str, *, param: str) -> ImageBlock:
    """Validate an OpenAI ``image_url`` that must be a base64 ``data:`` URL.

    Args:
        url: The URL string.
        param: JSON path of the ``url`` field, for errors.

    Raises:
        RequestError: A remote URL (never fetched), a malformed or non-base64 data URL, or any
            of the :func:`image_from_base64` failures.
    """
    stripped = url.strip()
    if stripped.lower().startswith(("http://", "https://")):
        raise RequestError(
            f"{param}: remote image URLs are not supported; send the image inline as a "
            "base64 data URL (data:image/png;base64,...)",
            param=param,
        )
    match = _DATA_URL.fullmatch(stripped)
    if match is None:
        raise RequestError(
            f"{param}: expected a data URL of the form data:<media type>;base64,<data>",
            param=param,
        )
    media_type, params, payload = match.groups()
    if "base64" not in (p.strip().lower() for p in params.split(";")):
        raise RequestError(f"{param}: only base64 data URLs are supported", param=param)
    return _image_or_reparam(media_type, payload, param)


def _image_or_reparam(media_type: str, payload: str, param: str) -> ImageBlock:
    # Errors from the shared validator name `.media_type`/`.data` sub-fields that do not exist in
    # a data URL; re-point them at the URL field itself.
    try:
        return image_from_base64(media_type, payload, param=param)
    except RequestError as exc:
        message = exc.message.replace(f"{param}.data", param).replace(f"{param}.media_type", param)
        raise RequestError(message, param=param) from None
