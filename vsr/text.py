"""Small wording helpers for messages and summaries."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``; ``plural`` for nouns that do not just take an s."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
