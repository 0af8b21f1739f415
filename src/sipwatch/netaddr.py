"""Every address shape that SIP servers write, turned into (ip, port).

The shape is a property of the *format* (a row of a format table), not guessed from the text:
`2001:db8::7:5060` is itself a valid IPv6 address, and only the format tells whether its last
group is a port (Asterisk PJSIP `'%s:%d'`, Kamailio `$si:$sp`) or part of the address.
"""

from __future__ import annotations

import ipaddress
import os
from enum import Enum
from functools import lru_cache

from sipwatch.event import IPAddress


class Shape(Enum):
    BARE = "bare"  # 198.51.100.7, 2001:db8::7 (never a port)
    PORT = "port"  # 198.51.100.7:5060, [2001:db8::7]:5060, 2001:db8::7:5060 (always a port)
    OPTPORT = "optport"  # any of the above; an unbracketed IPv6 address has no port
    TUPLE = "tuple"  # IPV4/UDP/198.51.100.7/5060 (security log); transport may be missing
    TRANSPORT = "transport"  # UDP:198.51.100.7:5060, TCP:[2001:db8::7]:5060, UDP:2001:db8::7:5060


Address = tuple[IPAddress, int | None, str | None]  # ip, port, transport

_TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "WS", "WSS", "SCTP"})


class _CachedHash:
    """Addresses whose hash is computed once: detectors key many dicts by address, and the standard
    classes hash by formatting the address as hex text every time (where `_addr.c` is built, the hash is
    read from `_hash` in C: no Python call per dict lookup). Their text is kept once made too (a
    report names each address several times; the standard classes format it anew each time). An IPv4
    address made from text has that text: `ipaddress` takes no other form than the one it writes (no
    leading zeros, four decimal parts)."""

    __slots__ = ()
    _text_is_canonical = False  # (IPv4: see above)

    def __init__(self, address: object) -> None:
        super().__init__(address)  # type: ignore[call-arg]
        self._hash: int = super().__hash__()  # type: ignore[misc]
        self._text: str | None = address if self._text_is_canonical and address.__class__ is str else None  # type: ignore[misc]

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._text = super().__str__()  # type: ignore[misc]
        return text


class _IPv4(_CachedHash, ipaddress.IPv4Address):
    __slots__ = ("_hash", "_text")
    _text_is_canonical = True


class _IPv6(_CachedHash, ipaddress.IPv6Address):
    __slots__ = ("_hash", "_text")


try:  # pragma: no cover - which branch runs depends on the build
    from sipwatch import _addr  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _addr = None
if _addr is not None and os.environ.get("SIPWATCH_NATIVE", "1") != "0":  # (as formats/native.py's `available`)
    for _class in (_IPv4, _IPv6):
        _addr.read_hash_in_c(_class)  # the same hash, read from `_hash` in C: no Python call per dict lookup


def ipv6_network(ip: IPAddress, prefix: int) -> ipaddress.IPv6Network:
    """The IPv6 network of `prefix` bits that holds `ip` (an IPv6 address): what a network ban covers."""
    shift = 128 - prefix
    return ipaddress.IPv6Network((int(ip) >> shift << shift, prefix))


@lru_cache(maxsize=16384)
def ip_of(text: str) -> IPAddress | None:
    """A validated address, or None. IPv4-mapped IPv6 addresses are returned as IPv4."""
    try:
        if ":" not in text:
            return _IPv4(text)
        ip = _IPv6(text)
    except ValueError:
        return None
    if ip.ipv4_mapped is not None:
        return _IPv4(str(ip.ipv4_mapped))
    if ip.scope_id:
        return None
    return ip


def _port(text: str) -> int | None:
    if not text.isdigit() or len(text) > 5:
        return None
    value = int(text)
    return value if value <= 65535 else None


def _hostport(text: str, shape: Shape) -> Address | None:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        if not rest:
            ip = ip_of(host)
            return (ip, None, None) if ip is not None and shape is not Shape.PORT else None
        if not rest.startswith(":"):
            return None
        port = _port(rest[1:])
        ip = ip_of(host)
        return (ip, port, None) if ip is not None and port is not None else None
    colons = text.count(":")
    if colons == 0:
        ip = ip_of(text)
        return (ip, None, None) if ip is not None and shape is not Shape.PORT else None
    if colons == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text)
        ip = ip_of(host)
        return (ip, port, None) if ip is not None and port is not None else None
    if shape is Shape.PORT:  # unbracketed IPv6 followed by :port
        host, _, port_text = text.rpartition(":")
        port = _port(port_text)
        ip = ip_of(host)
        return (ip, port, None) if ip is not None and port is not None else None
    ip = ip_of(text)
    return (ip, None, None) if ip is not None else None


@lru_cache(maxsize=16384)
def parse_address(text: str, shape: Shape) -> Address | None:
    """Parse `text` written in `shape`; None when it is not a valid address of that shape."""
    text = text.strip()
    if shape is Shape.BARE:
        ip = ip_of(text.strip("[]"))
        return (ip, None, None) if ip is not None else None
    if shape is Shape.TUPLE:
        parts = text.split("/")
        if len(parts) == 4:
            family, transport, host, port_text = parts
        elif len(parts) == 3:
            family, host, port_text = parts
            transport = ""
        else:
            return None
        if family not in ("IPV4", "IPV6"):
            return None
        ip = ip_of(host)
        port = _port(port_text)
        if ip is None or port is None:
            return None
        return ip, port, transport.upper() or None
    if shape is Shape.TRANSPORT:
        transport, sep, rest = text.partition(":")
        if not sep or transport.upper() not in _TRANSPORTS:
            return None
        found = _hostport(rest, Shape.PORT)
        return (found[0], found[1], transport.upper()) if found else None
    return _hostport(text, shape)


def ip_of_canonical(text: str) -> IPAddress | None:
    """`ip_of` of text that is an address's own text (what `str` and `host_text` give: a parse worker's): made
    from the address's bytes (`ipaddress` parses text in Python: ~2 us an IPv4 address, ~3 us an IPv6 one, for
    each of an attack's thousands of addresses), and keeping that text, so that a report names it at no cost.
    glibc's `inet_pton` takes an IPv4 address in no other form than its own; an IPv4-mapped IPv6 address goes
    the long way (it is an IPv4 address)."""
    import socket  # (here: a parse worker, which never calls this, need not import it)

    v6 = ":" in text
    try:
        packed = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, text)
    except (OSError, ValueError):
        return ip_of(text)
    if v6 and packed.startswith(_MAPPED):
        return ip_of(text)
    ip: _IPv4 | _IPv6 = (_IPv6 if v6 else _IPv4)(int.from_bytes(packed, "big"))
    ip._text = text
    return ip


_MAPPED = bytes(10) + b"\xff\xff"  # the first 12 bytes of an IPv4-mapped IPv6 address


def host_text(host: str) -> str | None:
    """The canonical text of an address as written (`ip_of`, then `str`): the native fast lane's view."""
    ip = ip_of(host)
    return None if ip is None else str(ip)
