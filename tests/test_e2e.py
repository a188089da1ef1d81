"""The whole path, as a person runs it: `aggregator run --once` in its own process, polling a real local
HTTP server that serves recorded CISA-shaped RSS, mailing through a real local SMTP server (aiosmtpd).

Fixtures: tests/fixtures/rss/cisa-icsma-not-in-csaf.xml and cisa-icsma-all.xml are copies of
../shared/corpus/derived-rss (CISA-shaped RSS rebuilt from the real ICS Advisory Project rows).
"Changed" feeds are derived from them by moving a real item from one file into the other.
"""

from __future__ import annotations

import json
import re
import sqlite3
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import FeedServer, SmtpServer, closed_port_url, fixture_bytes, run_cli, write_config

BASE_FEED = fixture_bytes("rss", "cisa-icsma-not-in-csaf.xml")
ALL_FEED = fixture_bytes("rss", "cisa-icsma-all.xml")


def real_item(advisory_id: str) -> bytes:
    """One real <item> of the 193-item feed, by its guid."""
    for item in re.findall(rb"<item>.*?</item>", ALL_FEED, re.DOTALL):
        if f">{advisory_id}</guid>".encode() in item:
            return item
    raise AssertionError(advisory_id)


def feed_with(*advisory_ids: str) -> bytes:
    """The base feed with real items added at the top, as a publisher adds new advisories."""
    added = b"".join(real_item(a) + b"\n" for a in advisory_ids)
    return BASE_FEED.replace(b"<item>", added + b"<item>", 1)


def plain_text(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def config_text(feed_url: str, notify_url: str | None, *, extra: str = "") -> str:
    notify = f'[notify]\nurls = ["{notify_url}"]\n' if notify_url else ""
    return f"""
[daemon]
state = "state.sqlite3"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "{feed_url}"
interval = "1s"

[[watch]]
name = "Dad's home monitor"
manufacturer = "Medtronic"
models = ["MyCareLink Patient Monitor"]

[[watch]]
name = "My insulin pump"
manufacturer = "Medtronic"
models = ["MiniMed 508", "MMT-508"]
{extra}
{notify}"""


def test_alert_once_then_only_new(tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED, etag='"v1"')
    config = write_config(tmp_path, config_text(url, smtp_server.apprise_url))

    first = run_cli("run", "--once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    mails = smtp_server.collector.wait_for(1)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    mail = mails[0]
    body = plain_text(mail)
    assert "ICSMA-25-205-01" in mail["Subject"] and "Dad's home monitor" in mail["Subject"]
    assert "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-25-205-01" in body
    assert "Why it matched:" in body and "MyCareLink" in body
    assert mail["To"] == "me@example.org"

    # A new process on the same state file: nothing new, nothing sent again (304 this time).
    second = run_cli("run", "--once", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert feed_server.hits("/icsma.xml")[-1].get("If-None-Match") == '"v1"'
    # The feed changes without the matching item changing: still nothing.
    feed_server.set(
        "/icsma.xml", body=BASE_FEED.replace(b"ICS Medical Advisories", b"ICS Medical Advisories "), etag='"v2"'
    )
    third = run_cli("run", "--once", "--config", str(config))
    assert third.returncode == 0, third.stderr
    assert len(smtp_server.collector.wait_for(2, timeout=1)) == 1

    # One matching item appears: exactly one new alert, for the device it concerns.
    feed_server.set("/icsma.xml", body=feed_with("ICSMA-19-178-01"), etag='"v3"')
    fourth = run_cli("run", "--once", "--config", str(config))
    assert fourth.returncode == 0, fourth.stderr
    mails = smtp_server.collector.wait_for(2)
    assert len(mails) == 2
    assert "ICSMA-19-178-01" in mails[1]["Subject"] and "My insulin pump" in mails[1]["Subject"]
    assert len(smtp_server.collector.wait_for(3, timeout=1)) == 2


def test_mail_server_unreachable_keeps_the_alert_pending(
    tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer
) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED)
    port = closed_port_url().split(":")[2].split("/")[0]
    dead = f"mailto://127.0.0.1:{port}?from=a@example.org&to=b@example.org&mode=insecure"
    config = write_config(tmp_path, config_text(url, dead))
    down = run_cli("run", "--once", "--config", str(config))
    assert down.returncode == 1
    assert re.search(r"delivery to mailto://127\.0\.0\.1:\d+.*:", down.stderr), down.stderr

    db = sqlite3.connect(tmp_path / "state.sqlite3")
    pending = db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]
    assert pending == 1
    db.close()


def test_down_target_retried_on_a_later_cycle(tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED)
    config = write_config(tmp_path, config_text(url, smtp_server.apprise_url))
    smtp_server.collector.refuse = True
    down = run_cli("run", "--once", "--config", str(config))
    assert down.returncode == 1, down.stderr
    assert "delivery to mailto://127.0.0.1" in down.stderr
    smtp_server.collector.refuse = False
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    db.execute("UPDATE deliveries SET next_attempt = '2000-01-01T00:00:00+00:00'")  # the back-off has passed
    db.commit()
    db.close()
    up = run_cli("run", "--once", "--config", str(config))
    assert up.returncode == 0, up.stderr
    assert len(smtp_server.collector.wait_for(1)) == 1


def test_unreachable_source_exits_1_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, config_text(closed_port_url(), None))
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 1
    assert re.search(r"^source cisa-icsma: cannot connect to 127\.0\.0\.1:\d+", result.stderr, re.MULTILINE)
    sources = run_cli("sources", "--config", str(config))
    row = json.loads(sources.stdout.splitlines()[0])
    assert row["outcome"] == "failed" and row["consecutive_failures"] == 1


