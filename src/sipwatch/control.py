"""The daemon's control socket: one JSON request per connection, one JSON answer, root only.

`sipwatch status`, `bans list/add/del` and `why` talk to the running daemon through it, so that a
manual ban goes through the same firewall batch, store and ban table as the daemon's own. The socket
lives in the state directory with mode 0600; without a running daemon the commands read the store.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from sipwatch.errors import ControlError as ControlError

Handler = Callable[[dict[str, Any]], dict[str, Any]]
SOCKET_NAME = "sipwatch.sock"


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handler: Handler


class _Request(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        try:
            request = json.loads(self.rfile.readline(1 << 16) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            answer = server.handler(request)
        except Exception as exc:
            answer = {"ok": False, "error": str(exc)}
        self.wfile.write(json.dumps(answer).encode() + b"\n")


class ControlServer:
    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        old = os.umask(0o177)  # the socket is created 0600: root only
        try:
            self.server = _Server(path, _Request)
        finally:
            os.umask(old)
        self.server.handler = handler
        self.thread = threading.Thread(target=self.server.serve_forever, name="control", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def request(path: str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to the daemon; ControlError when none is listening."""
    if not os.path.exists(path):
        raise ControlError(f"no daemon socket at {path}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                piece = sock.recv(1 << 16)
                if not piece:
                    break
                data += piece
    except OSError as exc:
        raise ControlError(f"the daemon at {path} does not answer: {exc}") from None
    answer = json.loads(data or b"{}")
    if not isinstance(answer, dict):
        raise ControlError("the daemon's answer is not a JSON object")
    if not answer.get("ok", False):
        raise ControlError(str(answer.get("error", "the daemon refused the request")))
    return answer

