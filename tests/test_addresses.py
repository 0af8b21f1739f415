"""Address shapes (reference §1.1) through `sipwatch.netaddr.parse_address`.

The shape is a property of the format row, never guessed from the text: `2001:db8::7:5060` is itself
a valid IPv6 address, and only the format says whether its last group is a port.
"""

from __future__ import annotations

import pytest

from sipwatch.netaddr import Shape, ip_of, parse_address


def _parsed(text: str, shape: Shape) -> tuple[str, int | None, str | None] | None:
    found = parse_address(text, shape)
    if found is None:
        return None
    ip, port, transport = found
    return str(ip), port, transport


@pytest.mark.parametrize(
    ("text", "shape", "expected"),
    [
        # IPv4 bare: Asterisk <=1.6 chan_sip, *_stringify_addr(), FreeSWITCH network_ip, pike
        pytest.param("198.51.100.7", Shape.BARE, ("198.51.100.7", None, None), id="ipv4-bare"),
        pytest.param("198.51.100.7", Shape.OPTPORT, ("198.51.100.7", None, None), id="ipv4-optport"),
        # IPv4:port: ast_sockaddr_stringify() (chan_sip >=1.8), pj_sockaddr_print(..., 3)
        pytest.param("198.51.100.7:5060", Shape.PORT, ("198.51.100.7", 5060, None), id="ipv4-port"),
        pytest.param("198.51.100.7:5060", Shape.OPTPORT, ("198.51.100.7", 5060, None), id="ipv4-port-optport"),
        # [IPv6]:port
        pytest.param("[2001:db8::7]:5060", Shape.PORT, ("2001:db8::7", 5060, None), id="ipv6-bracketed-port"),
        pytest.param("[2001:db8::7]:5060", Shape.OPTPORT, ("2001:db8::7", 5060, None), id="ipv6-bracketed-optport"),
        # IPv6 bare: *_stringify_addr(), FreeSWITCH, Kamailio pike
        pytest.param("2001:db8::7", Shape.BARE, ("2001:db8::7", None, None), id="ipv6-bare"),
        pytest.param("2001:db8::7", Shape.OPTPORT, ("2001:db8::7", None, None), id="ipv6-bare-optport"),
        # IPv6:port without brackets: PJSIP '%s:%d' with src_name, Kamailio $si:$sp
        pytest.param("2001:db8::7:5060", Shape.PORT, ("2001:db8::7", 5060, None), id="ipv6-unbracketed-port"),
        pytest.param("2001:db8:0:0:0:0:0:7:5060", Shape.PORT, ("2001:db8::7", 5060, None), id="ipv6-full-form-port"),
        # security log tuple, with and without the transport part
        pytest.param("IPV4/UDP/198.51.100.7/5060", Shape.TUPLE, ("198.51.100.7", 5060, "UDP"), id="tuple-ipv4-udp"),
        pytest.param("IPV6/TCP/2001:db8::7/5038", Shape.TUPLE, ("2001:db8::7", 5038, "TCP"), id="tuple-ipv6-tcp"),
        pytest.param("IPV4/WSS/198.51.100.7/8089", Shape.TUPLE, ("198.51.100.7", 8089, "WSS"), id="tuple-wss"),
        pytest.param("IPV4/198.51.100.7/5060", Shape.TUPLE, ("198.51.100.7", 5060, None), id="tuple-no-transport"),
        # TRANSPORT:addr (PJSIP "Call ... to extension" lines)
        pytest.param("UDP:198.51.100.7:5060", Shape.TRANSPORT, ("198.51.100.7", 5060, "UDP"), id="transport-ipv4"),
        pytest.param("TCP:[2001:db8::7]:5060", Shape.TRANSPORT, ("2001:db8::7", 5060, "TCP"), id="transport-ipv6"),
        pytest.param("UDP:2001:db8::7:5060", Shape.TRANSPORT, ("2001:db8::7", 5060, "UDP"),
                     id="transport-ipv6-unbracketed"),
        pytest.param("TLS:198.51.100.7:5061", Shape.TRANSPORT, ("198.51.100.7", 5061, "TLS"), id="transport-tls"),
        pytest.param("WSS:198.51.100.7:8089", Shape.TRANSPORT, ("198.51.100.7", 8089, "WSS"), id="transport-wss"),
        # the res_pjsip_acl contact variant prints port 0: still a valid address shape
        pytest.param("203.0.113.99:0", Shape.PORT, ("203.0.113.99", 0, None), id="port-zero"),
        pytest.param("198.51.100.7:65535", Shape.PORT, ("198.51.100.7", 65535, None), id="port-max"),
    ],
)
def test_address_shape_is_read(text: str, shape: Shape, expected: tuple[str, int | None, str | None]) -> None:
    """Every shape the servers write yields the address, the port and the transport it holds."""
    assert _parsed(text, shape) == expected


