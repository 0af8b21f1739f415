"""User-Agent fingerprints of SIP scanning and cracking tools (data, matched case-insensitively).

A User-Agent is caller text, so it is only a hint: it can name an attacker's tool, never an address.
Sources: SIPVicious (`friendly-scanner`, svhelper.py), sippts (`pplsip`), Kamailio's default cfg list
and community block lists (see the project README).
"""

from __future__ import annotations

#: (lower-case substring of the User-Agent, tool name)
SCANNER_USER_AGENTS: tuple[tuple[str, str], ...] = (
    ("friendly-scanner", "SIPVicious"),
    ("friendly-request", "SIPVicious (variant)"),
    ("sipvicious", "SIPVicious"),
    ("pplsip", "sippts"),
    ("sipcli", "SIPCLI"),
    ("vaxsipuseragent", "VaxSIP scanner"),
    ("vaxipuseragent", "VaxSIP scanner"),
    ("sundayddr", "sundayddr"),
    ("iwar", "iWar"),
    ("sipsak", "sipsak"),
    ("sip-scan", "sip-scan"),
    ("sivus", "SIVuS"),
    ("smap", "smap"),
    ("siparmyknife", "siparmyknife"),
    ("sipbomber", "SIPBomber"),
    ("portsip voip sdk", "PortSIP SDK scanner"),
    ("test agent", "Test Agent"),
)


def scanner_name(user_agent: str | None) -> str | None:
    """The tool a User-Agent names, or None."""
    if not user_agent:
        return None
    ua = user_agent.lower()
    for needle, tool in SCANNER_USER_AGENTS:
        if needle in ua:
            return tool
    return None
