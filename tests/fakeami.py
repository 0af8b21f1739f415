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
            if fields.get("Action", "").lower() == "login":
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\nMessage: Authentication accepted"
                             "\r\n\r\n".encode())
                self.writers.append(writer)
                self.logins += 1
                self.ready.set()
            else:
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
            await writer.drain()

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
