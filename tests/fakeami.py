"""Just enough of Asterisk's manager protocol on loopback for a logged-in listener: the banner, Login,
answers to other actions, events sent on demand, and a dropped connection (Asterisk restarting).
Used by the AMI tests and by `bench/bench_ami_latency.py`."""

from __future__ import annotations

import asyncio
import threading
import time


class FakeAmi:
    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.ready = threading.Event()
        self.logins = 0
        self.secret: str | None = None  # a login with another secret is refused (None: any is accepted)
        #: PJSIPShowEndpoint's answers: endpoint -> its contacts (URI -> user agent), as Asterisk 22 lists them;
        #: SIPshowpeer's (chan_sip): peer -> {"": its user agent}
        self.contacts: dict[str, dict[str, str]] = {}
        self.actions: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0

    def start(self) -> FakeAmi:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._client, "127.0.0.1", 0), self.loop)
        self.port = server.result(5).sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        while True:
            try:
                block = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client went away
            fields = dict(line.split(": ", 1) for line in block.decode().strip().split("\r\n") if ": " in line)
            action_id = fields.get("ActionID", "")
            if fields.get("Action", "").lower() == "login" and self.secret not in (None, fields.get("Secret")):
                writer.write(f"Response: Error\r\nActionID: {action_id}\r\nMessage: Authentication failed"
                             "\r\n\r\n".encode())
                await writer.drain()
                writer.close()  # as Asterisk does
                return
            if fields.get("Action", "").lower() == "login":
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\nMessage: Authentication accepted"
                             "\r\n\r\n".encode())
                self.writers.append(writer)
                self.logins += 1
                self.ready.set()
            elif fields.get("Action") == "SIPshowpeer":
                self.actions.append(fields)
                agent = self.contacts.get(fields.get("Peer", ""), {}).get("", "")
                writer.write((f"Response: Success\r\nActionID: {action_id}\r\nChanneltype: SIP\r\n"
                              f"ObjectName: {fields.get('Peer')}\r\nSIP-Useragent: {agent}\r\n\r\n").encode()
                             if agent else f"Response: Error\r\nActionID: {action_id}\r\nMessage: Peer "
                             f"{fields.get('Peer')} not found.\r\n\r\n".encode())
            elif fields.get("Action") == "PJSIPShowEndpoint":
                self.actions.append(fields)
                writer.write(self._endpoint(fields.get("Endpoint", ""), action_id))
            else:
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
            await writer.drain()

    def _endpoint(self, endpoint: str, action_id: str) -> bytes:
        if endpoint not in self.contacts:
            return (f"Response: Error\r\nActionID: {action_id}\r\nMessage: Unable to retrieve endpoint "
                    f"{endpoint}\r\n\r\n").encode()
        blocks = [f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n"
                  "Message: Following are Events for each object associated with the Endpoint\r\n",
                  f"Event: EndpointDetail\r\nActionID: {action_id}\r\nObjectType: endpoint\r\n"
                  f"ObjectName: {endpoint}\r\n"]
        for uri, agent in self.contacts[endpoint].items():
            blocks.append(f"Event: ContactStatusDetail\r\nActionID: {action_id}\r\nAOR: {endpoint}\r\nURI: {uri}\r\n"
                          f"UserAgent: {agent}\r\nStatus: NonQualified\r\nEndpointName: {endpoint}\r\n")
        blocks.append(f"Event: EndpointDetailComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n"
                      f"ListItems: {len(blocks) - 1}\r\n")
        return "".join(b + "\r\n" for b in blocks).encode()

    def send(self, fields: dict[str, str]) -> float:
        """Send one event to every logged-in client; the time it was handed to the loop."""
        data = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"

        def write() -> None:
            for w in self.writers:
                w.write(data)

        sent = time.perf_counter()
        self.loop.call_soon_threadsafe(write)
        return sent

    def drop(self) -> None:
        """Close every client's connection, as an Asterisk restart does."""

        def close() -> None:
            for w in self.writers:
                w.close()
            self.writers.clear()

        self.ready.clear()
        self.loop.call_soon_threadsafe(close)
