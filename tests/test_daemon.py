"""The real daemon loop in its own process: polls on its interval, alerts on new items, stops on SIGTERM/SIGINT.

Feeds are the recorded CISA-shaped RSS served by a real local HTTP server; alerts go to stdout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT, FeedServer, fixture_bytes, write_config
from tests.test_e2e import BASE_FEED, feed_with

FEED = fixture_bytes("rss", "cisa-icsma-not-in-csaf.xml")


def start_daemon(config: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=PROJECT,
            env=env,
        )


def wait_for_text(path: Path, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace")
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not seen in:\n{path.read_text(errors='replace')[-3000:]}")


def daemon_config(tmp_path: Path, url: str) -> Path:
    return write_config(
        tmp_path,
        f"""
[daemon]
state = "state.sqlite3"
interval = "1s"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "{url}"

[[watch]]
name = "monitor"
manufacturer = "Medtronic"
models = ["MyCareLink Patient Monitor"]

[[watch]]
name = "pump"
manufacturer = "Medtronic"
models = ["MiniMed 508"]
""",
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_daemon_polls_alerts_and_stops_cleanly(tmp_path: Path, feed_server: FeedServer, sig: signal.Signals) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED, etag='"v1"')
    out = tmp_path / "daemon.log"
    proc = start_daemon(daemon_config(tmp_path, url), out)
    try:
        wait_for_text(out, 'ICSMA-25-205-01 affects "monitor"')
        polls = len(feed_server.hits("/icsma.xml"))
        feed_server.set("/icsma.xml", body=feed_with("ICSMA-19-178-01"), etag='"v2"')
        content = wait_for_text(out, 'ICSMA-19-178-01 affects "pump"')
        assert len(feed_server.hits("/icsma.xml")) > polls, "polled again on its own interval"
        assert content.count('ICSMA-25-205-01 affects "monitor"') == 1, "no repeat of the old alert"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"received {sig.name}, stopping" in out.read_text()


def test_sigterm_during_a_slow_poll_exits_within_seconds(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.set("/icsma.xml", body=FEED, delay=25)
    out = tmp_path / "daemon.log"
    proc = start_daemon(daemon_config(tmp_path, url), out)
    try:
        deadline = time.monotonic() + 15
        while not feed_server.hits("/icsma.xml") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert feed_server.hits("/icsma.xml"), "the poll started"
        proc.send_signal(signal.SIGTERM)
        # The slow server answers after 25 s: exiting well before that means the poll was abandoned.
        assert proc.wait(timeout=12) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # The interrupted poll left the state consistent: the next start polls and alerts normally.
    feed_server.set("/icsma.xml", body=FEED)
    proc = start_daemon(daemon_config(tmp_path, url), tmp_path / "second.log")
    try:
        wait_for_text(tmp_path / "second.log", 'ICSMA-25-205-01 affects "monitor"')
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sd_notify_ready_watchdog_stopping(tmp_path: Path, feed_server: FeedServer) -> None:
    """The sd_notify protocol as systemd speaks it: datagrams on $NOTIFY_SOCKET."""
    import socket

    url = feed_server.set("/icsma.xml", body=FEED)
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(15)
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
        with (tmp_path / "daemon.log").open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "run", "--config", str(daemon_config(tmp_path, url))],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=PROJECT,
                env=env,
            )
        try:
            messages = [sock.recv(256).decode()]
            while messages.count("WATCHDOG=1") < 2:
                messages.append(sock.recv(256).decode())
            proc.send_signal(signal.SIGTERM)
            while messages[-1] != "STOPPING=1":
                messages.append(sock.recv(256).decode())
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert messages[0] == "READY=1"
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
