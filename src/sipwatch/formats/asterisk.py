"""Asterisk messages (1.2 to 22): chan_sip, PJSIP, acl.c, AMI, IAX2 and FreePBX dialplan lines.

One `Form` per message family; the reason texts and their kinds are data. The security log
(`SecurityEvent=...`) has its own structured reader in `security.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sipwatch.event import Evidence, Kind, Service
from sipwatch.formats.form import ADDR, Form
from sipwatch.netaddr import Shape

K = Kind
STRONG = Evidence.STRONG

CHAN_SIP = ("chan_sip.c",)
PJSIP_DISTRIBUTOR = ("res_pjsip/pjsip_distributor.c", "pjsip_distributor.c")
PJSIP_SESSION = ("res_pjsip_session.c",)
IAX2 = ("chan_iax2.c",)
MANAGER = ("manager.c",)

# chan_sip `Registration from '%s' failed for '%s' - %s`: reason text -> kind (handle_request_register)
REGISTER_REASONS = {
    "Wrong password": K.AUTH_FAILURE,
    "Username/auth name mismatch": K.AUTH_FAILURE,
    "No matching peer found": K.UNKNOWN_ACCOUNT,
    "Not a local domain": K.UNKNOWN_ACCOUNT,
    "Not a local SIP domain": K.UNKNOWN_ACCOUNT,
    "Device does not match ACL": K.ACL_DENIED,
    "ACL error (permit/deny)": K.ACL_DENIED,
    "Peer is not supposed to register": K.ACL_DENIED,
    "Device not configured to use this transport type": K.ACL_DENIED,
    "RTP initialization failed": K.AUTH_FAILURE,
    "Unknown failure": K.AUTH_FAILURE,
    "Unknown error": K.AUTH_FAILURE,
}

# PJSIP log_failed_request() reasons
PJSIP_REASONS = {
    "No matching endpoint found": K.UNKNOWN_ACCOUNT,
    "Not match Endpoint ACL": K.ACL_DENIED,
    "Not match Endpoint Contact ACL": K.ACL_DENIED,
    "Failed to authenticate": K.AUTH_FAILURE,
    "Error to authenticate": K.AUTH_FAILURE,
}

# main/acl.c purposes: (service, the address is the packet source)
ACL_PURPOSES = {
    "SIP Peer ACL": (Service.SIP, True),
    "SIP contact ACL": (Service.SIP, False),
    "SIP ACL": (Service.PJSIP, True),
    "SIP Contact ACL": (Service.PJSIP, False),
    "IAX2 Peer ACL": (Service.IAX2, True),
    "IAX2 user ACL": (Service.IAX2, True),
    "Manager User ACL": (Service.AMI, True),
    "ARI User ACL": (Service.HTTP, True),
    "HTTP Path ACL": (Service.HTTP, True),
}


def _alt(texts: Iterable[str]) -> str:
    """A regex alternation of literal texts, longest first."""
    return "|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True))


FORMS: tuple[Form, ...] = (
    # --- chan_sip -------------------------------------------------------------------------------
    Form(
        "chan_sip.register_failed", "asterisk", Service.SIP, "' failed for '",
        r"Registration from '(?P<account>.*)' failed for '(?P<addr>" + ADDR + r")' - (?P<reason>"
        + _alt(REGISTER_REASONS) + ")",
        kinds=REGISTER_REASONS, separator="' failed for '", trusted="tail", files=CHAN_SIP,
        strong_reasons=frozenset({"Wrong password", "Username/auth name mismatch"}),
    ),
    Form(
        "chan_sip.call_rejected", "asterisk", Service.SIP, "rejected because extension not found",
        r"Call from '(?P<name>[^'\n]*)' \((?P<addr>" + ADDR + r")\) to extension '(?P<target>.*)' "
        r"rejected because extension not found in context '(?P<context>[^'\n]*)'\.",
        kind=K.REJECTED_CALL, separator=") to extension '", trusted="head", files=CHAN_SIP,
        multiline="rejected because extension not found", openers=("to extension '",),
    ),
    Form(
        "chan_sip.call_rejected_noaddr", "asterisk", Service.SIP, "rejected because extension not found",
        r"Call from '(?P<name>[^'\n]*)' to extension '(?P<target>.*)' "
        r"rejected because extension not found(?: in context '(?P<context>[^'\n]*)')?\.",
        kind=K.REJECTED_CALL, address_trusted=False, files=CHAN_SIP,
        multiline="rejected because extension not found", openers=("to extension '",),
    ),
    Form(
        "chan_sip.fake_auth_rejection", "asterisk", Service.SIP, "Sending fake auth rejection for ",
        r"Sending fake auth rejection for (?:user|device) (?P<account>.*)",
        kind=K.UNKNOWN_ACCOUNT, address_trusted=False, files=CHAN_SIP,
    ),
    Form(
        "chan_sip.auth_failed_noaddr", "asterisk", Service.SIP, "Failed to authenticate ",
        r"Failed to authenticate (?:user|device) (?P<account>.*?)"
        r"(?: for (?P<method>[A-Z]+)(?:, code = (?P<code>-?\d+))?)?",
        kind=K.AUTH_FAILURE, address_trusted=False, files=CHAN_SIP,
    ),
    Form(
        "chan_sip.invalid_to", "asterisk", Service.SIP, "(missing sip:) trying to use anyway",
        r"Invalid to address: '(?P<account>.*)' from (?P<addr>" + ADDR
        + r") \(missing sip:\) trying to use anyway\.\.\.",
        kind=K.MALFORMED, shape=Shape.BARE, separator="' from ", trusted="tail", files=CHAN_SIP,
    ),
    Form(
        "chan_sip.contact_acl_domain", "asterisk", Service.SIP, "disallowed by contact ACL",
        r"(?:Domain|Host) '(?P<account>.*)' disallowed by contact ACL \(violating IP (?P<addr>" + ADDR + r")\)",
        kind=K.ACL_DENIED, shape=Shape.BARE, address_trusted=False, files=CHAN_SIP,
    ),
    Form(
        "chan_sip.tcp_too_large", "asterisk", Service.SIP, "because way too large",
        r"Rejecting TCP/TLS packet from '(?P<addr>" + ADDR + r")' because way too large: \d+",
        kind=K.MALFORMED, evidence=STRONG, trusted="head", files=CHAN_SIP, transport="TCP",
    ),
    Form(
        "chan_sip.hacking_attempt", "asterisk", Service.SIP, "hacking attempt detected '",
        r"hacking attempt detected '(?P<addr>" + ADDR + r")'",
        kind=K.SCANNER, trusted="head", separator="hacking attempt detected '",
    ),
    # --- main/acl.c --------------------------------------------------------------------------------
    Form(
        "acl.rejected", "asterisk", Service.SIP, "Rejecting '",
        r"(?P<purpose>" + _alt(p for p, (_, source) in ACL_PURPOSES.items() if source)
        + r")(?:: ?)?Rejecting '(?P<addr>" + ADDR
        + r")' due to (?:a failure to pass|use of an invalid) ACL '(?P<acl>[^'\n]*)'\.?",
        kind=K.ACL_DENIED, shape=Shape.BARE, trusted="head", separator="Rejecting '",
        service_of=lambda m: ACL_PURPOSES[m["purpose"]][0],
    ),
    Form(  # contact ACLs: the address was taken from the Contact header, which the caller writes
        "acl.rejected_contact", "asterisk", Service.SIP, "Rejecting '",
        r"(?P<purpose>" + _alt(p for p, (_, source) in ACL_PURPOSES.items() if not source)
        + r")(?:: ?)?Rejecting '(?P<addr>" + ADDR
        + r")' due to (?:a failure to pass|use of an invalid) ACL '(?P<acl>[^'\n]*)'\.?",
        kind=K.ACL_DENIED, shape=Shape.BARE, address_trusted=False,
        service_of=lambda m: ACL_PURPOSES[m["purpose"]][0],
    ),
    # --- PJSIP ----------------------------------------------------------------------------------
    Form(
        "pjsip.request_failed", "asterisk", Service.PJSIP, "' failed for '",
        r"Request (?:'(?P<method>[^'\s]*)' )?from '(?P<from>.*)' failed for '(?P<addr>" + ADDR
        + r")' \(callid: (?P<callid>.*)\) - (?P<reason>" + _alt(PJSIP_REASONS)
        + r")(?: after (?P<tries>\d+) tries in [\d.]+ ms)?",
        kinds=PJSIP_REASONS, shape=Shape.PORT, separator="' failed for '", trusted="none",
        files=PJSIP_DISTRIBUTOR, strong_reasons=frozenset({"Failed to authenticate"}),
        multiline=") - ", openers=("Request '", "Request from '"),
    ),
    # pjproject drops a request it cannot parse before Asterisk sees it (a fuzzer, a broken scanner):
    # `sip_transport.c Dropping 359 bytes packet from UDP 198.51.100.66:5072 : PJSIP syntax error …`
    Form(
        "pjsip.dropped_packet", "asterisk", Service.PJSIP, "bytes packet from ",
        r"\s*sip_transport\.c Dropping \d+ bytes packet from (?:UDP|TCP|TLS|WSS?) (?P<addr>" + ADDR + r") : .*",
        kind=K.MALFORMED, shape=Shape.PORT, separator="bytes packet from ", trusted="head", files=("pjproject",),
    ),
    Form(
        "pjsip.call_rejected", "asterisk", Service.PJSIP, "rejected because extension not found",
        r"(?:Call from '(?P<name>[^'\n]*)' | *(?P<channel>[^\s']+): Call )\((?P<addr>[A-Za-z]{2,4}:" + ADDR
        + r")\) to extension '(?P<target>.*)' rejected because extension not found in context '(?P<context>[^'\n]*)'\.",
        kind=K.REJECTED_CALL, shape=Shape.TRANSPORT, separator=") to extension '", trusted="head",
        files=PJSIP_SESSION, multiline="rejected because extension not found", openers=("to extension '",),
    ),
    Form(
        "pjsip.acl_failed", "asterisk", Service.PJSIP, "did not pass ACL test",
        r"Incoming SIP message from (?P<addr>" + ADDR + r") did not pass ACL test",
        kind=K.ACL_DENIED, shape=Shape.PORT, trusted="head", separator="Incoming SIP message from ",
        port_zero_untrusted=True,
    ),
    Form(
        "pjsip.registrar", "asterisk", Service.PJSIP,
        ("has no configured AORs", "' not found for endpoint '", "has no configured max_contacts",
         "will exceed max contacts of", "to an AOR with a non-SIP URI"),
        r"(?:Endpoint '(?P<endpoint>[^'\n]*)' \((?P<addr>" + ADDR + r")\) (?P<reason>has no configured AORs"
        r"|attempted to register to an AOR with a non-SIP URI)"
        r"|AOR '(?P<account>.*)' not found for endpoint '(?P<endpoint2>[^'\n]*)' \((?P<addr2>" + ADDR + r")\)"
        r"|AOR '(?P<account3>.*)' has no configured max_contacts\. Endpoint '(?P<endpoint3>[^'\n]*)' \((?P<addr3>"
        + ADDR + r")\) unable to register"
        r"|Registration attempt from endpoint '(?P<endpoint4>[^'\n]*)' \((?P<addr4>" + ADDR
        + r")\) to AOR '(?P<account4>.*)' will exceed max contacts of \d+)",
        kind=K.ACL_DENIED, shape=Shape.PORT, trusted="none", evidence=STRONG,
        files=("res_pjsip_registrar.c",),
    ),
    # --- AMI (manager.c) ------------------------------------------------------------------------
    Form(
        "ami.nonexistent_user", "asterisk", Service.AMI, "tried to authenticate with nonexistent user",
        r"(?P<addr>" + ADDR + r") tried to authenticate with nonexistent user '(?P<account>.*)'",
        kind=K.UNKNOWN_ACCOUNT, shape=Shape.BARE, trusted="head", evidence=STRONG, transport="TCP",
        files=MANAGER,
    ),
    Form(
        "ami.failed_acl", "asterisk", Service.AMI, "failed to pass IP ACL as",
        r"(?P<addr>" + ADDR + r") failed to pass IP ACL as '(?P<account>.*)'",
        kind=K.ACL_DENIED, shape=Shape.BARE, trusted="head", evidence=STRONG, transport="TCP", files=MANAGER,
    ),
    Form(
        "ami.auth_failed", "asterisk", Service.AMI, "failed to authenticate as",
        r"(?P<addr>" + ADDR + r") failed to authenticate as '(?P<account>.*)'",
        kind=K.AUTH_FAILURE, shape=Shape.BARE, trusted="head", evidence=STRONG, transport="TCP", files=MANAGER,
    ),
    Form(
        "ami.auth_timeout", "asterisk", Service.AMI, "failed to authenticate in",
        r"Client from (?P<addr>" + ADDR + r"), failed to authenticate in \d+ seconds",
        kind=K.SCANNER, shape=Shape.BARE, trusted="head", evidence=STRONG, transport="TCP", files=MANAGER,
    ),
    Form(
        "ami.logged_on", "asterisk", Service.AMI, "' logged on from ",
        r"(?:HTTP )?Manager '(?P<account>[^'\n]*)' logged (?:on|in) from (?P<addr>" + ADDR + r")",
        kind=K.AUTH_SUCCESS, shape=Shape.BARE, trusted="tail", evidence=STRONG, transport="TCP",
        separator="' logged on from ",
    ),
    # --- IAX2 -----------------------------------------------------------------------------------
    Form(
        "iax2.no_registration", "asterisk", Service.IAX2, "No registration for peer '",
        r"No registration for peer '(?P<account>.*)' \(from (?P<addr>" + ADDR + r")\)",
        kind=K.UNKNOWN_ACCOUNT, trusted="tail", separator="(from ", files=IAX2,
    ),
    Form(
        "iax2.not_dynamic", "asterisk", Service.IAX2, "' is not dynamic (from ",
        r"Peer '(?P<account>.*)' is not dynamic \(from (?P<addr>" + ADDR + r")\)",
        kind=K.ACL_DENIED, trusted="tail", separator="(from ", files=IAX2,
    ),
    Form(
        "iax2.host_failed", "asterisk", Service.IAX2, "Host ",
        r"Host (?P<addr>" + ADDR + r") (?P<reason>failed MD5 authentication|did not provide proper plaintext password"
        r"|denied access to register peer|failed to authenticate)"
        r"(?: for| as)? '?(?P<account>.*?)'?(?: \((?P<md5>\w*) != \w*\))?",
        kinds={"denied access to register peer": K.ACL_DENIED}, kind=K.AUTH_FAILURE, trusted="head",
        strong_reasons=frozenset({"failed MD5 authentication"}), files=IAX2,
    ),
    Form(
        "iax2.empty_registration", "asterisk", Service.IAX2, "Empty registration from ",
        r"Empty registration from (?P<addr>" + ADDR + r")",
        kind=K.MALFORMED, trusted="head", files=IAX2,
    ),
    Form(
        "iax2.rejected", "asterisk", Service.IAX2, "attempt from ",
        r"Rejected (?:connect|dial) attempt from (?P<addr>" + ADDR + r"), "
        r"(?:who was trying to reach|request) '(?P<target>.*)@(?P<context>[^'\n]*)'(?: does not exist)?",
        kind=K.REJECTED_CALL, trusted="head", files=IAX2, separator="attempt from ",
    ),
    Form(
        "iax2.maxcallnumber", "asterisk", Service.IAX2, "maxcallnumber limit of ",
        r"maxcallnumber limit of \d+ for (?P<addr>" + ADDR + r") has been reached!",
        kind=K.FLOOD, trusted="head", files=IAX2,
    ),
    Form(
        "iax2.calltoken", "asterisk", Service.IAX2, ("failed CallToken hash inspection", "calltoken timestamp"),
        r"(?:Address (?P<addr>" + ADDR + r") failed CallToken hash inspection"
        r"|Too much delay in IAX2 calltoken timestamp from address (?P<addr2>" + ADDR + r"))",
        kind=K.FLOOD, trusted="head", files=IAX2,
    ),
    Form(
        "iax2.calltoken_required", "asterisk", Service.IAX2, "CallToken Support required",
        r"Call rejected, CallToken Support required\. If unexpected, resolve by placing address (?P<addr>"
        + ADDR + r") in the calltokenoptional list or setting user (?P<account>.*) requirecalltoken=no",
        kind=K.MALFORMED, trusted="head", files=IAX2, separator="placing address ",
    ),
    # --- FreePBX dialplan Log() lines (prefix `Ext. <exten>`, caller text) ------------------------
    Form(
        "freepbx.unknown_connection", "asterisk", Service.DIALPLAN, "Rejecting unknown SIP connection from ",
        r"\"Rejecting unknown SIP connection from (?P<addr>" + ADDR + r")\"$",
        kind=K.REJECTED_CALL, trusted="tail", search=True, files=("Ext.",),
    ),
    Form(
        "freepbx.friendly_scanner", "asterisk", Service.DIALPLAN, "Friendly Scanner from ",
        r"Friendly Scanner from (?P<addr>\S+)$",
        kind=K.SCANNER, shape=Shape.BARE, address_trusted=False, search=True, files=("Ext.",),
    ),
    Form(
        "asterisk.unknown_peer_call", "asterisk", Service.SIP, "Received incoming SIP connection from unknown peer",
        r"(?:-- )?Executing \[(?P<target>[^@\n]*)@(?P<context>[^:\n]*):\d+\] NoOp\(\"(?:SIP|PJSIP)/(?P<addr>" + ADDR
        + r")-[0-9a-f]+\", \"Received incoming SIP connection from unknown peer to (?P<target2>.*)\"\)"
        r"(?: in new stack)?",
        kind=K.CALL_ATTEMPT, shape=Shape.BARE, trusted="head",
    ),
)

#: Known messages that are not attacks (our own trunks' registrations, normal digest fallbacks): they
#: share markers with attack messages, and are neither events nor "unknown formats".
BENIGN = (
    r"Failed to authenticate on (?:REGISTER|INVITE|SUBSCRIBE|MESSAGE|OPTIONS) to ",
    r"Forbidden - wrong password on authentication for REGISTER for ",
    r"Registration of '.*' rejected: '.*' from: '",
)
