"""Kamailio and OpenSIPS: pike blocks, parse errors, the default-cfg xlog lines and the documented
site-specific auth-failure xlog shapes. The server (and so the event's service) comes from the prefix.
"""

from __future__ import annotations

from sipwatch.event import Kind, Service
from sipwatch.formats.form import ADDR, Form
from sipwatch.netaddr import Shape

K = Kind
KAM = Service.KAMAILIO

FORMS: tuple[Form, ...] = (
    # pike module (both servers): `PIKE - BLOCKing ip 198.51.100.7, node=0x7f...` (IPv6 unbracketed)
    Form(
        "proxy.pike_block", "proxy", KAM, "PIKE - BLOCKing ip ",
        r"PIKE - BLOCKing ip (?P<addr>" + ADDR + r"), node=(?:0x)?[0-9a-fA-F]+",
        kind=K.FLOOD, shape=Shape.BARE, trusted="head",
    ),
    # Kamailio default cfg (WITH_ANTIFLOOD): `ALERT: pike blocking REGISTER from sip:1001@x (IP:198.51.100.7:5060)`
    Form(
        "kamailio.pike_xlog", "proxy", KAM, "pike blocking ",
        r"(?:ALERT: )?pike blocking (?P<method>\S+) from (?P<from>.*) \(IP:(?P<addr>" + ADDR + r")\)",
        kind=K.FLOOD, shape=Shape.PORT, separator="(IP:", trusted="tail",
    ),
    # Kamailio core: `core parsing of SIP message failed (198.51.100.7:5060/1)`
    Form(
        "kamailio.parse_failed", "proxy", KAM, "core parsing of SIP message failed (",
        r"core parsing of SIP message failed \((?P<addr>" + ADDR + r")/(?P<proto>\d)\)",
        kind=K.MALFORMED, shape=Shape.PORT, trusted="head",
    ),
    # Kamailio default cfg 5.4+: `Malformed SIP request from 198.51.100.7:5060`
    Form(
        "kamailio.malformed", "proxy", KAM, "Malformed SIP request from ",
        r"Malformed SIP request from (?P<addr>" + ADDR + r")",
        kind=K.MALFORMED, shape=Shape.PORT, trusted="head",
    ),
    # Documented site-specific shape: `AUTH_FAILED src=198.51.100.7:5060 method=REGISTER from=... ua=[...] rc=-2`
    Form(
        "proxy.auth_failed_xlog", "proxy", KAM, "AUTH_FAILED src=",
        r"AUTH_FAILED src=(?P<addr>" + ADDR + r") method=(?P<method>\S*) from=(?P<from>.*?) ua=\[(?P<ua>.*)\]"
        r"(?: rc=(?P<rc>-?\d+))?",
        kind=K.AUTH_FAILURE, shape=Shape.PORT, trusted="head", separator="AUTH_FAILED src=",
    ),
    # OpenSIPS core: `Unable to parse msg received from [198.51.100.7:5060]`
    Form(
        "opensips.parse_failed", "proxy", Service.OPENSIPS, "Unable to parse msg received from [",
        r"Unable to parse msg received from \[(?P<addr>" + ADDR + r")\]",
        kind=K.MALFORMED, shape=Shape.PORT, trusted="head",
    ),
    # OpenSIPS site-specific (<= 3.3 docs): `AUTH failed for sip:1001@x from 198.51.100.7:5060`
    Form(
        "opensips.auth_failed_xlog", "proxy", Service.OPENSIPS, "AUTH failed for ",
        r"AUTH failed for (?P<from>.*) from (?P<addr>" + ADDR + r")",
        kind=K.AUTH_FAILURE, shape=Shape.PORT, separator=" from ", trusted="tail",
    ),
)
