"""Errors shared across the package: what a source raises, and how a source may be named in messages."""

from __future__ import annotations

from urllib.parse import urlsplit


class SourceError(Exception):
    """The input cannot be read (missing, unreadable, corrupt) or named wrongly; the message says why."""


def redact(spec: str) -> str:
    """A source as it may be shown (logs, `status`, errors): an `ami://` or database URL without its secret."""
    if "://" not in spec:
        return spec
    try:
        password = urlsplit(spec).password
    except ValueError:
        return spec
    return spec if password is None else spec.replace(f":{password}@", ":***@", 1)
