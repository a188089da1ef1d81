"""The shipped systemd unit: hardened, Type=notify, and systemd itself accepts it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, run_cli

UNIT = PROJECT / "systemd" / "aggregator.service"


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_is_hardened_and_notifies() -> None:
    d = directives()
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert d["StateDirectory"] == ["aggregator"]
    assert d["DynamicUser"] == ["yes"]
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert d[key] == [value], key
    assert "AF_INET" in d["RestrictAddressFamilies"][0]
    assert "@system-service" in d["SystemCallFilter"]
    assert "WatchdogSec" in d


def test_execstart_is_a_real_command() -> None:
    (exec_start,) = directives()["ExecStart"]
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "aggregator"
    assert argv[1] == "run" and "--once" not in argv
    # The same arguments parse with the real command line (a typo here would crash-loop the service).
    result = run_cli(*argv[1:], "--help")
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this venv's real console script.
    script = Path(sys.executable).with_name("aggregator")
    assert script.exists(), "pip install . provides the aggregator command"
    unit = tmp_path / "aggregator.service"
    unit.write_text(UNIT.read_text().replace("/opt/aggregator/.venv/bin/aggregator", str(script)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in result.stderr.splitlines() if "aggregator.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
