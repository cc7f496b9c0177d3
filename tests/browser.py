"""A real headless browser (Chromium, a Debian package) for the tests of the HTML report."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_dom(page: Path, budget_ms: int = 8000) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time lets timers fire at once)."""
    assert CHROMIUM, "chromium is not installed: scripts/bootstrap.sh installs it (scripts/apt-packages.txt)"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--dump-dom",
            f"--virtual-time-budget={budget_ms}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def html_attribute(dom: str, name: str) -> str | None:
    match = re.search(rf'<html[^>]*\s{name}="([^"]*)"', dom)
    return match.group(1) if match else None


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1800) -> None:
    assert CHROMIUM, "chromium is not installed"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--virtual-time-budget=8000",
            f"--screenshot={out.resolve()}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
