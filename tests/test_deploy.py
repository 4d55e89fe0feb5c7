"""deploy/monitor.service: systemd accepts it (`systemd-analyze verify`), its sandbox
scores 2.0 or lower (`systemd-analyze security --offline`), and it has what the daemon
relies on. `make test` installs Debian's systemd for systemd-analyze when it can."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.config import load_config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "monitor.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd; "
    "`make test` installs it with apt-get when it runs as root with network access)")


def directives() -> dict[str, list[str]]:
    """KEY -> every value it is given in [Service] (a key may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_has_what_the_daemon_relies_on() -> None:
    d = directives()
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Restart"] == "on-failure"
    assert one["DynamicUser"] == "yes"
    assert one["StateDirectory"] == one["ConfigurationDirectory"] == "monitor"
    assert one["ProtectSystem"] == "strict"
    assert one["CapabilityBoundingSet"] == ""
    assert "@system-service" in d["SystemCallFilter"]
    for key in ("WatchdogSec", "MemoryMax", "EnvironmentFile", "TimeoutStopSec"):
        assert one[key], key
    # SIGTERM's drain ([fetch] timeout + 5 s, 25 s by default) fits in TimeoutStopSec
    assert int(one["TimeoutStopSec"].removesuffix("s")) > 25


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # An alternate root holding the unit, stand-ins for the programs it runs (verify
    # checks that they exist) and the system's own units (sysinit.target, …).
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc/systemd/system/monitor.service")
    for program in ("opt/monitor/bin/monitor", "bin/kill"):
        path = tmp_path / program
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    system = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if p.is_dir())
    shutil.copytree(system, tmp_path / "usr/lib/systemd/system", symlinks=True)
    result = subprocess.run([str(ANALYZE), "verify", f"--root={tmp_path}", "--man=no",
                             "monitor.service"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # no warning, e.g. an unknown key


@needs_analyze
def test_systemd_analyze_security_scores_two_or_lower() -> None:
    result = subprocess.run([str(ANALYZE), "security", "--offline=true", "--threshold=20",
                             "--no-pager", str(UNIT)], capture_output=True, text=True,
                            timeout=120)
    output = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for monitor\.service: (\d+\.\d+)", output)
    assert found, output
    assert float(found.group(1)) <= 2.0, output
    assert result.returncode == 0, output


def test_the_deployed_settings_are_valid(tmp_path: Path) -> None:
    etc = tmp_path / "etc-monitor"
    etc.mkdir()
    shutil.copy(ROOT / "deploy" / "monitor.toml", etc / "monitor.toml")
    for name in ("watchlists.yaml", "feeds.opml"):
        shutil.copy(ROOT / "config" / name, etc / name)
    config = load_config(etc / "monitor.toml")
    assert config.settings.database.url.get_secret_value() == (
        "sqlite:////var/lib/monitor/monitor.db")
    assert config.settings.web.address == ("127.0.0.1", 9180)