@pytest.mark.parametrize(
    ("text", "shape", "expected"),
    [
        pytest.param("2001:db8::7:5060", Shape.BARE, ("2001:db8::7:5060", None, None), id="bare"),
        pytest.param("2001:db8::7:5060", Shape.OPTPORT, ("2001:db8::7:5060", None, None), id="optport"),
        pytest.param("2001:db8::7:5060", Shape.PORT, ("2001:db8::7", 5060, None), id="port"),
    ],
)
def test_last_ipv6_group_is_a_port_only_when_the_format_says_so(
    text: str, shape: Shape, expected: tuple[str, int | None, str | None]
) -> None:
    """`2001:db8::7:5060` is a valid address; only Shape.PORT strips the last group as a port."""
    assert _parsed(text, shape) == expected


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        pytest.param("::ffff:198.51.100.7", Shape.BARE, id="bare"),
        pytest.param("[::ffff:198.51.100.7]:5060", Shape.PORT, id="bracketed-port"),
        pytest.param("::ffff:198.51.100.7:5060", Shape.PORT, id="unbracketed-port"),
        pytest.param("IPV6/UDP/::ffff:198.51.100.7/5060", Shape.TUPLE, id="tuple"),
        pytest.param("UDP:[::ffff:198.51.100.7]:5060", Shape.TRANSPORT, id="transport"),
    ],
)
def test_ipv4_mapped_ipv6_is_the_ipv4_address(text: str, shape: Shape) -> None:
    """A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they must be banned as IPv4."""
    found = _parsed(text, shape)
    assert found is not None
    assert found[0] == "198.51.100.7"


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        pytest.param("", Shape.BARE, id="empty"),
        pytest.param("   ", Shape.OPTPORT, id="blank"),
        pytest.param("pbx.example.com", Shape.BARE, id="hostname"),
        pytest.param("pbx.example.com:5060", Shape.PORT, id="hostname-port"),
        pytest.param("198.51.100.256", Shape.BARE, id="octet-too-large"),
        pytest.param("198.51.100", Shape.BARE, id="three-octets"),
        pytest.param("198.51.100.07", Shape.BARE, id="leading-zero-octet"),
        pytest.param("2001:db8::7::1", Shape.BARE, id="two-double-colons"),
        pytest.param("fe80::1%eth0", Shape.BARE, id="scoped-ipv6"),
        pytest.param("198.51.100.7:", Shape.PORT, id="empty-port"),
        pytest.param("198.51.100.7:50a0", Shape.PORT, id="port-not-digits"),
        pytest.param("198.51.100.7:-1", Shape.PORT, id="negative-port"),
        pytest.param("198.51.100.7", Shape.PORT, id="port-missing"),
        pytest.param("2001:db8::7", Shape.PORT, id="ipv6-port-missing"),
        pytest.param("198.51.100.7:5060", Shape.BARE, id="port-where-none-belongs"),
        pytest.param("[2001:db8::7", Shape.PORT, id="unclosed-bracket"),
        pytest.param("2001:db8::7]:5060", Shape.PORT, id="unopened-bracket"),
        pytest.param("[2001:db8::7]5060", Shape.PORT, id="bracket-without-colon"),
        pytest.param("IPV5/UDP/198.51.100.7/5060", Shape.TUPLE, id="tuple-bad-family"),
        pytest.param("IPV4/UDP/198.51.100.7", Shape.TUPLE, id="tuple-no-port"),
        pytest.param("IPV4/UDP/198.51.100.7/5060/x", Shape.TUPLE, id="tuple-extra-part"),
        pytest.param("IPV4/UDP/example.com/5060", Shape.TUPLE, id="tuple-hostname"),
        pytest.param("FOO:198.51.100.7:5060", Shape.TRANSPORT, id="unknown-transport"),
        pytest.param("198.51.100.7:5060", Shape.TRANSPORT, id="transport-missing"),
        pytest.param("UDP:198.51.100.7", Shape.TRANSPORT, id="transport-port-missing"),
    ],
)
def test_invalid_input_is_none(text: str, shape: Shape) -> None:
    """Anything that is not a valid address of the shape is refused rather than half-read."""
    assert parse_address(text, shape) is None


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        pytest.param("198.51.100.7:65536", Shape.PORT, id="ipv4-65536"),
        pytest.param("198.51.100.7:99999", Shape.OPTPORT, id="ipv4-99999"),
        pytest.param("198.51.100.7:123456", Shape.PORT, id="six-digits"),
        pytest.param("[2001:db8::7]:70000", Shape.PORT, id="ipv6-bracketed"),
        pytest.param("2001:db8::7:70000", Shape.PORT, id="ipv6-unbracketed"),
        pytest.param("IPV4/UDP/198.51.100.7/65536", Shape.TUPLE, id="tuple"),
        pytest.param("UDP:198.51.100.7:65536", Shape.TRANSPORT, id="transport"),
    ],
)
def test_port_above_65535_is_none(text: str, shape: Shape) -> None:
    """A port that cannot exist means the text is not what the format wrote."""
    assert parse_address(text, shape) is None


