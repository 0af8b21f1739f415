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
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakeami import FakeAmi
from sipwatch.config import from_dict
from sipwatch.daemon import Daemon
from sipwatch.detectors import Decision
from sipwatch.responders.firewall.dryrun import DryRunBackend
from sipwatch.store import Store

GOAL_P99 = 0.050


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
