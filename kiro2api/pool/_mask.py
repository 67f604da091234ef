"""Masking of secrets and e-mail addresses for everything the pool shows or logs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from kiro2api.settings import mask_secret

__all__ = ["mask_email", "mask_secret", "scrub"]

#: Long runs of token alphabet: upstream error bodies may echo a token we do not know about
#: (e.g. a freshly rotated one), so anything that looks like one is masked too.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-+/=.:]{32,}")
#: Error texts end up in ``/api/tokens``; keep them short.
_MAX_ERROR_CHARS = 300


def mask_email(email: str) -> str:
    """Mask an e-mail address as the seed's dashboard does (protocol.md §8.6).

    The local part keeps its first and last 2 characters when longer than 4 (else all ``*``);
    of the domain only the last two labels survive (only the top-level one for two labels).
    Anything that is not exactly one ``@`` is returned unchanged.

    >>> mask_email("caidaoli@gmail.com")
    'ca****li@*****.com'
    """
    if email.count("@") != 1:
        return email
    local, domain = email.split("@")
    if len(local) <= 4:
        masked_local = "*" * len(local)
    else:
        masked_local = local[:2] + "*" * (len(local) - 4) + local[-2:]
    labels = domain.split(".")
    if len(labels) == 1:
        masked_domain = "*" * len(domain)
    elif len(labels) == 2:
        masked_domain = "*" * len(labels[0]) + "." + labels[1]
    else:
        keep = labels[-2:]
        masked_domain = ".".join(["*" * len(label) for label in labels[:-2]] + keep)
    return f"{masked_local}@{masked_domain}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove every known secret and anything token-like from ``text``, and shorten it.

    Args:
        text: A message that may contain an upstream response body.
        secrets: The credentials of the account concerned (empty strings are ignored).
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, mask_secret(secret))
    text = _TOKEN_LIKE.sub(lambda m: mask_secret(m.group(0)), text)
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text
