"""A minimal SIP REGISTER client with digest authentication, for tests against the testbed's Asterisk.

Run inside the testbed's network namespace; it talks to loopback only:
`python tests/sipclient.py 127.0.0.1 USER PASSWORD LOCAL_PORT ATTEMPTS` prints the final status codes.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import sys


def _request(server: str, port: int, user: str, callid: str, cseq: int, auth: str = "") -> bytes:
    branch = f"z9hG4bK{random.getrandbits(32):x}"
    return (
        f"REGISTER sip:{server} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{server}>;tag={random.getrandbits(32):x}\r\n"
        f"To: <sip:{user}@{server}>\r\n"
        f"Call-ID: {callid}\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@127.0.0.1:{port}>\r\n{auth}"
        "Expires: 60\r\nUser-Agent: sipwatch-test\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _digest(user: str, password: str, server: str, realm: str, nonce: str) -> str:
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:sip:{server}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="sip:{server}", '
            f'response="{response}", algorithm=MD5\r\n')


def _exchange(sock: socket.socket, message: bytes, server: str) -> str:
    """Send and wait for the final answer, retransmitting as SIP over UDP does (T1 = 0.5 s, doubling)."""
    timeout = 0.5
    for _ in range(7):
        sock.sendto(message, (server, 5060))
        sock.settimeout(timeout)
        try:
            while True:
                reply = sock.recv(4096).decode(errors="replace")
                if not reply.startswith("SIP/2.0 1"):  # skip provisional answers
                    return reply
        except TimeoutError:
            timeout = min(timeout * 2, 4.0)
    raise TimeoutError(f"no answer from {server}")


def register(server: str, user: str, password: str, local_port: int, attempts: int) -> list[int]:
    """`attempts` REGISTERs, each answering the server's challenge; the final status code of each."""
    codes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", local_port))
        callid = f"{random.getrandbits(64):x}@sipwatch-test"  # one Call-ID for every guess, as svcrack does
        for n in range(attempts):
            reply = _exchange(sock, _request(server, local_port, user, callid, 2 * n + 1), server)
            nonce, realm = re.search(r'nonce="([^"]+)"', reply), re.search(r'realm="([^"]+)"', reply)
            if nonce is None or realm is None:
                codes.append(int(reply.split()[1]))
                continue
            auth = _digest(user, password, server, realm[1], nonce[1])
            reply = _exchange(sock, _request(server, local_port, user, callid, 2 * n + 2, auth), server)
            codes.append(int(reply.split()[1]))
    return codes


if __name__ == "__main__":
    print(register(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
