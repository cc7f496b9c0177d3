"""The report of a generated fleet history, opened in a real headless browser: a planted step, a stray
twin and an invalid capacity must all be there, where a person looks for them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from collect.report import build_report
from tests.browser import html_attribute, rendered_dom
from tests.results_tree import point, stored
from tests.unit.test_collect_twins import metadata

pytestmark = pytest.mark.unit

HOSTS = {"kp-01": 1.0, "kp-02": 1.01, "kp-03": 0.99, "kp-04": 0.7, "kp-05": 1.0, "kp-06": 0.995, "x86-01": 0.4}
RUNS = [f"night-{i:02d}" for i in range(30)]


def fleet_rows() -> list[dict]:
    """Two levels per point (p99 60 and 400 ms); kp-03 steps down 20 % from night-20; kp-04 is slow
    throughout (THP off); x86-01 measures too little at its best level under 300 ms for a p99."""
    rng = random.Random(3)
    rows = []
    for i, run in enumerate(RUNS):
        for host, speed in HOSTS.items():
            for model in ("dlrm", "dssm"):
                level = speed * (0.8 if host == "kp-03" and i >= 20 else 1.0) * rng.uniform(0.99, 1.01)
                batch = 1 if host != "x86-01" else 256
                rows.append(point(run, host, model, f"{model}-c", "numa0", 1, 8000 * level, 60_000, batch=batch))
                rows.append(point(run, host, model, f"{model}-c", "numa0", 2, 9000 * level, 400_000, batch=batch))
    return rows


def test_the_fleet_report_shows_the_step_the_stray_and_the_invalid_capacity(tmp_path: Path) -> None:
    facts = {host: metadata(host if host != "kp-03" else "kp-01") for host in HOSTS}
    for host, entry in facts.items():
        entry["config"] = {"measurement_interval_ms": 5_000 if host == "x86-01" else 20_000}
    with stored(tmp_path, fleet_rows(), facts) as store:
        report = build_report(store, None, tmp_path / "reports")
    assert {(r.host, r.model, r.run_id) for r in report.findings.itertuples() if r.kind == "regression"} == {
        ("kp-03", "dlrm", "night-20"),
        ("kp-03", "dssm", "night-20"),
    }
    dom = rendered_dom(report.directory / "report.html")
    assert html_attribute(dom, "data-script-errors") is None
    assert html_attribute(dom, "data-plots") == "5"  # the overview, then curves and history of 2 models
    assert "thp.enabled: never (twins: always)" in dom  # kp-04 strays, and why
    assert "no configuration difference found" in dom  # kp-03 strays since its step, with nothing to blame
    assert "too few requests for a p99 (under 459)" in dom  # x86-01's capacity is invalid, and why
    assert "night-20" in dom and "regression" in dom
    for host in HOSTS:
        assert host in dom
