"""Responders: what acts on decisions. `firewall/` bans addresses in the kernel; alerts come later."""
