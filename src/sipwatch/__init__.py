"""sipwatch: protects SIP servers from scanners, brute force, enumeration and toll fraud."""

__version__ = "0.1.0"
