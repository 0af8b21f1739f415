"""Alerts through apprise to a webhook on loopback: delivered, de-duplicated, rate-limited."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from sipwatch.config import Alerts, ConfigError
from sipwatch.detectors import Action, Decision
from sipwatch.responders.alerts import Alerter


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        _Hook.received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _ban(ip: str, detector: str = "brute_force") -> Decision:
    return Decision(Action.BAN, detector, "6 failed attempts in 12s", 0.0, ip=ipaddress.ip_address(ip), duration=3600)


def test_a_ban_reaches_the_webhook(webhook: str) -> None:
    alerter = Alerter(Alerts(urls=[webhook]))
    assert alerter.decision(_ban("198.51.100.7"), now=1000.0)
    alerter.flush()
    (message,) = _Hook.received
    assert "198.51.100.7" in str(message["title"]) and "brute_force" in str(message["message"])


def test_the_same_decision_is_sent_once_per_dedupe_period(webhook: str) -> None:
    alerter = Alerter(Alerts(urls=[webhook], dedupe=600))
    sent = [alerter.decision(_ban("198.51.100.7"), now=t) for t in (1000.0, 1100.0, 1700.0)]
    assert sent == [True, False, True]


def test_the_rate_limit_holds_back_and_says_so(webhook: str) -> None:
    alerter = Alerter(Alerts(urls=[webhook], max_per_hour=2))
    sent = [alerter.decision(_ban(f"198.51.100.{i}"), now=1000.0 + i) for i in range(1, 5)]
    assert sent == [True, True, False, False]
    assert alerter.decision(_ban("198.51.100.9"), now=1000.0 + 3700)
    alerter.flush()
    assert "2 more alerts were held back" in str(_Hook.received[-1]["message"])


def test_a_url_apprise_does_not_know_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.urls"):
        Alerter(Alerts(urls=["nosuchscheme://x"]))


def test_alert_test_command(webhook: str, tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "sipwatch.toml"
    cfg.write_text(f'[alerts]\nurls = ["{webhook}"]\n')
    done = subprocess.run([sys.executable, "-m", "sipwatch", "alert-test", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert any("test alert" in str(m.get("title")) for m in _Hook.received)
