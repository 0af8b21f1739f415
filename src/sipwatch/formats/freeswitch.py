"""FreeSWITCH mod_sofia messages (1.0 to 1.10) and mod_fail2ban's own file."""

from __future__ import annotations

from sipwatch.event import Evidence, Kind, Service
from sipwatch.formats.form import ADDR, Form
from sipwatch.netaddr import Shape

K = Kind
FS = Service.FREESWITCH
SOFIA_REG = ("sofia_reg.c",)

AUTH_OUTCOMES = {"failure": K.AUTH_FAILURE, "challenge": K.AUTH_CHALLENGE}

FORMS: tuple[Form, ...] = (
    # `SIP auth failure (REGISTER) on sofia profile 'internal' for [1001@example.com] from ip 198.51.100.7`
    Form(
        "freeswitch.sip_auth", "freeswitch", FS, "on sofia profile '",
        r"SIP auth (?P<reason>failure|challenge) \((?P<method>[A-Z]+)\) on sofia profile '(?P<profile>[^'\n]*)' "
        r"for \[(?P<account>[^@\n]*?)(?:@(?P<domain>.*))?\] from ip (?P<addr>" + ADDR + r")",
        kinds=AUTH_OUTCOMES, shape=Shape.BARE, separator=" from ip ", trusted="tail",
        strong_reasons=frozenset({"failure"}), files=SOFIA_REG,
    ),
    # `Can't find user [1001@example.com] from 198.51.100.7` (first of three physical lines)
    Form(
        "freeswitch.cant_find_user", "freeswitch", FS, "Can't find user [",
        r"Can't find user \[(?P<account>[^@\n]*?)(?:@(?P<domain>.*))?\] from (?P<addr>" + ADDR + r")",
        kind=K.UNKNOWN_ACCOUNT, shape=Shape.BARE, separator="] from ", trusted="tail", files=SOFIA_REG,
    ),
    # `IP 198.51.100.7 Rejected by acl "domains"` (WARNING); the DEBUG `... Falling back to Digest auth.`
    # variant is normal operation and does not match the anchored end.
    Form(
        "freeswitch.acl_rejected", "freeswitch", FS, " Rejected by ",
        r"IP (?P<addr>" + ADDR + r") Rejected by (?:register acl(?: \"(?P<acl>[^\"\n]*)\")?|acl \"(?P<acl2>[^\"\n]*)\""
        r"|acl (?P<acl3>[^\s\"]+)|user acl \[(?P<acl4>[^\]\n]*)\] and no proxy acl present|user acl (?P<acl5>\S+))",
        kind=K.ACL_DENIED, shape=Shape.BARE, trusted="head",
    ),
    Form(
        "freeswitch.incomplete_auth", "freeswitch", FS, "without a complete header in REGISTER request from",
        r"Can not do authorization without a complete header in REGISTER request from (?P<addr>" + ADDR + r")",
        kind=K.MALFORMED, shape=Shape.PORT, trusted="head", files=SOFIA_REG,
    ),
    # mod_fail2ban: `A registration failed user[1001] ip[198.51.100.7] at[2024-05-01T10:00:00.000000+0200]`
    Form(
        "freeswitch.mod_fail2ban", "freeswitch", FS, ("A registration ", "Abandoned call from "),
        r"(?P<reason>A registration was attempted|A registration failed|Abandoned call from) ?"
        r" user\[(?P<account>.*)\] ip\[(?P<addr>" + ADDR + r")\] at\[(?P<at>[^\]\n]*)\]",
        kinds={"A registration failed": K.AUTH_FAILURE, "A registration was attempted": K.AUTH_CHALLENGE,
               "Abandoned call from": K.CALL_ATTEMPT},
        shape=Shape.BARE, separator="] ip[", trusted="tail", prefixless=True,
        strong_reasons=frozenset({"A registration failed"}), evidence=Evidence.WEAK,
    ),
)

BENIGN = (r"Rejected by acl \"[^\"]*\"\. Falling back to Digest auth\.", r"denied by gw-auth-acl")