def test_no_targets_prints_alerts_to_stdout(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED)
    config = write_config(tmp_path, config_text(url, None))
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "ICSMA-25-205-01" in result.stdout and "Dad's home monitor" in result.stdout
    again = run_cli("run", "--once", "--config", str(config))
    assert "ICSMA-25-205-01" not in again.stdout


def test_unusable_state_file_exits_2(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED)
    config = write_config(tmp_path, config_text(url, None))
    (tmp_path / "state.sqlite3").write_bytes(b"this is not a database, it is a shopping list" * 100)
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 2
    assert "state.sqlite3" in result.stderr and "not" in result.stderr


def test_target_added_later_gets_only_new_alerts(
    tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer
) -> None:
    url = feed_server.set("/icsma.xml", body=BASE_FEED)
    first_target = smtp_server.apprise_url
    second_target = first_target.replace("to=me@example.org", "to=biomed@example.org")
    config = write_config(tmp_path, config_text(url, first_target))
    assert run_cli("run", "--once", "--config", str(config)).returncode == 0
    assert len(smtp_server.collector.wait_for(1)) == 1

    body = config.read_text().replace(f'urls = ["{first_target}"]', f'urls = ["{first_target}", "{second_target}"]')
    config.write_text(body)
    feed_server.set("/icsma.xml", body=feed_with("ICSMA-19-178-01"))
    assert run_cli("run", "--once", "--config", str(config)).returncode == 0
    mails = smtp_server.collector.wait_for(3)
    assert len(mails) == 3
    by_recipient = sorted((m["To"], m["Subject"].split(" ")[0]) for m in mails)
    assert by_recipient == [
        ("biomed@example.org", "ICSMA-19-178-01"),
        ("me@example.org", "ICSMA-19-178-01"),
        ("me@example.org", "ICSMA-25-205-01"),
    ]


def test_notify_test_reports_each_target(tmp_path: Path, smtp_server: SmtpServer) -> None:
    port = closed_port_url().split(":")[2].split("/")[0]
    dead = f"mailto://alerts:s3cret-pw@127.0.0.1:{port}?from=a@example.org&to=b@example.org&mode=insecure"
    config = write_config(tmp_path, config_text("http://127.0.0.1:9/x.xml", None))
    config.write_text(config.read_text() + f'\n[notify]\nurls = ["{smtp_server.apprise_url}", "{dead}"]\n')
    result = run_cli("notify-test", "--config", str(config))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("mailto://127.0.0.1") and line.endswith(": OK") for line in lines), lines
    assert any("FAILED" in line for line in lines), lines
    assert "s3cret-pw" not in result.stdout + result.stderr, "secrets never printed"
    (mail,) = smtp_server.collector.wait_for(1)
    assert mail["Subject"] == "aggregator test message"
