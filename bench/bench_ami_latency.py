"""AMI event to decision: how long from the moment an AMI call event leaves the PBX to the daemon's decision?

A small AMI server here speaks the manager protocol (banner, Login, events) on loopback; the real daemon
(`sipwatch.daemon.Daemon`, dry-run backend, in a thread) follows it with the AMI source, exactly as it
follows a real Asterisk. Each round sends the `Newchannel` of a call from its own account to a denied
destination (`+882`, a critical account rule), and the latency is from the write of that event to the
decision handed to `Pipeline.on_critical` (where the AMI hang-up and block begin). Goal (issue 7): p99 at
most 50 ms.

    .venv/bin/python bench/bench_ami_latency.py [--calls 500] [--gap 0.02]

No peer reads AMI call events, so there is no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

from sipwatch.config import from_dict
from sipwatch.daemon import Daemon
from sipwatch.detectors import Decision
from sipwatch.responders.firewall.dryrun import DryRunBackend
from sipwatch.store import Store

GOAL_P99 = 0.050


class FakeAmi:
    """Just enough of Asterisk's manager protocol for a logged-in listener."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.port = 0

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._client, "127.0.0.1", 0), self.loop)
        self.port = server.result(5).sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        while True:
            try:
                block = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the daemon went away
            fields = dict(line.split(": ", 1) for line in block.decode().strip().split("\r\n") if ": " in line)
            action_id = fields.get("ActionID", "")
            if fields.get("Action", "").lower() == "login":
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\nMessage: Authentication accepted"
                             "\r\n\r\n".encode())
                self.writers.append(writer)
                self.ready.set()
            else:
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
            await writer.drain()

    def send(self, fields: dict[str, str]) -> float:
        data = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"

        def write() -> None:
            for w in self.writers:
                w.write(data)

        sent = time.perf_counter()
        self.loop.call_soon_threadsafe(write)
        return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between calls")
    args = ap.parse_args()
    ami = FakeAmi()
    ami.start()
    folder = Path(tempfile.mkdtemp(prefix="sipwatch-bench-"))
    url = f"ami://bench:secret@127.0.0.1:{ami.port}"
    config = from_dict({"run": {"watch": [url], "state_dir": str(folder), "backend": "dry-run"},
                        "numbers": {"country": "DE"}, "behaviour": {"learning_days": 0},
                        "accounts": {"limits": {}, "account": {f"{7000 + i}": {"deny": ["+882"]}
                                                               for i in range(args.calls)}}})
    decided: dict[str, float] = {}
    daemon = Daemon(config, DryRunBackend(), Store(str(folder / "sipwatch.db")))

    def on_critical(decision: Decision) -> None:
        decided.setdefault(decision.account or "", time.perf_counter())

    daemon.pipeline.on_critical.append(on_critical)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    if not ami.ready.wait(10):
        raise SystemExit("the daemon did not log in to the AMI server")
    time.sleep(0.5)
    sent: dict[str, float] = {}
    for i in range(args.calls):
        account = f"{7000 + i}"
        sent[account] = ami.send({
            "Event": "Newchannel", "Privilege": "call,all", "Channel": f"PJSIP/{account}-{i:08x}",
            "ChannelState": "4", "ChannelStateDesc": "Ring", "CallerIDNum": account, "Context": "internal",
            "Exten": "00882123456789", "Priority": "1", "Uniqueid": f"1796222277.{i}",
            "Linkedid": f"1796222277.{i}"})
        time.sleep(args.gap)
    deadline = time.monotonic() + 5
    while len(decided) < args.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    latencies = sorted(decided[a] - sent[a] for a in sent if a in decided)
    if not latencies:
        raise SystemExit("no decision was made")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"AMI Newchannel -> critical decision, {len(latencies)} of {args.calls} calls decided: "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms (goal p99 <= {GOAL_P99 * 1000:.0f} ms: "
          f"{'met' if p99 <= GOAL_P99 else 'NOT met'})")


if __name__ == "__main__":
    main()