@pytest.mark.parametrize("text", ["198.51.100.7", "0.0.0.0", "2001:db8::7", "::1", "fe80::1"])
def test_an_address_is_the_same_dict_key_as_the_standard_class(text: str) -> None:
    """Addresses cache their hash; they stay equal, as dict keys, to `ipaddress` objects and to copies of
    themselves."""
    import copy
    import ipaddress
    import pickle

    ip = ip_of(text)
    assert ip is not None
    standard = ipaddress.ip_address(text)
    assert hash(ip) == hash(standard) == ip.__hash__()
    assert {standard: "found"}[ip] == "found" and {ip: "found"}[standard] == "found"
    assert hash(copy.copy(ip)) == hash(pickle.loads(pickle.dumps(ip))) == hash(ip)



def test_the_hash_read_in_c_refuses_a_class_without_its_slot() -> None:
    """Only a class that keeps its hash in a `_hash` slot can have it read in C."""
    from sipwatch import netaddr

    if netaddr._addr is None:
        pytest.skip("the C address hash is not built (needs gcc and python3-dev at install time)")

    class Plain:
        pass

    class Slotted:
        __slots__ = ("_text",)

    for cls in (Plain, Slotted, int):
        with pytest.raises(TypeError):
            netaddr._addr.read_hash_in_c(cls)


def test_addresses_hash_alike_with_every_c_part_off() -> None:
    """SIPWATCH_NATIVE=0: the Python hash, the same values."""
    import os
    import subprocess
    import sys

    code = ("import ipaddress; from sipwatch.netaddr import ip_of; "
            "print(all(hash(ip_of(t)) == hash(ipaddress.ip_address(t)) for t in ('198.51.100.7', '2001:db8::7')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "SIPWATCH_NATIVE": "0"})
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize("text", ["198.51.100.7", "0.0.0.0", "255.255.255.255", "10.0.0.10"])
def test_an_ipv4_address_made_from_text_has_that_text(text: str) -> None:
    """`ipaddress` reads no other IPv4 form than the one it writes, so the text is kept as is (a report names
    thousands of addresses)."""
    import ipaddress

    address = ip_of(text)
    assert address is not None and address._text == text == str(ipaddress.IPv4Address(text))  # type: ignore[union-attr]


@pytest.mark.parametrize("written", ["2001:DB8:0:0::7", "2001:db8::7", "::FFFF:198.51.100.7", "0:0:0:0:0:0:0:1",
                                     "fe80:0000::1", "198.51.100.7"])
def test_an_address_from_a_wire_tuple_keeps_the_text_its_worker_wrote(written: str) -> None:
    """A parse worker writes an address as `str` does (`host_text`); the main process's address keeps that."""
    import ipaddress

    from sipwatch.formats.wire import ip
    from sipwatch.netaddr import host_text

    text = host_text(written)
    assert text is not None
    address = ip(text)
    assert str(address) == text == str(ipaddress.ip_address(text))
    assert address == ip_of(written)


@pytest.mark.parametrize("text", ["198.51.100.7", "0.0.0.0", "2001:db8::7", "::1", "::ffff:198.51.100.7",
                                  "fe80::1%eth0", "01.2.3.4", "1.2.3", "not an address", "",
                                  "2001:db8::7:5060:1:2:3:4"])
def test_an_address_made_from_its_bytes_is_the_one_its_text_reads(text: str) -> None:
    """`ip_of_canonical` builds an address from what `inet_pton` reads: the same address (or None) as `ip_of`."""
    from sipwatch.netaddr import ip_of_canonical

    made, read = ip_of_canonical(text), ip_of(text)
    assert made == read and type(made) is type(read)
    if made is not None and read is not None:
        assert hash(made) == hash(read) and str(made) == str(read)
