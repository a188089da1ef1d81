"""Config validation: every problem named as `file: key: what was expected`, exit 2 from every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load_config, parse_duration
from aggregator.errors import ConfigError
from tests.conftest import PROJECT, run_cli, write_config

GOOD = """
[daemon]
state = "state/agg.sqlite3"
interval = "1h"

[[source]]
name = "cisa-icsma"
kind = "rss"
url = "http://127.0.0.1:9/feed.xml"
interval = "30m"

[[watch]]
name = "My insulin pump"
manufacturer = "Medtronic"
models = ["MiniMed 508", "MMT-508"]
firmware = "2.4A"

[notify]
urls = ["mailto://alerts:${TEST_SMTP_PASSWORD}@smtp.example.org?to=me@example.org"]
"""


def test_good_config_loads_with_state_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "hunter2-secret")
    config = load_config(write_config(tmp_path, GOOD))
    assert config.state == (tmp_path / "state" / "agg.sqlite3").resolve()
    assert config.sources[0].interval == 1800
    assert config.interval == 3600
    assert config.watch[0].models == ("MiniMed 508", "MMT-508")
    assert config.watch[0].firmware == "2.4A"
    target = config.notify.targets[0]
    assert "hunter2-secret" in target.url
    assert "hunter2-secret" not in target.masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [("45s", 45), ("30m", 1800), ("6h", 21600), ("1d", 86400), ("1s", 1), (90, 90)],
)
def test_durations(text: object, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0s", "0.5s", "10", "1w", "", "fast", True, -5])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('interval = "30m"', 'intervall = "30m"'), "source[1] (cisa-icsma).intervall", "unknown key"),
        (('interval = "30m"', 'interval = "soon"'), "source[1] (cisa-icsma).interval", "duration"),
        (('kind = "rss"', 'kind = "atom"'), "source[1] (cisa-icsma).kind", 'unknown kind "atom"'),
        (('url = "http://127.0.0.1:9/feed.xml"', 'url = "ftp://x"'), "source[1] (cisa-icsma).url", "http"),
        (
            ('models = ["MiniMed 508", "MMT-508"]', 'models = "MiniMed 508"'),
            "watch[1] (My insulin pump).models",
            "list of non-empty strings",
        ),
        (('firmware = "2.4A"', "firmware = 2.4"), "watch[1] (My insulin pump).firmware", "quotes"),
        (('manufacturer = "Medtronic"', ""), "watch[1] (My insulin pump).manufacturer", "missing"),
        (("[daemon]", "[deamon]"), "deamon", "unknown key"),
        (("${TEST_SMTP_PASSWORD}", "${NOT_SET_ANYWHERE_42}"), "notify.urls", "NOT_SET_ANYWHERE_42 is not set"),
        (("mailto://", "nosuchscheme://"), "notify.urls[1]", "Apprise"),
    ],
)
def test_each_problem_names_file_key_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: tuple[str, str], key: str, words: str
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "x")
    path = write_config(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.startswith(f"{path}: {key}: ") and words in p for p in info.value.problems), info.value.problems


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[daemon]\ninterval = "x"\nbogus = 1\n[[watch]]\nname = "a"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = {p.split(": ")[1] for p in info.value.problems}
    assert {"daemon.interval", "daemon.bogus", "watch[1] (a).manufacturer", "watch[1] (a).models"} <= keys


def test_duplicate_names_are_errors(tmp_path: Path) -> None:
    body = GOOD.replace(
        "[notify]", '[[watch]]\nname = "My insulin pump"\nmanufacturer = "X"\nmodels = ["Y"]\n[notify]'
    ).replace("${TEST_SMTP_PASSWORD}", "pw")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, body))
    assert any("watch[2] (My insulin pump).name" in p and "unique" in p for p in info.value.problems)


def test_zero_sources_is_valid(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[[watch]]\nname = "a"\nmanufacturer = "B"\nmodels = ["C"]\n'))
    assert config.sources == ()


def test_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "smtp").write_text("from-a-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(write_config(tmp_path, GOOD.replace("${TEST_SMTP_PASSWORD}", "${file:smtp}")))
    assert "from-a-credential" in config.notify.targets[0].url


def test_cli_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD.replace('interval = "30m"', 'interval = "often"'))
    for command in (
        ["check-config", str(path)],
        ["run", "--once", "--config", str(path)],
        ["scan", "--config", str(path), str(tmp_path)],
    ):
        result = run_cli(*command, env={"TEST_SMTP_PASSWORD": "x"})
        assert result.returncode == 2, (command, result.stderr)
        assert f"{path}: source[1] (cisa-icsma).interval: expected a duration" in result.stderr
        assert not (tmp_path / "state").exists(), "nothing may start on a bad config"


def test_cli_check_config_masks_secrets(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    result = run_cli("check-config", "--config", str(path), env={"TEST_SMTP_PASSWORD": "hunter2-secret"})
    assert result.returncode == 0, result.stderr
    assert "cisa-icsma" in result.stdout and "My insulin pump" in result.stdout
    assert "mailto://alerts:****@smtp.example.org" in result.stdout
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_shipped_config_is_valid() -> None:
    result = run_cli("check-config", str(PROJECT / "config.toml"))
    assert result.returncode == 0, result.stderr
    assert "cisa-icsma" in result.stdout


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: cannot read the file" in result.stderr
