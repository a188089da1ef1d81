"""Source health: after N consecutive failures one "source is failing" notice, repeated only after a long
interval, then one "works again" notice. Real local HTTP server, `run --once` in its own process."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FeedServer, fixture_bytes, run_cli, write_config

FEED = fixture_bytes("rss", "cisa-icsma-not-in-csaf.xml")


def test_failing_then_recovered_notices(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.set("/icsma.xml", body=b"<html>Access denied</html>", content_type="text/html")
    config = write_config(
        tmp_path,
        f"""
[daemon]
state = "state.sqlite3"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "{url}"

[[watch]]
name = "monitor"
manufacturer = "Medtronic"
models = ["MyCareLink Patient Monitor"]

[notify]
failure_threshold = 2
failure_repeat = "1d"
""",
    )
    outputs = []
    for _ in range(4):
        result = run_cli("run", "--once", "--config", str(config))
        assert result.returncode == 1
        assert "source cisa-icsma: got an HTML page instead of a feed" in result.stderr
        outputs.append(result.stdout)
    notices = [out.count("aggregator: source cisa-icsma is failing") for out in outputs]
    assert notices == [0, 1, 0, 0], "one notice at the threshold, then quiet until failure_repeat"
    assert "silence from aggregator does not mean nothing was published" in outputs[1]

    feed_server.set("/icsma.xml", body=FEED)
    back = run_cli("run", "--once", "--config", str(config))
    assert back.returncode == 0, back.stderr
    assert back.stdout.count("aggregator: source cisa-icsma works again") == 1
    assert "ICSMA-25-205-01" in back.stdout, "what was published meanwhile arrives"
    again = run_cli("run", "--once", "--config", str(config))
    assert "works again" not in again.stdout
