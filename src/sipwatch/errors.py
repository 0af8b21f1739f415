"""Errors shared across the package (here, so that the command line can catch them without loading the modules
that raise them: a scan needs neither the store, nor the firewall, nor the daemon's socket), and how a source
may be named in messages."""

from __future__ import annotations


class SourceError(Exception):
    """The input cannot be read (missing, unreadable, corrupt) or named wrongly; the message says why."""


class StoreError(Exception):
    """The state directory or database cannot be used; the message says why."""


class FirewallError(Exception):
    """A firewall operation failed; the message says which command and why."""


class ControlError(Exception):
    """No daemon answers on the socket (or it answered with an error)."""


def redact(spec: str) -> str:
    """A source as it may be shown (logs, `status`, errors): an `ami://` or database URL without its secret."""
    if "://" not in spec:
        return spec
    from urllib.parse import urlsplit  # (here: a parse worker need not import it)

    try:
        password = urlsplit(spec).password
    except ValueError:
        return spec
    return spec if password is None else spec.replace(f":{password}@", ":***@", 1)
