"""Optional NVD enrichment: CVSS for CVEs that a source names without a score, looked up by CVE id.

Fixtures are real NVD records (../shared/corpus/nvd-cve-api-2.0): an API 2.0 answer for CVE-2017-7542 and a
search page (nvdlib's test data), and the bare record of CVE-2019-10964 (fkie-cad/nvd-json-data-feeds),
served by a real local HTTP server. The advisory feed is the MHRA-shaped Atom built for the RSS tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.errors import ParseError
from aggregator.sources.nvd import parse_nvd
from tests.conftest import FeedServer, fixture_bytes, run_cli, write_config


def nvd_config(folder: Path, feed_url: str, nvd_url: str, extra: str = "") -> Path:
    """The MHRA-shaped feed watched for a MiniMed 508, with NVD enrichment from the local server."""
    return write_config(
        folder,
        f"""
[daemon]
state = "state.sqlite3"

[[source]]
name = "mhra"
kind = "rss"
url = "{feed_url}"

[[watch]]
name = "pump"
manufacturer = "Medtronic"
models = ["MiniMed 508"]

[nvd]
url = "{nvd_url}"
spacing = "1s"
{extra}
""",
    )


def test_parse_prefers_newest_cvss_and_nvds_own_score() -> None:
    bare = parse_nvd(fixture_bytes("nvd", "CVE-2019-10964.json"))
    assert bare["CVE-2019-10964"].score == 7.1 and bare["CVE-2019-10964"].severity == "HIGH"
    answer = parse_nvd(fixture_bytes("nvd", "CVE-2017-7542.json"))
    assert (answer["CVE-2017-7542"].score, answer["CVE-2017-7542"].severity) == (5.5, "MEDIUM")
    page = parse_nvd(fixture_bytes("nvd", "simple_search.json"))
    assert set(page) == {"CVE-2021-25992", "CVE-2022-0558"}
    assert all(s.score is not None and s.vector for s in page.values())


@pytest.mark.parametrize("body", [b"not json", b'{"message": "Unauthorized"}', b"[]"])
def test_parse_refuses_what_is_not_nvd(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_nvd(body)


def test_enrichment_in_a_cycle(tmp_path: Path, feed_server: FeedServer) -> None:
    feed = feed_server.set(
        "/mhra.atom",
        body=fixture_bytes("regulators", "mhra-drug-device-alerts.atom"),
        content_type="application/atom+xml",
    )
    nvd = feed_server.set(
        "/nvd/cves/2.0", body=fixture_bytes("nvd", "CVE-2019-10964.json"), content_type="application/json"
    )
    config = nvd_config(tmp_path, feed, nvd, 'api_key = "${TEST_NVD_KEY}"')
    first = run_cli("run", "--once", "--config", str(config), env={"TEST_NVD_KEY": "nvd-secret-key"})
    assert first.returncode == 0, first.stderr
    assert "Severity: CVSS 7.1 HIGH (NVD)" in first.stdout
    (request,) = feed_server.hits("/nvd/cves/2.0")
    assert request["apiKey"] == "nvd-secret-key"
    assert "nvd-secret-key" not in first.stdout + first.stderr

    second = run_cli("run", "--once", "--config", str(config), env={"TEST_NVD_KEY": "nvd-secret-key"})
    assert second.returncode == 0
    assert len(feed_server.hits("/nvd/cves/2.0")) == 1, "a CVE is looked up once"
    listed = [
        json.loads(line)
        for line in run_cli("alerts", "--config", str(config), env={"TEST_NVD_KEY": "k"}).stdout.splitlines()
    ]
    assert len(listed) == 1


def test_nvd_down_does_not_hold_alerts_back(tmp_path: Path, feed_server: FeedServer) -> None:
    feed = feed_server.set("/mhra.atom", body=fixture_bytes("regulators", "mhra-drug-device-alerts.atom"))
    nvd = feed_server.set("/nvd", status=503)
    config = nvd_config(tmp_path, feed, nvd)
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 0, "enrichment is optional: its failure is a warning"
    assert "NVD lookup of CVE-2019-10964 failed: HTTP 503" in result.stderr
    assert "ICSMA-19-178-01" in result.stdout and "(NVD)" not in result.stdout
